"""The history indexes hold only the rows they can find: those with a run id or a test id.

Migration 0010 made them partial, so a result saved outside any run, with no test id, costs
its insert no entry in either. The questions that read them keep to them
(tests/test_history_plans.py); here, what each holds, and that a run's test ids stay unique.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from persistence import (
    ConflictError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    save_result,
    save_results,
    save_run,
)

T0: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WITHOUT_IDS: Final = 3_000
WITH_IDS: Final = 7
HISTORY_INDEXES: Final = ("test_results_run_test_idx", "test_results_test_created_idx")


def _result(n: int, run_id: int | None = None, test_id: str | None = None) -> TestResult:
    return TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.PASSED,
        created_at=T0 + dt.timedelta(seconds=n),
        run_id=run_id,
        test_id=test_id,
    )


async def _fill(url: str) -> None:
    """WITHOUT_IDS results of no run and no test id, then WITH_IDS of one run, each named."""
    async with connect(url) as db:
        await migrate(db)
        await save_results(db, [_result(n) for n in range(WITHOUT_IDS)])
        run = await save_run(db, Run(started_at=T0))
        assert run.id is not None
        await save_results(db, [_result(n, run.id, f"t{n}") for n in range(WITH_IDS)])
        with pytest.raises(ConflictError, match="test_id"):
            await save_result(db, _result(99, run.id, "t0"))


async def test_sqlite_history_indexes_hold_only_rows_with_ids(tmp_path: Path) -> None:
    """Each history index has one entry per result that has its ids, and none for the rest."""
    path = tmp_path / "app.db"
    await _fill(str(path))
    with closing(sqlite3.connect(path)) as lite:
        entries = dict(
            lite.execute(
                "SELECT name, SUM(ncell) FROM dbstat WHERE pagetype = 'leaf' AND name IN (?, ?)"
                " GROUP BY name",
                HISTORY_INDEXES,
            ).fetchall()
        )
        rows = lite.execute("SELECT COUNT(*) FROM test_results").fetchone()[0]
    assert rows == WITHOUT_IDS + WITH_IDS
    assert entries == dict.fromkeys(HISTORY_INDEXES, WITH_IDS)


async def test_postgres_history_indexes_hold_only_rows_with_ids(postgres_url: str) -> None:
    """Each history index stays at its metapage and one leaf, however many rows have no ids."""
    await _fill(postgres_url)
    conn = await asyncpg.connect(postgres_url)
    try:
        page = await conn.fetchval("SELECT current_setting('block_size')::int")
        sizes = {
            name: await conn.fetchval("SELECT pg_relation_size($1::regclass)", name)
            for name in HISTORY_INDEXES
        }
        whole = await conn.fetchval("SELECT pg_relation_size('test_results_created_idx')")
    finally:
        await conn.close()
    assert sizes == dict.fromkeys(HISTORY_INDEXES, 2 * page)
    assert whole > 4 * page, "the time index, which holds every row, is the yardstick"
