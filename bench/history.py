# ruff: noqa: T201, S101, S311, S603, PLR2004
# (a benchmark script: it prints its table, checks its own figures, makes its data with a
# seeded generator and runs its memory probe in a child process)
"""Run history: issue 20's targets, on both engines, over one generated history.

Run with `python -m bench.history`. On each engine it loads the same history, TESTS tests in
RUNS runs (a `commit` label per 4 runs, about 1% of results failing, times around 0.05 s),
through `save_run` and `save_results`, then times, best of REPEAT calls:

- `compare_runs` of the last two runs (target 50 ms);
- `flaky_tests` over the whole history (target 1 s);
- one test's history page of 50 and its `duration_figures` over its last 100 (5 ms each);
- `slowest_tests` over the last 10 runs (no target);

and, on SQLite only, `import_junit` of a generated report (target 50,000 test cases a
second; the best of `BENCH_HISTORY_REPEAT` imports, each into a new database by a new
process; its modules one after another as pytest writes them, and again with their cases
dealt out in turn, the worst order for the indexes on test ids, for comparison) and the peak
memory a 100 MB report adds to a process importing it (target 150 MB; measured in a child
process: its own peak resident memory after the import, `VmHWM`, less what it held just
before the import, `VmRSS`; not `ru_maxrss`, which a forked child starts from its parent's
peak).

Settings, from the environment:

- `BENCH_HISTORY_TESTS` (10,000) and `BENCH_HISTORY_RUNS` (100): the history's size;
- `BENCH_HISTORY_REPEAT` (3): timed calls of each question;
- `BENCH_HISTORY_IMPORT_CASES` (200,000): test cases in the timed JUnit report;
- `BENCH_HISTORY_MEMORY_MB` (100): size of the report whose memory is measured; 0 skips it;
- `BENCH_DATABASE_URL`: the PostgreSQL server to make the database on.

It prints a Markdown table and writes `build/bench/history.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import asyncpg

from bench._scratch import scratch_postgres
from persistence import (
    Database,
    Engine,
    Run,
    TestResult,
    TestStatus,
    TestType,
    compare_runs,
    connect,
    duration_figures,
    flaky_tests,
    list_runs,
    list_test_history,
    migrate,
    save_results,
    save_run,
    slowest_tests,
)
from persistence._interface import JsonObject

__all__ = ["main", "make_history", "measure", "write_junit"]

DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
OUT: Final = Path("build/bench/history.json")
RUNS_PER_COMMIT: Final = 4
FAILING_SHARE: Final = 0.01
START: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

TARGETS: Final = {  # what each figure must be at most (seconds, or MB), or at least (cases/s)
    "compare_runs": 0.050,
    "flaky_tests": 1.0,
    "test_history_page": 0.005,
    "duration_figures": 0.005,
    "junit_cases_per_second": 50_000.0,
    "junit_memory_mb": 150.0,
}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


def test_name(number: int) -> str:
    """The test id of test `number`, as a pytest node id."""
    return f"tests/test_module_{number % 100:02d}.py::test_case_{number:05d}"


async def make_history(db: Database, tests: int, runs: int, *, seed: int = 20) -> list[int]:
    """Save `runs` runs of `tests` results each; give the run ids, oldest first."""
    rng = random.Random(seed)
    ids = []
    for number in range(runs):
        started = START + dt.timedelta(hours=number)
        labels: JsonObject = {"commit": f"{number // RUNS_PER_COMMIT:07x}", "branch": "main"}
        run = await save_run(db, Run(started_at=started, ended_at=started, labels=labels))
        assert run.id is not None
        ids.append(run.id)
        batch = []
        for test in range(tests):
            failing = rng.random() < FAILING_SHARE
            batch.append(
                TestResult(
                    test_type=TestType.UNIT,
                    status=TestStatus.FAILED if failing else TestStatus.PASSED,
                    execution_time=round(rng.lognormvariate(-3, 0.5), 6),
                    created_at=started + dt.timedelta(microseconds=test),
                    run_id=run.id,
                    test_id=test_name(test),
                )
            )
        await save_results(db, batch)
    return ids


def write_junit(path: Path, cases: int, *, output_chars: int = 0, interleaved: bool = False) -> int:
    """Write a pytest-like JUnit report of `cases` cases, 1% failing; give its size in bytes.

    Its 100 modules come one after another, each with its cases together, as pytest and
    Surefire write them. `interleaved` deals the cases out to the modules in turn instead,
    which no runner does: the worst order for the indexes on test ids.
    """
    rng = random.Random(cases)
    filler = "x" * output_chars
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n')
        out.write(f'<testsuite name="pytest" tests="{cases}">\n')
        for number in range(cases):
            module = number % 100 if interleaved else number * 100 // cases
            name = f'classname="tests.test_module_{module:02d}" name="test_case_{number:07d}"'
            time_ = f'time="{rng.lognormvariate(-3, 0.5):.4f}"'
            if rng.random() < FAILING_SHARE:
                body = '<failure message="assert 1 == 2">AssertionError: assert 1 == 2</failure>'
                out.write(f"<testcase {name} {time_}>{body}</testcase>\n")
            elif output_chars:
                body = f"<system-out>{filler}</system-out>"
                out.write(f"<testcase {name} {time_}>{body}</testcase>\n")
            else:
                out.write(f"<testcase {name} {time_}/>\n")
        out.write("</testsuite>\n</testsuites>\n")
    return path.stat().st_size


@contextlib.asynccontextmanager
async def _database(engine: Engine, workdir: Path, admin_url: str) -> AsyncIterator[str]:
    """Make a new, empty database of one engine; give its URL, and drop it afterwards."""
    if engine is Engine.SQLITE:
        yield str(workdir / "history.db")
        return
    async with scratch_postgres(admin_url, "persistence_bench_history") as url:
        yield url


async def _analyse(engine: Engine, url: str) -> None:
    """Give the planner statistics, as a database that has run a while has."""
    if engine is Engine.SQLITE:
        with contextlib.closing(sqlite3.connect(url)) as lite:
            lite.execute("PRAGMA optimize")
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("VACUUM ANALYZE")
    finally:
        await pg.close()


async def _best(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    """Give the shortest of `repeat` timed calls, in seconds, after one untimed call."""
    await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return min(times)


async def _questions(
    engine: Engine, url: str, tests: int, runs: int, repeat: int
) -> dict[str, float]:
    async with connect(url) as db:
        await migrate(db)
        started = time.perf_counter()
        run_ids = await make_history(db, tests, runs)
        loaded = time.perf_counter() - started
    await _analyse(engine, url)
    async with connect(url) as db:
        head, base = run_ids[-1], run_ids[-2]
        one = test_name(tests // 2)
        window = START + dt.timedelta(hours=runs - 10)
        latest = (await list_runs(db, limit=1)).items[0]
        assert latest.id == head
        flaky = await flaky_tests(db, START)
        assert flaky, "the generated history has flaky tests"
        return {
            "load_seconds": loaded,
            "flaky_count": float(len(flaky)),
            "compare_runs": await _best(lambda: compare_runs(db, base, head), repeat),
            "flaky_tests": await _best(lambda: flaky_tests(db, START), repeat),
            "test_history_page": await _best(lambda: list_test_history(db, one, limit=50), repeat),
            "duration_figures": await _best(lambda: duration_figures(db, one, last=100), repeat),
            "slowest_tests": await _best(lambda: slowest_tests(db, created_from=window), repeat),
        }


_SPEED_CHILD: Final = """
import asyncio, sys, time
from persistence import connect, import_junit, migrate

