"""What every keyset listing shares: the page, its size limit, and the bounds of an unset filter.

An unset filter goes to SQL as the widest bound, never NULL: `col >= $1` is an index range
under any plan, where `col = coalesce($1, col)` is not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Final, Generic, Protocol, TypeVar

import attrs

from persistence._guards import MAX_KEY_BYTES, MIN_INT, of_type
from persistence._loop import map_in_slices
from persistence.exceptions import ValidationError

_Item = TypeVar("_Item")
_Row = TypeVar("_Row")
_Filter = TypeVar("_Filter")
_Cursor = TypeVar("_Cursor")

MAX_PAGE_SIZE: Final = 10_000
"""The largest page a listing gives."""

READ_PAGE: Final = 1_000
"""The page the `all_...` functions read at a time: small, so that the driver's rows die young.

Pages of 10,000 rows reached the oldest GC generation and set off full collections."""


class TimeBound(dt.datetime):
    """An unset end of a time filter: past every time a table holds, models' or not.

    PostgreSQL's driver sends the ends of Python's range as `-infinity` and `infinity`; SQLite
    gets a value before or after every stored one (`encode_time_bound`). As plain times they
    were the year 1 and 9999 texts, and a year-0 text that plain SQL stored was skipped.
    """


START_OF_TIME: Final = TimeBound(1, 1, 1, tzinfo=dt.UTC)
"""At or before every stored time: the lower bound of a time filter that is not set."""

END_OF_TIME: Final = TimeBound(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)
"""At or after every stored time: the upper bound of a time filter that is not set."""

_LAST_CHARACTER: Final = "\U0010ffff"
_LAST_BEFORE_SURROGATES: Final = 0xD7FF
_FIRST_AFTER_SURROGATES: Final = 0xE000


class KeyBound(str):
    """An unset upper end of a text range: past every path, section and key a table holds.

    PostgreSQL gets the text; SQLite, which sorts a blob after every text and holds a blob in
    a TEXT column, gets a blob after every stored one (`encode_key_bound`).
    """

    __slots__ = ()


AFTER_EVERY_KEY: Final = KeyBound(_LAST_CHARACTER * (MAX_KEY_BYTES // 4 + 1))
"""A text that sorts after every path, section and key (at most MAX_KEY_BYTES), by code point."""


@attrs.frozen
class Page(Generic[_Item, _Cursor]):
    """One page of a listing, and the cursor of the page after it, if there is one."""

    items: tuple[_Item, ...]
    next_cursor: _Cursor | None


def page_limit(model: str, limit: object, field: str = "limit", most: int = MAX_PAGE_SIZE) -> int:
    """Check a page size, or another count of rows to read: an int from 1 to `most`."""
    if type(limit) is not int or not 1 <= limit <= most:
        raise ValidationError(model, field, f"must be from 1 to {most}, got {limit!r}")
    return limit


def prefix_range(prefix: str) -> tuple[str, str]:
    """Give [low, high): exactly the texts that start with `prefix`, by code point."""
    stem = prefix.rstrip(_LAST_CHARACTER)
    if not stem:
        return prefix, AFTER_EVERY_KEY
    code = ord(stem[-1]) + 1
    if code == _LAST_BEFORE_SURROGATES + 1:
        code = _FIRST_AFTER_SURROGATES
    return prefix, stem[:-1] + chr(code)


def continued_filter(
    kind: type[_Filter], cursor_model: str, where: _Filter | None, cursor_where: _Filter | None
) -> _Filter:
    """Give the filter to run with: `where`, else the cursor's, else empty; refuse a mismatch.

    It is built again, its rules checked again, and its own copy of what it holds: a filter's
    dict is the caller's to change in place (`ResultFilter.metadata`), which went to SQL as
    it was (a NaN, a set), and changed the cursors made with it.
    """
    if where is not None:
        where = of_type(kind, where, "where")
    if cursor_where is None:
        return kind() if where is None else _rebuilt(where)
    if where is not None and where != cursor_where:
        raise ValidationError(
            cursor_model,
            "where",
            f"the cursor belongs to a listing filtered by {cursor_where!r}, not by {where!r}; "
            "pass the same filter, or none",
        )
    return _rebuilt(cursor_where)


def _rebuilt(where: _Filter) -> _Filter:
    """Build a filter again from its fields: its converters and validators run again.

    Only one that holds a dict (`ResultFilter.metadata`) can change: every other field of every
    filter is immutable, so such a filter is given as it is, at no cost.
    """
    if getattr(where, "metadata", None) is None:
        return where
    # The attrs plugin takes no TypeVar for a class; every filter passed here is one.
    return attrs.evolve(where)  # type: ignore[misc]  # see above


def upper_bounds(
    until: dt.datetime | None, cursor_at: dt.datetime, cursor_id: int
) -> tuple[dt.datetime, int]:
    """Give a keyset page's one upper bound: the (time, id) cursor, or `until` if tighter.

    The listing's SQL has no bound of its own for `until`: SQLite's index scan starts from one
    bound only and walks every row up to the other, and an exclusive bound at the end of time
    passed over rows stored there. Without `until` the cursor alone bounds the page: on the
    first page, END_OF_TIME takes in every stored time.
    """
    if until is not None and until <= cursor_at:
        return until, MIN_INT
    return cursor_at, cursor_id


async def every_item(
    page_after: Callable[[_Cursor | None], Awaitable[Page[_Item, _Cursor]]],
) -> list[_Item]:
    """Read a whole listing page after page, each after the cursor of the one before."""
    items: list[_Item] = []
    cursor: _Cursor | None = None
    while True:
        page = await page_after(cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


async def page_of(
    rows: list[_Row],
    model_of: Callable[[_Row], _Item],
    limit: int,
    cursor_after: Callable[[_Item], _Cursor],
    stored_of: Callable[[_Row], object] | None = None,
) -> Page[_Item, _Cursor]:
    """Map a page's rows to models; a full page gets the cursor after its last model.

    Given `stored_of` (a row's value that may be of megabytes, as stored), a row whose value
    is past OFF_LOOP_SIZE in length is mapped alone in a worker thread (`map_slices`).
    """
    return page_from(await map_in_slices(model_of, rows, stored_of), limit, cursor_after)


def page_from(
    items: list[_Item], limit: int, cursor_after: Callable[[_Item], _Cursor]
) -> Page[_Item, _Cursor]:
    """Give a page of models already mapped; a full page gets the cursor after its last one."""
    return Page(tuple(items), cursor_after(items[-1]) if len(items) == limit else None)


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


def stored_id(model: _Stored) -> int:
    """Give the id of a model read from its table, which always has one."""
    assert model.id is not None  # noqa: S101  # rows read from the table have ids
    return model.id
