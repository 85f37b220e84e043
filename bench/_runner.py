"""Set up each engine, time every workload for every contender, run the sections, report."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit

import asyncpg
import attrs

from bench._contenders import method_of
from bench._core import Core
from bench._hand_sqlite import HandSqlite
from bench._lag import LagProbe, lag_of
from bench._layer import Layer
from bench._loop_sqlite import LoopSqlite, open_plain_sqlite
from bench._measure import NOMINAL, WRITES, Measurement
from bench._orm import POOL_SIZE, Orm, open_orm_engine
from bench._plain import make_plain
from bench._profile import Profile, profiled
from bench._raw_postgres import RawPostgres, open_raw_pool, open_raw_postgres
from bench._raw_sqlite import RawSqlite, open_raw_sqlite
from bench._report import machine_description, write_reports
from bench._rows import PAGE_SIZE, batches_of, listing_filter, make_results, shuffled
from bench._scratch import scratch_postgres
from bench._section import Outcome, Run
from bench._sections import SECTIONS
from bench._wake import HOPS, thread_wake_us
from persistence import connect, migrate, save_results

if TYPE_CHECKING:
    from bench._contenders import Contender
    from persistence import Database, TestResult

__all__ = ["FULL", "QUICK", "Sizes", "main", "run"]

_T = TypeVar("_T")


@attrs.frozen
class Sizes:
    """The sizes of the contenders' workloads, and how many rounds each runs."""

    per_call: int
    bulk: int
    tasks: int
    task_saves: int
    durable: int
    reads: int
    repeat: int
    budget: float
    """Seconds a SQLAlchemy contender may spend on one workload before it sits out the rest
    (it always runs at least once; no target depends on it)."""


FULL: Final = Sizes(
    per_call=NOMINAL["save_one"],
    bulk=NOMINAL["save_many"],
    tasks=100,
    task_saves=100,
    durable=NOMINAL["save_durable"],
    reads=NOMINAL["read_all"],
    repeat=3,
    budget=5.0,
)
QUICK: Final = Sizes(
    per_call=300,
    bulk=1_000,
    tasks=10,
    task_saves=20,
    durable=100,
    reads=1_000,
    repeat=3,
    budget=2.0,
)
"""BENCH_QUICK=1: a smoke run of every part, its sizes named in the report."""

BUDGETED: Final = frozenset({"sqlalchemy_core", "sqlalchemy_orm"})
IDLE_SECONDS: Final = 0.5
"""How long the lag probe runs alone, for the floor of what it measures."""
DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS: Final = "redis://127.0.0.1:6379/15"
ROOT: Final = Path(__file__).parent.parent
DEFAULT_OUT: Final = ROOT / "build" / "bench"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


Reset = Callable[[], Awaitable[None]]
Count = Callable[[], Awaitable[int]]


@attrs.frozen
class Target:
    """One open database of one engine and table, with what the runner needs to reset it."""

    engine: str
    table: str
    contenders: list[Contender]
    reset: Reset
    row_count: Count
    ids: Callable[[], Awaitable[list[int]]]
    layer_db: Database


