"""On SQLite, a listing's page costs the same far down the list as at its start.

Each keyset listing has two bounds on its leading column: the filter's and the cursor's.
SQLite starts its index scan from one of them; given the looser one, every page walked past
all the rows before it, and reading a long listing page by page grew with its square. The
work is counted in SQLite's own VM steps, on the connection the listing reads with.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from persistence import (
    ConfigEntryCursor,
    ConfigEntryFilter,
    Database,
    FileRecord,
    FileRecordCursor,
    FileRecordFilter,
    PageCursor,
    ResultFilter,
    Run,
    RunCursor,
    RunFilter,
    TestResult,
    TestStatus,
    TestType,
    connect,
    list_config_entries,
    list_file_records,
    list_results,
    list_runs,
    migrate,
    save_file_record,
    save_results,
    save_run,
    set_config,
    transaction,
)
from persistence._database_value import backend_of

ROWS = 1500
PAGE = 20
DEEP = ROWS - 3 * PAGE
"""The place, in listing order, of the last row before the deep page."""
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(name="stored", scope="module")
def stored_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding ROWS results, runs, config entries and file records."""
    path = tmp_path_factory.mktemp("depth") / "listings.db"

    async def fill() -> None:
        async with connect(str(path)) as db:
            await migrate(db)
            await save_results(
                db,
                [
                    TestResult(
                        test_type=TestType.UNIT,
                        status=TestStatus.PASSED,
                        created_at=T0 + dt.timedelta(seconds=index),
                    )
                    for index in range(ROWS)
                ],
            )
            async with transaction(db) as tx:
                for index in range(ROWS):
                    await save_run(tx, Run(started_at=T0 + dt.timedelta(seconds=index)))
                    await set_config(tx, f"s{index:05}", "k", "v")
                    await save_file_record(tx, FileRecord(path=f"files/{index:05}"))

    asyncio.run(fill())
    return path


@pytest.fixture(name="db")
async def db_fixture(stored: Path) -> AsyncIterator[Database]:
    """The stored file, opened for one test."""
    async with connect(str(stored)) as db:
        yield db


async def steps(db: Database, listing: Callable[[], Awaitable[object]]) -> int:
    """Run one listing call; give the hundreds of VM steps its reader connection took.

    The counter replaces the reader's loop budget, so the call runs on the loop's connection.
    """
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    readers = backend_of(db)._readers  # type: ignore[attr-defined]  # noqa: SLF001  # counted
    budget = readers._budget  # noqa: SLF001
    reader = budget.connection

    class Counted:
        """Where the budget sets its handler: the counter goes there instead."""

        def set_progress_handler(self, handler: object, _steps: int) -> None:
            reader.set_progress_handler(None if handler is None else count, 100)

    budget.connection = Counted()
    try:
        await listing()
    finally:
        budget.connection = reader
    return counted[0]


Listing = Callable[[Database], Awaitable[object]]


def results_after(db: Database) -> Awaitable[object]:
    """The results page after the DEEP-th newest result."""
    at = T0 + dt.timedelta(seconds=ROWS - 1 - DEEP)
    cursor = PageCursor(at, ROWS - DEEP, ResultFilter())
    return list_results(db, limit=PAGE, after=cursor)


def runs_after(db: Database) -> Awaitable[object]:
    """The runs page after the DEEP-th latest run."""
    at = T0 + dt.timedelta(seconds=ROWS - 1 - DEEP)
    return list_runs(db, limit=PAGE, after=RunCursor(at, ROWS - DEEP, RunFilter()))


def config_after(db: Database) -> Awaitable[object]:
    """The config page after the DEEP-th section."""
    cursor = ConfigEntryCursor(f"s{DEEP:05}", "k", ConfigEntryFilter())
    return list_config_entries(db, limit=PAGE, after=cursor)


def files_after(db: Database) -> Awaitable[object]:
    """The file records page after the DEEP-th path."""
    cursor = FileRecordCursor(f"files/{DEEP:05}", FileRecordFilter())
    return list_file_records(db, limit=PAGE, after=cursor)


@pytest.mark.parametrize(
    ("first", "deep"),
    [
        (lambda db: list_results(db, limit=PAGE), results_after),
        (lambda db: list_runs(db, limit=PAGE), runs_after),
        (lambda db: list_config_entries(db, limit=PAGE), config_after),
        (lambda db: list_file_records(db, limit=PAGE), files_after),
    ],
    ids=["results", "runs", "config entries", "file records"],
)
async def test_a_deep_page_costs_what_the_first_does(
    db: Database, first: Listing, deep: Listing
) -> None:
    """The page after a cursor near the end takes about the VM steps of the first page."""
    at_start = await steps(db, lambda: first(db))
    far_down = await steps(db, lambda: deep(db))
    assert far_down <= 2 * at_start + 3, (at_start, far_down)
