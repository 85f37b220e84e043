"""The search language and the snippets, without a database."""

from __future__ import annotations

import re
from typing import Any, Final

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import TestResult, TestStatus, TestType, ValidationError, parse_search
from persistence.search import (
    MAX_SEARCH_CHARS,
    MAX_SEARCH_TERMS,
    SearchQuery,
    SearchTerm,
    Snippet,
)
from persistence.search._snippets import INDEXED_CHARS, MAX_SNIPPET_CHARS, snippet_of
from strategies import IN_MEMORY
from strategies.filters import search_texts

PARSED: Final = [
    ("segfault", [SearchTerm(("segfault",))]),
    ("Segmentation   fault", [SearchTerm(("Segmentation",)), SearchTerm(("fault",))]),
    ('"segmentation fault"', [SearchTerm(("segmentation", "fault"))]),
    ('"segmentation fault"*', [SearchTerm(("segmentation", "fault"), prefix=True)]),
    ("solv*", [SearchTerm(("solv",), prefix=True)]),
    ("solv**", [SearchTerm(("solv",), prefix=True)]),
    ("ok -timeout", [SearchTerm(("ok",)), SearchTerm(("timeout",), excluded=True)]),
    ('-"time limit" ok', [SearchTerm(("time", "limit"), excluded=True), SearchTerm(("ok",))]),
    ("solve.cpp:42", [SearchTerm(("solve", "cpp", "42"))]),
    ("foo-bar", [SearchTerm(("foo", "bar"))]),
    ("x_y", [SearchTerm(("x", "y"))]),
    ("ok --flag", [SearchTerm(("ok",)), SearchTerm(("flag",), excluded=True)]),
    ("- flag", [SearchTerm(("flag",))]),
    ('"open phrase', [SearchTerm(("open", "phrase"))]),
    ('a"b c"d', [SearchTerm(("a",)), SearchTerm(("b", "c")), SearchTerm(("d",))]),
    ("*lead", [SearchTerm(("lead",))]),
    ("mid*dle", [SearchTerm(("mid", "dle"))]),
    ("café Привет 漢字", [SearchTerm(("café",)), SearchTerm(("Привет",)), SearchTerm(("漢字",))]),
    ("AND OR NOT NEAR", [SearchTerm((w,)) for w in ("AND", "OR", "NOT", "NEAR")]),
    ("found -*** ok", [SearchTerm(("found",)), SearchTerm(("ok",))]),
]


@pytest.mark.parametrize(("text", "terms"), PARSED)
def test_parses_each_form(text: str, terms: list[SearchTerm]) -> None:
    """Words, phrases, prefixes and exclusions parse into their terms."""
    assert parse_search(text).terms == tuple(terms)