async def main(database, report, cases):
    async with connect(database) as db:
        await migrate(db)
        started = time.perf_counter()
        await import_junit(db, report)
        print(int(cases) / (time.perf_counter() - started))

asyncio.run(main(*sys.argv[1:]))
"""


def _import_speed(workdir: Path, cases: int, repeat: int, *, interleaved: bool = False) -> float:
    """Test cases a second that `import_junit` stores into a new SQLite database.

    The best of `repeat` imports, each into a database of its own and in a process of its
    own, as the `import` command runs: not in this one, whose earlier sections left a heap
    that the garbage collector would walk meanwhile.
    """
    report = workdir / "report.xml"
    write_junit(report, cases, interleaved=interleaved)
    rates = []
    for round_ in range(repeat):
        database = workdir / f"import-{interleaved}-{round_}.db"
        rates.append(_in_child(_SPEED_CHILD, database, report, cases))
    return max(rates)


_MEMORY_CHILD: Final = """
import asyncio, sys
from persistence import connect, import_junit, migrate

def status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)

async def main(database, report):
    async with connect(database) as db:
        await migrate(db)
        before = status_kib("VmRSS")  # what the process holds now, not its peak so far
        await import_junit(db, report)
        after = status_kib("VmHWM")  # this program's own peak, not the forking parent's
    print(max(0, after - before) / 1024)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def import_memory_mb(workdir: Path, megabytes: int) -> tuple[float, int]:
    """Peak memory (MB, by the child's VmHWM) that importing a report of about `megabytes` adds."""
    report = workdir / "big.xml"
    cases = megabytes * 1024 * 1024 // 1_100
    size = write_junit(report, cases, output_chars=1_000)
    return _in_child(_MEMORY_CHILD, workdir / "big.db", report), size


