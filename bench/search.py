"""Search: how fast it answers, against `LIKE '%term%'`, and what its index costs `save_results`.

Run with `python -m bench.search`. On each engine it loads the same results, about 2 KB of
output each, into two databases: one migrated fully (the search index maintained) and one
with the search index taken off (`bench/_plain.py`), timing `save_results` on each. It then
times a mix of searches through `search_results` (a page of 20, ranked, with snippets), and
the same words found with `LIKE '%word%'` over the same rows through the driver itself.

Settings, from the environment:

- `BENCH_SEARCH_N`: results per database (default 100,000);
- `BENCH_SEARCH_REPEAT`: timed runs of each search (default 15; LIKE runs a third as often);
- `BENCH_DATABASE_URL`: the PostgreSQL server to make the databases on.

It prints a markdown table and writes `build/bench/search.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import asyncpg
import attrs

from bench._plain import make_plain
from bench._section import Outcome, Run
from persistence import (
    Database,
    Engine,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    save_results,
    search_results,
)

__all__ = ["INTRO", "main", "make_results", "section"]

INTRO: Final = """`search_results` (see `docs/SEARCH.md`) on results with about 2 KB of output
each: its median time, against `LIKE '%word%'` over the same rows, and what keeping the index costs
`save_results` (a database as migrated against the same without its search index)."""
QUICK_N: Final = 1_000
QUICK_REPEAT: Final = 3

DEFAULT_N: Final = 100_000
DEFAULT_REPEAT: Final = 15
DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
OUTPUT_CHARS: Final = 2_000
BATCH: Final = 1_000
PAGE: Final = 20
OUT: Final = Path("build/bench/search.json")

TARGET_MEDIAN_MS: Final = 20.0
TARGET_LIKE_RATIO: Final = 50.0
TARGET_WRITE_RATIO: Final = 1.5


@attrs.frozen
class Search:
    """One search of the mix, and the word that LIKE looks for in its place."""

    text: str
    like: str
    where: ResultFilter | None = None


SEARCHES: Final = (
    Search('"segmentation fault"', "Segmentation fault"),
    Search("heap buffer overflow", "heap-buffer-overflow"),
    Search("solve_417", "solve_417"),
    Search("wrong answer -timeout", "wrong answer"),
    Search("assertion failed", "Assertion"),
    Search("overfl*", "overfl"),
    Search('"time limit"', "time limit", ResultFilter(statuses={TestStatus.TIMEOUT})),
    Search("stack smashing", "stack smashing", ResultFilter(test_types={TestType.STRESS})),
)
"""Error signatures a user looks for, found in 0.1% to 5% of the results."""


SIGNATURES: Final = (
    (0.005, "Segmentation fault (core dumped)"),
    (0.002, "ERROR: AddressSanitizer: heap-buffer-overflow on address 0x6020"),
    (0.010, "Assertion `i < n' failed in solve_{n}"),
    (0.050, "wrong answer on test {n}"),
    (0.010, "time limit exceeded"),
    (0.002, "*** stack smashing detected ***: terminated"),
)
"""The error messages the searches look for, each with the share of results that carry it."""

SOLVE_IN_OUTPUT: Final = 0.003
"""The share of results whose output names one of the functions `solve_400`..`solve_430`."""


def _vocabulary(rng: random.Random, size: int = 5_000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def _output(rng: random.Random, words: list[str], cumulative: list[float]) -> str:
    """About OUTPUT_CHARS of compiler warnings, test cases and noise, one item a line."""
    lines: list[str] = []
    size = 0
    while size < OUTPUT_CHARS:
        kind = rng.choice(("warning", "case", "noise", "noise", "noise"))
        if kind == "warning":
            line = (
                f"src/{rng.choice(words)}.cpp:{rng.randint(1, 900)}:{rng.randint(1, 80)}: "
                f"warning: {' '.join(rng.choices(words, cum_weights=cumulative, k=6))}"
            )
        elif kind == "case":
            expected, got = rng.randint(0, 10**9), rng.randint(0, 10**9)
            line = f"case {rng.randint(1, 5000)}: expected {expected} got {got}"
        else:
            line = " ".join(rng.choices(words, cum_weights=cumulative, k=rng.randint(6, 16)))
        lines.append(line)
        size += len(line) + 1
    if rng.random() < SOLVE_IN_OUTPUT:
        lines.insert(rng.randrange(len(lines)), f"in function solve_{rng.randint(400, 430)}")
    return "\n".join(lines)[:OUTPUT_CHARS]


def _error(rng: random.Random) -> str | None:
    """Draw an error message from SIGNATURES at its rate, or None."""
    draw = rng.random()
    for rate, message in SIGNATURES:
        if draw < rate:
            return message.format(n=rng.randint(1, 999))
        draw -= rate
    return None


_MADE: dict[int, list[TestResult]] = {}
"""The longest list made so far for each seed: a shorter one is its start (models are frozen)."""


def make_results(n: int, seed: int = 20261126) -> list[TestResult]:
    """Build `n` results with about 2 KB of output each, the same for the same `n` and `seed`.

    The output is compiler and test-runner noise over a Zipf-like vocabulary; the error
    signatures the searches look for are sown in at known rates. The first `n` of a longer
    list are the same results, so the longest made is kept and sliced.
    """
    made = _MADE.get(seed, [])
    if len(made) < n:
        made = _MADE[seed] = _make(n, seed)
    return made[:n]


def _make(n: int, seed: int) -> list[TestResult]:
    rng = random.Random(seed)  # noqa: S311  # benchmark data, not secrets
    words = _vocabulary(rng)
    # The running sums, made once: `choices` with plain weights remakes them every call.
    cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    types, statuses = list(TestType), list(TestStatus)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        TestResult(
            test_type=types[rng.randrange(len(types))],
            status=statuses[rng.randrange(len(statuses))],
            execution_time=round(rng.uniform(0, 5), 6),
            output=_output(rng, words, cumulative),
            error_message=_error(rng),
            created_at=start + dt.timedelta(seconds=index),
            metadata={"solution": f"s{index % 50}.cpp", "seed": index},
        )
        for index in range(n)
    ]


@contextlib.asynccontextmanager
async def _databases(engine: Engine, workdir: Path, admin_url: str) -> AsyncIterator[list[str]]:
    """Two new, empty databases of one engine: their URLs, dropped afterwards."""
    if engine is Engine.SQLITE:
        yield [str(workdir / "indexed.db"), str(workdir / "plain.db")]
        return
    names = [f"persistence_bench_search_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    admin = await asyncpg.connect(admin_url)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        base = admin_url.rsplit("/", 1)[0]
        yield [f"{base}/{name}" for name in names]
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _load(db: Database, results: Sequence[TestResult]) -> float:
    """Save the results in batches of BATCH with `save_results`; give the seconds it took."""
    started = time.perf_counter()
    for start in range(0, len(results), BATCH):
        await save_results(db, results[start : start + BATCH])
    return time.perf_counter() - started


async def _timed(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Run a call twice to warm up, then `repeat` times; give each timed run in milliseconds."""
    for _ in range(2):
        await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


