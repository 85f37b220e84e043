"""A long text escaped a piece at a time gives exactly what one call over it gives.

`persistence._loop.map_text` escapes a text of megabytes in pieces, the loop given back
between (`test_loop_lag_long_texts.py`): its pieces must join to the one call's text for any
text cut anywhere, here with pieces of a few characters. A Python str holds code points, so
no cut splits an astral character; surrogates, CR LF and the characters XML 1.0 cannot hold
are drawn often, as are the ones each escaper rewrites.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import (
    Run,
    TestResult,
    TestStatus,
    TestType,
    report_json_export,
    report_junit_export,
)
from persistence._loop import TEXT_PIECE, map_text
from persistence.report_json_export import _json_characters, ctrf_text, jsonl_text, split_lines
from persistence.report_junit_export import _content, junit_text
from strategies import IN_MEMORY

_TRICKY: Final = [
    *"\r\n&<>\"'\\\x00\x1b\x7f\x85\udfff\ufffe\uffff\u2028é😀",
    "\r\n",
    "\ud800\udc00",
]
"""Characters the escapers rewrite or refuse, and pairs that a cut between the two could break."""

_TEXTS: Final = st.lists(
    st.one_of(st.sampled_from(_TRICKY), st.characters(blacklist_categories=())), max_size=40
).map("".join)


def _pieced(escape: Callable[[str], str], text: str, piece: int) -> str:
    return "".join(asyncio.run(map_text(escape, text, piece)))


@IN_MEMORY
@given(text=_TEXTS, piece=st.integers(1, 5))
def test_xml_content_escaped_in_pieces_is_the_text_escaped_whole(text: str, piece: int) -> None:
    """JUnit export's element content: CR, `&`, `<`, `>`, and `#x1B` for what XML cannot hold."""
    assert _pieced(_content, text, piece) == _content(text)


@IN_MEMORY
@given(text=_TEXTS, piece=st.integers(1, 5))
def test_json_string_encoded_in_pieces_is_the_text_encoded_whole(text: str, piece: int) -> None:
    """CTRF and JSON Lines: quotes, backslashes, control characters; the rest as it is."""
    assert _pieced(_json_characters, text, piece) == json.dumps(text, ensure_ascii=False)[1:-1]


def _long(seed: str) -> str:
    """A text just past TEXT_PIECE, of what the escapers rewrite, told apart by `seed`."""
    unit = f'{seed} < & " \\ \r\x1b é 😀 '
    return (unit * (TEXT_PIECE // len(unit) + 2))[: TEXT_PIECE + 7]


def _results_of_long_texts() -> list[TestResult]:
    """Results with a long text in each place an export writes one, and short ones beside."""
    many_lines = "\n".join(["a", _long("mid"), "b", "", _long("end")])
    return [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.FAILED,
            error_message=_long("message"),
            output=_long("output"),
            metadata={"suite": "s", "system_err": many_lines, "log": _long("log"), "n": [1]},
            id=1,
            test_id="tests::test_loud",
        ),
        TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="short", id=2),
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.ERROR, output=many_lines, id=3, test_id="x"
        ),
    ]


@pytest.mark.parametrize("form", ["junit", "ctrf", "jsonl"])
def test_an_export_of_long_texts_is_the_export_of_them_escaped_whole(
    form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each hole a long text leaves is filled in its place: the text is the one-call text."""
    run, results = Run(id=5, labels={"branch": "main"}), _results_of_long_texts()
    writers = {
        "junit": lambda: junit_text(run, results),
        "ctrf": lambda: ctrf_text(run, results),
        "jsonl": lambda: jsonl_text(results),
    }
    pieced = asyncio.run(writers[form]())
    for module in (report_junit_export, report_json_export):
        monkeypatch.setattr(module, "TEXT_PIECE", 10**9)  # every text escaped in one call
    whole = asyncio.run(writers[form]())
    assert pieced == whole
    escaped = _content if form == "junit" else _json_characters
    assert all(escaped(_long(seed)) in whole for seed in ("message", "output", "mid", "end"))


def test_a_text_of_one_piece_is_escaped_in_one_call() -> None:
    """A short text, the usual one, is given as the one call's text, no piece cut."""
    assert asyncio.run(map_text(_content, "a < b\r", 6)) == ["a &lt; b&#13;"]


@IN_MEMORY
@given(text=st.text(alphabet="ab\n\r é", max_size=200), piece=st.integers(1, 20))
def test_lines_split_a_slice_at_a_time_are_the_lines_split_whole(text: str, piece: int) -> None:
    """A CTRF test's stdout and stderr lines: split at each line break, however the text is cut."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_json_export, "_SPLIT_CHARS", piece)
        assert asyncio.run(split_lines(text)) == text.split("\n")


def test_a_ctrf_export_is_the_json_of_the_document_indented() -> None:
    """The pieced document reads as JSON, and is what `json.dumps(..., indent=2)` writes of it."""
    run, results = Run(id=5, labels={"branch": "main"}), _results_of_long_texts()
    text = asyncio.run(ctrf_text(run, results))
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False)
