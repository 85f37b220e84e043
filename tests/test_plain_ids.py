"""Ids of 0 and below, which only plain SQL writes: every listing pages through them."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import attrs
import pytest

from persistence import (
    Database,
    DatabaseError,
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
    delete_result,
    delete_run,
    find_result,
    find_run,
    from_dict,
    get_result,
    get_run,
    list_results,
    list_runs,
    list_test_history,
    migrate,
    report_common,
    save_result,
    save_results,
    save_run,
    to_dict,
)
from persistence._guards import MAX_INT, MIN_INT
from persistence._paging import every_item
from persistence.report_json import export_jsonl
from persistence.reports import run_results

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


def moved(database_url: str, table: str, old: int, new: int) -> list[str]:
    """The statements that move a row to another id, as a program without the package would."""
    overriding = "OVERRIDING SYSTEM VALUE" if "://" in database_url else ""
    columns = COLUMNS[table]
    # Ids and table names are this test's own constants, never input.
    copied = f"SELECT {new}, {columns} FROM {table} WHERE id = {old}"  # noqa: S608
    return [
        f"INSERT INTO {table} (id, {columns}) {overriding} {copied}",
        f"DELETE FROM {table} WHERE id = {old}",  # noqa: S608
    ]


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
        moves = [
            statement
            for table in COLUMNS
            for old, new in zip((2, 3, 4), PLAIN_IDS, strict=True)
            for statement in moved(database_url, table, old, new)
        ]
        await plain_sql(database_url, *moves)
        yield db


async def test_results_page_through_ids_of_zero_and_below(db: Database) -> None:
    """A page may end on an id that the package never gives; the next page follows it."""
    expected = await all_results(db)
    assert {r.id for r in expected} >= set(PLAIN_IDS)
    seen = await every_item(lambda after: list_results(db, limit=1, after=after))
    assert seen == expected
    assert len(seen) == 6


async def test_runs_and_a_tests_history_page_through_them_too(db: Database) -> None:
    """The runs listing and one test's history take the same cursors past such ids."""
    runs = await every_item(lambda after: list_runs(db, limit=1, after=after))
    assert {run.id for run in runs} == {1, 5, *PLAIN_IDS}
    history = await every_item(
        lambda after: list_test_history(db, "suite::case", limit=1, after=after)
    )
    assert [r.id for r in history] == [r.id for r in await all_results(db)]


async def test_a_runs_results_include_ids_of_zero_and_below(
    db: Database, database_url: str
) -> None:
    """Exporting a run reads its results from before every id, not from 0."""
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    members = [
        TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, run_id=run.id, created_at=T0)
        for _ in range(3)
    ]
    await save_results(db, members)
    (first, *_) = [r.id for r in await run_results(db, run.id)]
    assert first is not None
    await plain_sql(database_url, *moved(database_url, "test_results", first, -9))
    exported = await run_results(db, run.id)
    assert len(exported) == len(members)
    assert min(r.id or 0 for r in exported) == -9


async def test_a_listed_row_of_such_an_id_is_got_changed_and_deleted(db: Database) -> None:
    """What a listing gives, the rest of the API takes: a get, a change, a delete, its dict.

    Each refused the id (`must be between 1 and ...`): the row could be listed, never
    deleted but by plain SQL, and `attrs.evolve` of a listed model raised.
    """
    for result_id in PLAIN_IDS:
        listed = await get_result(db, result_id)
        assert listed.id == result_id
        assert from_dict(TestResult, to_dict(listed)) == listed
        changed = await save_result(db, attrs.evolve(listed, status=TestStatus.FAILED))
        assert (await get_result(db, result_id)).status is TestStatus.FAILED
        assert changed.id == result_id
        assert await delete_result(db, result_id)
        assert await find_result(db, result_id) is None
    for run_id in PLAIN_IDS:
        run = await get_run(db, run_id)
        assert from_dict(Run, to_dict(run)) == run
        assert await delete_run(db, run_id)
        assert await find_run(db, run_id) is None
    assert {r.id for r in await all_results(db)} & set(PLAIN_IDS) == set()


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


async def test_the_export_of_a_run_takes_the_smallest_and_the_largest_id_too(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids at either end of what a column holds are exported, one page apiece.

    Before, the pages began after the smallest id, so a result stored there by plain SQL was
    left out of every export, its counts one short: the file looked whole.
    """
    monkeypatch.setattr(report_common, "READ_PAGE", 1)  # a page ends on each id, the last too
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    middle = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, run_id=run.id)
    )
    overriding = "OVERRIDING SYSTEM VALUE" if "://" in database_url else ""
    ends = ", ".join(
        f"({end}, 'unit', 'failed', 1.0, '2026-01-01T00:00:00.000000+00:00', {run.id}, '{name}')"
        for end, name in ((MIN_INT, "smallest"), (MAX_INT, "largest"))
    )
    columns = "id, test_type, status, execution_time, created_at, run_id, test_id"
    # The test's own constants, never input.
    insert = f"INSERT INTO test_results ({columns}) {overriding} VALUES {ends}"  # noqa: S608
    await plain_sql(database_url, insert)
    exported = [json.loads(line) for line in (await export_jsonl(db, run.id)).splitlines()]
    assert [(r["id"], r["test_id"]) for r in exported] == [
        (MIN_INT, "smallest"),
        (middle.id, None),
        (MAX_INT, "largest"),
    ]


async def test_a_sqlite_table_whose_largest_id_is_given_out_says_so(tmp_path: Path) -> None:
    """A run stored by plain SQL at the largest id: SQLite numbers no new run after it.

    It said "database or disk is full" alone, as of a full disk; PostgreSQL numbers from its
    sequence, which such a row does not move, and says when that is given out.
    """
    path = str(tmp_path / "app.db")
    async with connect(path) as db:
        await migrate(db)
        await save_run(db, Run(started_at=T0))
        await plain_sql(path, *moved(path, "runs", 1, MAX_INT))
        with pytest.raises(DatabaseError, match=f"has given out its largest id, {MAX_INT}"):
            await save_run(db, Run(started_at=T0))
        assert [run.id for run in await every_item(lambda after: list_runs(db, after=after))] == [
            MAX_INT
        ]
