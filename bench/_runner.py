"""Set up each engine, time every workload for every contender, then report."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import cache as cache_bench
from bench import loop as loop_bench
from bench import search as search_bench
from bench._core import Core
from bench._lag import LagProbe, lag_of
from bench._layer import Layer
from bench._loop_sqlite import LoopSqlite, open_loop_sqlite
from bench._measure import Measurement
from bench._orm import POOL_SIZE, Orm, open_orm_engine
from bench._raw_postgres import RawPostgres, open_raw_pool, open_raw_postgres
from bench._raw_sqlite import RawSqlite, open_raw_sqlite
from bench._report import machine_description, write_reports
from bench._rows import PAGE_SIZE, batches_of, listing_filter, make_results, shuffled
from persistence import connect, migrate, save_results

if TYPE_CHECKING:
    from bench._contenders import Contender
    from persistence import TestResult

__all__ = ["main"]

_T = TypeVar("_T")

DEFAULT_N = 50_000
DEFAULT_REPEAT = 3
DEFAULT_N_CALLS = 10_000
"""Calls in the per-call workloads: each costs the same, so 10,000 show it as 50,000 would."""
DEFAULT_TASKS = 100
DEFAULT_TASK_SAVES = 100
"""The concurrent workload: this many tasks, each saving this many rows one call at a time."""
DEFAULT_BUDGET = 8
"""Seconds a SQLAlchemy contender may spend on one workload before it sits out the rest.

It always runs at least once. SQLAlchemy's concurrent and bulk workloads are the slowest
of the run; no target depends on them, so they need not run three times. The layer and
the drivers by hand, which the targets compare, run every round."""
BUDGETED: Final = frozenset({"sqlalchemy_core", "sqlalchemy_orm"})
IDLE_SECONDS = 0.5
"""How long the lag probe runs alone, for the floor of what it measures."""
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = Path(__file__).parent.parent
DEFAULT_OUT = ROOT / "build" / "bench"


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    return int(text) if text.strip() else default


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class Bench:
    """The settings of one run and the measurements it gathers."""

    def __init__(
        self, *, n: int, n_calls: int, repeat: int, tasks: int, task_saves: int, budget: float
    ) -> None:
        self.n = n
        self.n_calls = n_calls
        self.repeat = repeat
        self.budget = budget
        self.tasks = tasks
        self.task_saves = task_saves
        self.results = make_results(max(n, n_calls, tasks * task_saves))
        self.measurements: list[Measurement] = []

    async def run_engine(
        self,
        engine: str,
        contenders: list[Contender],
        reset: Callable[[], Awaitable[None]],
        row_count: Callable[[], Awaitable[int]],
        ids: Callable[[], Awaitable[list[int]]],
    ) -> None:
        """Time the six workloads on one engine; in each round the contenders take turns."""
        per_call = self.results[: self.n_calls]
        every = self.results[: self.n]
        concurrent = self.results[: self.tasks * self.task_saves]
        batches = batches_of(concurrent, self.task_saves)
        writes: list[tuple[str, list[TestResult], Callable[[Contender], Awaitable[None]]]] = [
            ("save_one", per_call, lambda c: c.save_one(per_call)),
            ("save_many", every, lambda c: c.save_many(every)),
            ("save_concurrent", concurrent, lambda c: c.save_concurrent(batches)),
        ]
        for workload, rows, write in writes:
            times: dict[str, list[float]] = {c.name: [] for c in contenders}
            lags: dict[str, list[float]] = {c.name: [] for c in contenders}
            for _ in range(self.repeat):
                for contender in self._taking_turns(contenders, times):
                    await reset()
                    contender.prepare(rows)
                    elapsed, _, lag = await _timed(functools.partial(write, contender))
                    stored = await row_count()
                    if stored != len(rows):
                        raise AssertionError(f"{contender.name} {workload}: {stored} rows stored")
                    times[contender.name].append(elapsed)
                    lags[contender.name].extend(lag)
            self._record(engine, workload, len(rows), times, lags)

        await reset()
        await save_results_via(contenders, every)
        lookups = shuffled(await ids())[: self.n_calls]
        where = listing_filter(self.n)
        reads: list[tuple[str, int, Callable[[Contender], Awaitable[int]]]] = [
            ("get_by_id", len(lookups), lambda c: c.get_by_id(lookups)),
            ("read_all", self.n, lambda c: c.read_all()),
            ("list_paged", 0, lambda c: c.list_paged(where, PAGE_SIZE)),
        ]
        for workload, expected, call in reads:
            times = {c.name: [] for c in contenders}
            lags = {c.name: [] for c in contenders}
            counts: set[int] = set()
            for _ in range(self.repeat):
                for contender in self._taking_turns(contenders, times):
                    elapsed, count, lag = await _timed(functools.partial(call, contender))
                    counts.add(count)
                    times[contender.name].append(elapsed)
                    lags[contender.name].extend(lag)
            if len(counts) != 1 or (expected and counts != {expected}):
                raise AssertionError(f"{workload}: contenders read {sorted(counts)} rows")
            self._record(engine, workload, counts.pop(), times, lags)

    def _taking_turns(
        self, contenders: list[Contender], times: dict[str, list[float]]
    ) -> list[Contender]:
        """Give the contenders that run this round: all but SQLAlchemy's past their budget."""
        return [c for c in contenders if c.name not in BUDGETED or sum(times[c.name]) < self.budget]

    def _record(
        self,
        engine: str,
        workload: str,
        rows: int,
        times: dict[str, list[float]],
        lags: dict[str, list[float]],
    ) -> None:
        measurement = Measurement(
            engine=engine, workload=workload, rows=rows, times=times, lag_samples=lags
        )
        self.measurements.append(measurement)
        _say(measurement.line())


