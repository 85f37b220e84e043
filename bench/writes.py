"""Search while others write: the search median with writer processes running, and without.

Run with `python -m bench.writes`, or as a section of `make bench`. On a new database of
each engine it loads 20,000 results of about 2 KB of output (`bench/search.py`'s rows),
times the search mix of `bench/search.py` (a page of 20 each), then starts two writer
processes that each save batches of 100 such results through the package, 20 ms apart, and
times the same mix again while they write. Target (issue 19): the median with writers within
2 times the median without, on both engines.

A control beside it: `get_result` by id, a short indexed read that no search index touches,
timed the same way. Its ratio is what the machine's load alone does to a read (the writers
take CPU on the same cores); a search ratio far above it is the search index's own cost
under writes (on PostgreSQL, the GIN index's pending list, whose length is given when the
`pgstattuple` extension can be created).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import asyncpg

from bench._scratch import scratch_postgres
from bench._section import Outcome, Run
from bench._targets import Verdict
from bench.search import SEARCHES, make_results
from persistence import Database, connect, get_result, migrate, save_results, search_results

__all__ = ["INTRO", "main", "section"]

INTRO: Final = """The search mix of the Search section (a page of 20 each), timed on 20,000 results
of about 2 KB of output, then timed again while two writer processes each save batches of
100 such results through the package, 20 ms apart. Target (issue 19): the median with
writers within 2 times the median without, on both engines. The control, `get_result` by
id, shows what the writers' share of the 2 cores alone does to a short read."""

ROOT: Final = Path(__file__).parent.parent
DEFAULT_ADMIN_URL: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
LOADED: Final = 20_000
QUICK_LOADED: Final = 500
REPEAT: Final = 5
QUICK_REPEAT: Final = 2
WRITERS: Final = 2
BATCH: Final = 100
PAUSE: Final = 0.02
TARGET_RATIO: Final = 2.0
GETS: Final = 200

WRITER: Final = """
import asyncio, sys
from bench.search import make_results
from persistence import connect, save_results
async def main(url, seed, batch, pause):
    rows = make_results(300, seed=seed)
    written = 0
    async with connect(url) as db:
        print("ready", flush=True)
        stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        while not stop.done():
            start = written % len(rows)
            written += await save_results(db, rows[start:start + batch])
            await asyncio.sleep(pause)
    print(written, flush=True)
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])))
"""
"""A writer process: saves batches until a line (or the end) comes on its stdin; prints
how many rows it wrote."""


async def _times(call: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Time `call` `repeat` times, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _mix(db: Database, repeat: int) -> dict[str, list[float]]:
    """Time every search of the mix `repeat` times, and GETS lookups by id."""
    searches: list[float] = []
    for _ in range(repeat):
        for search in SEARCHES:

            async def one(text: str = search.text, where: object = search.where) -> object:
                return await search_results(db, text, where, limit=20)  # type: ignore[arg-type]  # a ResultFilter or None

            searches += await _times(one, 1)
    gets: list[float] = []
    for result_id in range(1, GETS + 1):

        async def get(result_id: int = result_id) -> object:
            return await get_result(db, result_id)

        gets += await _times(get, 1)
    return {"search_ms": searches, "get_ms": gets}


@contextlib.asynccontextmanager
async def _writers(url: str) -> AsyncIterator[list[float]]:
    """Run WRITERS writer processes for the block.

    The list it gives holds, after the block, the seconds the block ran once the writers
    were writing, then how many rows each writer wrote in all.
    """
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WRITER,
            url,
            str(900 + index),
            str(BATCH),
            str(PAUSE),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        for index in range(WRITERS)
    ]
    written: list[float] = []
    try:
        for child in children:
            assert child.stdout is not None  # noqa: S101  # piped above
            ready = await asyncio.wait_for(child.stdout.readline(), timeout=60)
            if ready.strip() != b"ready":
                raise RuntimeError(f"a writer did not start: {ready!r}")
        await asyncio.sleep(0.5)  # the writers are writing
        started = time.perf_counter()
        yield written
        written.append(round(time.perf_counter() - started, 3))  # the seconds, popped below
    finally:
        for child in children:
            assert child.stdin is not None  # noqa: S101  # piped above
            assert child.stdout is not None  # noqa: S101
            child.stdin.write(b"stop\n")
            await child.stdin.drain()
            child.stdin.close()
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
            written.append(float(line or b"0"))
            await child.wait()


