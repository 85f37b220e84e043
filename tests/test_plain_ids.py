"""Ids of 0 and below, which only plain SQL writes: every listing pages through them."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest

from persistence import (
    Database,
    Page,
    PageCursor,
    Run,
    RunCursor,
    TestHistoryCursor,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    connect,
    list_results,
    list_runs,
    list_test_history,
    migrate,
    save_results,
    save_run,
)
from persistence._guards import MAX_INT, MIN_INT

_T = TypeVar("_T")
_C = TypeVar("_C")

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PLAIN_IDS = (0, -7, MIN_INT + 1)
COLUMNS = {
    "test_results": "test_type, status, execution_time, memory_usage, test_cases_passed, "
    "test_cases_total, error_message, output, created_at, metadata, run_id, test_id",
    "runs": "started_at, ended_at, labels",
}
"""Each table's columns but its id (and PostgreSQL's generated search vector)."""


async def plain_sql(database_url: str, *statements: str) -> None:
    """Run statements as another program would: the engine's own driver, no package."""
    if "://" in database_url:
        connection = await asyncpg.connect(database_url)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()
        return
    with contextlib.closing(sqlite3.connect(database_url)) as plain, plain:
        for statement in statements:
            plain.execute(statement)


@pytest.fixture(name="db")
async def db_fixture(database_url: str) -> AsyncIterator[Database]:
    """A migrated database whose results and runs hold ids of 0 and below, from plain SQL."""
    async with connect(database_url) as db:
        await migrate(db)
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=TestStatus.PASSED,
                    created_at=T0 + dt.timedelta(seconds=index),
                    test_id="suite::case",
                )
                for index in range(6)
            ],
        )
        for index in range(5):
            await save_run(db, Run(started_at=T0 + dt.timedelta(seconds=index)))
        overriding = "OVERRIDING SYSTEM VALUE" if "://" in database_url else ""
        moves = []
        for table, columns in COLUMNS.items():
            for old, new in zip((2, 3, 4), PLAIN_IDS, strict=True):
                # Ids and table names are this test's own constants, never input.
                copied = f"SELECT {new}, {columns} FROM {table} WHERE id = {old}"  # noqa: S608
                moves += [
                    f"INSERT INTO {table} (id, {columns}) {overriding} {copied}",
                    f"DELETE FROM {table} WHERE id = {old}",  # noqa: S608
                ]
        await plain_sql(database_url, *moves)
        yield db


async def every_page(page_after: Callable[[_C | None], Awaitable[Page[_T, _C]]]) -> list[_T]:
    """Read a listing one item a page, each page after the cursor of the one before."""
    items: list[_T] = []
    cursor: _C | None = None
    while True:
        page = await page_after(cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def test_results_page_through_ids_of_zero_and_below(db: Database) -> None:
    """A page may end on an id that the package never gives; the next page follows it."""
    expected = await all_results(db)
    assert {r.id for r in expected} >= set(PLAIN_IDS)
    seen = await every_page(lambda after: list_results(db, limit=1, after=after))
    assert seen == expected
    assert len(seen) == 6


async def test_runs_and_a_tests_history_page_through_them_too(db: Database) -> None:
    """The runs listing and one test's history take the same cursors past such ids."""
    runs = await every_page(lambda after: list_runs(db, limit=1, after=after))
    assert {run.id for run in runs} == {1, 5, *PLAIN_IDS}
    history = await every_page(
        lambda after: list_test_history(db, "suite::case", limit=1, after=after)
    )
    assert [r.id for r in history] == [r.id for r in await all_results(db)]


@pytest.mark.parametrize("bad", [MIN_INT - 1, MAX_INT + 1, True, 1.0, "1"])
def test_a_cursor_id_no_column_holds_is_refused(bad: object) -> None:
    """Only ints an id column holds: the error names the cursor and its field."""
    with pytest.raises(ValidationError) as caught:
        PageCursor(T0, bad)  # type: ignore[arg-type]  # hostile on purpose
    assert (caught.value.model, caught.value.field) == ("PageCursor", "id")
    with pytest.raises(ValidationError, match="RunCursor"):
        RunCursor(T0, bad)  # type: ignore[arg-type]  # hostile on purpose
    with pytest.raises(ValidationError, match="TestHistoryCursor"):
        TestHistoryCursor("t", T0, bad)  # type: ignore[arg-type]  # hostile on purpose
