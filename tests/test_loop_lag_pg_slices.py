"""The event loop stays free while a read maps many rows, or one row of megabytes.

A read with no bound of rows (`referenced_artifacts`, for one shard of a large store) maps
its rows to the generated row types a slice at a time on both engines (`_loop.map_slices`):
on PostgreSQL it mapped them all in one call, on the loop, about 22 ms for 30,000 rows.
asyncpg's own reading of the rows is not cut in slices: the test looks at the mapping alone.

Each workload runs beside the benchmark's lag probe, as in `test_loop_lag_huge_rows.py`; in
conftest's TIMED_MODULES.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import pytest
from aiosql.types import SQLOperationType

from _lag import held
from persistence import connect
from persistence._loans import borrow
from persistence._loop import SLICE_ITEMS
from persistence._postgres.adapter import PostgresAdapter
from persistence.queries import RunsRow, _postgres_runs_row

pytestmark = pytest.mark.timed

_MANY_ROWS: Final = 30_000
"""Rows of the unbounded read here: mapped in one call, about 22 ms on the loop."""

_ROWS_SQL: Final = (
    "SELECT g AS id, now() AS started_at, NULL::timestamptz AS ended_at, "
    "jsonb_build_object('n', g) AS labels FROM generate_series(1, :count) AS g"
)
"""Rows of the `runs` table's shape, with a small jsonb value each, made by the server."""


async def test_a_read_of_many_rows_maps_them_a_slice_at_a_time(migrated_postgres_url: str) -> None:
    """30,000 rows read by one query are mapped a slice at a time, the loop given back between.

    PostgreSQL alone: SQLite's reads map their rows through `map_rows`, a slice at a time.
    """
    calls: list[tuple[int, float]] = []

    def mapper(rows: Iterable[Any]) -> list[RunsRow]:
        began = time.perf_counter()
        mapped = _postgres_runs_row(rows)
        calls.append((len(mapped), time.perf_counter() - began))
        return mapped

    adapter = PostgresAdapter()
    sql = adapter.process_sql("many_rows", SQLOperationType.SELECT, _ROWS_SQL)
    async with connect(migrated_postgres_url) as db, borrow(db) as conn:
        read = await held(
            lambda: adapter.select(conn, "many_rows", sql, {"count": _MANY_ROWS}, mapper)
        )
    assert [row.labels for row in read.outcome] == [{"n": n} for n in range(1, _MANY_ROWS + 1)]
    longest = max(took for _, took in calls)
    assert max(count for count, _ in calls) <= SLICE_ITEMS, (
        f"{len(calls)} calls mapped {_MANY_ROWS} rows, the longest for {longest * 1000:.1f} ms"
        f" (the read held the loop {read.lag * 1000:.0f} ms)"
    )
