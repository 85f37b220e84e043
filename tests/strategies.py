"""Hypothesis strategies: valid models, and the hostile values thrown at them.

Every strategy the tests use lives here. The valid ones build models that each engine
must store and give back unchanged; the hostile ones are what a careless or malicious
caller might pass instead: unusual Unicode, NUL characters, lone surrogates, integers
past 64 bits, NaN, infinities, SQL-looking text, wrong types and extreme datetimes.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import functools
import re
import sys
import uuid
from typing import Any, Final

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigEntryFilter,
    ConfigType,
    FileRecord,
    FileRecordFilter,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
)
from persistence._guards import MAX_JSON_FLOAT, MIN_INT
from persistence._interface import JsonObject, JsonValue
from persistence.models import MAX_EXECUTION_TIME, MAX_INT

__all__ = [
    "AWKWARD_TEXT",
    "BAD_TEXT_CHARACTERS",
    "ENORMOUS_INTS",
    "EXTREME_DATETIMES",
    "HOSTILE_IDS",
    "IN_MEMORY",
    "NEAR_EXTREME_DATETIMES",
    "ON_DATABASE",
    "PLAIN_JSON",
    "SQL_LOOKING",
    "SUBCLASSED_JSON",
    "Attributes",
    "aware_datetimes",
    "config_entries",
    "config_filters",
    "config_matches",
    "config_values",
    "exactly",
    "execution_times",
    "file_filters",
    "file_matches",
    "file_records",
    "filterable_file_records",
    "filterable_results",
    "finite_floats",
    "hostile_datetimes",
    "hostile_floats",
    "hostile_ids",
    "hostile_ints",
    "hostile_text",
    "hostile_values",
    "json_objects",
    "json_values",
    "matches",
    "metadata_subsets",
    "naive_datetimes",
    "non_negative_floats",
    "out_of_range_datetimes",
    "result_filters",
    "results",
    "safe_text",
    "search_texts",
    "sha256_hex",
    "storable_ints",
    "unique",
    "wrong_types",
]

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


class Attributes(dict[str, JsonValue]):
    """A caller's own dict subclass."""


SUBCLASSED_JSON: Final[JsonObject] = collections.OrderedDict(
    a=Attributes(b=[collections.OrderedDict(c=1)]), d=Attributes()
)
"""A JSON object made of dict subclasses, nested."""

PLAIN_JSON: Final[JsonObject] = {"a": {"b": [{"c": 1}]}, "d": {}}
"""SUBCLASSED_JSON as plain dicts: how it is stored and read back."""

EXTREME_DATETIMES: Final = (
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
)
"""The first and last instants a datetime holds, in UTC."""

NEAR_EXTREME_DATETIMES: Final = (
    dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=23, minutes=59))),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999_998, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 0, 0, tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59))),
)
"""Instants a microsecond or an offset away from the extremes."""

IN_MEMORY: Final = settings(max_examples=60, deadline=None)
"""For tests that touch no database."""

ON_DATABASE: Final = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""For tests on the `db` fixture: examples share its database, so each must stand alone."""

_FIRST: Final = dt.datetime(1, 1, 1)  # noqa: DTZ001  # the bounds are naive on purpose
_LAST: Final = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)  # noqa: DTZ001  # as above
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
def hostile_text() -> st.SearchStrategy[str]:
    """Text with a NUL or a lone surrogate somewhere in it."""
    return st.builds(
        lambda before, bad, after: before + bad + after,
        safe_text(max_size=5),
        st.sampled_from(BAD_TEXT_CHARACTERS),
        safe_text(max_size=5),
    )


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
    return st.one_of(st.sampled_from([_FIRST, _LAST]), st.datetimes())


@functools.cache
def out_of_range_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Aware datetimes that fall before year 1 or after 9999 once moved to UTC."""
    ahead = st.integers(min_value=1, max_value=23).map(lambda h: dt.timedelta(hours=h))
    return st.one_of(
        ahead.map(lambda delta: _FIRST.replace(tzinfo=dt.timezone(delta))),
        ahead.map(lambda delta: _LAST.replace(tzinfo=dt.timezone(-delta))),
    )


