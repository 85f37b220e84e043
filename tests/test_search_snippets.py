"""Snippets cost bounded work on any text and any search, and still mark what matched."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Callable, Iterator
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import TestResult, TestStatus, TestType, ValidationError, parse_search
from persistence.search import MAX_SEARCH_CHARS, MAX_SEARCH_TERMS, SearchTerm
from persistence.search import _snippets as snippets
from persistence.search._language import marks_pattern, word_pattern
from persistence.search._snippets import (
    INDEXED_CHARS,
    MAX_SNIPPET_CHARS,
    MAX_SNIPPET_STEPS,
    fold,
    snippet_of,
)
from strategies import IN_MEMORY


def _result(output: str, error: str | None = None) -> TestResult:
    return TestResult(
        test_type=TestType.STRESS, status=TestStatus.FAILED, output=output, error_message=error
    )


class _Work:
    """Counts the words a snippet looks at as a possible start of a match, and its steps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.looked = 0
        self.steps = 0
        starting = snippets._Matcher._starting  # noqa: SLF001

        def counted(
            matcher: snippets._Matcher,
            word: str,
            span: tuple[int, int],
            after: Callable[[int], Iterator[tuple[tuple[int, int], str]]],
            at: int,
        ) -> tuple[list[snippets._Hit], int]:
            found, steps = starting(matcher, word, span, after, at)
            self.looked += 1
            self.steps += steps
            return found, steps

        monkeypatch.setattr(snippets._Matcher, "_starting", counted)  # noqa: SLF001


