"""The cursors of every listing, and their filters, through make_converter() and back."""

from __future__ import annotations

import json
from typing import Final

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    ConfigEntryCursor,
    ConfigEntryFilter,
    FileRecordCursor,
    FileRecordFilter,
    PageCursor,
    ResultFilter,
    SearchCursor,
    TestHistoryCursor,
    TestStatus,
    ValidationError,
    make_converter,
)
from strategies import IN_MEMORY
from strategies.filters import config_filters, file_filters, result_filters
from strategies.hostile import hostile_values
from strategies.values import aware_datetimes

Cursor = PageCursor | SearchCursor | FileRecordCursor | ConfigEntryCursor

CURSORS: Final[st.SearchStrategy[Cursor]] = st.one_of(
    st.builds(
        PageCursor,
        created_at=aware_datetimes(),
        id=st.integers(1, 2**63 - 1),
        where=result_filters(),
    ),
    st.builds(
        SearchCursor,
        offset=st.integers(0, 2**63 - 1),
        text=st.from_regex(r"[a-zé0-9]{1,8}( -?[a-zé0-9]{1,8}){0,3}", fullmatch=True),
        where=result_filters(),
    ),
    st.builds(
        FileRecordCursor,
        path=st.sampled_from(["a", "reports/x.txt", "é/ü", "[x]?*"]),
        where=file_filters(),
    ),
    st.builds(
        ConfigEntryCursor,
        section=st.sampled_from(["runner", "ui", "é"]),
        key=st.sampled_from(["k", "timeout", "ключ"]),
        where=config_filters(),
    ),
)


@IN_MEMORY
@example(cursor=SearchCursor(20, "segfault", ResultFilter(statuses={TestStatus.FAILED})))
@given(cursor=CURSORS)
def test_every_cursor_round_trips_through_json(cursor: Cursor) -> None:
    """A cursor becomes a JSON-ready dict and comes back equal, filter and all."""
    converter = make_converter()
    data = converter.unstructure(cursor)
    assert isinstance(data, dict)
    text = json.dumps(data)
    assert converter.structure(json.loads(text), type(cursor)) == cursor


@IN_MEMORY
@given(
    text=st.one_of(
        st.sampled_from(["", " ", "\t\n", "!?", '""', "*", "-x", "-x -y", "x\x00", "x\ud800"]),
        st.text(st.characters(categories=["P", "S", "Z"])),
        st.from_regex(r"-[a-z]{1,8}( -[a-z]{1,8}){0,3}", fullmatch=True),
        st.text("ab ", min_size=1001).filter(str.strip),
    )
)
def test_a_search_cursor_refuses_text_no_search_takes_when_built(text: str) -> None:
    """Text without a word to match, too long, or with NUL is refused by name when built.

    The cursor checked only that its text was text: `SearchCursor(0, "")` was built, and
    refused only when used, as `SearchQuery.text`, since a search's text must be its own.
    """
    with pytest.raises(ValidationError, match=r"^SearchCursor\.text: "):
        SearchCursor(0, text)


_AT: Final = "2026-01-01T00:00:00+00:00"
_HISTORY_ID: Final = r"^TestHistoryCursor\.test_id: must (not be empty|not contain NUL|be at most)"
_TAMPERED: Final[list[tuple[type[Cursor | TestHistoryCursor], object, str]]] = [
    (SearchCursor, {"offset": -1, "text": "x"}, r"SearchCursor\.offset"),
    (SearchCursor, {"offset": "20", "text": "x"}, r"SearchCursor\.offset"),
    (SearchCursor, {"offset": True, "text": "x"}, r"SearchCursor\.offset"),
    (SearchCursor, {"offset": 1, "text": 5}, r"SearchCursor\.text"),
    (SearchCursor, {"offset": 1, "text": ""}, r"SearchCursor\.text: has no word"),
    (SearchCursor, {"text": "x"}, r"SearchCursor\.offset: is required"),
    (SearchCursor, {"offset": 1, "text": "x", "admin": True}, r"SearchCursor\.admin"),
    (SearchCursor, {"offset": 1, "text": "x", "where": 5}, r"SearchCursor\.where"),
    (SearchCursor, {"offset": 1, "text": "x", "where": {"statuses": "failed"}}, "statuses"),
    (SearchCursor, {"offset": 1, "text": "x", "where": {"statuses": ["nope"]}}, "statuses"),
    (SearchCursor, {"offset": 1, "text": "x", "where": {"created_from": "soon"}}, "created_from"),
    (SearchCursor, {"offset": 1, "text": "x", "where": {"metadata": {"a": [1]}}}, "metadata"),
    (SearchCursor, {"offset": 1, "text": "x", "where": {"x": 1}}, r"ResultFilter\.x"),
    (SearchCursor, [1, "x"], r"SearchCursor\.argument"),
    (PageCursor, {"created_at": "2026-01-01T00:00:00", "id": 1}, "created_at"),
    (PageCursor, {"created_at": "2026-01-01T00:00:00+00:00", "id": 2**63}, r"PageCursor\.id"),
    (FileRecordCursor, {"path": "", "where": {}}, r"FileRecordCursor\.path"),
    (FileRecordCursor, {"path": "a", "where": {"min_size": -1}}, "min_size"),
    (ConfigEntryCursor, {"section": "s", "key": "k", "where": {"section": ""}}, "section"),
    (ConfigEntryCursor, {"section": "s"}, r"ConfigEntryCursor\.key"),
    *[
        (TestHistoryCursor, {"test_id": t, "created_at": _AT, "id": 1}, _HISTORY_ID)
        for t in ("", "a\x00", "é" * 513)
    ],
]


@pytest.mark.parametrize(("kind", "data", "named"), _TAMPERED)
def test_a_tampered_cursor_is_refused(
    kind: type[Cursor | TestHistoryCursor], data: object, named: str
) -> None:
    """Wrong types, a negative offset, unknown keys or a bad filter: ValidationError by name."""
    with pytest.raises(ValidationError, match=named):
        make_converter().structure(data, kind)


_KINDS: Final = (PageCursor, SearchCursor, FileRecordCursor, ConfigEntryCursor)
_FIELDS: Final = ("offset", "text", "where", "created_at", "id", "path", "section", "key")


@IN_MEMORY
@given(
    cursor=CURSORS,
    field=st.sampled_from(_FIELDS),
    value=hostile_values(),
)
def test_any_tampering_gives_a_cursor_or_a_validation_error(
    cursor: Cursor, field: str, value: object
) -> None:
    """Changing any field to any value gives back a valid cursor, or ValidationError."""
    converter = make_converter()
    data = converter.unstructure(cursor)
    data[field] = value
    try:
        again = converter.structure(data, type(cursor))
    except ValidationError:
        return
    assert isinstance(again, _KINDS)


@IN_MEMORY
@given(where=st.one_of(result_filters(), file_filters(), config_filters()))
def test_filters_round_trip_alone(
    where: ResultFilter | FileRecordFilter | ConfigEntryFilter,
) -> None:
    """A filter alone goes through the converter too."""
    converter = make_converter()
    assert (
        converter.structure(json.loads(json.dumps(converter.unstructure(where))), type(where))
        == where
    )
