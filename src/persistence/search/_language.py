"""The search language (see `persistence.search`): parsed into terms, written for each engine.

A term that holds several words (`solve.cpp`, `foo-bar`) is the phrase of those words, as
the index reads the text; a quote left open runs to the end of the text. The user's text
never reaches an engine as syntax: each word is written inside a quoted string of FTS5's
language or of tsquery's, where only the quote character is special, and no word holds one.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
import unicodedata
from collections.abc import Iterable
from typing import Final

import attrs

from persistence._guards import argument, text_problem
from persistence._loop import off_loop
from persistence.exceptions import ValidationError
from persistence.search._fold import fold_word

MAX_SEARCH_CHARS: Final = 1_000
"""The longest search text, in characters."""

MAX_SEARCH_TERMS: Final = 32
"""The most terms one search may have."""

MAX_WORD_BYTES: Final = 2_047
"""The longest word, in UTF-8 bytes: PostgreSQL neither indexes nor searches longer ones."""


_ASCII_WORD: Final = re.compile(r"[A-Za-z0-9]+")


_UNICODE_15: Final = (
    (0xCF3, 0xCF3), (0xECE, 0xECE), (0x10EFD, 0x10EFF), (0x1123F, 0x11241), (0x11F00, 0x11F10),
    (0x11F12, 0x11F3A), (0x11F3E, 0x11F59), (0x1342F, 0x1342F), (0x13439, 0x13455),
    (0x1B132, 0x1B132), (0x1B155, 0x1B155), (0x1DF25, 0x1DF2A), (0x1E030, 0x1E06D),
    (0x1E08F, 0x1E08F), (0x1E4D0, 0x1E4F9), (0x2B739, 0x2B739), (0x2EBF0, 0x2EE5D),
    (0x31350, 0x323AF),
)  # fmt: skip
"""The letters, digits and marks of Unicode 15.0 and 15.1: Python 3.12's and 3.13's, not 3.11's.

Both indexes split words at them, as at any character their tables do not know: a word of the
search text never holds one either, whichever Python reads it.
"""


def word_pattern(text: str) -> re.Pattern[str]:
    """Give the pattern of the words of `text`: letters, digits and the marks written on them.

    - A mark belongs to the word it is written on: `नमस्ते` is one word, where Python's
      letters and digits alone would give `नमस` and `त`. A word starts with a letter or a
      digit: PostgreSQL's index drops the marks before it.
    - Other numbers (`²`, `½`, `①`) separate words, as punctuation does: `x²` is the word `x`.

    Migration 0012 makes SQLite's and PostgreSQL's indexes read words so. ASCII text, the
    usual output, gets a pattern of its own.
    """
    return _ASCII_WORD if text.isascii() else _unicode_patterns()[0]


def marks_pattern() -> re.Pattern[str]:
    """Give the pattern of a run of the marks that a word may hold after its first character."""
    return _unicode_patterns()[1]


async def words_ready(texts: Iterable[str | None]) -> None:
    """Build the patterns of words beyond ASCII in a worker thread, if `texts` need them first.

    They take 50 to 200 ms to build, once per process: built by the first search that met
    such text, on the loop, they held it that long.
    """
    if not _BUILT and any(text and not text.isascii() for text in texts):
        await off_loop(_unicode_patterns)


_BUILT: Final[list[tuple[re.Pattern[str], re.Pattern[str]]]] = []
"""The patterns of a word in any text and of a run of marks, once built."""
_BUILDING: Final = threading.Lock()


def _unicode_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Give the patterns of a word in any text and of a run of marks, built by the first caller.

    Not at import: building them would add a quarter to the package's import time.
    """
    if not _BUILT:
        with _BUILDING:
            if not _BUILT:
                first, mark = _unicode_classes()
                word = re.compile(rf"{first}(?:{first}|{mark})*")
                _BUILT.append((word, re.compile(rf"(?:{mark})*")))
    return _BUILT[0]