@functools.cache
def hostile_datetimes() -> st.SearchStrategy[dt.datetime]:
    """Naive datetimes, and aware ones that leave the calendar in UTC."""
    return st.one_of(naive_datetimes(), out_of_range_datetimes())


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


# Filters and searches -----------------------------------------------------------------

_METADATA_KEYS: Final = ("solution", "seed", "flag", "odd key \"'.[$")
_METADATA_SCALARS: Final[tuple[JsonValue, ...]] = (
    None, True, False, 0, -0.0, 1, 1.0, 7, 7.5, 2**53 + 1, "a.cpp", "b.cpp", "", "A.CPP",
)  # fmt: skip


@functools.cache
def metadata_subsets() -> st.SearchStrategy[JsonObject]:
    """Metadata filters: a few keys, each with a scalar that stored metadata often holds."""
    scalars = st.one_of(st.sampled_from(_METADATA_SCALARS), json_values(max_leaves=1))
    values = scalars.filter(lambda value: not isinstance(value, list | dict))
    return st.dictionaries(st.sampled_from(_METADATA_KEYS), values, max_size=2)


@st.composite
def filterable_results(draw: st.DrawFn) -> TestResult:
    """A valid result whose metadata shares keys and values with `metadata_subsets`."""
    result = draw(results())
    metadata: JsonObject = draw(
        st.dictionaries(
            st.sampled_from(_METADATA_KEYS),
            st.one_of(st.sampled_from(_METADATA_SCALARS), st.just(["a.cpp"]), st.just({})),
            max_size=3,
        )
    )
    return attrs.evolve(result, metadata=metadata)


@functools.cache
def result_filters() -> st.SearchStrategy[ResultFilter]:
    """Any valid result filter: each field set or not, sets empty or not."""
    maybe = st.one_of
    return st.builds(
        ResultFilter,
        test_type=maybe(st.none(), st.sampled_from(TestType)),
        status=maybe(st.none(), st.sampled_from(TestStatus)),
        test_types=maybe(st.none(), st.frozensets(st.sampled_from(TestType))),
        statuses=maybe(st.none(), st.frozensets(st.sampled_from(TestStatus))),
        metadata=maybe(st.none(), metadata_subsets()),
        created_from=maybe(st.none(), aware_datetimes()),
        created_until=maybe(st.none(), aware_datetimes()),
    )


def _same_scalar(stored: JsonValue, wanted: JsonValue) -> bool:
    """Whether a stored metadata value equals a wanted scalar, as both engines compare them."""
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return type(stored) is type(wanted) and stored == wanted
    if stored is None or wanted is None:
        return stored is None and wanted is None
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(wanted, numbers):
        return stored == wanted
    return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted


def matches(where: ResultFilter, result: TestResult) -> bool:
    """Whether a result passes a filter: the filter's meaning, written out in Python."""
    checks = [
        where.test_type is None or result.test_type == where.test_type,
        where.status is None or result.status == where.status,
        where.test_types is None or result.test_type in where.test_types,
        where.statuses is None or result.status in where.statuses,
        where.created_from is None or where.created_from <= result.created_at,
        where.created_until is None or result.created_at < where.created_until,
    ]
    wanted = where.metadata or {}
    checks += [
        key in result.metadata and _same_scalar(result.metadata[key], value)
        for key, value in wanted.items()
    ]
    return all(checks)


_PATH_PIECES: Final = (
    "reports/",
    "src/",
    "a",
    "b.txt",
    "x_y",
    "%",
    "\\",
    "[1]",
    "*",
    "?",
    "é",
    "/",
)


