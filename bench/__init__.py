"""Side-by-side benchmarks: this layer, the raw drivers and SQLAlchemy, on the same rows.

Run with `make bench` (or `python -m bench`); `BENCH_N` sets the number of rows.
"""