def _unicode_classes() -> tuple[str, str]:
    """Build the classes of a word's characters: those it may start with, and its marks.

    Their classes list ranges of code points, which `re` looks up in a bitmap within the BMP
    and one range at a time beyond it; so each class is split in two, and the second is tried
    only for a character beyond the BMP. A class of Unicode categories with exceptions took
    10 to 20 times as long on 2 kB of output.
    """
    newer = {point for first, last in _UNICODE_15 for point in range(first, last + 1)}
    planes = itertools.chain(range(0x40000), range(0xE0000, 0xE1000))  # every letter and mark
    starts: list[int] = []  # letters and digits
    marks: list[int] = []
    for char in filter(str.isprintable, map(chr, (p for p in planes if p not in newer))):
        if char.isalpha() or char.isdecimal():
            starts.append(ord(char))
        else:
            category = unicodedata.category(char)
            if category[0] == "M":
                marks.append(ord(char))
            elif category[0] == "N" and category != "No":
                starts.append(ord(char))
    return _either_plane(starts), _either_plane(marks)


def _either_plane(points: list[int]) -> str:
    """Match one of `points` (sorted), looking beyond the BMP only for a character there."""
    bmp = [p for p in points if p <= 0xFFFF]  # noqa: PLR2004  # the BMP's last code point
    beyond = [p for p in points if p > 0xFFFF]  # noqa: PLR2004
    return rf"(?:{_ranges(bmp)}|(?=[^\x00-\uffff]){_ranges(beyond)})"


def _ranges(points: list[int]) -> str:
    """Write sorted code points as a regular expression's class of ranges."""
    spans: list[list[int]] = []
    for point in points:
        if spans and spans[-1][1] == point - 1:
            spans[-1][1] = point
        else:
            spans.append([point, point])
    return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans) + "]"


_TERM: Final = re.compile(r'\s*(-?)(?:"([^"]*)"?(\**)|([^\s"]*))')
"""A term: `-` if excluded, then a quoted phrase (closed or not) and its stars, or a run."""
_FIELD_WEIGHTS: Final = ("D", "C")
"""The weights of the output's words and of the error message's in PostgreSQL's index."""
_MODEL: Final = "SearchQuery"


@attrs.frozen
class SearchTerm:
    """One term: a word, or the words of a phrase, that must (or must not) appear in order."""

    words: tuple[str, ...]
    prefix: bool = False
    """Whether the last word is a prefix."""
    excluded: bool = False
    """Whether the term must not appear."""

    def fts5(self) -> str:
        """Write the term as an FTS5 string: a quoted phrase, with `*` for a prefix."""
        words = (fold_word(word).replace('"', '""') for word in self.words)
        phrase = '"' + " ".join(words) + '"'
        return phrase + "*" if self.prefix else phrase

    def tsquery(self) -> str:
        """Write the term in tsquery's syntax: quoted words joined by `<->`, `:*` for a prefix.

        A phrase is the phrase in the output (weight D) or in the error message (weight C),
        so that it never spans the two.
        """
        words = [fold_word(word).replace("\\", "\\\\").replace("'", "''") for word in self.words]
        if len(words) == 1:
            phrase = f"'{words[0]}'" + (":*" if self.prefix else "")
        else:
            phrase = " | ".join(
                "(" + " <-> ".join(_weighted(words, weight, prefix=self.prefix)) + ")"
                for weight in _FIELD_WEIGHTS
            )
            phrase = f"({phrase})"
        return "!" + phrase if self.excluded else phrase


