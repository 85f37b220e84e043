"""What every listing shares: the page, its size limit, and the bounds of an unset filter.

Listings are keyset pages. A filter that is not set is passed to SQL as the widest bound
(the start or the end of time, the empty text or a text after every key), never as NULL:
`col >= $1` is a range of an index under any plan, where `col = coalesce($1, col)` is not.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Generic, TypeVar

import attrs

from persistence._guards import MAX_KEY_BYTES, of_type
from persistence.exceptions import ValidationError

__all__ = [
    "AFTER_EVERY_KEY",
    "END_OF_TIME",
    "MAX_PAGE_SIZE",
    "START_OF_TIME",
    "Page",
    "continued_filter",
    "page_limit",
    "prefix_range",
]

_Item = TypeVar("_Item")
_Filter = TypeVar("_Filter")
_Cursor = TypeVar("_Cursor")

MAX_PAGE_SIZE: Final = 10_000
"""The largest page a listing gives; the `all_...` functions read page by page at this size."""

START_OF_TIME: Final = dt.datetime.min.replace(tzinfo=dt.UTC)
"""Before every stored time: the lower bound of a time filter that is not set."""

END_OF_TIME: Final = dt.datetime.max.replace(tzinfo=dt.UTC)
"""After every stored time: the upper bound of a time filter that is not set."""

_LAST_CHARACTER: Final = "\U0010ffff"
_LAST_BEFORE_SURROGATES: Final = 0xD7FF
_FIRST_AFTER_SURROGATES: Final = 0xE000

AFTER_EVERY_KEY: Final = _LAST_CHARACTER * (MAX_KEY_BYTES // 4 + 1)
"""A text that sorts after every path, section and key, by code point.

A key holds at most MAX_KEY_BYTES bytes, so at most MAX_KEY_BYTES // 4 characters U+10FFFF:
it is either shorter than this text, or differs from it at a smaller character.
"""


@attrs.frozen
class Page(Generic[_Item, _Cursor]):
    """One page of a listing, and the cursor of the page after it, if there is one."""

    items: tuple[_Item, ...]
    next_cursor: _Cursor | None


def page_limit(model: str, limit: object) -> int:
    """Check a page size: an int from 1 to MAX_PAGE_SIZE."""
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(model, "limit", f"must be from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    return limit


def prefix_range(prefix: str) -> tuple[str, str]:
    """Give [low, high): the texts that start with `prefix` are exactly those in it, by code point.

    `high` is `prefix` with its last character raised by one (dropping trailing U+10FFFF
    characters first, and stepping over the surrogates, which no stored text holds); a prefix
    with nothing to raise has AFTER_EVERY_KEY as its bound.
    """
    stem = prefix.rstrip(_LAST_CHARACTER)
    if not stem:
        return prefix, AFTER_EVERY_KEY
    code = ord(stem[-1]) + 1
    if code == _LAST_BEFORE_SURROGATES + 1:
        code = _FIRST_AFTER_SURROGATES
    return prefix, stem[:-1] + chr(code)


def continued_filter(
    kind: type[_Filter],
    cursor_model: str,
    where: _Filter | None,
    cursor_where: _Filter | None,
) -> _Filter:
    """Give the filter a listing runs with: `where`, else the cursor's, else an empty one.

    A cursor made with another filter than `where` is refused, naming `cursor_model`.
    """
    if where is not None:
        where = of_type(kind, where)
    if cursor_where is None:
        return kind() if where is None else where
    if where is not None and where != cursor_where:
        raise ValidationError(
            cursor_model,
            "where",
            f"the cursor belongs to a listing filtered by {cursor_where!r}, not by {where!r}; "
            "pass the same filter, or none",
        )
    return cursor_where
