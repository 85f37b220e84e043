# The two commands a new machine needs are `make migrate` and `make test`; each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed-stamp
GENERATED := src/persistence/queries.py
GENERATED_SQL := sql/aiosql
SQLC_JSON := build/sqlc/sqlite/codegen_request.json build/sqlc/postgres/codegen_request.json

## Python keeps its compiled modules, under build/pycache, even where the environment says not to
## (PYTHONDONTWRITEBYTECODE): the tests start hundreds of Python processes, and each one compiled
## the package again, about 0.2 s of CPU apiece.
unexport PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX := $(CURDIR)/build/pycache

.PHONY: venv migrate test warm-tests test-py313 lint typecheck sqlc-check generate check-generated pytest pgbouncer bench bench-quick bench-report clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

venv: $(STAMP)

## Apply the migrations to data/app.db, or to DATABASE_URL when it is set.
migrate: $(STAMP)
	$(PY) -m persistence migrate

## Everything CI checks. check-generated runs `sqlc generate`, which refuses every query that
## `sqlc compile` (sqlc-check) refuses, so `test` does not run sqlc's analysis twice.
## The checks before the tests each use one core: they run side by side, with pytest's
## rewriting of the test modules (warm-tests), which each test worker would otherwise do anew.
test: $(STAMP)
	$(MAKE) --no-print-directory -j 3 --output-sync=target lint check-generated typecheck warm-tests
	$(MAKE) --no-print-directory pytest

## Collect the tests once, so that pytest keeps its rewritten test modules (under build/pycache)
## for its workers: a worker that rewrites them all spends 10 s or more of CPU on it.
## A collection that fails here fails again, and says why, in the run itself.
warm-tests: $(STAMP)
	@$(BIN)/pytest --collect-only -q > /dev/null 2>&1 || true

lint: $(STAMP)
	$(BIN)/ruff check src tests bench codegen
	$(BIN)/ruff format --check src tests bench codegen

typecheck: $(STAMP)
	$(BIN)/mypy

sqlc-check: $(STAMP)
	$(BIN)/sqlc compile

## Turn the SQL files into what runs: each engine's aiosql file and the typed interface.
generate: $(STAMP)
	$(BIN)/sqlc generate
	$(PY) -m codegen.queries $(SQLC_JSON) --output $(GENERATED) --sql-output $(GENERATED_SQL)
	$(BIN)/ruff format --quiet $(GENERATED)

## Fail when the committed output is not what `make generate` writes now: the one drift check.
check-generated: $(STAMP)
	$(BIN)/sqlc generate
	rm -rf build/generated
	$(PY) -m codegen.queries $(SQLC_JSON) --output build/generated/queries.py --sql-output build/generated/aiosql
	$(BIN)/ruff format --quiet build/generated/queries.py
	@diff -u $(GENERATED) build/generated/queries.py && diff -ru $(GENERATED_SQL) build/generated/aiosql || { echo "$(GENERATED) or $(GENERATED_SQL) is stale: run 'make generate'" >&2; exit 1; }

## Four workers for most tests, then the timed ones on two. Most tests wait on child processes,
## fsync and the servers about half their time: on two cores, two workers took 6:42 and four
## 5:28. The two workers of the timed tests take turns to measure (each measurement holds one
## lock, tests/_lag.py), so that neither measures while the other does: 2:40 against 3:50 for
## one worker. A timed test measures the wall clock on a shared machine, where another process
## may take the CPU for a moment: one that fails is run again, twice at most. A fault they
## guard held the loop several times their bound, every time.
## A worker with no tests left takes half of another's queue (worksteal), and the tests marked
## `long` go first: with whole batches sent ahead, one worker ran on alone at the end.
##
## The tests' files (databases, stores, reports) go to a folder of their own in memory
## (/dev/shm) where the machine has one, removed after: their fsyncs cost nothing there, and
## the run is CPU-bound on two cores (a run with them on disk spent 28 % of its CPU in the
## kernel). TEST_TMP names another place; the folder is made readable to all, as the test
## that runs the command line as the user nobody needs.
TEST_TMP ?= $(if $(wildcard /dev/shm/.),/dev/shm,$(or $(TMPDIR),/tmp))
pytest: $(STAMP) pgbouncer
	@tmp=$$(mktemp -d "$(TEST_TMP)/pt.XXXXXX") && chmod 755 "$$tmp" && \
	trap 'rm -rf "$$tmp"' EXIT && \
	echo "TMPDIR=$$tmp" && \
	TMPDIR="$$tmp" $(BIN)/pytest -n 4 -m 'not timed' --dist worksteal && \
	TMPDIR="$$tmp" $(BIN)/pytest -n 2 -m timed --dist worksteal --reruns 2 -raR

## mypy and the untimed tests on Python 3.13 (PYTHON313 names it), in a venv of their own: 3.12
## and 3.13 carry newer asyncio, sqlite3, json and Unicode tables than 3.11. Not part of `test`.
PYTHON313 ?= python3.13
VENV313 := .venv-py313
test-py313: pgbouncer
	test -x $(VENV313)/bin/python || $(PYTHON313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet -e '.[dev,bench]'
	$(VENV313)/bin/mypy
	$(VENV313)/bin/pytest -n 2 -m 'not timed'

## The PgBouncer tests start their own pgbouncer: install Debian's package if it is missing.
pgbouncer:
	@.ci/install-pgbouncer

## Benchmark the layer against the strongest hand-written code, the drivers and SQLAlchemy,
## with every section (loop, search under writes, search, caches); writes under $(BENCH_OUT) only.
## Aim: about 15 minutes on 2 quiet cores. BENCH_QUICK=1 (or `make bench-quick`) is a smoke run.
BENCH_OUT ?= build/bench
bench: $(STAMP)
	BENCH_OUT=$(BENCH_OUT) $(PY) -m bench

## A smoke run of every part at small sizes, each named by its size; never for docs/.
bench-quick: $(STAMP)
	BENCH_QUICK=1 BENCH_OUT=build/bench-quick $(PY) -m bench

## The run of 2026-11-25, before the restructuring, and the page that sets each new run beside it.
BENCH_BASELINE := docs/benchmarks/baseline-2026-11-25.json
BENCH_AGAINST := docs/benchmarks/against-2026-11-25.md

## Run the benchmark, then make its report, figures and chart the committed ones in docs/.
bench-report: $(STAMP)
	@if [ -n "$(BENCH_ONLY)" ] || { [ -n "$(BENCH_QUICK)" ] && [ "$(BENCH_QUICK)" != 0 ]; }; then \
		echo "bench-report commits a full run: unset BENCH_QUICK and BENCH_ONLY" >&2; exit 1; fi
	$(MAKE) bench
	cp $(BENCH_OUT)/BENCHMARKS.md docs/BENCHMARKS.md
	mkdir -p docs/benchmarks
	cp $(BENCH_OUT)/benchmarks/results.json $(BENCH_OUT)/benchmarks/rows_per_second.png docs/benchmarks/
	$(PY) -m bench.against $(BENCH_BASELINE) docs/benchmarks/results.json --out $(BENCH_AGAINST)

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
