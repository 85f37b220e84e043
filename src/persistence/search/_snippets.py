"""Snippets: the few words of a result around what a search found, with those words marked.

Both engines give the same snippet, as it is cut here from the result's own text with the
same notion of a word as the index: a run of letters and digits, compared with case folded.
(PostgreSQL's `ts_headline` would read `solve.cpp:42` as one word, and mark nothing in it.)
"""

from __future__ import annotations

import bisect
import re
from typing import TYPE_CHECKING, Final

import attrs

from persistence.search._fold import fold
from persistence.search._language import SearchTerm

if TYPE_CHECKING:
    from persistence.models import TestResult

__all__ = ["INDEXED_CHARS", "Snippet", "snippet_of"]

INDEXED_CHARS: Final = 16_000
"""How many characters of the output, and of the error message, the search index reads.

The same on both engines (see migration 0002): the rest of a longer text is not searched.
"""

SNIPPET_WORDS: Final = 16
"""How many words a snippet holds at most."""

MAX_SNIPPET_CHARS: Final = 240
"""How many characters of the text a snippet holds at most, before its ellipses."""

_LEAD_CHARS: Final = 40
"""How far before the first match it marks a snippet starts, in characters, at most."""

_MAX_ANCHORS: Final = 16
_WORD: Final = re.compile(r"[^\W_]+")
_SPACES: Final = re.compile(r"\s+")
_ELLIPSIS: Final = "…"
_FIELDS: Final = ("error_message", "output")


@attrs.frozen
class Snippet:
    """A short extract of a result's output or error message, and where the matches are in it."""

    field: str
    """Which text it comes from: `output` or `error_message`."""
    text: str
    """The extract, with runs of white space made one space, and `…` where it was cut."""
    highlights: tuple[tuple[int, int], ...]
    """The (start, end) offsets in `text` of each matched word, in order."""

    def marked(self, before: str = "[", after: str = "]") -> str:
        """Give the text with each matched word between `before` and `after`."""
        parts: list[str] = []
        last = 0
        for start, end in self.highlights:
            parts += [self.text[last:start], before, self.text[start:end], after]
            last = end
        parts.append(self.text[last:])
        return "".join(parts)


@attrs.frozen
class _Hit:
    start: int
    end: int
    term: int


@attrs.frozen
class _Text:
    field: str
    text: str
    cut: bool
    """Whether `text` is the start of a longer one."""
    hits: list[_Hit]


def snippet_of(result: TestResult, terms: tuple[SearchTerm, ...]) -> Snippet:
    """Cut the snippet of a result that a search with these terms found.

    Matches are found with one regular expression per term over the lower-cased text, so
    that only the few words around the chosen place are ever split into words.
    """
    patterns = [(number, _pattern(term)) for number, term in enumerate(terms) if not term.excluded]
    texts = []
    for field in _FIELDS:
        value: str | None = getattr(result, field)
        if value:
            head = value[:INDEXED_CHARS]
            texts.append(_Text(field, head, len(value) > INDEXED_CHARS, _hits(head, patterns)))
    if not texts:
        return Snippet("output", "", ())
    best: tuple[tuple[int, int], _Text, int, int] | None = None
    for text in texts:
        for score, begin, end in _windows(text):
            if best is None or score > best[0]:
                best = (score, text, begin, end)
    if best is None:  # nothing to mark: the index and this text disagree, or the match is cut off
        fallback = next((t for t in texts if t.field == "output"), texts[0])
        return _cut(fallback, 0, _extent(fallback.text, 0))
    _, text, begin, end = best
    return _cut(text, begin, end)


def _pattern(term: SearchTerm) -> re.Pattern[str]:
    """Match a term's words in lower-cased text: whole words, one after another.

    Between two words of a phrase, anything that is not a letter or a digit may stand.
    """
    words = [re.escape(fold(word)) for word in term.words]
    tail = r"[^\W_]*" if term.prefix else r"(?![^\W_])"
    # The literal first, then a look back past it, so that the search can skip ahead to it.
    first = words[0] + r"(?<![^\W_]" + words[0] + ")"
    return re.compile(r"[\W_]+".join([first, *words[1:]]) + tail)