async def _gin_pending(url: str) -> int | None:
    """Give the GIN index's pending-list pages, when pgstattuple can be had; else None."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        pages = await conn.fetchval(
            "SELECT pending_pages FROM pgstatginindex('test_results_search_idx')"
        )
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()
    return int(pages)


async def _engine(engine: str, url: str, loaded: int, repeat: int) -> dict[str, object]:
    """Load, time the mix, time it again under writers; give the figures of one engine."""
    async with connect(url) as db:
        await migrate(db)
        rows = make_results(loaded)
        for start in range(0, loaded, 1_000):
            await save_results(db, rows[start : start + 1_000])
        await _mix(db, 1)  # warm
        quiet = await _mix(db, repeat)
        async with _writers(url) as written:
            busy = await _mix(db, repeat)
            pending = await _gin_pending(url) if engine == "postgres" else None
        seconds = float(written.pop(0))
    figures: dict[str, object] = {"engine": engine, "loaded": loaded}
    for key in ("search_ms", "get_ms"):
        alone, under = statistics.median(quiet[key]), statistics.median(busy[key])
        figures[key] = {
            "alone_median": round(alone, 3),
            "writing_median": round(under, 3),
            "writing_p90": round(_p90(busy[key]), 3),
            "ratio": round(under / alone, 3),
        }
    figures["rows_written"] = round(sum(written))
    figures["write_rows_per_second"] = round(sum(written) / seconds)
    figures["gin_pending_pages"] = pending
    return figures


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _number(figures: dict[str, object], key: str, field: str) -> float:
    part = figures[key]
    assert isinstance(part, dict)  # noqa: S101  # built above
    return float(part[field])


def _table(engines: list[dict[str, object]]) -> str:
    lines = [
        (
            "| engine | results | search median ms, alone | with writers (p90) | ratio "
            "| control: get_result ratio | rows written/s | GIN pending pages |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in engines:
        pending = f["gin_pending_pages"]
        lines.append(
            f"| {f['engine']} | {f['loaded']:,} | {_number(f, 'search_ms', 'alone_median'):.1f} "
            f"| {_number(f, 'search_ms', 'writing_median'):.1f} "
            f"({_number(f, 'search_ms', 'writing_p90'):.1f}) "
            f"| {_number(f, 'search_ms', 'ratio'):.2f} | {_number(f, 'get_ms', 'ratio'):.2f} "
            f"| {f['write_rows_per_second']:,} | {'-' if pending is None else pending} |"
        )
    return "\n".join(lines)


def _verdicts(engines: list[dict[str, object]]) -> list[Verdict]:
    found = []
    for f in engines:
        ratio = _number(f, "search_ms", "ratio")
        control = _number(f, "get_ms", "ratio")
        met = ratio <= TARGET_RATIO
        cause = "the search itself" if ratio > control else "the machine's load, not the search"
        limit = (
            f"{cause}: the control read slowed {control:.2f} times in the same minutes, "
            f"the search {ratio:.2f} times"
        )
        if f["gin_pending_pages"] is not None:
            limit += f"; the GIN pending list held {f['gin_pending_pages']} pages meanwhile"
        found.append(
            Verdict(
                what=f"{f['engine']} search while two processes write (search under writes)",
                target=f"search median with writers ≤ {TARGET_RATIO:g}x without",
                measured=f"{ratio:.2f}",
                met=met,
                limit=None if met else limit,
            )
        )
    return found


async def section(run: Run) -> Outcome:
    """Search under writes on SQLite, and PostgreSQL when it answers."""
    loaded, repeat = (QUICK_LOADED, QUICK_REPEAT) if run.quick else (LOADED, REPEAT)
    engines = []
    with tempfile.TemporaryDirectory(prefix="persistence-bench-writes-") as folder:
        engines.append(await _engine("sqlite", str(Path(folder) / "w.db"), loaded, repeat))
    if run.postgres is not None:
        async with scratch_postgres(run.postgres, "persistence_bench_writes") as url:
            engines.append(await _engine("postgres", url, loaded, repeat))
    return Outcome({"engines": engines}, _table(engines), _verdicts(engines))


def main() -> None:
    """Run alone: print the table and the figures."""
    quick = os.environ.get("BENCH_QUICK", "").strip() not in {"", "0"}
    admin = os.environ.get("BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    outcome = asyncio.run(section(Run(quick=quick, postgres=admin, redis=None)))
    sys.stdout.write(outcome.markdown + "\n" + json.dumps(outcome.figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