@st.composite
def filterable_file_records(draw: st.DrawFn) -> FileRecord:
    """A valid file record whose path is made of pieces that prefixes and globs often match."""
    record = draw(file_records())
    pieces = draw(st.lists(st.sampled_from(_PATH_PIECES), min_size=1, max_size=4))
    return attrs.evolve(record, path="".join(pieces) + unique(""), size=draw(st.integers(0, 100)))


@functools.cache
def file_filters() -> st.SearchStrategy[FileRecordFilter]:
    """Any valid file record filter, with prefixes and globs made of paths' pieces."""
    patterns = st.lists(st.sampled_from(_PATH_PIECES), max_size=3).map("".join)
    maybe = st.one_of
    return st.builds(
        FileRecordFilter,
        path_prefix=maybe(st.none(), patterns, safe_text(max_size=3)),
        path_glob=maybe(st.none(), patterns.map(lambda text: text + "*"), patterns),
        min_size=maybe(st.none(), st.integers(0, 100)),
        max_size=maybe(st.none(), st.integers(0, 100)),
        accessed_from=maybe(st.none(), aware_datetimes()),
        accessed_until=maybe(st.none(), aware_datetimes()),
    )


def _glob_regex(glob: str) -> re.Pattern[str]:
    """The regular expression of a glob: `*` any run of characters, `?` one, the rest itself."""
    parts = {"*": ".*", "?": "."}
    return re.compile("".join(parts.get(char) or re.escape(char) for char in glob), re.DOTALL)


def file_matches(where: FileRecordFilter, record: FileRecord) -> bool:
    """Whether a file record passes a filter, written out in Python."""
    return all(
        [
            where.path_prefix is None or record.path.startswith(where.path_prefix),
            where.path_glob is None or _glob_regex(where.path_glob).fullmatch(record.path),
            where.min_size is None or where.min_size <= record.size,
            where.max_size is None or record.size <= where.max_size,
            where.accessed_from is None or where.accessed_from <= record.accessed_at,
            where.accessed_until is None or record.accessed_at < where.accessed_until,
        ]
    )


@functools.cache
def config_filters() -> st.SearchStrategy[ConfigEntryFilter]:
    """Any valid config entry filter."""
    return st.builds(
        ConfigEntryFilter,
        section=st.one_of(st.none(), st.sampled_from(["runner", "ui", "Runner", "é"])),
    )


def config_matches(where: ConfigEntryFilter, entry: ConfigEntry) -> bool:
    """Whether a config entry passes a filter, written out in Python."""
    return where.section is None or entry.section == where.section


_SEARCH_PIECES: Final = (
    '"', "*", "-", " ", "  ", "\n", "OR", "AND", "NOT", "NEAR(", ":", "^", "'", "\\", "&",
    "|", "!", "<->", "(", ")", "{", "}", "+", ".", "_", "segfault", "Segmentation", "fault",
    "solve", "cpp", "café", "Привет", "漢字", "42", "x_y", "a.cpp:42", "\u00a0", "½", "\ue000",
)  # fmt: skip


SPLIT_BY_POSTGRES: Final = frozenset(
    (
        *(0x1715, 0x1734, 0x1BF2, 0x1BF3, 0x1CE1, 0x1CF7, 0x302E, 0x302F, 0xA9C0, 0xABEC),
        *(0x111C0, 0x11235, 0x1134D, 0x116B6, 0x1193D, 0x1D165, 0x1D166),
        *range(0x1D16D, 0x1D173),
    )
)
"""Spacing marks that PostgreSQL's parser reads as separators: a search word keeps them."""


@functools.cache
def search_texts() -> st.SearchStrategy[str]:
    """Text a user might type into a search box: operators, quotes, SQL, any Unicode, too long."""
    pieces = st.one_of(st.sampled_from(_SEARCH_PIECES), st.sampled_from(SQL_LOOKING), st.text())
    return st.one_of(
        st.lists(pieces, max_size=12).map("".join),
        st.text(max_size=60),
        st.sampled_from(["w " * 600, "w" * 2000, "é" * 700, " ".join(["w"] * 40)]),
        hostile_text(),
    )
