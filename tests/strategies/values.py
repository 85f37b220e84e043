"""Valid values and models: what each engine must store and give back unchanged.

Text of any plane, SQL-looking or not; integers, floats and datetimes up to their edges;
JSON, dict subclasses included; and the three models built from them.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import sys
import uuid
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from persistence import ConfigEntry, ConfigType, FileRecord, TestResult, TestStatus, TestType
from persistence._guards import MAX_JSON_FLOAT, MIN_INT
from persistence._interface import JsonObject, JsonValue
from persistence.models import MAX_EXECUTION_TIME, MAX_INT

SQL_LOOKING: Final = (
    "'; DROP TABLE test_results; --",
    "1 OR 1=1",
    "' OR '1'='1",
    '"; DELETE FROM config_entries; --',
    "Robert'); DROP TABLE file_records;--",
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "%s",
    "%(name)s",
    "%",
    "_",
    ":name",
    ":id",
    "$1",
    "$$",
    "@x",
    "@id",
    "?",
    "/* comment */",
    "-- comment",
    "NULL",
    "null",
    "true",
    "{}",
    "[]",
    '{"a": 1}',
    "1e999",
    "NaN",
    "-0",
    "\\x00",
    "\\u0000",
    "123",
    "1.50",
    " 7 ",
    "0x10",
    "2024-01-02T03:04:05+00:00",
)
"""Strings that would change a query if they were ever pasted into its text."""

AWKWARD_TEXT: Final = (
    "\U0001f600\U000e0001\U0010ffff\ufffe\uffff\ufeff\u200b\u2028\u2029\r\n\t\x7f\x1b"
    "e\u0301 \u0130 \u00df \ufb01 \u05d0\u0627 \U00020000"
)
"""Emoji, plane-14 tags, non-characters, BOM, line separators, controls, combining marks,
case-folding traps, right-to-left scripts and a plane-2 ideograph, all in one string."""


class Attributes(dict[str, JsonValue]):
    """A caller's own dict subclass."""


SUBCLASSED_JSON: Final[JsonObject] = collections.OrderedDict(
    a=Attributes(b=[collections.OrderedDict(c=1)]), d=Attributes()
)
"""A JSON object made of dict subclasses, nested."""

PLAIN_JSON: Final[JsonObject] = {"a": {"b": [{"c": 1}]}, "d": {}}
"""SUBCLASSED_JSON as plain dicts: how it is stored and read back."""

NEAR_EXTREME_DATETIMES: Final = (
    dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 0, 0, tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59))),
)
"""Instants a microsecond or an offset away from the extremes."""

FIRST_DATETIME: Final = dt.datetime(1, 1, 1)  # noqa: DTZ001  # the bounds are naive on purpose
LAST_DATETIME: Final = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)  # noqa: DTZ001  # as above
_SAFE_FIRST: Final = dt.datetime(1, 1, 2)  # noqa: DTZ001  # a day in, any offset stays in range
_SAFE_LAST: Final = dt.datetime(9999, 12, 30)  # noqa: DTZ001  # a day before the end, likewise


def unique(text: str) -> str:
    """Return text with a unique suffix, so examples never share a key."""
    return f"{text}#{uuid.uuid4().hex}"


# Text ---------------------------------------------------------------------------------

_characters = st.characters(codec="utf-8", exclude_characters="\x00")
"""Every code point of every plane, but NUL and the surrogates."""


@functools.cache
def safe_text(*, min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text every engine must store unchanged: any plane, SQL-looking or not."""
    plain = st.text(_characters, min_size=min_size, max_size=max_size)
    sql = st.sampled_from((*SQL_LOOKING, AWKWARD_TEXT))
    mixed = st.builds("".join, st.lists(st.one_of(plain, sql), min_size=1, max_size=3))
    return st.one_of(plain, sql, mixed).filter(lambda text: min_size <= len(text))


@functools.cache
def sha256_hex() -> st.SearchStrategy[str]:
    """An empty hash or 64 lower-case hex digits."""
    return st.one_of(st.just(""), st.text("0123456789abcdef", min_size=64, max_size=64))


# Numbers ------------------------------------------------------------------------------


@functools.cache
def storable_ints(*, min_value: int = 0) -> st.SearchStrategy[int]:
    """Integers an integer column holds, with its edges drawn often."""
    edges = [value for value in (0, 1, 2**31, 2**32, 2**53 + 1, MAX_INT) if value >= min_value]
    return st.one_of(st.sampled_from(edges), st.integers(min_value=min_value, max_value=MAX_INT))


@functools.cache
def non_negative_floats() -> st.SearchStrategy[float]:
    """Finite floats from zero up, with zero's sign, subnormals and the largest float."""
    return st.one_of(
        st.sampled_from([0.0, -0.0, 5e-324, sys.float_info.min, 1e-300, sys.float_info.max]),
        st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
    )


@functools.cache
def execution_times() -> st.SearchStrategy[float]:
    """Valid execution times: from zero up to the model's limit, edges included."""
    return st.one_of(
        st.sampled_from([0.0, -0.0, 5e-324, sys.float_info.min, 1e-300, MAX_EXECUTION_TIME]),
        st.floats(min_value=0.0, max_value=MAX_EXECUTION_TIME),
    )


@functools.cache
def finite_floats() -> st.SearchStrategy[float]:
    """Any finite float, edges included."""
    return st.one_of(
        st.sampled_from([0.0, -0.0, 5e-324, -5e-324, sys.float_info.max, -sys.float_info.max]),
        st.floats(allow_nan=False, allow_infinity=False),
    )


# Datetimes ----------------------------------------------------------------------------

_offsets = st.one_of(
    st.sampled_from(
        [dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=12))]
    ),
    st.timedeltas(
        min_value=-dt.timedelta(hours=23, minutes=59), max_value=dt.timedelta(hours=23, minutes=59)
    ).map(dt.timezone),
)