class Bench:
    """The sizes of one run and the measurements it gathers."""

    def __init__(
        self, sizes: Sizes, *, collect: bool = True, wake_hops: int = HOPS, profile: bool = True
    ) -> None:
        self.sizes = sizes
        self.collect = collect
        """Whether to collect garbage before each timed call (off only in the harness's tests)."""
        self.wake_hops = wake_hops
        self.profile = profile
        """Whether to profile one more call of the layer after each workload's rounds."""
        self.results = make_results(max(sizes.bulk, sizes.reads, sizes.per_call))
        self.measurements: list[Measurement] = []

    async def run_target(self, target: Target, *, reads: bool) -> None:
        """Time the write workloads on one database, then the reads (when `reads`)."""
        s = self.sizes
        per_call = self.results[: s.per_call]
        bulk = self.results[: s.bulk]
        concurrent = self.results[: s.tasks * s.task_saves]
        durable = self.results[: s.durable]
        batches = batches_of(concurrent, s.task_saves)
        writes = {
            "save_one": per_call,
            "save_many": bulk,
            "save_concurrent": concurrent,
            "save_durable": durable,
        }
        for workload in WRITES:
            rows = writes[workload]
            arg: object = batches if workload == "save_concurrent" else rows

            async def check(contender: Contender, rows: list[TestResult] = rows) -> None:
                stored = await target.row_count()
                if stored != len(rows):
                    raise AssertionError(f"{contender.name}: {stored} of {len(rows)} rows stored")

            await self._workload(
                target,
                workload,
                expected=len(rows),
                size=len(rows),
                args=(arg,),
                check=check,
                written=rows,
            )
        if not reads:
            return
        await target.reset()
        await save_results(target.layer_db, self.results[: s.reads])
        lookups = shuffled(await target.ids())[: s.per_call]
        where = listing_filter(s.reads)
        calls = len(lookups)
        await self._workload(target, "get_by_id", expected=calls, size=calls, args=(lookups,))
        await self._workload(target, "read_all", expected=s.reads, size=s.reads, args=())
        paged = (where, PAGE_SIZE)
        await self._workload(target, "list_paged", expected=0, size=s.reads, args=paged)

    async def _workload(
        self,
        target: Target,
        workload: str,
        *,
        expected: int,
        size: int,
        args: tuple[object, ...],
        check: Callable[[Contender], Awaitable[None]] | None = None,
        written: list[TestResult] | None = None,
    ) -> None:
        """Run one workload's rounds: in each, the contenders take turns, in a rotated order."""
        runners = [c for c in target.contenders if method_of(c, workload) is not None]
        times: dict[str, list[float]] = {c.name: [] for c in runners}
        lags: dict[str, list[float]] = {c.name: [] for c in runners}
        collections: dict[str, list[tuple[int, float]]] = {c.name: [] for c in runners}
        wakes: list[float] = []
        counts: set[int] = set()
        for round_ in range(self.sizes.repeat):
            wakes.append(await thread_wake_us(self.wake_hops))
            turn = runners[round_ % len(runners) :] + runners[: round_ % len(runners)]
            for contender in turn:
                if contender.name in BUDGETED and sum(times[contender.name]) >= self.sizes.budget:
                    continue
                method = method_of(contender, workload)
                assert method is not None  # noqa: S101  # chosen above
                if written is not None:
                    await target.reset()
                    contender.prepare(written)
                if self.collect:
                    gc.collect()
                elapsed, got, probe = await _timed(functools.partial(method, *args))
                if check is not None:
                    await check(contender)
                else:
                    counts.add(int(str(got)))
                times[contender.name].append(elapsed)
                lags[contender.name].extend(probe.samples)
                collections[contender.name].extend(probe.collections)
        profile = await self._profile(target, workload, runners, args, written)
        if check is None and (len(counts) != 1 or (expected and counts != {expected})):
            raise AssertionError(f"{workload}: contenders read {sorted(counts)} rows")
        rows = counts.pop() if check is None else expected
        measurement = Measurement(
            engine=target.engine,
            workload=workload,
            rows=rows,
            times=times,
            lag_samples=lags,
            table=target.table,
            calls=size,
            wake_us=tuple(wakes),
            collections=collections,
            profile=profile,
        )
        self.measurements.append(measurement)
        _say(measurement.line())

    async def _profile(
        self,
        target: Target,
        workload: str,
        runners: list[Contender],
        args: tuple[object, ...],
        written: list[TestResult] | None,
    ) -> Profile | None:
        """Call the layer once more under cProfile, outside the timing: where its time goes."""
        layer = next((c for c in runners if c.name == "layer"), None)
        if layer is None or not self.profile:
            return None
        method = method_of(layer, workload)
        assert method is not None  # noqa: S101  # the layer runs every workload it is in
        if written is not None:
            await target.reset()
            layer.prepare(written)
        return await profiled(functools.partial(method, *args))


async def _timed(call: Callable[[], Awaitable[_T]]) -> tuple[float, _T, LagProbe]:
    """Run one call with the lag probe awake; give its time, its result and the probe."""
    async with LagProbe() as probe:
        start = time.perf_counter()
        result = await call()
        elapsed = time.perf_counter() - start
    return elapsed, result, probe


