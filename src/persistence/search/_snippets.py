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

_LEAD_WORDS: Final = 4
"""How many words a snippet shows before the first it marks."""

MAX_SNIPPET_CHARS: Final = 240
"""How many characters of the text a snippet holds at most, before its ellipses."""

_MAX_ANCHORS: Final = 64
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
class _Word:
    start: int
    end: int
    folded: str


@attrs.frozen
class _Hit:
    first: int
    last: int
    term: int


@attrs.frozen
class _Candidate:
    field: str
    text: str
    cut: bool
    """Whether `text` is the start of a longer one."""
    words: list[_Word]
    hits: list[_Hit]


def snippet_of(result: TestResult, terms: tuple[SearchTerm, ...]) -> Snippet:
    """Cut the snippet of a result that a search with these terms found."""
    wanted = [term for term in terms if not term.excluded]
    candidates = []
    for field in _FIELDS:
        value: str | None = getattr(result, field)
        if not value:
            continue
        text = value[:INDEXED_CHARS]
        words = [_Word(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(text)]
        cut = len(value) > INDEXED_CHARS
        candidates.append(_Candidate(field, text, cut, words, _hits(words, wanted)))
    if not candidates:
        return Snippet("output", "", ())
    best: tuple[tuple[int, int], _Candidate, int] | None = None
    for candidate in candidates:
        for score, start in _windows(candidate.hits, len(candidate.words)):
            if best is None or score > best[0]:
                best = (score, candidate, start)
    if best is None:  # nothing to mark: the index and this text disagree, or the match is cut off
        fallback = next((c for c in candidates if c.field == "output"), candidates[0])
        return _cut(fallback, 0)
    _, candidate, start = best
    return _cut(candidate, start)


def _hits(words: list[_Word], terms: list[SearchTerm]) -> list[_Hit]:
    """Find where each term's words follow one another, in order of position."""
    hits = []
    folded_terms = [[word.lower() for word in term.words] for term in terms]
    for index in range(len(words)):
        for number, (term, folded) in enumerate(zip(terms, folded_terms, strict=True)):
            last = index + len(folded) - 1
            if last >= len(words):
                continue
            head_matches = all(words[index + k].folded == folded[k] for k in range(len(folded) - 1))
            tail = words[last].folded
            if head_matches and (
                tail.startswith(folded[-1]) if term.prefix else tail == folded[-1]
            ):
                hits.append(_Hit(index, last, number))
    return hits


def _windows(hits: list[_Hit], words: int) -> list[tuple[tuple[int, int], int]]:
    """Score the windows that start a little before each hit: distinct terms, then hits.

    A window near the end starts earlier, so that it is full when the text has enough words.
    """
    firsts = [hit.first for hit in hits]
    scored = []
    for anchor in hits[:_MAX_ANCHORS]:
        start = max(0, min(anchor.first - _LEAD_WORDS, words - SNIPPET_WORDS))
        inside = hits[
            bisect.bisect_left(firsts, start) : bisect.bisect_left(firsts, start + SNIPPET_WORDS)
        ]
        fitting = [hit for hit in inside if hit.last < start + SNIPPET_WORDS]
        scored.append(((len({hit.term for hit in fitting}), len(fitting)), start))
    return scored


def _cut(candidate: _Candidate, start: int) -> Snippet:
    """Cut the window of words from `start`, collapse white space, and mark the hits in it."""
    text, words = candidate.text, candidate.words
    stop = min(start + SNIPPET_WORDS, len(words))
    begin = words[start].start if 0 < start < len(words) else 0
    end = words[stop - 1].end if 0 < stop < len(words) else len(text)
    end = min(end, begin + MAX_SNIPPET_CHARS)
    marked = sorted(
        {
            (words[k].start, min(words[k].end, end))
            for hit in candidate.hits
            if start <= hit.first and hit.last < stop
            for k in range(hit.first, hit.last + 1)
            if words[k].start < end
        }
    )
    pieces: list[str] = []
    highlights: list[tuple[int, int]] = []
    length = 0
    position = begin
    for word_start, word_end in marked:
        plain = _SPACES.sub(" ", text[position:word_start])
        pieces.append(plain)
        length += len(plain)
        highlights.append((length, length + word_end - word_start))
        pieces.append(text[word_start:word_end])
        length += word_end - word_start
        position = word_end
    pieces.append(_SPACES.sub(" ", text[position:end]))
    body = "".join(pieces)
    stripped = body.lstrip(" ")
    lead = _ELLIPSIS if begin > 0 else ""
    tail = _ELLIPSIS if end < len(text) or candidate.cut else ""
    shift = len(lead) - (len(body) - len(stripped))
    return Snippet(
        candidate.field,
        lead + stripped.rstrip(" ") + tail,
        tuple((a + shift, b + shift) for a, b in highlights),
    )