@functools.cache
def aware_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Aware datetimes from year 1 to 9999, at any offset, that exist in UTC too.

    The very first and very last instants are left to EXTREME_DATETIMES.
    """
    return st.one_of(
        st.sampled_from(NEAR_EXTREME_DATETIMES),
        st.datetimes(min_value=_SAFE_FIRST, max_value=_SAFE_LAST, timezones=_offsets),
    )


@functools.cache
def naive_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Datetimes without a timezone, year 1 and 9999 included."""
    return st.one_of(st.sampled_from([FIRST_DATETIME, LAST_DATETIME]), st.datetimes())


# JSON ---------------------------------------------------------------------------------


@functools.cache
def json_values(*, max_leaves: int = 8) -> st.SearchStrategy[JsonValue]:
    """JSON values both engines store and give back unchanged, nested a few levels."""
    scalars: st.SearchStrategy[JsonValue] = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=MIN_INT, max_value=MAX_INT),
        st.sampled_from([MAX_INT, MIN_INT, 2**53, 2**53 + 1, -(2**53) - 1]),
        finite_floats().filter(lambda value: abs(value) < MAX_JSON_FLOAT),
        safe_text(max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(safe_text(max_size=8), inner, max_size=3),
        ),
        max_leaves=max_leaves,
    )


@functools.cache
def json_objects() -> st.SearchStrategy[JsonObject]:
    """JSON objects, as metadata holds them."""
    return st.dictionaries(safe_text(max_size=12), json_values(), max_size=4)


# Models -------------------------------------------------------------------------------


@st.composite
def results(draw: st.DrawFn) -> TestResult:
    """A valid test result without an id."""
    counts = sorted(draw(st.lists(storable_ints(), min_size=2, max_size=2)))
    return TestResult(
        test_type=draw(st.sampled_from(TestType)),
        status=draw(st.sampled_from(TestStatus)),
        execution_time=draw(
            st.one_of(execution_times(), st.integers(min_value=0, max_value=10**12))
        ),
        memory_usage=draw(storable_ints()),
        test_cases_passed=counts[0],
        test_cases_total=counts[1],
        error_message=draw(st.one_of(st.none(), safe_text())),
        output=draw(st.one_of(st.none(), safe_text(max_size=200))),
        created_at=draw(aware_datetimes()),
        metadata=draw(json_objects()),
    )


@functools.cache
def config_values(kind: ConfigType) -> st.SearchStrategy[Any]:
    """Values of exactly the declared type, edges included."""
    strategies: dict[ConfigType, st.SearchStrategy[Any]] = {
        ConfigType.STR: safe_text(),
        ConfigType.INT: st.one_of(
            st.integers(min_value=MIN_INT, max_value=MAX_INT),
            st.sampled_from([0, -1, MAX_INT, MIN_INT, 2**53 + 1]),
        ),
        ConfigType.FLOAT: finite_floats(),
        ConfigType.BOOL: st.booleans(),
        ConfigType.LIST: st.lists(json_values(), max_size=4),
        ConfigType.DICT: json_objects(),
    }
    return strategies[kind]


@st.composite
def config_entries(draw: st.DrawFn, kind: ConfigType | None = None) -> ConfigEntry:
    """A valid config entry of the given type (any type if None), without an id."""
    chosen = draw(st.sampled_from(ConfigType)) if kind is None else kind
    return ConfigEntry(
        section=draw(safe_text(min_size=1)),
        key=draw(safe_text(min_size=1)),
        value=draw(config_values(chosen)),
        type=chosen,
        description=draw(st.one_of(st.none(), safe_text())),
        updated_at=draw(aware_datetimes()),
    )


@st.composite
def file_records(draw: st.DrawFn) -> FileRecord:
    """A valid file record without an id."""
    return FileRecord(
        path=draw(safe_text(min_size=1)),
        size=draw(storable_ints()),
        hash=draw(sha256_hex()),
        created_at=draw(aware_datetimes()),
        accessed_at=draw(aware_datetimes()),
        metadata=draw(json_objects()),
    )


# Comparison ---------------------------------------------------------------------------


def exactly(value: object) -> object:
    """Tag a value, all the way down, with its type: equal tags mean nothing was lost.

    Plain `==` lets 1 == 1.0 == True, an OrderedDict equal a dict, and ignores a datetime's
    offset; these tags do not.
    """
    cls = type(value)
    if attrs.has(cls):
        return (cls.__name__, {f.name: exactly(getattr(value, f.name)) for f in attrs.fields(cls)})
    if isinstance(value, dt.datetime):
        return ("datetime", value, value.utcoffset())
    if isinstance(value, list):
        return (cls.__name__, [exactly(item) for item in value])
    if isinstance(value, dict):
        return (cls.__name__, {key: exactly(item) for key, item in value.items()})
    return (cls.__name__, value)
