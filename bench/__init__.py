"""Side-by-side benchmarks: this layer, the raw drivers, sqlite3 on the loop and SQLAlchemy.

Run with `make bench` (or `python -m bench`), which writes under build/bench/ only;
`make bench-report` also copies the report, its JSON and its chart to docs/. `BENCH_N`
sets the number of rows; the report lists the other settings.
"""
