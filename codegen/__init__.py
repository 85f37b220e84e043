"""Build-time tools, never installed: `make generate` runs `python -m codegen.queries`."""
