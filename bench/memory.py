"""Memory per 100,000 results: the layer's models against the driver's own rows.

Run as a section of `make bench`. On a new database of each engine it saves 100,000 results
(`bench/_rows.py`), then reads them all with each reader while `tracemalloc` traces every
allocation, and gives the memory the result holds once the read is over (and the peak
during it): the layer's `all_results` (models), the driver's raw rows (sqlite3 tuples,
asyncpg Records) and, on SQLite, the same tuples decoded by hand. Target (issue 19): the
models within 1.3 times the raw rows.
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from bench._hand_sqlite import decode_rows
from bench._loop_sqlite import open_plain_sqlite
from bench._raw_postgres import open_raw_postgres
from bench._rows import make_results
from bench._scratch import scratch_postgres
from bench._section import Outcome, Run
from bench._targets import Verdict
from persistence import all_results, connect, migrate, save_results

__all__ = ["INTRO", "section"]

INTRO: Final = """Memory that 100,000 results hold once read, traced by `tracemalloc` (the peak
during the read beside it): the layer's `all_results` (models) against the driver's raw rows
(sqlite3 tuples, asyncpg Records) and, on SQLite, the same tuples decoded by hand. Target
(issue 19): the models within 1.3 times the raw rows."""

RESULTS: Final = 100_000
QUICK_RESULTS: Final = 2_000
TARGET: Final = 1.3
_SELECT: Final = (
    "SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed, "
    "test_cases_total, error_message, output, created_at, metadata, run_id, test_id "
    "FROM test_results ORDER BY created_at DESC, id DESC"
)


async def _traced(read: Callable[[], Awaitable[list[object]]]) -> tuple[float, float, int]:
    """Read under tracemalloc; give the MB held by the result, the peak MB, and its length."""
    gc.collect()
    tracemalloc.start()
    try:
        rows = await read()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count = len(rows)
    del rows
    return held / 1e6, peak / 1e6, count


async def _engine(engine: str, url: str, n: int) -> dict[str, object]:
    readers: dict[str, Callable[[], Awaitable[list[object]]]] = {}
    async with connect(url) as db:
        await migrate(db)
        results = make_results(n)
        for start in range(0, n, 10_000):
            await save_results(db, results[start : start + 10_000])
        del results

        async def models() -> list[object]:
            return list(await all_results(db))

        readers["layer"] = models
        if engine == "sqlite":
            lite = open_plain_sqlite(url)

            async def raw() -> list[object]:
                return list(lite.execute(_SELECT).fetchall())

            async def hand() -> list[object]:
                return list(decode_rows(lite.execute(_SELECT).fetchall()))

            readers["raw"], readers["hand"] = raw, hand
        else:
            pg = await open_raw_postgres(url)

            async def records() -> list[object]:
                return list(await pg.fetch(_SELECT))

            readers["raw"] = records
        figures: dict[str, object] = {"engine": engine, "results": n}
        try:
            for name, read in readers.items():
                held, peak, count = await _traced(read)
                if count != n:
                    raise AssertionError(f"{engine} {name}: read {count} of {n}")
                scale = RESULTS / n
                figures[name] = {
                    "held_mb": round(held * scale, 1),
                    "peak_mb": round(peak * scale, 1),
                }
        finally:
            if engine == "sqlite":
                lite.close()
            else:
                await pg.close()
    return figures


def _mb(figures: dict[str, object], name: str, field: str) -> float:
    part = figures.get(name)
    return float(part[field]) if isinstance(part, dict) else float("nan")


def _table(engines: list[dict[str, object]]) -> str:
    lines = [
        "| engine | results read | read | MB held per 100,000 | peak MB | held / raw rows |",
        "|---|---:|---|---:|---:|---:|",
    ]
    names = {"layer": "layer, models", "raw": "driver's raw rows", "hand": "decoded by hand"}
    for f in engines:
        raw = _mb(f, "raw", "held_mb")
        for name, label in names.items():
            if name in f:
                held = _mb(f, name, "held_mb")
                lines.append(
                    f"| {f['engine']} | {f['results']:,} | {label} | {held:.1f} "
                    f"| {_mb(f, name, 'peak_mb'):.1f} | {held / raw:.2f} |"
                )
    return "\n".join(lines)


def _verdicts(engines: list[dict[str, object]]) -> list[Verdict]:
    found = []
    for f in engines:
        ratio = _mb(f, "layer", "held_mb") / _mb(f, "raw", "held_mb")
        met = ratio <= TARGET
        hand = ""
        if "hand" in f:
            by_hand = _mb(f, "hand", "held_mb")
            hand = f"; the same values decoded by hand, with no model, hold {by_hand:.1f} MB"
            if by_hand >= 0.95 * _mb(f, "layer", "held_mb"):  # about the same
                hand += ": the decoded values (datetimes, dicts), not the models, cost it"
        found.append(
            Verdict(
                what=f"{f['engine']} memory of 100,000 results read (the memory section)",
                target=f"models ≤ {TARGET:g}x the raw rows",
                measured=f"{ratio:.2f}",
                met=met,
                limit=None
                if met
                else (
                    f"the models hold {_mb(f, 'layer', 'held_mb'):.1f} MB against the raw rows' "
                    f"{_mb(f, 'raw', 'held_mb'):.1f} MB{hand}"
                ),
            )
        )
    return found


async def section(run: Run) -> Outcome:
    """Measure memory on SQLite, and PostgreSQL when it answers."""
    n = QUICK_RESULTS if run.quick else RESULTS
    engines = []
    with tempfile.TemporaryDirectory(prefix="persistence-bench-memory-") as folder:
        engines.append(await _engine("sqlite", str(Path(folder) / "m.db"), n))
    if run.postgres is not None:
        async with scratch_postgres(run.postgres, "persistence_bench_memory") as url:
            engines.append(await _engine("postgres", url, n))
    return Outcome({"engines": engines}, _table(engines), _verdicts(engines))
