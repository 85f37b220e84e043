"""Run every workload on every engine, print a table, write results.json and BENCHMARKS.md."""

from bench._runner import main

if __name__ == "__main__":
    main()