async def save_results_via(contenders: list[Contender], results: list[TestResult]) -> None:
    """Seed the table for the read workloads through the layer."""
    layer = next(c for c in contenders if isinstance(c, Layer))
    await save_results(layer.db, results)


async def _timed(call: Callable[[], Awaitable[_T]]) -> tuple[float, _T, list[float]]:
    """Run one call with the lag probe awake; give its time, its result and the lag samples."""
    gc.collect()
    async with LagProbe() as probe:
        start = time.perf_counter()
        result = await call()
        elapsed = time.perf_counter() - start
    return elapsed, result, probe.samples


async def idle_lag() -> list[float]:
    """Run the lag probe alone: the floor of what it measures on this machine."""
    gc.collect()
    async with LagProbe() as probe:
        await asyncio.sleep(IDLE_SECONDS)
    return probe.samples


async def run_sqlite(bench: Bench) -> str:
    """Run every workload on a temporary SQLite file in WAL mode; return its version."""
    with tempfile.TemporaryDirectory(prefix="persistence-bench-") as folder:
        path = str(Path(folder) / "bench.db")
        async with connect(path) as db:
            await migrate(db)
            raw_conn = await open_raw_sqlite(path)
            loop_conn = open_loop_sqlite(path)
            orm_engine = open_orm_engine(f"sqlite+aiosqlite:///{path}")
            try:

                async def reset() -> None:
                    await raw_conn.execute("DELETE FROM test_results")
                    await raw_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

                async def row_count() -> int:
                    rows = list(
                        await raw_conn.execute_fetchall("SELECT count(*) FROM test_results")
                    )
                    return int(rows[0][0])

                async def ids() -> list[int]:
                    rows = await raw_conn.execute_fetchall("SELECT id FROM test_results")
                    return [int(row[0]) for row in rows]

                contenders: list[Contender] = [
                    Layer(db),
                    LoopSqlite(loop_conn),
                    RawSqlite(raw_conn),
                    Core(orm_engine),
                    Orm(orm_engine),
                ]
                await bench.run_engine("sqlite", contenders, reset, row_count, ids)
                version = await raw_conn.execute_fetchall("SELECT sqlite_version()")
                return str(next(iter(version))[0])
            finally:
                await orm_engine.dispose()
                loop_conn.close()
                await raw_conn.close()


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def run_postgres(bench: Bench, admin_url: str) -> str:
    """Run every workload on a scratch PostgreSQL database, dropped after; return its version."""
    name = f"persistence_bench_{uuid.uuid4().hex[:12]}"
    # Identifiers cannot be bound parameters; the name is made here, from hex digits only.
    await _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    url = _with_database(admin_url, name)
    try:
        async with connect(url) as db:
            await migrate(db)
            raw_conn = await open_raw_postgres(url)
            raw_pool = await open_raw_pool(url, POOL_SIZE)
            orm_url = url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
                "postgres://", "postgresql+asyncpg://", 1
            )
            orm_engine = open_orm_engine(orm_url)
            try:

                async def reset() -> None:
                    await raw_conn.execute("TRUNCATE test_results")

                async def row_count() -> int:
                    return int(await raw_conn.fetchval("SELECT count(*) FROM test_results"))

                async def ids() -> list[int]:
                    await raw_conn.execute("VACUUM ANALYZE test_results")
                    return [
                        int(row[0]) for row in await raw_conn.fetch("SELECT id FROM test_results")
                    ]

                contenders: list[Contender] = [
                    Layer(db),
                    RawPostgres(raw_conn, raw_pool),
                    Core(orm_engine),
                    Orm(orm_engine),
                ]
                await bench.run_engine("postgres", contenders, reset, row_count, ids)
                return str(await raw_conn.fetchval("SHOW server_version"))
            finally:
                await orm_engine.dispose()
                await raw_pool.close()
                await raw_conn.close()
    finally:
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _reachable(url: str) -> str | None:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return str(error) or type(error).__name__
    await conn.close()
    return None


