"""SQLite's listings by status or type read each wanted one's index, not the time index.

Filtered as the time index was walked newest first, a status or type that no result has (or
that few have) read every row of the time range for each page: 150 ms over 500,000 results.
Each wanted status or type now has its page read from its own index, and the pages merged,
as PostgreSQL's LATERAL does. The work is counted in SQLite's VM steps (its progress
handler), which grow with the rows read.
"""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

import pytest

from _sqlite_steps import counted_steps, sqlite_text
from persistence import ResultFilter, TestStatus, TestType, connect, list_results, migrate

_ROWS: Final = 50_000
_FILL: Final = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO test_results (test_type, status, created_at)
SELECT 'unit', CASE WHEN i % 1000 = 0 THEN 'timeout' ELSE 'passed' END,
       strftime('%Y-%m-%dT%H:%M:%f', '2026-01-01', '+' || i || ' seconds') || '000+00:00'
FROM n"""
"""Unit results, passed but one in 1,000 timed out: no error, no stress test."""


_PAGE: Final = {
    "created_from": "0001-01-01T00:00:00.000000+00:00",
    "cursor_created_at": "9999-12-31T23:59:59.999999+00:00",
    "cursor_id": 2**63 - 1,
    "page_size": 51,
}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file of `_ROWS` results, analysed."""
    path = tmp_path_factory.mktemp("listing") / "app.db"
    asyncio.run(_migrated(path))
    with closing(sqlite3.connect(path)) as lite, lite:
        lite.execute(_FILL, (_ROWS,))
        lite.execute("ANALYZE")
    return path


async def _migrated(path: Path) -> None:
    async with connect(path) as db:
        await migrate(db)


async def test_the_layer_lists_the_filled_rows(filled: Path) -> None:
    """The fixture's rows are the layer's: its listings read them back by status and type."""
    async with connect(filled) as db:
        timed_out = await list_results(db, ResultFilter(statuses={TestStatus.TIMEOUT}), limit=60)
        assert len(timed_out.items) == _ROWS // 1000
        by_type = await list_results(db, ResultFilter(test_types={TestType.STRESS}), limit=5)
        assert by_type.items == ()


@pytest.mark.parametrize(
    ("query", "arguments"),
    [
        ("list_test_results_by_status", {"statuses": '["error"]', "test_types": None}),
        ("list_test_results_by_status", {"statuses": '["error", "timeout"]', "test_types": None}),
        ("list_test_results_by_status", {"statuses": '["timeout"]', "test_types": '["unit"]'}),
        ("list_test_results_by_type", {"test_types": '["stress"]'}),
        ("list_test_results_by_type", {"test_types": '["stress", "tle"]'}),
    ],
    ids=["absent status", "absent and rare", "rare, of a type", "absent type", "absent types"],
)
def test_a_rare_or_absent_status_or_type_is_read_from_its_index(
    filled: Path, query: str, arguments: dict[str, object]
) -> None:
    """A page of rare or absent ones takes a few thousand steps, not steps for every row."""
    rows, steps = counted_steps(filled, sqlite_text(query), {**arguments, **_PAGE}, 100)
    assert len(rows) <= _ROWS // 1000
    assert steps < _ROWS, f"{steps} steps for a page of {len(rows)} of {_ROWS} rows"
