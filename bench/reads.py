"""Reads into models: the layer against the driver's own rows and a tight hand-written decode.

Run with `python -m bench.reads`. On each engine it stores the benchmark's results once, then
reads all of them, in the keyset pages that `all_results` reads, with the listing query the
layer runs, three ways, taking turns:

- `layer`: `all_results`, which gives `TestResult` models;
- `raw`: the driver's own rows (sqlite3 tuples; asyncpg Records, with the jsonb codec of
  `bench._raw_postgres`);
- `tight`: the same rows decoded by hand into tuples of the model's values (enum members,
  aware datetimes, dicts), as tightly as a careful author would write it.

It reports the best wall and CPU time of each (CPU time is this process's, all its threads: on
a loaded machine it is the steadier figure), the layer's ratios to the other two, and the
memory that the read results hold (tracemalloc, after the read, with the list alive).

With `search` as its argument (`python -m bench.reads search`), it measures search while
another process writes instead: on each engine, `BENCH_READS_SEARCH_N` results (default
20,000, about 2 KB of output each) are stored, then the search mix of `bench.search` runs
alone, and again, for at least 10 s, while a writer process saves batches of 200 results
without pause. It reports the median and p95 search time of each phase, their ratio (the
target: under 2), and the rows a second that the writer saved. On PostgreSQL it does so with
the GIN indexes as migrated (a pending list of at most 256 kB), with `fastupdate` off, and
with the 4 MB pending list of before migration 0007.

Settings, from the environment:

- `BENCH_READS_N`: comma-separated result counts (default `50000,100000`);
- `BENCH_READS_REPEAT`: rounds, each contender once per round (default 5);
- `BENCH_READS_ENGINES`: `sqlite`, `postgres` or both (the default);
- `BENCH_READS_HELD`: objects the process holds meanwhile, as a program does (default
  800,000): a full collection of the garbage collector walks them all, so the table also
  counts the full collections during each contender's timed reads;
- `BENCH_READS_SEARCH_N`: results stored before the search workload (default 20,000);
- `BENCH_DATABASE_URL`: the PostgreSQL server to make a scratch database on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import math
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench._lag import CollectorRuns, gc_of
from bench._raw_postgres import open_raw_postgres
from bench._raw_sqlite import page_params
from bench._rows import make_results
from bench._sql import LIST_POSTGRES, LIST_SQLITE
from bench.search import SEARCHES
from bench.search import make_results as make_search_results
from persistence import (
    Database,
    TestStatus,
    TestType,
    all_results,
    connect,
    migrate,
    save_results,
    search_results,
)
from persistence._paging import READ_PAGE

if TYPE_CHECKING:
    from multiprocessing.sharedctypes import Synchronized
    from multiprocessing.synchronize import Event

__all__ = ["main"]

DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE: Final = READ_PAGE
"""`all_results` reads pages of this size; the contenders by hand read the same pages."""
_START: Final = "0001-01-01T00:00:00.000000+00:00"
_END: Final = "9999-12-31T23:59:59.999999+00:00"
_MAX_INT: Final = 2**63 - 1
_TYPES: Final = {member.value: member for member in TestType}
_STATUSES: Final = {member.value: member for member in TestStatus}

Read = Callable[[], Awaitable[list[Any]]]


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _sqlite_pages(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    cursor: tuple[str, int] = (_END, _MAX_INT)
    while True:
        page = conn.execute(LIST_SQLITE, page_params((_START, _END), cursor, PAGE)).fetchall()
        rows += page
        if len(page) < PAGE:
            return rows
        cursor = (page[-1][9], page[-1][0])


def _tight_sqlite(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Decode sqlite3's tuples by hand: the tightest code a careful author would write."""
    types, statuses, when, loads = _TYPES, _STATUSES, dt.datetime.fromisoformat, json.loads
    return [
        (
            r[0],
            types[r[1]],
            statuses[r[2]],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            when(r[9]),
            {} if r[10] == "{}" else loads(r[10]),
            r[11],
            r[12],
        )
        for r in rows
    ]