CACHE_HEADING = """## Caches

`persistence.cache` (see `docs/CACHE.md`): a setting read from the memory cache against the
same read from the database, the Redis tier alone against the PostgreSQL read it replaces,
and how soon a write in another process shows, over many writes.

"""


SEARCH_HEADING = """## Search

`search_results` (see `docs/SEARCH.md`) on results with about 2 KB of output each: its
median time, against `LIKE '%word%'` over the same rows, and what keeping the index costs
`save_results` (a database with migration 0002 against one without).

"""


LOOP_HEADING = """## The event loop

The package's longest calls (see `docs/GUARANTEES.md`, The event loop), each beside the lag
probe: `save_results` of results with about 2 KB of output, a search of `limit=10000` with
snippets, `delete_results_before` over those indexed rows, and the search `a` 32 times over
20 outputs of 16,000 characters (the median of three runs, and the worst lag of the three).
Each must keep the probe's worst wake-up within 20 ms; the last must also take 200 ms at most.

"""


async def _redis_answers() -> bool:
    where = urlsplit(cache_bench.REDIS)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(where.hostname or "127.0.0.1", where.port or 6379), timeout=2
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def run() -> None:
    """Run the whole benchmark and write its reports."""
    n = _env_int("BENCH_N", DEFAULT_N)
    bench = Bench(
        n=n,
        n_calls=min(n, _env_int("BENCH_N_CALLS", DEFAULT_N_CALLS)),
        repeat=_env_int("BENCH_REPEAT", DEFAULT_REPEAT),
        tasks=_env_int("BENCH_TASKS", DEFAULT_TASKS),
        task_saves=_env_int("BENCH_TASK_SAVES", DEFAULT_TASK_SAVES),
        budget=_env_int("BENCH_BUDGET", DEFAULT_BUDGET),
    )
    out = Path(os.environ.get("BENCH_OUT") or DEFAULT_OUT)
    _say(
        f"persistence bench: N={bench.n} rows, {bench.n_calls} calls per per-call workload, "
        f"{bench.tasks} tasks x {bench.task_saves} concurrent saves, best of {bench.repeat}"
    )
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    idle = lag_of(await idle_lag())
    _say(f"lag probe alone: p99 {idle.p99 * 1000:.3f} ms, max {idle.max * 1000:.3f} ms")
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    _say("\n## SQLite")
    versions["sqlite"] = await run_sqlite(bench)
    admin_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    problem = await _reachable(admin_url)
    if problem is None:
        _say("\n## PostgreSQL")
        versions["postgres"] = await run_postgres(bench, admin_url)
    else:
        skipped["postgres"] = f"no PostgreSQL server at {admin_url}: {problem}"
        _say(f"\nPostgreSQL skipped: {skipped['postgres']}")
    sections: dict[str, tuple[dict[str, object], str]] = {}
    if problem is None and await _redis_answers():
        _say("\n## Caches")
        figures, tables = await cache_bench.measure()
        sections["caches"] = (figures, CACHE_HEADING + tables)
        _say(tables)
    else:
        _say("\nCaches skipped: they need PostgreSQL and Redis")
    if problem is None:
        _say("\n## Search")
        figures, table = await search_bench.measure()
        sections["search"] = (figures, SEARCH_HEADING + table)
        _say(table)
    else:
        _say("\nSearch skipped: it compares both engines")
    _say("\n## The event loop")
    figures, table = await loop_bench.measure()
    sections["loop"] = (figures, LOOP_HEADING + table)
    _say(table)
    machine = machine_description(versions)
    machine["load_average"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    write_reports(
        bench.measurements,
        machine=machine,
        settings={
            "n": bench.n,
            "n_calls": bench.n_calls,
            "repeat": bench.repeat,
            "tasks": bench.tasks,
            "task_saves": bench.task_saves,
            "budget": int(bench.budget),
        },
        idle=idle,
        skipped=skipped,
        seconds=time.perf_counter() - started,
        out=out,
        say=_say,
        sections=sections,
    )


def main() -> None:
    """Entry point of `python -m bench`."""
    asyncio.run(run())