async def idle_lag() -> list[float]:
    """Run the lag probe alone: the floor of what it measures on this machine."""
    gc.collect()
    async with LagProbe() as probe:
        await asyncio.sleep(IDLE_SECONDS)
    return probe.samples


async def run_sqlite(bench: Bench, table: str, names: frozenset[str] | None = None) -> str:
    """Run the workloads on a temporary SQLite file in WAL mode; return SQLite's version.

    `names` keeps only the contenders named (the harness's tests run a few); None runs all.
    """
    with tempfile.TemporaryDirectory(prefix="persistence-bench-") as folder:
        path = str(Path(folder) / "bench.db")
        async with connect(path) as db:
            await migrate(db)
        if table == "plain":
            await make_plain(path)
        async with connect(path) as db:
            raw_conn = await open_raw_sqlite(path)
            loop_conn = open_plain_sqlite(path)
            hand = HandSqlite(path)
            orm_engine = open_orm_engine(f"sqlite+aiosqlite:///{path}")
            try:

                async def reset() -> None:
                    loop_conn.execute("DELETE FROM test_results")
                    loop_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

                async def row_count() -> int:
                    return int(loop_conn.execute("SELECT count(*) FROM test_results").fetchone()[0])

                async def ids() -> list[int]:
                    rows = loop_conn.execute("SELECT id FROM test_results").fetchall()
                    return [int(row[0]) for row in rows]

                contenders: list[Contender] = [
                    Layer(db),
                    hand,
                    LoopSqlite(loop_conn),
                    RawSqlite(raw_conn),
                    Core(orm_engine),
                    Orm(orm_engine),
                ]
                contenders = [c for c in contenders if names is None or c.name in names]
                target = Target("sqlite", table, contenders, reset, row_count, ids, db)
                await bench.run_target(target, reads=table == "indexed")
                return str(loop_conn.execute("SELECT sqlite_version()").fetchone()[0])
            finally:
                await orm_engine.dispose()
                hand.close()
                loop_conn.close()
                await raw_conn.close()


async def run_postgres(bench: Bench, admin_url: str, table: str) -> str:
    """Run the workloads on a scratch PostgreSQL database; return the server's version."""
    async with scratch_postgres(admin_url, "persistence_bench") as url:
        async with connect(url) as db:
            await migrate(db)
        if table == "plain":
            await make_plain(url)
        async with connect(url) as db:
            raw_conn = await open_raw_postgres(url)
            raw_pool = await open_raw_pool(url, POOL_SIZE)
            orm_url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
            orm_engine = open_orm_engine(orm_url)
            try:

                async def reset() -> None:
                    await raw_conn.execute("TRUNCATE test_results CASCADE")

                async def row_count() -> int:
                    return int(await raw_conn.fetchval("SELECT count(*) FROM test_results"))

                async def ids() -> list[int]:
                    await raw_conn.execute("VACUUM ANALYZE test_results")
                    rows = await raw_conn.fetch("SELECT id FROM test_results")
                    return [int(row[0]) for row in rows]

                contenders: list[Contender] = [
                    Layer(db),
                    RawPostgres(raw_conn, raw_pool),
                    Core(orm_engine),
                    Orm(orm_engine),
                ]
                target = Target("postgres", table, contenders, reset, row_count, ids, db)
                await bench.run_target(target, reads=table == "indexed")
                return str(await raw_conn.fetchval("SHOW server_version"))
            finally:
                await orm_engine.dispose()
                await raw_pool.close()
                await raw_conn.close()


async def postgres_problem(url: str) -> str | None:
    """Say why the PostgreSQL server does not answer, or None when it does."""
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return str(error) or type(error).__name__
    await conn.close()
    return None


def redis_url() -> str:
    """BENCH_REDIS_URL, else TEST_REDIS_URL, else database 15 of the local server."""
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS


