"""A keyset page's upper bounds: the same rows, and a SQLite scan that starts at the page."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import TestResult, TestStatus, TestType, connect, migrate, save_results
from persistence._guards import MAX_INT, MIN_INT
from persistence._loader import load_queries
from persistence._paging import END_OF_TIME, START_OF_TIME, upper_bounds
from persistence._sqlite import SqliteAdapter

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ROWS = 3000
PAGE = 50

times = st.integers(0, 20).map(lambda us: T0 + dt.timedelta(microseconds=us))
ids = st.integers(MIN_INT, MAX_INT) | st.integers(-3, 3)


def kept(row: tuple[dt.datetime, int], until: dt.datetime, cursor: tuple[dt.datetime, int]) -> bool:
    """Whether a page holds the row: before `until`, and after the cursor in newest-first order."""
    created_at, row_id = row
    return created_at < until and (
        created_at < cursor[0] or (created_at == cursor[0] and row_id < cursor[1])
    )


@given(row_at=times, row_id=ids, until=times, cursor_at=times, cursor_id=ids)
def test_the_bounds_keep_the_same_rows(
    row_at: dt.datetime, row_id: int, until: dt.datetime, cursor_at: dt.datetime, cursor_id: int
) -> None:
    """Tightened, the bounds let through exactly the rows the filter and the cursor do."""
    new_until, new_at, new_id = upper_bounds(until, cursor_at, cursor_id)
    assert kept((row_at, row_id), new_until, (new_at, new_id)) == kept(
        (row_at, row_id), until, (cursor_at, cursor_id)
    )
    assert new_at <= cursor_at
    assert new_until <= until


def test_the_first_page_of_everything_keeps_the_end_of_time() -> None:
    """With neither bound set, nothing is moved past the end of time."""
    assert upper_bounds(END_OF_TIME, END_OF_TIME, MAX_INT) == (END_OF_TIME, END_OF_TIME, MIN_INT)


@pytest.fixture(name="stored", scope="module")
def stored_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file of results one second apart, written through the package."""
    path = tmp_path_factory.mktemp("keyset") / "results.db"

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

    asyncio.run(fill())
    return path


def steps_of_page(
    path: Path, until: dt.datetime, cursor: tuple[dt.datetime, int], *, tightened: bool
) -> tuple[int, list[int]]:
    """Run the listing's SQL on a plain connection: the VM steps it took (in hundreds), its ids."""
    sql: str = load_queries(SqliteAdapter, "sqlite").list_test_results.sql  # type: ignore[attr-defined]  # aiosql's query function
    if tightened:
        until, cursor_at, cursor_id = upper_bounds(until, *cursor)
    else:
        cursor_at, cursor_id = cursor
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    def text(moment: dt.datetime) -> str:
        return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")

    with contextlib.closing(sqlite3.connect(path)) as plain:
        plain.set_progress_handler(count, 100)
        rows = plain.execute(
            sql,
            {
                "created_from": text(START_OF_TIME),
                "created_until": text(until),
                "cursor_created_at": text(cursor_at),
                "cursor_id": cursor_id,
                "page_size": PAGE,
            },
        ).fetchall()
    return counted[0], [row[0] for row in rows]


@pytest.mark.parametrize(
    ("until", "cursor", "loose_walks"),
    [
        (END_OF_TIME, (T0 + dt.timedelta(seconds=ROWS // 10), ROWS // 10 + 1), True),
        # SQLite 3.40 picks this filter's bound: tightening must not make it worse.
        (T0 + dt.timedelta(seconds=ROWS // 10), (END_OF_TIME, MAX_INT), False),
    ],
    ids=["deep page, no time filter", "first page, early time filter"],
)
def test_a_page_costs_the_same_wherever_it_starts(
    stored: Path, until: dt.datetime, cursor: tuple[dt.datetime, int], *, loose_walks: bool
) -> None:
    """SQLite starts its scan at the page: far down the list, a page costs what the first does.

    Left loose, the bound SQLite picks may make it walk every row between the two bounds
    first: 9/10 of the table in the deep page here, which this test sees too.
    """
    first, first_ids = steps_of_page(stored, END_OF_TIME, (END_OF_TIME, MAX_INT), tightened=True)
    deep, deep_ids = steps_of_page(stored, until, cursor, tightened=True)
    loose, loose_ids = steps_of_page(stored, until, cursor, tightened=False)
    assert len(first_ids) == len(deep_ids) == PAGE
    assert deep_ids == loose_ids == list(range(ROWS // 10, ROWS // 10 - PAGE, -1))
    assert deep <= 2 * first + 2
    assert (loose > 5 * deep) is loose_walks