@contextlib.asynccontextmanager
async def _like(
    engine: Engine, url: str
) -> AsyncIterator[Callable[[str], Callable[[], Awaitable[object]]]]:
    """Lend a function that makes the call of `LIKE '%word%'` over output and error message.

    The call runs on a connection of its own, through the driver itself.
    """
    sql = "SELECT id FROM test_results WHERE output LIKE {0} OR error_message LIKE {0}"
    if engine is Engine.SQLITE:
        with contextlib.closing(sqlite3.connect(url)) as lite:

            def lite_call(word: str) -> Callable[[], Awaitable[object]]:
                async def call() -> object:
                    return lite.execute(sql.format("?1"), (f"%{word}%",)).fetchall()

                return call

            yield lite_call
        return
    pg = await asyncpg.connect(url)
    try:

        def pg_call(word: str) -> Callable[[], Awaitable[object]]:
            async def call() -> object:
                return await pg.fetch(sql.format("$1"), f"%{word}%")

            return call

        yield pg_call
    finally:
        await pg.close()


async def _engine(
    engine: Engine, results: list[TestResult], repeat: int, admin_url: str
) -> dict[str, object]:
    """Measure one engine: loading with and without the index, searches, and LIKE."""
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        async with _databases(engine, workdir, admin_url) as (indexed_url, plain_url):
            async with connect(plain_url) as plain:
                await migrate(plain)
            await make_plain(plain_url)
            async with connect(plain_url) as plain:
                without_index = await _load(plain, results)
            async with connect(indexed_url) as db:
                await migrate(db)
                with_index = await _load(db, results)
                await _analyse(engine, indexed_url)
                async with _like(engine, indexed_url) as like_call:
                    searches = [await _search(db, search, like_call, repeat) for search in SEARCHES]
    every = [ms for s in searches for ms in _floats(s["search_ms"])]
    like_ratio = [
        statistics.median(_floats(s["like_ms"])) / statistics.median(_floats(s["search_ms"]))
        for s in searches
    ]
    return {
        "engine": engine.value,
        "rows": len(results),
        "save_results_s": {"with_index": with_index, "without_index": without_index},
        "write_ratio": with_index / without_index,
        "search_median_ms": statistics.median(every),
        "search_p90_ms": _percentile(every, 0.9),
        "like_over_search_median": statistics.median(like_ratio),
        "like_over_search_min": min(like_ratio),
        "searches": searches,
    }