def _hits(text: str, patterns: list[tuple[int, re.Pattern[str]]]) -> list[_Hit]:
    """Find where each term's words follow one another, in order of position."""
    folded = fold(text)
    hits = [
        _Hit(match.start(), match.end(), number)
        for number, pattern in patterns
        for match in pattern.finditer(folded)
    ]
    hits.sort(key=lambda hit: (hit.start, hit.term))
    return hits


def _extent(text: str, begin: int) -> int:
    """Find where a snippet starting at `begin` ends, on a word's end.

    It holds SNIPPET_WORDS words, or fewer when they do not fit in MAX_SNIPPET_CHARS.
    """
    limit = min(len(text), begin + MAX_SNIPPET_CHARS)
    words = list(_WORD.finditer(text, begin, limit))
    if len(words) > SNIPPET_WORDS:
        return words[SNIPPET_WORDS - 1].end()
    if limit == len(text):
        return limit
    if len(words) > 1 and words[-1].end() == limit and _WORD.match(text, limit):
        words.pop()  # the last word runs past the limit: leave it out
    return words[-1].end() if words else limit


def _windows(text: _Text) -> list[tuple[tuple[int, int], int, int]]:
    """Score the windows that start a little before each hit: distinct terms, then hits.

    A window near the end starts earlier, so that it is full when the text is long enough.
    """
    starts = [hit.start for hit in text.hits]
    scored = []
    for anchor in text.hits[:_MAX_ANCHORS]:
        begin = _word_start(text.text, max(0, anchor.start - _LEAD_CHARS), anchor.start)
        end = _extent(text.text, begin)
        if end == len(text.text) and begin > 0:
            earlier = _word_start(text.text, max(0, end - MAX_SNIPPET_CHARS), anchor.start)
            if _extent(text.text, earlier) >= anchor.end:
                begin, end = earlier, _extent(text.text, earlier)
        inside = text.hits[bisect.bisect_left(starts, begin) : bisect.bisect_left(starts, end)]
        fitting = [hit for hit in inside if hit.end <= end]
        scored.append(((len({hit.term for hit in fitting}), len(fitting)), begin, end))
    return scored


def _word_start(text: str, position: int, at_most: int) -> int:
    """Find the start of the first whole word at or after `position`, but not after `at_most`."""
    if position == 0:
        return 0
    match = _WORD.search(text, position)
    if match is not None and match.start() == position and _WORD.match(text, position - 1):
        match = _WORD.search(text, match.end())  # `position` is inside a word: skip it
    return at_most if match is None else min(match.start(), at_most)


def _cut(text: _Text, begin: int, end: int) -> Snippet:
    """Cut [begin, end) out of the text, collapse white space, and mark the hits in it."""
    source = text.text
    marked = sorted(
        {
            word.span()
            for hit in text.hits
            if begin <= hit.start and hit.end <= end
            for word in _WORD.finditer(source, hit.start, hit.end)
        }
    )
    pieces: list[str] = []
    highlights: list[tuple[int, int]] = []
    length = 0
    position = begin
    for word_start, word_end in marked:
        plain = _SPACES.sub(" ", source[position:word_start])
        pieces.append(plain)
        length += len(plain)
        highlights.append((length, length + word_end - word_start))
        pieces.append(source[word_start:word_end])
        length += word_end - word_start
        position = word_end
    pieces.append(_SPACES.sub(" ", source[position:end]))
    body = "".join(pieces)
    stripped = body.lstrip(" ")
    lead = _ELLIPSIS if begin > 0 else ""
    tail = _ELLIPSIS if end < len(source) or text.cut else ""
    shift = len(lead) - (len(body) - len(stripped))
    return Snippet(
        text.field,
        lead + stripped.rstrip(" ") + tail,
        tuple((a + shift, b + shift) for a, b in highlights),
    )
