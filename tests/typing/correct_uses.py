"""Correct uses of the generated interface: mypy must accept all of them."""

from __future__ import annotations

import datetime as dt
from typing import assert_type

from persistence.queries import (
    InsertTestResultsParams,
    Queries,
    SearchTestResultsRow,
    TestResultsRow,
    TestResultStatsRow,
)
from persistence import (
    ConfigEntry,
    Database,
    FileRecord,
    get_config_entry,
    get_config_value,
    get_file_record_by_path,
)
from persistence._interface import JsonValue
from persistence.database import Tracing  # the README's table names it in this module
from persistence.queries import Connection, JsonObject

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def use(q: Queries, conn: Connection) -> None:
    row = await q.get_test_result(conn, id=1)
    assert_type(row, TestResultsRow | None)
    if row is not None:
        assert_type(row.id, int)
        assert_type(row.error_message, str | None)
        assert_type(row.created_at, dt.datetime)
        assert_type(row.metadata, JsonObject)

    for page_row in await q.list_test_results(
        conn,
        created_from=NOW,
        cursor_created_at=NOW,
        cursor_id=0,
        page_size=50,
    ):
        assert_type(page_row, TestResultsRow)

    for by_status in await q.list_test_results_by_status(
        conn,
        statuses=["failed", "error"],
        test_types=None,
        created_from=NOW,
        cursor_created_at=NOW,
        cursor_id=0,
        page_size=50,
    ):
        assert_type(by_status, TestResultsRow)

    for hit in await q.search_test_results(
        conn,
        match='"segfault"',
        statuses=None,
        test_types=["unit"],
        created_from=NOW,
        created_until=NOW,
        metadata={"solution": "a.cpp"},
        skip=0,
        page_size=20,
    ):
        assert_type(hit, SearchTestResultsRow)
        assert_type(hit.score, float)

    new_id = await q.insert_test_result(
        conn,
        test_type="unit",
        status="passed",
        execution_time=0.5,
        memory_usage=0,
        test_cases_passed=1,
        test_cases_total=1,
        error_message=None,
        output="ok",
        created_at=NOW,
        metadata={"tags": ["fast"], "retries": 0},
        run_id=None,
        test_id="tests/test_io.py::test_read",
    )
    assert_type(new_id, int)

    rows: list[InsertTestResultsParams] = [
        {
            "test_type": "stress",
            "status": "failed",
            "execution_time": 1.0,
            "memory_usage": 2048,
            "test_cases_passed": 0,
            "test_cases_total": 3,
            "error_message": "boom",
            "output": None,
            "created_at": NOW,
            "metadata": {},
            "run_id": 1,
            "test_id": None,
        }
    ]
    assert_type(await q.insert_test_results(conn, rows), None)

    changed = await q.delete_test_results_before_batch(conn, cutoff=NOW, batch_size=100)
    assert_type(changed, int)

    assert_type(
        await q.record_migration(
            conn, version=1, name="initial", checksum="abc", applied_at=NOW, duration_ms=1.5
        ),
        None,
    )

    entry = await q.get_config_entry_by_key(conn, section="ui", key="theme")
    description = entry.description if entry else None
    assert_type(description, str | None)

    stats = await q.test_result_stats(conn)
    assert_type(stats, list[TestResultStatsRow])
    total: float = sum(s.total_time for s in stats)
    assert total >= 0


async def typed_config(db: Database) -> None:
    assert_type(await get_config_value(db, "a", "b", list), list[JsonValue])
    assert_type(await get_config_value(db, "a", "b", dict), dict[str, JsonValue])
    assert_type(await get_config_value(db, "a", "b", int), int)
    assert_type(await get_config_value(db, "a", "b", str, "x"), str)
    assert_type(await get_file_record_by_path(db, "p"), FileRecord)
    assert_type(await get_config_entry(db, 1), ConfigEntry)
