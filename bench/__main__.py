"""Run every workload on every engine; write the report, results.json and the chart."""

from bench._runner import main

if __name__ == "__main__":
    main()