async def _redis_answers(url: str) -> bool:
    where = urlsplit(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(where.hostname or "127.0.0.1", where.port or 6379), timeout=2
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


def _quick() -> bool:
    return os.environ.get("BENCH_QUICK", "").strip() not in {"", "0"}


def _only() -> set[str] | None:
    text = os.environ.get("BENCH_ONLY", "").strip()
    return {part.strip() for part in text.split(",") if part.strip()} or None


async def _contenders(
    bench: Bench, admin_url: str | None, versions: dict[str, str], durations: dict[str, float]
) -> None:
    """Run the contenders on each table of each engine (PostgreSQL when it answers)."""
    for table in ("indexed", "plain"):
        mark = time.perf_counter()
        _say(f"\n## SQLite, {table}")
        versions["sqlite"] = await run_sqlite(bench, table)
        durations[f"sqlite_{table}"] = time.perf_counter() - mark
        if admin_url is not None:
            mark = time.perf_counter()
            _say(f"\n## PostgreSQL, {table}")
            versions["postgres"] = await run_postgres(bench, admin_url, table)
            durations[f"postgres_{table}"] = time.perf_counter() - mark


async def _sections(
    context: Run,
    only: set[str] | None,
    skipped: dict[str, str],
    failed: dict[str, str],
    durations: dict[str, float],
) -> dict[str, tuple[str, str, Outcome]]:
    """Run every registered section that was asked for and can run, in the list's order.

    A section that raises is named in `failed` and the run goes on to the next one.
    """
    outcomes: dict[str, tuple[str, str, Outcome]] = {}
    for section in SECTIONS:
        if only is not None and section.key not in only:
            continue
        why = section.missing(context)
        if why is not None:
            skipped[section.title] = why
            _say(f"\n{section.title} skipped: {why}")
            continue
        _say(f"\n## {section.title}")
        mark = time.perf_counter()
        try:
            outcome = await section.measure(context)
        except Exception as error:  # noqa: BLE001 - one failed section must not waste the whole run
            failed[section.title] = f"{type(error).__name__}: {error}"
            _say(f"\n{section.title} FAILED: {failed[section.title]}")
            traceback.print_exc()
            continue
        durations[section.key] = time.perf_counter() - mark
        outcomes[section.key] = (section.title, section.intro, outcome)
        _say(outcome.markdown)
    return outcomes


async def run(out: Path | None = None) -> Path:
    """Run the whole benchmark and write its reports; give the folder they are in."""
    quick = _quick()
    only = _only()
    sizes = QUICK if quick else FULL
    repeat = os.environ.get("BENCH_REPEAT", "").strip()
    if repeat:
        sizes = attrs.evolve(sizes, repeat=max(3, int(repeat)))
    bench = Bench(sizes)
    out = out or Path(os.environ.get("BENCH_OUT") or DEFAULT_OUT)
    _say(f"persistence bench{' (BENCH_QUICK)' if quick else ''}: {sizes}")
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    idle = lag_of(await idle_lag())
    wake = await thread_wake_us(1000)
    _say(f"lag probe alone: p99 {idle.p99 * 1000:.3f} ms; thread wake-up {wake:.0f} us")
    admin_url = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    problem = await postgres_problem(admin_url)
    versions: dict[str, str] = {}
    skipped: dict[str, str] = {}
    durations: dict[str, float] = {}
    if only is None or "contenders" in only:
        await _contenders(bench, admin_url if problem is None else None, versions, durations)
    if problem is not None:
        skipped["PostgreSQL"] = f"no PostgreSQL server at {admin_url}: {problem}"
        _say(f"\nPostgreSQL skipped: {skipped['PostgreSQL']}")
    redis = redis_url()
    context = Run(
        quick=quick,
        postgres=admin_url if problem is None else None,
        redis=redis if await _redis_answers(redis) else None,
    )
    failed: dict[str, str] = {}
    outcomes = await _sections(context, only, skipped, failed, durations)
    machine = machine_description(versions)
    machine["load_average"] = [round(load_at_start, 2), round(os.getloadavg()[0], 2)]
    write_reports(
        bench.measurements,
        machine=machine,
        settings={**attrs.asdict(sizes), "quick": quick},
        idle=idle,
        wake_us=wake,
        skipped={**skipped, **{title: f"FAILED, {why}" for title, why in failed.items()}},
        seconds=time.perf_counter() - started,
        durations=durations,
        out=out,
        say=_say,
        sections=outcomes,
    )
    if failed:
        raise SystemExit(f"bench: {len(failed)} section(s) failed: {', '.join(failed)}")
    return out


def main() -> None:
    """Entry point of `python -m bench`; exits 1 when a section failed, after writing the report."""
    asyncio.run(run())