REFUSED: Final = [
    ("", "has no word"),
    ("   ", "has no word"),
    ("--- *** ...", "has no word"),
    ('""', "has no word"),
    ("-timeout", "needs a word that must match"),
    ('-"a b" -c', "needs a word that must match"),
    ("x" * (MAX_SEARCH_CHARS + 1), f"at most {MAX_SEARCH_CHARS} characters"),
    (" ".join(["w"] * (MAX_SEARCH_TERMS + 1)), f"at most {MAX_SEARCH_TERMS} terms"),
    ("\U00020000" * 600, "at most 2047 bytes"),
    # 1,400 bytes as typed, 2,100 as PostgreSQL lower-cases it (`ⱥ`): dropped from the query.
    ("\u023a" * 700, "at most 2047 bytes in UTF-8, got 2100"),
    ("nul\x00here", "NUL"),
    ("lone \ud800 surrogate", "surrogate"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_refuses_what_cannot_be_searched(text: str, reason: str) -> None:
    """Text with nothing to search for, or too much, is refused by name, saying why."""
    with pytest.raises(ValidationError) as raised:
        parse_search(text)
    assert (raised.value.model, raised.value.field) == ("SearchQuery", "text")
    assert reason in raised.value.reason


@pytest.mark.parametrize("given", [None, 42, b"bytes", ["word"]])
def test_refuses_what_is_not_text(given: object) -> None:
    """A search that is not a str is refused by name."""
    hostile: Any = given
    with pytest.raises(ValidationError, match=r"SearchQuery\.text: expected str"):
        parse_search(hostile)


def test_fts5_form() -> None:
    """Each term is a quoted FTS5 string; excluded terms follow NOT."""
    query = parse_search('segfault "core dumped" solv* -timeout -"time limit"')
    assert query.fts5() == (
        '("segfault" AND "core dumped" AND "solv"*) NOT ("timeout" OR "time limit")'
    )
    assert parse_search("a b").fts5() == '"a" AND "b"'


def test_tsquery_form() -> None:
    """Each word is a quoted lexeme; phrases use <->, prefixes :*, exclusions !.

    A phrase is the phrase among the output's words (weight D) or the error message's (C).
    """
    query = parse_search('-timeout segfault "core dumped"* solv*')
    assert query.tsquery() == (
        "'segfault' & (('core':D <-> 'dumped':*D) | ('core':C <-> 'dumped':*C))"
        " & 'solv':* & !'timeout'"
    )


def parsed(text: str) -> SearchQuery | ValidationError:
    """Parse a search, giving back the ValidationError it raises, if any."""
    try:
        return parse_search(text)
    except ValidationError as error:
        return error


_FTS5_QUOTED: Final = re.compile(r'"(?:[^"]|"")*"\*?')
_TS_QUOTED: Final = re.compile(r"'(?:[^'\\]|''|\\.)*'(?::\*?[CD]?)?")


@IN_MEMORY
@example(text="a\" OR b NOT c * : ^ NEAR( ' \\ &|!<->()")
@example(text="'; DROP TABLE test_results; --")
@given(text=search_texts())
def test_any_text_parses_or_is_refused_and_never_becomes_syntax(text: str) -> None:
    """Any text is a query or a ValidationError; its words only appear inside quotes."""
    query = parsed(text)
    if isinstance(query, ValidationError):
        assert (query.model, query.field) == ("SearchQuery", "text")
        return
    assert query.terms
    assert any(not term.excluded for term in query.terms)
    fts5 = _FTS5_QUOTED.sub("S", query.fts5())
    assert set(fts5) <= set("S ANDOTR()"), fts5
    tsquery = _TS_QUOTED.sub("L", query.tsquery())
    assert set(tsquery) <= set("L &|!()<->"), tsquery


def _result(output: str | None, error: str | None = None) -> TestResult:
    return TestResult(
        test_type=TestType.STRESS, status=TestStatus.FAILED, output=output, error_message=error
    )


def test_snippet_marks_the_matched_words() -> None:
    """The snippet shows the words around a match and marks each matched word."""
    result = _result("Segmentation fault in solve() at solve.cpp:42\ncore dumped")
    snippet = snippet_of(result, parse_search("solve.cpp core").terms)
    assert snippet.field == "output"
    assert snippet.marked() == "Segmentation fault in solve() at [solve].[cpp]:42 [core] dumped"
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["solve", "cpp", "core"]


def test_snippet_prefers_the_window_with_most_terms() -> None:
    """Of two places, the snippet shows the one holding more of the terms, cut with ellipses."""
    filler = " ".join(f"w{i}" for i in range(40))
    result = _result(f"alpha {filler} alpha beta {filler}")
    snippet = snippet_of(result, parse_search("alpha beta").terms)
    assert snippet.text.startswith("…")
    assert snippet.text.endswith("…")
    assert "[alpha] [beta]" in snippet.marked()


def test_snippet_can_come_from_the_error_message() -> None:
    """When only the error message matches, the snippet comes from it."""
    result = _result("all went well", "signal 11: Segmentation fault")
    snippet = snippet_of(result, parse_search('"segmentation fault" -timeout').terms)
    assert snippet.field == "error_message"
    assert snippet.marked("<b>", "</b>") == "signal 11: <b>Segmentation</b> <b>fault</b>"


def test_snippet_skips_excluded_and_mismatched_phrases() -> None:
    """Excluded terms are never marked, nor words of a phrase found out of order."""
    result = _result("fault segmentation then timeout")
    snippet = snippet_of(result, parse_search('"segmentation fault" then -timeout').terms)
    assert snippet.marked() == "fault segmentation [then] timeout"


def test_snippet_without_a_match_shows_the_start() -> None:
    """A result the snippet finds no match in shows the start of its output, unmarked."""
    snippet = snippet_of(_result("nothing here " * 50), parse_search("absent").terms)
    assert snippet.highlights == ()
    assert snippet.text.startswith("nothing here")
    assert snippet.text.endswith("…")
    assert snippet_of(_result(None), parse_search("absent").terms) == Snippet("output", "", ())


def test_snippet_stays_short_and_within_the_index() -> None:
    """A snippet holds at most a few hundred characters, and reads only the indexed text."""
    long_word = "x" * 5000
    result = _result(f"{long_word} needle")
    snippet = snippet_of(result, parse_search("needle").terms)
    assert len(snippet.text) <= MAX_SNIPPET_CHARS + 2
    beyond = _result("a " * (INDEXED_CHARS // 2) + "needle")
    assert snippet_of(beyond, parse_search("needle").terms).highlights == ()


@IN_MEMORY
@given(
    output=st.text(alphabet=st.sampled_from("ab .\n-"), max_size=300),
    text=st.text(alphabet=st.sampled_from('ab "*-'), max_size=20),
)
def test_snippet_highlights_are_matched_words(output: str, text: str) -> None:
    """Every highlight covers a word of the snippet that a term of the search matches."""
    query = parsed(text)
    if isinstance(query, ValidationError):
        return
    snippet = snippet_of(_result(output), query.terms)
    words = {word.lower() for term in query.terms if not term.excluded for word in term.words}
    starts = [a for a, _ in snippet.highlights]
    assert starts == sorted(starts)
    for start, end in snippet.highlights:
        marked = snippet.text[start:end].lower()
        assert re.fullmatch(r"[^\W_]+", marked)
        assert any(marked.startswith(word) for word in words)


def test_a_word_that_grows_when_lower_cased_is_measured_as_it_grows() -> None:
    """The bound holds for the word PostgreSQL stores: lower-cased, 3 bytes for each `Ⱥ`.

    And only for the letters that grow: `İ`, which Python lower-cases to two characters and
    the index reads as `i`, is measured as typed (1,600 bytes here, refused at 2,400).
    """
    assert parse_search("\u023a" * 682).terms[0].words == ("\u023a" * 682,)  # 2,046 bytes
    with pytest.raises(ValidationError, match="got 2049"):
        parse_search("\u023a" * 683)
    with pytest.raises(ValidationError, match="got 2049"):
        parse_search("\u023e" * 683)
    assert parse_search("\u0130" * 800 + " fault").terms[0].words == ("\u0130" * 800,)
