"""Hostile values: what a careless or malicious caller might pass in place of a valid one."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import sys
from typing import Final

import attrs
from hypothesis import strategies as st

from strategies.values import (
    FIRST_DATETIME,
    LAST_DATETIME,
    aware_datetimes,
    json_objects,
    naive_datetimes,
    non_negative_floats,
    safe_text,
    storable_ints,
)

BAD_TEXT_CHARACTERS: Final = ("\x00", "\ud800", "\udbff", "\udc00", "\udfff")
"""NUL and lone surrogates: no engine stores them faithfully, so every text field refuses them."""

ENORMOUS_INTS: Final = (10**400, -(10**400), 10**4301, 2**1024)
"""Integers too large for a float, or for Python's default int-to-text limit."""

HOSTILE_IDS: Final[tuple[object, ...]] = (
    2**63,
    2**70,
    -(2**63) - 1,
    10**30,
    "1",
    1.0,
    True,
    b"1",
    [1],
)
"""Keys that no row can have: past 64 bits, or not an int at all."""

EXTREME_DATETIMES: Final = (
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
)
"""The first and last instants a datetime holds, in UTC."""


@functools.cache
def hostile_text() -> st.SearchStrategy[str]:
    """Text with a NUL or a lone surrogate somewhere in it."""
    return st.builds(
        lambda before, bad, after: before + bad + after,
        safe_text(max_size=5),
        st.sampled_from(BAD_TEXT_CHARACTERS),
        safe_text(max_size=5),
    )


@functools.cache
def hostile_ints() -> st.SearchStrategy[int]:
    """Negative integers and integers past 64 bits, up to 2**200 in size."""
    return st.one_of(
        st.sampled_from([-1, -(2**63), -(2**63) - 1, 2**63, 2**64, 2**70, 2**200, -(2**200)]),
        st.integers(max_value=-1).filter(lambda value: value >= -(2**200)),
        st.integers(min_value=2**63, max_value=2**200),
    )


@functools.cache
def hostile_floats() -> st.SearchStrategy[float]:
    """NaN, infinities and negative floats."""
    return st.one_of(
        st.sampled_from([float("nan"), float("inf"), float("-inf"), -sys.float_info.max, -1e-300]),
        st.floats(max_value=-sys.float_info.min),
    )


@functools.cache
def out_of_range_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Aware datetimes that fall before year 1 or after 9999 once moved to UTC."""
    ahead = st.integers(min_value=1, max_value=23).map(lambda h: dt.timedelta(hours=h))
    return st.one_of(
        ahead.map(lambda delta: FIRST_DATETIME.replace(tzinfo=dt.timezone(delta))),
        ahead.map(lambda delta: LAST_DATETIME.replace(tzinfo=dt.timezone(-delta))),
    )


@functools.cache
def hostile_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Naive datetimes, and aware ones that leave the calendar in UTC."""
    return st.one_of(naive_datetimes(), out_of_range_datetimes())


# Hostile values -----------------------------------------------------------------------


class _Colour(enum.Enum):
    """An enum that is none of this package's."""

    RED = "unit"


@attrs.frozen
class _Opaque:
    """An object of no type a field accepts."""

    name: str = "opaque"


@functools.cache
def wrong_types() -> st.SearchStrategy[object]:
    """Values of types no field is declared with, or declared with elsewhere."""
    return st.one_of(
        st.binary(max_size=8),
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.lists(st.text(max_size=3), min_size=1, max_size=2),
        st.tuples(st.integers()),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
        st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),
        st.sets(st.integers(), max_size=2),
        st.dates(),
        st.times(),
        st.timedeltas(),
        st.complex_numbers(allow_nan=False, allow_infinity=False),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.just(_Colour.RED),
        st.builds(_Opaque),
        st.just(object()),
    )


@functools.cache
def hostile_values() -> st.SearchStrategy[object]:
    """Anything a caller might wrongly pass in place of a field's value."""
    return st.one_of(
        wrong_types(),
        hostile_text(),
        safe_text(),
        st.sampled_from(["", " ", "unit", "UNIT", "passed ", "str", "int"]),
        hostile_ints(),
        storable_ints(),
        hostile_floats(),
        non_negative_floats(),
        hostile_datetimes(),
        aware_datetimes(),
        st.dictionaries(safe_text(max_size=4), hostile_floats(), min_size=1, max_size=1),
        st.dictionaries(safe_text(max_size=4), hostile_text(), min_size=1, max_size=1),
        st.dictionaries(hostile_text(), st.integers(), min_size=1, max_size=1),
        st.lists(hostile_floats(), min_size=1, max_size=2),
        json_objects(),
    )


@functools.cache
def hostile_ids() -> st.SearchStrategy[object]:
    """Row ids that cannot exist: past 64 bits, or of the wrong type."""
    return st.one_of(
        st.sampled_from(HOSTILE_IDS),
        st.integers(min_value=2**63, max_value=2**200),
        st.integers(max_value=-(2**63) - 1).filter(lambda value: value >= -(2**200)),
        st.floats(),
        st.text(max_size=4),
        st.binary(max_size=4),
        st.lists(st.integers(), max_size=2),
    )
