"""Rows that plain SQL stored outside the models' range: a listing reads them, never skips them.

A SQLite time of year 0 passes the table's CHECK (since migration 0018 its triggers refuse it:
these tests drop them, as another program may), and PostgreSQL's `timestamptz` holds
`infinity` and `-infinity`. The listings' unset bounds were the ends of Python's range, inside
what a table holds, so a listing passed over such a row while other reads refused it. Now every
listing reaches it and refuses it, naming the table, the column and the row's id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from persistence import (
    Database,
    FileRecord,
    FileRecordCursor,
    PageCursor,
    Run,
    RunCursor,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_file_records,
    all_results,
    all_runs,
    connect,
    find_file_record,
    get_result,
    get_run,
    list_file_records,
    list_results,
    list_runs,
    save_file_record,
    save_result,
    save_run,
)
from persistence.migrations import migrate
from persistence.run_history import slowest_tests
from test_plain_ids import plain_sql

OUT_OF_RANGE = {
    "sqlite": ["0000-01-01T00:00:00.000000+00:00", "9999-99-99T99:99:99.999999+00:00"],
    "postgres": ["infinity", "-infinity"],
}
"""Times a table holds that no model does, at each end of its order."""

_INSTANT_TRIGGERS = [
    f"DROP TRIGGER {column}_instant_{kind}"
    for column in ("test_results_created_at", "runs_started_at", "file_records_accessed_at")
    for kind in ("insert", "update")
]
"""Migration 0018's triggers on the columns these tests write, which refuse such a time."""


async def _store_out_of_range(database_url: str, update: str) -> None:
    """Run `update` as another program would, past 0018's triggers on SQLite."""
    dropped = [] if "://" in database_url else _INSTANT_TRIGGERS
    await plain_sql(database_url, *dropped, update)


def _engine(database_url: str) -> str:
    return "postgres" if "://" in database_url else "sqlite"


async def _every_page(db: Database) -> None:
    """Read `list_results` page by page, one row a page, to its end."""
    after: PageCursor | None = None
    while True:
        page = await list_results(db, limit=1, after=after)
        if page.next_cursor is None:
            return
        after = page.next_cursor


@pytest.mark.parametrize("end", [0, 1])
async def test_results_listings_refuse_a_time_out_of_range_rather_than_skip_it(
    db: Database, database_url: str, end: int
) -> None:
    """list_results, page by page, and all_results refuse the row, as get_result does."""
    saved = [
        await save_result(
            db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=f"t{i}")
        )
        for i in range(3)
    ]
    bad = saved[1].id
    text = OUT_OF_RANGE[_engine(database_url)][end]
    update = f"UPDATE test_results SET created_at = '{text}' WHERE id = {bad}"  # noqa: S608  # the test's own SQL
    await _store_out_of_range(database_url, update)
    with pytest.raises(ValidationError, match=r"^stored row\.") as by_id:
        await get_result(db, bad or 0)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: _every_page(db),
        lambda: list_results(db, limit=10),
        lambda: all_results(db),
    ]
    for read in reads:
        with pytest.raises(ValidationError) as listed:
            await read()
        assert str(listed.value) == str(by_id.value)


async def _every_record_page(db: Database) -> None:
    """Read `list_file_records` page by page, one record a page, to its end."""
    after: FileRecordCursor | None = None
    while True:
        page = await list_file_records(db, limit=1, after=after)
        if page.next_cursor is None:
            return
        after = page.next_cursor


async def _refused_by_every_file_listing(db: Database, bad: int) -> None:
    """Every file-record listing refuses the row `bad` as reading it by id does."""
    with pytest.raises(ValidationError, match=r"^stored row\.") as by_id:
        await find_file_record(db, bad)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: _every_record_page(db),
        lambda: list_file_records(db, limit=10),
        lambda: all_file_records(db),
    ]
    for read in reads:
        with pytest.raises(ValidationError) as listed:
            await read()
        assert str(listed.value) == str(by_id.value)


async def _three_records(db: Database) -> int:
    """Store three records, and give the id of the middle one."""
    saved = [await save_file_record(db, FileRecord(path=f"f{i}")) for i in range(3)]
    return saved[1].id or 0


@pytest.mark.parametrize("end", [0, 1])
async def test_file_listings_refuse_an_access_time_out_of_range_rather_than_skip_it(
    db: Database, database_url: str, end: int
) -> None:
    """list_file_records skipped a record whose access time lies past the models' range."""
    bad = await _three_records(db)
    text = OUT_OF_RANGE[_engine(database_url)][end]
    update = f"UPDATE file_records SET accessed_at = '{text}' WHERE id = {bad}"  # noqa: S608  # the test's own SQL
    await _store_out_of_range(database_url, update)
    await _refused_by_every_file_listing(db, bad)


async def test_file_listings_refuse_a_path_stored_as_a_blob_rather_than_skip_it(
    tmp_path: Path,
) -> None:
    """SQLite sorts a blob after every text: the path listing's upper bound passed over it."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        bad = await _three_records(db)
        await plain_sql(str(path), f"UPDATE file_records SET path = x'6631' WHERE id = {bad}")  # noqa: S608  # the test's own SQL
        await _refused_by_every_file_listing(db, bad)


async def _every_run_page(db: Database) -> None:
    """Read `list_runs` page by page, one run a page, to its end."""
    after: RunCursor | None = None
    while True:
        page = await list_runs(db, limit=1, after=after)
        if page.next_cursor is None:
            return
        after = page.next_cursor


@pytest.mark.parametrize("end", [0, 1])
async def test_run_listings_refuse_a_start_out_of_range_rather_than_skip_it(
    db: Database, database_url: str, end: int
) -> None:
    """list_runs and all_runs (and so `persistence runs`) skipped a run started past the range."""
    saved = [await save_run(db, Run()) for _ in range(3)]
    bad = saved[1].id or 0
    text = OUT_OF_RANGE[_engine(database_url)][end]
    update = f"UPDATE runs SET started_at = '{text}' WHERE id = {bad}"  # noqa: S608  # the test's own SQL
    await _store_out_of_range(database_url, update)
    with pytest.raises(ValidationError, match=r"^stored row\.") as by_id:
        await get_run(db, bad)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: _every_run_page(db),
        lambda: list_runs(db, limit=10),
        lambda: all_runs(db),
    ]
    for read in reads:
        with pytest.raises(ValidationError) as listed:
            await read()
        assert str(listed.value) == str(by_id.value)


@pytest.mark.parametrize("end", [0, 1])
async def test_slowest_tests_count_a_result_out_of_range_alike_on_both_engines(
    db: Database, database_url: str, end: int
) -> None:
    """Without a window, slowest_tests takes in every passed result, as result_stats counts it.

    Its unset upper end was the last time Python holds, exclusive: PostgreSQL passed over a
    result at `infinity`, and SQLite, past every stored text, took in one of year 9999 month 99.
    """
    saved = [
        await save_result(
            db,
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                execution_time=float(i),
                test_id=f"t{i}",
            ),
        )
        for i in range(3)
    ]
    text = OUT_OF_RANGE[_engine(database_url)][end]
    update = f"UPDATE test_results SET created_at = '{text}' WHERE id = {saved[1].id}"  # noqa: S608  # the test's own SQL
    await _store_out_of_range(database_url, update)
    assert [slow.test_id for slow in await slowest_tests(db)] == ["t2", "t1", "t0"]