async def _search(
    db: Database,
    search: Search,
    like_call: Callable[[str], Callable[[], Awaitable[object]]],
    repeat: int,
) -> dict[str, object]:
    """Time one search through the layer, and LIKE in its place through the driver."""
    page = await search_results(db, search.text, search.where, limit=PAGE)

    async def run() -> object:
        return await search_results(db, search.text, search.where, limit=PAGE)

    like = like_call(search.like)
    return {
        "search": search.text,
        "filtered": search.where is not None,
        "page": len(page.items),
        "matches_like": len(await _like_rows(like)),
        "search_ms": await _timed(run, repeat),
        "like_ms": await _timed(like, max(3, repeat // 3)),
    }


async def _like_rows(call: Callable[[], Awaitable[object]]) -> list[object]:
    rows = await call()
    return list(rows) if isinstance(rows, list) else []


async def _analyse(engine: Engine, url: str) -> None:
    """Give the planner statistics, as a database that has run a while has."""
    if engine is Engine.SQLITE:
        with contextlib.closing(sqlite3.connect(url)) as lite:
            lite.execute("PRAGMA optimize")
        return
    pg = await asyncpg.connect(url)
    try:
        await pg.execute("VACUUM ANALYZE test_results")
    finally:
        await pg.close()


def _floats(value: object) -> list[float]:
    assert isinstance(value, list)  # noqa: S101  # built above as lists of floats
    return [float(item) for item in value]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def _verdict(value: float, target: float, *, at_most: bool) -> str:
    met = value <= target if at_most else value >= target
    sign = "≤" if at_most else "≥"
    return f"{'met' if met else '**missed**'} ({sign} {target:g})"


def _table(report: list[dict[str, object]]) -> str:
    lines = [
        (
            "| engine | rows | search median ms | search p90 ms | LIKE / search (median, least) "
            "| save_results s, index / none | write ratio |"
        ),
        "|---|---:|---:|---:|---|---|---|",
    ]
    for row in report:
        saves = row["save_results_s"]
        assert isinstance(saves, dict)  # noqa: S101  # built above
        median = float(str(row["search_median_ms"]))
        like = float(str(row["like_over_search_median"]))
        like_min = float(str(row["like_over_search_min"]))
        write = float(str(row["write_ratio"]))
        lines.append(
            f"| {row['engine']} | {row['rows']:,} | {median:.1f} "
            f"{_verdict(median, TARGET_MEDIAN_MS, at_most=True)} "
            f"| {float(str(row['search_p90_ms'])):.1f} "
            f"| {like:.0f} {_verdict(like, TARGET_LIKE_RATIO, at_most=False)}, "
            f"least {like_min:.0f} "
            f"| {saves['with_index']:.2f} / {saves['without_index']:.2f} "
            f"| {write:.2f} {_verdict(write, TARGET_WRITE_RATIO, at_most=True)} |"
        )
    lines += ["", "| engine | search | page | LIKE rows | search median ms | LIKE median ms |"]
    lines.append("|---|---|---:|---:|---:|---:|")
    for row in report:
        searches = row["searches"]
        assert isinstance(searches, list)  # noqa: S101  # built above
        for search in searches:
            filtered = " (filtered)" if search["filtered"] else ""
            lines.append(
                f"| {row['engine']} | `{search['search']}`{filtered} "
                f"| {search['page']} | {search['matches_like']:,} "
                f"| {statistics.median(_floats(search['search_ms'])):.1f} "
                f"| {statistics.median(_floats(search['like_ms'])):.1f} |"
            )
    return "\n".join(lines)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if not value else int(value)


async def _run(*, quick: bool = False) -> list[dict[str, object]]:
    n = QUICK_N if quick else _env_int("BENCH_SEARCH_N", DEFAULT_N)
    repeat = QUICK_REPEAT if quick else _env_int("BENCH_SEARCH_REPEAT", DEFAULT_REPEAT)
    admin_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    results = make_results(n)
    return [await _engine(engine, results, repeat, admin_url) for engine in Engine]


async def measure(*, quick: bool = False) -> tuple[dict[str, object], str]:
    """Run the search benchmark on both engines; give its figures and its Markdown table."""
    report = await _run(quick=quick)
    return {"engines": report}, _table(report)


async def section(run: Run) -> Outcome:
    """Search as a section of `make bench` (it compares both engines)."""
    figures, markdown = await measure(quick=run.quick)
    return Outcome(figures, markdown)


def main() -> None:
    """Run the search benchmark on both engines; print the table and write the JSON report."""
    started = time.perf_counter()
    load = os.getloadavg()[0]
    report = asyncio.run(_run())
    machine = {
        "cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
        "seconds": round(time.perf_counter() - started, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps({"machine": machine, "engines": report}, indent=2) + "\n", encoding="utf-8"
    )
    sys.stdout.write(_table(report) + f"\n\nWritten to {OUT}; machine: {machine}\n")


if __name__ == "__main__":
    main()
