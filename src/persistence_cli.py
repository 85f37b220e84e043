"""The `persistence` command's entry point: `persistence.__main__.main`, imported on the call.

Its imports take a few tenths of a second, and far longer on a loaded machine: a Ctrl-C in
that time came before the command's own handling, and Python printed a traceback of the
import, where an interrupted command prints one line and exits 130. This module imports
nothing of the package until it is called, and takes that Ctrl-C as the command does.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

EXIT_INTERRUPTED = 130
"""An interrupted command's exit code, as `persistence.__main__` gives it."""


def main() -> int:
    """Run the command line; a Ctrl-C before it could take it over is one line, exit 130."""
    try:
        from persistence.__main__ import main as run  # noqa: PLC0415  # see the module

        return run()
    except KeyboardInterrupt:
        sys.stderr.write("persistence: interrupted\n")
        return EXIT_INTERRUPTED