def _in_child(script: str, *args: object) -> float:
    """Run a measuring script in a new Python process; give the number it prints."""
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def _verdict(name: str, value: float) -> str:
    target = TARGETS.get(name)
    if target is None:
        return ""
    ok = value >= target if name == "junit_cases_per_second" else value <= target
    return "met" if ok else "MISSED"


def _table(report: dict[str, dict[str, float]]) -> str:
    lines = [
        "| figure | target | " + " | ".join(report) + " |",
        "|---|---|" + "---|" * len(report),
    ]
    names = sorted({name for figures in report.values() for name in figures})
    for name in names:
        cells = []
        for figures in report.values():
            value = figures.get(name)
            if value is None:
                cells.append("")
            elif name.endswith(("per_second", "_mb", "_count", "_bytes")):
                cells.append(f"{value:,.0f} {_verdict(name, value)}".strip())
            else:
                cells.append(f"{value * 1000:,.1f} ms {_verdict(name, value)}".strip())
        target = TARGETS.get(name)
        shown = ""
        if target is not None:
            shown = f"{target:,.0f}" if target >= 50 else f"{target * 1000:g} ms"
        lines.append(f"| {name} | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def _run(*, quick: bool = False) -> dict[str, dict[str, float]]:
    """Measure at the sizes the targets name, or at small ones for a smoke run."""
    tests = _env_int("BENCH_HISTORY_TESTS", 200 if quick else 10_000)
    runs = _env_int("BENCH_HISTORY_RUNS", 10 if quick else 100)
    repeat = _env_int("BENCH_HISTORY_REPEAT", 1 if quick else 3)
    cases = _env_int("BENCH_HISTORY_IMPORT_CASES", 2_000 if quick else 200_000)
    megabytes = _env_int("BENCH_HISTORY_MEMORY_MB", 1 if quick else 100)
    admin_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    report: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
        workdir = Path(folder)
        for engine in Engine:
            async with _database(engine, workdir, admin_url) as url:
                report[engine.value] = await _questions(engine, url, tests, runs, repeat)
        sqlite = report["sqlite"]
        sqlite["junit_cases_per_second"] = await asyncio.to_thread(
            _import_speed, workdir, cases, repeat
        )
        sqlite["junit_interleaved_cases_per_second"] = await asyncio.to_thread(
            functools.partial(_import_speed, workdir, cases, repeat, interleaved=True)
        )
        if megabytes:
            growth, size = await asyncio.to_thread(import_memory_mb, workdir, megabytes)
            sqlite["junit_memory_mb"] = growth
            sqlite["junit_memory_file_bytes"] = float(size)
    return report


async def measure(*, quick: bool = False) -> tuple[dict[str, object], str]:
    """Run the history benchmark on both engines; give its figures and its Markdown table."""
    report = await _run(quick=quick)
    return {"engines": report}, _table(report)


def main() -> None:
    """Run the history benchmark; print the table and write build/bench/history.json."""
    started = time.perf_counter()
    report = asyncio.run(_run())
    machine = {
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - started, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"machine": machine, "engines": report}, indent=2) + "\n"
    OUT.write_text(text, encoding="utf-8")
    print(_table(report))


if __name__ == "__main__":
    main()
