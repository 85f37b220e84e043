"""A keyset page's upper bounds, tightened: the same rows (test_listing_depth: the cost)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from persistence._guards import MAX_INT, MIN_INT
from persistence._paging import END_OF_TIME, upper_bounds

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
    new_at, new_id = upper_bounds(until, cursor_at, cursor_id)
    assert kept((row_at, row_id), END_OF_TIME, (new_at, new_id)) == kept(
        (row_at, row_id), until, (cursor_at, cursor_id)
    )
    assert new_at <= cursor_at
    assert new_at <= until


def test_the_first_page_of_everything_keeps_the_end_of_time() -> None:
    """With neither bound set, nothing is moved past the end of time."""
    assert upper_bounds(END_OF_TIME, END_OF_TIME, MAX_INT) == (END_OF_TIME, MIN_INT)
    assert upper_bounds(None, END_OF_TIME, MAX_INT) == (END_OF_TIME, MAX_INT)