LONG: Final = INDEXED_CHARS
ADVERSARIAL: Final = [
    (" ".join(["a"] * MAX_SEARCH_TERMS), "a " * (LONG // 2)),
    (" ".join(["a", "A"] * (MAX_SEARCH_TERMS // 2)), "a-" * (LONG // 2)),
    ('"' + "a " * 450 + 'b"', "a " * (LONG // 2)),
    (" ".join('"' + "a " * k + 'b"' for k in range(1, 30))[:MAX_SEARCH_CHARS], "a " * (LONG // 2)),
    (" ".join("a" * k + "*" for k in range(1, MAX_SEARCH_TERMS + 1)), ("a" * 40 + " ") * 390),
    (" ".join("x" * k + "*" for k in range(1, MAX_SEARCH_TERMS + 1)), ("x" * 31 + "y ") * 480),
    ("absent", "a b " * (LONG // 4)),
    ("a*", "a" * LONG),
    ("ǅ ß", "ǅ ß Σ " * (LONG // 6)),
]


@pytest.mark.parametrize("accent", ["", "é"], ids=["ascii", "unicode"])
@pytest.mark.parametrize(("text", "output"), ADVERSARIAL)
def test_the_work_per_snippet_is_bounded(
    monkeypatch: pytest.MonkeyPatch, text: str, output: str, accent: str
) -> None:
    """Whatever the search, a snippet looks at each word once at most, and its steps are capped.

    ASCII text is scanned by one regular expression, other text word by word: both ways.
    """
    output = accent + output
    work = _Work(monkeypatch)
    query = parse_search(text)
    snippet_of(_result(output, output), query.terms)
    words = len(word_pattern(output).findall(output[:INDEXED_CHARS]))
    assert work.looked <= 2 * words  # each field once at most
    assert work.steps <= 2 * (MAX_SNIPPET_STEPS + MAX_SEARCH_CHARS + MAX_SEARCH_TERMS)


def test_the_32_word_query_reads_only_the_start_of_a_long_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`a` 32 times over 8,000 `a`s: the snippet reads the words it may show, not all of them."""
    work = _Work(monkeypatch)
    snippet = snippet_of(_result("a " * 8000), parse_search(" ".join(["a"] * 32)).terms)
    assert snippet.marked().startswith("[a] [a] [a]")
    assert work.looked < 200


class _Reading:
    """A word pattern that counts the characters its matches span, for a look at the work."""

    def __init__(self, pattern: re.Pattern[str], spanned: list[int]) -> None:
        self._pattern, self._spanned = pattern, spanned

    def _counted(self, match: re.Match[str] | None) -> re.Match[str] | None:
        if match is not None:
            self._spanned.append(match.end() - match.start())
        return match

    def match(self, text: str, *bounds: int) -> re.Match[str] | None:
        return self._counted(self._pattern.match(text, *bounds))

    def search(self, text: str, *bounds: int) -> re.Match[str] | None:
        return self._counted(self._pattern.search(text, *bounds))

    def finditer(self, text: str, *bounds: int) -> Iterator[re.Match[str]]:
        for match in self._pattern.finditer(text, *bounds):
            self._counted(match)
            yield match


@pytest.mark.parametrize("letter", ["a", "测", "ж"])
def test_a_word_of_megabytes_past_the_index_is_not_read_to_its_end(
    monkeypatch: pytest.MonkeyPatch, letter: str
) -> None:
    """CJK output has no spaces: one word of 2 M characters, of which the index holds 16,000.

    Its snippet read the whole word to learn that it went on past the limit, 0.2 s a megabyte
    on the loop.
    """
    spanned: list[int] = []
    monkeypatch.setattr(
        snippets, "word_pattern", lambda text: _Reading(word_pattern(text), spanned)
    )
    output = "wrong " + letter * 2_000_000
    snippet = snippet_of(_result(output), parse_search("wrong").terms)
    assert snippet.marked().startswith("[wrong]")
    assert spanned, "the snippet reads words through the pattern"
    assert sum(spanned) <= 4 * INDEXED_CHARS


def _ground_truth(text: str, terms: tuple[SearchTerm, ...]) -> bool:
    """Whether any wanted term matches the text's words, found the plain way."""
    words = [fold(word) for word in word_pattern(text).findall(text[:INDEXED_CHARS])]
    for term in terms:
        if term.excluded:
            continue
        wanted = [fold(word) for word in term.words]
        for start in range(len(words) - len(wanted) + 1):
            here = words[start : start + len(wanted)]
            if here[:-1] == wanted[:-1] and (
                here[-1] == wanted[-1] or (term.prefix and here[-1].startswith(wanted[-1]))
            ):
                return True
    return False


def _parsed(text: str) -> tuple[SearchTerm, ...] | None:
    try:
        return parse_search(text).terms
    except ValidationError:
        return None


@IN_MEMORY
@given(
    output=st.text(alphabet=st.sampled_from("abAB .\n-ßſΣς"), max_size=400),
    text=st.text(alphabet=st.sampled_from('abAB "*-ßs'), max_size=40),
)
def test_a_snippet_marks_a_match_whenever_the_text_holds_one(output: str, text: str) -> None:
    """If a wanted term matches the text, the snippet marks something, and only such words."""
    terms = _parsed(text)
    if terms is None:
        return
    snippet = snippet_of(_result(output), terms)
    assert bool(snippet.highlights) == _ground_truth(output, terms)
    prefixes = {fold(word) for term in terms if not term.excluded for word in term.words}
    for start, end in snippet.highlights:
        marked = fold(snippet.text[start:end])
        assert any(marked.startswith(prefix) for prefix in prefixes)


@pytest.mark.parametrize(
    ("output", "text", "marked"),
    [
        (
            "expected: 0 1 0 1 1 0 0 1 0 1 1 0 0 1 1 0 1 0 MISMATCH at index 18",
            "mismatch",
            "MISMATCH",
        ),
        ("a b c d e f g h i j k l m n o p q r s t u v w x y z " * 20, "x", "x"),
        ("a b c d e f g h i j k l m n o p q r s t u v w x y z " * 20, '"z a"', "z"),  # each word
    ],
    ids=["digits", "letters", "phrase"],
)
def test_short_words_before_a_match_leave_it_in_the_snippet(
    output: str, text: str, marked: str
) -> None:
    """Forty characters of short words before a match were more than a snippet's 16 words.

    The snippet began that far back, ended before the match, and marked nothing.
    """
    snippet = snippet_of(_result(output), parse_search(text).terms)
    assert snippet.highlights
    start, end = snippet.highlights[0]
    assert snippet.text[start:end] == marked


def test_a_word_the_limit_cuts_is_not_marked() -> None:
    """The index drops the word that INDEXED_CHARS cuts: the snippet marks no start of it.

    It read the text's first INDEXED_CHARS, whose last word, `abcdefg` of `abcdefghijk`, it
    took for a whole word and marked.
    """
    head = "filler " * ((INDEXED_CHARS - 20) // 7)
    output = head + " " * (INDEXED_CHARS - 7 - len(head)) + "abcdefghijk"
    assert output[INDEXED_CHARS - 7 : INDEXED_CHARS] == "abcdefg"
    snippet = snippet_of(_result(output), parse_search("abcdefg").terms)
    assert snippet.highlights == ()
    whole = snippet_of(_result(output[:INDEXED_CHARS]), parse_search("abcdefg").terms)
    assert whole.highlights  # a control: a text that ends there holds the word whole


@pytest.mark.parametrize(
    ("output", "text"),
    [("ΟΔΟΣ", "οδοσ"), ("οδός", "ΟΔΌΣ"), ("İstanbul", "istanbul"), ("Straße", "STRASSE")],
)
def test_folded_letters_are_marked(output: str, text: str) -> None:
    """Letters that fold alike are marked alike: final sigma, dotted I, sharp s."""
    assert snippet_of(_result(output), parse_search(text).terms).highlights == ((0, len(output)),)


def test_repeated_terms_go_to_the_engines_once() -> None:
    """`a a A a` asks each engine for `a` once: repeats cost ranking work and change nothing."""
    query = parse_search("a a A a -b -b")
    assert query.fts5() == '("a") NOT ("b")'
    assert query.tsquery() == "'a' & !'b'"
    assert len(query.terms) == 6  # the parsed query keeps what was typed


@pytest.mark.parametrize("shift", range(16))
def test_a_snippet_cuts_no_word_at_a_combining_mark(shift: int) -> None:
    """A snippet begins and ends between words, also beside a word written with a mark.

    It ended `… cafe` where the text says `café` (`e` and U+0301: `cafe` is another word to
    the search), and began inside `abcdéxx…`, taking the mark for the end of a word.
    """
    ending = f"target {'x' * (220 + shift)} cafe\u0301 more words"
    beginning = f"{'zz ' * 10}abcde\u0301{'x' * (28 + shift)} target{' yy' * 100}"
    for output in (ending, beginning):
        snippet = snippet_of(_result(output), parse_search("target").terms)
        assert snippet.marked().count("[target]") == 1
        shown = set(word_pattern(snippet.text).findall(snippet.text))
        assert shown <= set(word_pattern(output).findall(output)), snippet.text


def test_a_stored_output_cannot_forge_a_highlight() -> None:
    """Text that holds the markers is escaped apart from them, so only a match looks marked."""
    snippet = snippet_of(_result("<b>fake</b> & [fake] x"), parse_search("x").terms)
    assert snippet.marked("<b>", "</b>", escape=html.escape) == (
        "&lt;b&gt;fake&lt;/b&gt; &amp; [fake] <b>x</b>"
    )
    assert snippet.marked("<b>", "</b>") == "<b>fake</b> & [fake] <b>x</b>"  # as stored


_INDEX_CUT: Final = (
    "SELECT CASE WHEN length(?1) > 16000 THEN rtrim(substr(?1, 1, 16001), replace(replace("
    "replace(replace(substr(?1, 15938, 64), ' ', ''), char(9), ''), char(10), ''), char(13), ''))"
    " ELSE ?1 END"
)
"""The index's own cut of a long text (migration 0005, the same on both engines)."""


@given(
    st.integers(INDEXED_CHARS - 70, INDEXED_CHARS + 70),
    st.text(alphabet=" \t\n\r\v.-_ab\u00e9\u4e00\U0001f600", min_size=1, max_size=140),
)
def test_a_snippet_reads_a_long_text_as_far_as_the_index_holds_it(filler: int, tail: str) -> None:
    """The snippets read what the index holds of a text past INDEXED_CHARS, to the character.

    They dropped the cut word alone, where the index drops every character not white space
    back to the last space, tab or line end (`a.b.tailword`), and a vertical tab or U+00A0
    is no white space there: a snippet marked words no search could find.
    """
    text = "w " * (filler // 2) + "x" * (filler % 2) + tail
    with sqlite3.connect(":memory:") as plain:
        (expected,) = plain.execute(_INDEX_CUT, (text,)).fetchone()
    assert snippets._indexed(text) == expected  # noqa: SLF001  # the function tested


@pytest.mark.parametrize(
    ("output", "text", "matched"),
    [
        ("see " + "c" * 239 + " end", "c" * 239, "c" * 239),
        ("x " * 10 + "b" * 250, "b" * 250, "b" * 240),
        ("a" * 300, "aaaa*", "a" * 240),
        ("\u65e5\u672c\u8a9e" * 100, "\u65e5\u672c*", "\u65e5\u672c\u8a9e" * 80),
    ],
    ids=["a word of 239", "a word past the snippet", "a prefix of a long word", "a run of CJK"],
)
def test_a_long_matched_word_is_marked_as_far_as_it_fits(
    output: str, text: str, matched: str
) -> None:
    """A hit on a word too long to follow the words before it leads its snippet, marked.

    The window began a few words before the hit, and a word of 239 characters no longer fit:
    the snippet marked nothing (`see…`), and one longer than a snippet was marked nowhere.
    """
    snippet = snippet_of(_result(output), parse_search(text).terms)
    assert [snippet.text[a:b] for a, b in snippet.highlights] == [matched]
    assert len(snippet.text) <= MAX_SNIPPET_CHARS + 2  # and its two ellipses, at most


@pytest.mark.parametrize(
    ("unit", "lead"), [("क्षि", "क"), ("a\u0301", "a")], ids=["Devanagari", "a and its accent"]
)
def test_a_word_longer_than_a_snippet_is_cut_between_letters(unit: str, lead: str) -> None:
    """Cut at MAX_SNIPPET_CHARS, a long matched word kept a letter without the marks it bears.

    The snippet showed `a…` where the text has `á`, and its highlight ended there too.
    """
    word = lead + unit * 130
    snippet = snippet_of(_result(f"before {word} after"), parse_search(word).terms)
    shown = snippet.text.strip("…")
    assert word.startswith(shown)
    after = marks_pattern().match(word, len(shown))
    assert after is not None
    assert after.end() == len(shown)  # no mark cut off
    assert [snippet.text[a:b] for a, b in snippet.highlights] == [shown]


_OPENERS: Final = "\u202a\u202b\u202d\u202e\u2066\u2067\u2068"


@pytest.mark.parametrize("opener", list(_OPENERS))
def test_a_snippet_closes_each_direction_it_opens(opener: str) -> None:
    """A right-to-left override kept, its closing mark cut off: the page read on reversed.

    A snippet of balanced text now closes what it opens, after its last word.
    """
    closer = "\u2069" if opener in "\u2066\u2067\u2068" else "\u202c"
    text = f"log: {opener}fault " + " ".join(f"w{i}" for i in range(40)) + f"{closer} end"
    snippet = snippet_of(_result(text), parse_search("fault").terms)
    assert snippet.text.count(opener) == 1
    assert snippet.text.endswith(f"{closer}…")
    assert [snippet.text[a:b] for a, b in snippet.highlights] == ["fault"]


@pytest.mark.parametrize(
    ("shown", "closers"),
    [
        ("\u2067a\u202eb\u2069 c", ""),
        ("\u2067a\u202eb c", "\u202c\u2069"),
        ("\u202ea\u2067b\u202c c", "\u2069\u202c"),
    ],
    ids=["an isolate closes what opened in it", "both open", "a PDF inside an isolate"],
)
def test_a_snippet_closes_only_what_stays_open(shown: str, closers: str) -> None:
    """An isolate's closing mark closes the override opened inside it too, as UAX #9 reads.

    A closer was added for that override, a stray one that could close the page's own.
    """
    assert snippets._closers(shown) == closers  # noqa: SLF001  # the rule itself
