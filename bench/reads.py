"""Reads into models: the layer against the driver's own rows and a tight hand-written decode.

Run with `python -m bench.reads`. On each engine it stores the benchmark's results once, then
reads all of them, in keyset pages of 10,000 with the listing query the layer runs, three ways,
taking turns:

- `layer`: `all_results`, which gives `TestResult` models;
- `raw`: the driver's own rows (sqlite3 tuples; asyncpg Records with the layer's jsonb codec);
- `tight`: the same rows decoded by hand into tuples of the model's values (enum members,
  aware datetimes, dicts), as tightly as a careful author would write it.

It reports the best time of each, the layer's ratios to the other two, and the memory that
the read results hold (tracemalloc, after the read, with the list alive).

Settings, from the environment:

- `BENCH_READS_N`: comma-separated result counts (default `50000,100000`);
- `BENCH_READS_REPEAT`: rounds, each contender once per round (default 5);
- `BENCH_READS_ENGINES`: `sqlite`, `postgres` or both (the default);
- `BENCH_DATABASE_URL`: the PostgreSQL server to make a scratch database on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
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
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench._raw_postgres import open_raw_postgres
from bench._rows import make_results
from bench._sql import LIST_POSTGRES, LIST_SQLITE
from persistence import Database, TestStatus, TestType, all_results, connect, migrate, save_results

__all__ = ["main"]

DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
PAGE: Final = 10_000
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
        page = conn.execute(LIST_SQLITE, (_START, _END, *cursor, PAGE)).fetchall()
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
        page = await conn.fetch(LIST_POSTGRES, start, end, *cursor, PAGE)
        rows += page
        if len(page) < PAGE:
            return rows
        cursor = (page[-1]["created_at"], page[-1]["id"])


async def _time(read: Read) -> tuple[float, float, int]:
    """Wall time and this process's CPU time (all its threads) of one read, and its rows."""
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    got = await read()
    return time.perf_counter() - start, time.process_time() - cpu, len(got)


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
    for _ in range(repeat):
        for name, read in reads.items():
            seconds, cpu, count = await _time(read)
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
    }
    _say(
        f"| {engine} | {n:,} | {best['raw'] * 1e3:.0f} | {best['tight'] * 1e3:.0f} "
        f"| {best['layer'] * 1e3:.0f} | {figures['layer_over_raw']:.2f} "
        f"| {figures['layer_over_tight']:.2f} | {held['raw'] / 1e6:.1f} "
        f"| {held['layer'] / 1e6:.1f} | {figures['memory_layer_over_raw']:.2f} "
        f"| {cpu_best['raw'] * 1e3:.0f} | {cpu_best['tight'] * 1e3:.0f} "
        f"| {cpu_best['layer'] * 1e3:.0f} | {figures['cpu_layer_over_raw']:.2f} "
        f"| {figures['cpu_layer_over_tight']:.2f} |"
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
        "| raw MB | layer MB | memory layer/raw "
        "| raw CPU ms | tight CPU ms | layer CPU ms | CPU layer/raw | CPU layer/tight |"
    )
    _say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    figures = []
    engines = os.environ.get("BENCH_READS_ENGINES", "").strip() or "sqlite,postgres"
    for n in _sizes():
        if "sqlite" in engines:
            figures.append(await run_sqlite(n, repeat))
        if "postgres" in engines:
            figures.append(await run_postgres(n, repeat, admin_url))
    return figures


def main() -> None:
    """Run the read benchmark."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
