"""Side-by-side benchmarks: the layer against the strongest hand-written code, and more.

The contenders are the layer, the strongest hand-written code of each workload, the drivers
and SQLAlchemy; the sections registered in `bench/_sections.py` follow (search, the event
loop, memory, search under writes, caches). Run with `make bench` (or `python -m bench`),
which writes under build/bench/ only; `make bench-report` also copies the report, its JSON
and its chart to docs/. Every workload runs at the size it is named for; `BENCH_QUICK=1`
(`make bench-quick`) is a smoke run at small sizes, each workload then named by its size.
"""