@attrs.frozen
class SearchQuery:
    """A parsed search: the text as given, and its terms."""

    text: str
    terms: tuple[SearchTerm, ...]

    def distinct_terms(self) -> tuple[SearchTerm, ...]:
        """Give the terms with repeats left out, as the engines are given them.

        A term given twice matches what it matches once; but ranking costs grow with the
        number of terms (FTS5's bm25 took half a second for `a` 32 times over 20 long
        outputs, in one step that nothing can interrupt). ASCII words are compared with case
        folded, as both engines fold them; other words as they are written.
        """
        seen: dict[tuple[tuple[str, ...], bool, bool], SearchTerm] = {}
        for term in self.terms:
            words = tuple(word.lower() if word.isascii() else word for word in term.words)
            seen.setdefault((words, term.prefix, term.excluded), term)
        return tuple(seen.values())

    def fts5(self) -> str:
        """Write the query in FTS5's language: `(t1 AND t2) NOT (t3 OR t4)`."""
        terms = self.distinct_terms()
        wanted = " AND ".join(term.fts5() for term in terms if not term.excluded)
        unwanted = " OR ".join(term.fts5() for term in terms if term.excluded)
        return f"({wanted}) NOT ({unwanted})" if unwanted else wanted

    def tsquery(self) -> str:
        """Write the query in tsquery's syntax, for `to_tsquery('simple', ...)`: `t1 & t2 & !t3`."""
        ordered = sorted(self.distinct_terms(), key=lambda term: term.excluded)
        return " & ".join(term.tsquery() for term in ordered)


def _weighted(words: list[str], weight: str, *, prefix: bool) -> list[str]:
    """Quote each word restricted to one weight, the last one a prefix when asked."""
    quoted = [f"'{word}':{weight}" for word in words]
    if prefix:
        quoted[-1] = f"'{words[-1]}':*{weight}"
    return quoted


def parse_search(text: str) -> SearchQuery:
    """Parse search text into its terms, or raise ValidationError saying what is wrong."""
    text = argument(_MODEL, "text", str, text)
    refuse = functools.partial(ValidationError, _MODEL, "text")
    problem = text_problem(text)
    if problem is not None:
        raise refuse(problem)
    if len(text) > MAX_SEARCH_CHARS:
        raise refuse(f"must be at most {MAX_SEARCH_CHARS} characters, got {len(text)}")
    terms = tuple(_terms(text))
    if not terms:
        raise refuse("has no word to search for (a word is a run of letters and digits)")
    if all(term.excluded for term in terms):
        raise refuse("needs a word that must match: every term in it is excluded")
    if len(terms) > MAX_SEARCH_TERMS:
        raise refuse(f"must have at most {MAX_SEARCH_TERMS} terms, got {len(terms)}")
    for size in (_stored_size(word) for term in terms for word in term.words):
        if size > MAX_WORD_BYTES:
            raise refuse(f"a word must be at most {MAX_WORD_BYTES} bytes in UTF-8, got {size}")
    return SearchQuery(text, terms)


def _stored_size(word: str) -> int:
    """Give a word's bytes in UTF-8 as PostgreSQL measures it, lower-cased.

    Two letters alone grow so, by a byte each: `Ⱥ` and `Ⱦ` (2 bytes) lower-case to `ⱥ` and
    `ⱦ` (3). A word grown past the bound was dropped from its query, unsaid: `ȺȺ… fault`
    found every fault, and `fault -ȺȺ…` excluded nothing. (Python's `lower` makes `İ` two
    characters; the index reads it as `i`, one byte less, so it is not measured so.)
    """
    size = len(word.encode("utf-8"))
    if word.isascii():
        return size
    return size + word.count("\u023a") + word.count("\u023e")


def _terms(text: str) -> list[SearchTerm]:
    """Read the terms of a text; terms without a word are left out."""
    terms: list[SearchTerm] = []
    for match in _TERM.finditer(text):
        excluded, quoted, stars, plain = match.groups()
        body = plain.rstrip("*") if quoted is None else quoted
        prefix = len(body) < len(plain) if quoted is None else bool(stars)
        words = tuple(word_pattern(body).findall(body))
        if words:
            terms.append(SearchTerm(words, prefix=prefix, excluded=bool(excluded)))
    return terms