def _tight_postgres(rows: list[asyncpg.Record]) -> list[tuple[Any, ...]]:
    """Give asyncpg's Records as tuples of the model's values: only the enums to look up."""
    types, statuses = _TYPES, _STATUSES
    return [
        (
            r[0],
            types[r[1]],
            statuses[r[2]],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
        )
        for r in rows
    ]


async def _postgres_pages(conn: asyncpg.Connection[asyncpg.Record]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = []
    start, end = dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
    cursor: tuple[dt.datetime, int] = (end, _MAX_INT)
    while True:
        page = await conn.fetch(LIST_POSTGRES, *page_params((start, end), cursor, PAGE))
        rows += page
        if len(page) < PAGE:
            return rows
        cursor = (page[-1]["created_at"], page[-1]["id"])


async def _time(read: Read) -> tuple[float, float, int, int]:
    """Wall and CPU time (all threads) of one read, its rows, and the full collections in it."""
    gc.collect()
    collector = CollectorRuns()
    collector.start()
    try:
        start, cpu = time.perf_counter(), time.process_time()
        got = await read()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        collector.stop()
    return seconds, cpu, len(got), gc_of(collector.runs).full


async def _held(read: Read) -> int:
    """Bytes that the read's result holds once it is built, by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        got = await read()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del got
    return after - before


async def _compare(engine: str, n: int, reads: Mapping[str, Read], repeat: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in reads}
    cpu_times: dict[str, list[float]] = {name: [] for name in reads}
    full = dict.fromkeys(reads, 0)
    for _ in range(repeat):
        for name, read in reads.items():
            seconds, cpu, count, collections = await _time(read)
            full[name] += collections
            if count != n:
                msg = f"{engine} {name} read {count} rows, not {n}"
                raise RuntimeError(msg)
            times[name].append(seconds)
            cpu_times[name].append(cpu)
    best = {name: min(values) for name, values in times.items()}
    cpu_best = {name: min(values) for name, values in cpu_times.items()}
    held = {name: await _held(read) for name, read in reads.items()}
    figures: dict[str, Any] = {
        "engine": engine,
        "n": n,
        "best_s": best,
        "median_s": {name: statistics.median(values) for name, values in times.items()},
        "best_cpu_s": cpu_best,
        "held_mb": {name: held[name] / 1e6 for name in reads},
        "layer_over_raw": best["layer"] / best["raw"],
        "layer_over_tight": best["layer"] / best["tight"],
        "memory_layer_over_raw": held["layer"] / held["raw"],
        "cpu_layer_over_raw": cpu_best["layer"] / cpu_best["raw"],
        "cpu_layer_over_tight": cpu_best["layer"] / cpu_best["tight"],
        "full_collections": full,
    }
    _say(
        f"| {engine} | {n:,} | {best['raw'] * 1e3:.0f} | {best['tight'] * 1e3:.0f} "
        f"| {best['layer'] * 1e3:.0f} | {figures['layer_over_raw']:.2f} "
        f"| {figures['layer_over_tight']:.2f} | {held['raw'] / 1e6:.1f} "
        f"| {held['tight'] / 1e6:.1f} | {held['layer'] / 1e6:.1f} "
        f"| {figures['memory_layer_over_raw']:.2f} "
        f"| {cpu_best['raw'] * 1e3:.0f} | {cpu_best['tight'] * 1e3:.0f} "
        f"| {cpu_best['layer'] * 1e3:.0f} | {figures['cpu_layer_over_raw']:.2f} "
        f"| {figures['cpu_layer_over_tight']:.2f} "
        f"| {full['raw']} / {full['tight']} / {full['layer']} |"
    )
    return figures


async def _stored(db: Database, n: int) -> None:
    results = make_results(n)
    for start in range(0, n, 10_000):
        await save_results(db, results[start : start + 10_000])


async def run_sqlite(n: int, repeat: int) -> dict[str, Any]:
    """Read `n` results on a temporary SQLite file, each way."""
    with tempfile.TemporaryDirectory(prefix="persistence-reads-") as folder:
        path = str(Path(folder) / "reads.db")
        async with connect(path) as db:
            await migrate(db)
            await _stored(db, n)
            raw = sqlite3.connect(path, isolation_level=None)
            try:

                async def layer() -> list[Any]:
                    return await all_results(db)

                async def raw_rows() -> list[Any]:
                    return _sqlite_pages(raw)

                async def tight() -> list[Any]:
                    return _tight_sqlite(_sqlite_pages(raw))

                reads = {"raw": raw_rows, "tight": tight, "layer": layer}
                return await _compare("sqlite", n, reads, repeat)
            finally:
                raw.close()


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def run_postgres(n: int, repeat: int, admin_url: str) -> dict[str, Any]:
    """Read `n` results on a scratch PostgreSQL database, each way; drop it after."""
    name = f"persistence_reads_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        # Identifiers cannot be bound parameters; the name is made here, from hex digits only.
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    url = _with_database(admin_url, name)
    try:
        async with connect(url) as db:
            await migrate(db)
            await _stored(db, n)
            raw = await open_raw_postgres(url)
            await raw.execute("VACUUM ANALYZE test_results")
            try:

                async def layer() -> list[Any]:
                    return await all_results(db)

                async def raw_rows() -> list[Any]:
                    return await _postgres_pages(raw)

                async def tight() -> list[Any]:
                    return _tight_postgres(await _postgres_pages(raw))

                reads = {"raw": raw_rows, "tight": tight, "layer": layer}
                return await _compare("postgres", n, reads, repeat)
            finally:
                await raw.close()
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _sizes() -> Sequence[int]:
    text = os.environ.get("BENCH_READS_N", "").strip() or "50000,100000"
    return [int(part) for part in text.split(",")]


async def run() -> list[dict[str, Any]]:
    """Run every size on both engines; print a markdown table."""
    repeat = int(os.environ.get("BENCH_READS_REPEAT", "").strip() or "5")
    admin_url = os.environ.get("BENCH_DATABASE_URL", "").strip() or DEFAULT_ADMIN_URL
    _say(
        "| engine | results | raw ms | tight ms | layer ms | layer/raw | layer/tight "
        "| raw MB | tight MB | layer MB | memory layer/raw "
        "| raw CPU ms | tight CPU ms | layer CPU ms | CPU layer/raw | CPU layer/tight "
        "| full collections raw / tight / layer |"
    )
    _say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    figures = []
    held = [[index] for index in range(int(os.environ.get("BENCH_READS_HELD", "800000")))]
    engines = os.environ.get("BENCH_READS_ENGINES", "").strip() or "sqlite,postgres"
    for n in _sizes():
        if "sqlite" in engines:
            figures.append(await run_sqlite(n, repeat))
        if "postgres" in engines:
            figures.append(await run_postgres(n, repeat, admin_url))
    del held
    return figures


WRITE_BATCH: Final = 200
"""Results the writer process saves in each `save_results` call."""
WRITING_SECONDS: Final = 10.0
"""The least time searches run beside the writer, so that it saves many batches meanwhile."""
_GIN_INDEXES: Final = ("test_results_search_idx", "test_results_metadata_idx")
_GIN_VARIANTS: Final = (
    ("as migrated", ""),
    ("fastupdate off", "fastupdate = off"),
    ("fastupdate on, 4 MB (before 0007)", "fastupdate = on, gin_pending_list_limit = 4096"),
)
"""The GIN settings PostgreSQL is measured with: as the migrations leave them, then others."""


def _writer(url: str, stop: Event, saved: Synchronized[int]) -> None:
    """In a process of its own: save batches of results until `stop` is set; count them."""
    results = make_search_results(2_000, seed=7)

    async def write() -> None:
        async with connect(url) as db:
            while not stop.is_set():
                for start in range(0, len(results), WRITE_BATCH):
                    await save_results(db, results[start : start + WRITE_BATCH])
                    with saved.get_lock():
                        saved.value += WRITE_BATCH
                    if stop.is_set():
                        return

    asyncio.run(write())


async def _search_times(db: Database, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        for search in SEARCHES:
            started = time.perf_counter()
            await search_results(db, search.text, where=search.where, limit=20)
            times.append((time.perf_counter() - started) * 1000)
    return times


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def _search_phases(engine: str, url: str, db: Database, repeat: int) -> dict[str, Any]:
    """Time the search mix alone, then while a writer process saves results."""
    alone = await _search_times(db, repeat)
    context = multiprocessing.get_context("spawn")
    stop, saved = context.Event(), context.Value("q", 0)
    writer = context.Process(target=_writer, args=(url, stop, saved))
    writer.start()
    try:
        while saved.value < 2 * WRITE_BATCH:  # noqa: ASYNC110  # a count in another process
            await asyncio.sleep(0.05)
        started, before = time.perf_counter(), saved.value
        busy = await _search_times(db, repeat)
        while time.perf_counter() - started < WRITING_SECONDS:
            busy += await _search_times(db, 1)
        rows_per_s = (saved.value - before) / (time.perf_counter() - started)
    finally:
        stop.set()
        await asyncio.to_thread(writer.join, 60)
    figures = {
        "engine": engine,
        "median_alone_ms": statistics.median(alone),
        "p95_alone_ms": _p95(alone),
        "median_writing_ms": statistics.median(busy),
        "p95_writing_ms": _p95(busy),
        "writer_rows_per_s": rows_per_s,
    }
    figures["median_ratio"] = figures["median_writing_ms"] / figures["median_alone_ms"]
    _say(
        f"| {engine} | {figures['median_alone_ms']:.1f} | {figures['p95_alone_ms']:.1f} "
        f"| {figures['median_writing_ms']:.1f} | {figures['p95_writing_ms']:.1f} "
        f"| {figures['median_ratio']:.2f} | {rows_per_s:,.0f} |"
    )
    return figures


async def _stored_for_search(db: Database, n: int) -> None:
    results = make_search_results(n)
    for start in range(0, n, 1_000):
        await save_results(db, results[start : start + 1_000])


async def search_sqlite(n: int, repeat: int) -> list[dict[str, Any]]:
    """Search a temporary SQLite file alone, then while another process writes to it."""
    with tempfile.TemporaryDirectory(prefix="persistence-reads-") as folder:
        path = str(Path(folder) / "search.db")
        async with connect(path) as db:
            await migrate(db)
            await _stored_for_search(db, n)
            return [await _search_phases("sqlite", path, db, repeat)]


async def search_postgres(n: int, repeat: int, admin_url: str) -> list[dict[str, Any]]:
    """Search a scratch PostgreSQL database alone, then while another process writes to it.

    With the GIN indexes as migrated, then with each other setting of `_GIN_VARIANTS`.
    """
    name = f"persistence_reads_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        await admin.close()
    url = _with_database(admin_url, name)
    figures = []
    try:
        async with connect(url) as db:
            await migrate(db)
            await _stored_for_search(db, n)
            raw = await asyncpg.connect(url)
            try:
                for label, settings in _GIN_VARIANTS:
                    for index in _GIN_INDEXES if settings else ():
                        await raw.execute(f"ALTER INDEX {index} SET ({settings})")
                    await raw.execute("VACUUM ANALYZE test_results")
                    figures.append(await _search_phases(f"postgres, GIN {label}", url, db, repeat))
            finally:
                await raw.close()
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return figures


async def run_search() -> list[dict[str, Any]]:
    """Search alone and while writing, on both engines; print a markdown table."""
    n = int(os.environ.get("BENCH_READS_SEARCH_N", "").strip() or "20000")
    repeat = int(os.environ.get("BENCH_READS_REPEAT", "").strip() or "5")
    admin_url = os.environ.get("BENCH_DATABASE_URL", "").strip() or DEFAULT_ADMIN_URL
    engines = os.environ.get("BENCH_READS_ENGINES", "").strip() or "sqlite,postgres"
    _say(
        "| engine | median alone ms | p95 alone ms | median writing ms | p95 writing ms "
        "| median writing/alone | writer rows/s |"
    )
    _say("|---|---:|---:|---:|---:|---:|---:|")
    figures = []
    if "sqlite" in engines:
        figures += await search_sqlite(n, repeat)
    if "postgres" in engines:
        figures += await search_postgres(n, repeat, admin_url)
    return figures


def main() -> None:
    """Run the read benchmark, or with `search` as argument the search-while-writing one."""
    asyncio.run(run_search() if sys.argv[1:] == ["search"] else run())


if __name__ == "__main__":
    main()
