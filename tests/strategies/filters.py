"""Filters of results, file records and config entries, meant as Python reads them; search texts."""

from __future__ import annotations

import functools
import re
from typing import Final

import attrs
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigEntryFilter,
    FileRecord,
    FileRecordFilter,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
)
from persistence._interface import JsonObject, JsonValue
from strategies.hostile import hostile_text
from strategies.values import (
    SQL_LOOKING,
    aware_datetimes,
    file_records,
    json_values,
    results,
    safe_text,
    unique,
)

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
