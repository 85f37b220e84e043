"""Snippets: the few words of a result around what a search found, with those words marked.

Both engines give the same snippet, cut here from the result's own text with the index's
notion of a word (PostgreSQL's `ts_headline` would read `solve.cpp:42` as one word). The
work per result is bounded: the text is read from its start only as far as the snippet can
reach (a little past the first `_MAX_ANCHORS` places that match), and matching stops after
`MAX_SNIPPET_HITS` matches or `MAX_SNIPPET_STEPS` steps.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import attrs

from persistence.search._fold import fold
from persistence.search._language import SearchTerm, marks_pattern, word_pattern

if TYPE_CHECKING:
    from persistence.models import TestResult

__all__ = [
    "INDEXED_CHARS",
    "MAX_SNIPPET_CHARS",
    "MAX_SNIPPET_HITS",
    "MAX_SNIPPET_STEPS",
    "Snippet",
    "fold",
    "snippet_of",
]

INDEXED_CHARS: Final = 16_000
"""How many characters of the output, and of the error message, the search index reads.

The same on both engines (see migration 0002): the rest of a longer text is not searched.
"""

SNIPPET_WORDS: Final = 16
"""How many words a snippet holds at most."""

MAX_SNIPPET_CHARS: Final = 240
"""How many characters of the text a snippet holds at most, before its ellipses."""

MAX_SNIPPET_HITS: Final = 256
"""How many matches a snippet gathers in one text at most, before it stops reading."""

MAX_SNIPPET_STEPS: Final = 4_000
"""How many steps it takes in one text at most, before it stops reading: a look-up where a
match may start, or a comparison of one word of a phrase."""

_LEAD_CHARS: Final = 40
"""How far before the first match it marks a snippet starts, in characters, at most."""

_LEAD_WORDS: Final = SNIPPET_WORDS // 4
"""How many words before the first match it marks a snippet starts, at most: 40 characters
of short words (`0 1 0 1 ...`) were more than a snippet holds, and it ended before the match."""

_MAX_ANCHORS: Final = 16
"""How many places that match, from the start, a snippet may be cut around."""

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

    def marked(
        self, before: str = "[", after: str = "]", *, escape: Callable[[str], str] = str
    ) -> str:
        """Give the text with each matched word between `before` and `after`.

        The text is a result's stored output, which may hold the markers itself: `[fake]`,
        `<b>fake</b>`. `escape` (`html.escape` for HTML) is applied to the text and not to the
        markers, so that only a match looks marked.
        """
        parts: list[str] = []
        last = 0
        for start, end in self.highlights:
            parts += [escape(self.text[last:start]), before, escape(self.text[start:end]), after]
            last = end
        parts.append(escape(self.text[last:]))
        return "".join(parts)


_Span = tuple[int, int]
"""Where a word is in a text: its start and end offsets."""
_Following = Callable[[int], Iterator[tuple[_Span, str]]]
"""Give the words after a place, as far as they are asked for: where each is, and folded."""


@attrs.frozen
class _Hit:
    """Where a term matched: its characters, and where each of its words is."""

    start: int
    end: int
    term: int
    words: tuple[_Span, ...]


@attrs.frozen
class _Text:
    field: str
    text: str
    cut: bool
    """Whether `text` is the start of a longer one."""
    hits: list[_Hit]


class _Matcher:
    """The terms to mark, arranged so that one look-up finds those that may start at a word.

    Terms are folded and the same term given twice counts once. A one-word prefix term is
    found by the word's own first letters, one look-up per distinct prefix length. In ASCII
    text, which folds to text of the same length, one regular expression finds the words
    that may start a match, so that the others cost no Python work at all.
    """

    __slots__ = ("_by_first", "_by_prefix", "_lengths", "_starts")

    def __init__(self, terms: tuple[SearchTerm, ...]) -> None:
        self._by_first: dict[str, list[tuple[int, tuple[str, ...], bool]]] = {}
        self._by_prefix: dict[int, dict[str, list[int]]] = {}
        seen: dict[tuple[tuple[str, ...], bool], int] = {}
        for term in terms:
            words = tuple(fold(word) for word in term.words)
            if term.excluded or (words, term.prefix) in seen:
                continue
            number = seen[words, term.prefix] = len(seen)
            if term.prefix and len(words) == 1:
                by_length = self._by_prefix.setdefault(len(words[0]), {})
                by_length.setdefault(words[0], []).append(number)
            else:
                self._by_first.setdefault(words[0], []).append((number, words[1:], term.prefix))
        self._lengths = sorted(self._by_prefix)
        # Each literal first, then a look back past it, so that the search can skip ahead.
        whole = [_literal(w) + r"(?![^\W_])" for w in self._by_first if w.isascii()]
        starts = [_literal(p) for by in self._by_prefix.values() for p in by if p.isascii()]
        plain = "|".join(sorted([*whole, *starts], key=len, reverse=True))
        self._starts = re.compile(plain) if plain else None

    def scan(self, field: str, text: str, *, cut: bool) -> _Text:
        """Find the matches in a text, from its start, as far as a snippet may need them."""
        hits: list[_Hit] = []
        anchors = steps = 0
        stop: float = math.inf
        for word, span, after, at in self._words(text):
            if span[0] >= stop:  # past what any window can reach
                break
            if word not in self._by_first and not self._lengths:
                continue
            found, taken = self._starting(word, span, after, at)
            steps += taken
            if found:
                hits += found
                anchors += 1
                if anchors == _MAX_ANCHORS:
                    stop = found[0].start + MAX_SNIPPET_CHARS  # no window reaches further
            if len(hits) >= MAX_SNIPPET_HITS or steps >= MAX_SNIPPET_STEPS:
                break
        return _Text(field, text, cut, hits)

    def _words(self, text: str) -> Iterator[tuple[str, _Span, _Following, int]]:
        """Give the words where a match may start, folded (ASCII text: those `_starts` finds)."""
        if not text.isascii():
            yield from _each_word(text)
        elif self._starts is not None:
            folded = text.lower()
            pattern = word_pattern(folded)

            def after(end: int) -> Iterator[tuple[_Span, str]]:
                return ((m.span(), m.group()) for m in pattern.finditer(folded, end))

            for candidate in self._starts.finditer(folded):
                word = pattern.match(folded, candidate.start())  # the whole word the match starts
                assert word is not None  # noqa: S101  # a first word starts a word
                yield word.group(), word.span(), after, word.end()

    def _starting(
        self, word: str, span: _Span, after: _Following, at: int
    ) -> tuple[list[_Hit], int]:
        """Give the matches that start at a word, and how many words were compared."""
        found = []
        steps = 1
        for number, rest, prefix in self._by_first.get(word, ()):
            if not rest:
                found.append(_Hit(span[0], span[1], number, (span,)))
                continue
            spans = [span]
            last = len(rest) - 1
            for offset, ((where, following), wanted) in enumerate(
                zip(after(at), rest, strict=False)
            ):
                steps += 1
                if following != wanted and not (
                    prefix and offset == last and following.startswith(wanted)
                ):
                    break
                spans.append(where)
            if len(spans) == len(rest) + 1:
                found.append(_Hit(span[0], spans[-1][1], number, tuple(spans)))
        for length in self._lengths:
            if length > len(word):
                break
            steps += 1
            found += [
                _Hit(span[0], span[1], number, (span,))
                for number in self._by_prefix[length].get(word[:length], ())
            ]
        return found, steps


def _each_word(text: str) -> Iterator[tuple[str, _Span, _Following, int]]:
    """Give each word of any text, folded on its own, split only as far as it is asked for."""
    found = word_pattern(text).finditer(text)
    spans: list[_Span] = []
    folded: list[str] = []

    def has(count: int) -> bool:
        """Read words until there are `count`; tell whether the text holds that many."""
        while len(spans) < count:
            match = next(found, None)
            if match is None:
                return False
            spans.append(match.span())
            folded.append(fold(match.group()))
        return True

    def following(index: int) -> Iterator[tuple[_Span, str]]:
        while has(index + 2):
            index += 1
            yield spans[index], folded[index]

    index = 0
    while has(index + 1):
        yield folded[index], spans[index], following, index
        index += 1


def _literal(word: str) -> str:
    """Match a word at the start of a word: the word, then a look back past it."""
    escaped = re.escape(word)
    return escaped + r"(?<![^\W_]" + escaped + ")"


def snippet_of(result: TestResult, terms: tuple[SearchTerm, ...]) -> Snippet:
    """Cut the snippet of a result that a search with these terms found, in bounded work."""
    matcher = _Matcher(terms)
    values: list[tuple[str, str | None]] = [(field, getattr(result, field)) for field in _FIELDS]
    texts = [
        matcher.scan(field, _indexed(value), cut=len(value) > INDEXED_CHARS)
        for field, value in values
        if value
    ]
    if not texts:
        return Snippet("output", "", ())
    scored = ((window, text) for text in texts for window in _windows(text))
    best = max(scored, key=lambda pair: pair[0][0], default=None)  # the first of the best
    if best is None:  # nothing to mark: the index and this text disagree, or the match is cut off
        fallback = next((t for t in texts if t.field == "output"), texts[0])
        return _cut(fallback, 0, _extent(fallback.text, 0))
    (_, begin, end), text = best
    return _cut(text, begin, end)


def _indexed(value: str) -> str:
    """Give the part of a text that the index holds, cut as the index's own SQL cuts it.

    A text past INDEXED_CHARS is read to its next character, less its trailing run of the
    characters that are not white space among the last 64 read (SQLite's and PostgreSQL's
    `rtrim` of migration 0005): the cut word goes, and what is glued to it (`a.b.tail` cut in
    `tail`). Only the cut word went here: a snippet marked words the index did not hold.
    """
    if len(value) <= INDEXED_CHARS:
        return value
    last = value[INDEXED_CHARS - 63 : INDEXED_CHARS + 1]
    return value[: INDEXED_CHARS + 1].rstrip("".join(set(last) - _INDEX_SPACES))


_INDEX_SPACES: Final = frozenset(" \t\n\r")
"""The white space that the index's cut stops at: no other character (`\v`, U+00A0) does."""


def _extent(text: str, begin: int) -> int:
    """Find where a snippet starting at `begin` ends, on a word's end.

    It holds SNIPPET_WORDS words, or fewer when they do not fit in MAX_SNIPPET_CHARS.
    """
    limit = min(len(text), begin + MAX_SNIPPET_CHARS)
    word = word_pattern(text)
    words = list(word.finditer(text, begin, limit))
    if len(words) > SNIPPET_WORDS:
        return words[SNIPPET_WORDS - 1].end()
    if limit == len(text):
        return limit
    if len(words) > 1 and words[-1].end() == limit and _goes_on(text, limit, word):
        words.pop()  # the last word runs past the limit: leave it out
    return words[-1].end() if words else limit


def _windows(text: _Text) -> Iterator[tuple[tuple[int, int], int, int]]:
    """Score the windows that start a little before each hit: distinct terms, then hits.

    A window near the end starts earlier, so that it is full when the text is long enough.
    """
    starts = [hit.start for hit in text.hits]
    anchors = [
        hit for number, hit in enumerate(text.hits) if not number or starts[number - 1] < hit.start
    ]
    for anchor in anchors[:_MAX_ANCHORS]:
        begin = _word_start(text.text, max(0, anchor.start - _LEAD_CHARS), anchor.start)
        before = list(word_pattern(text.text).finditer(text.text, begin, anchor.start))
        if len(before) > _LEAD_WORDS:
            begin = before[-_LEAD_WORDS].start()
        end = _extent(text.text, begin)
        if end == len(text.text) and begin > 0:
            earlier = _word_start(text.text, max(0, end - MAX_SNIPPET_CHARS), anchor.start)
            if _extent(text.text, earlier) >= anchor.end:
                begin, end = earlier, _extent(text.text, earlier)
        if anchor.end > end:  # a long word the words before it pushed out: it leads instead
            begin, end = anchor.start, _extent(text.text, anchor.start)
        inside = text.hits[bisect.bisect_left(starts, begin) : bisect.bisect_left(starts, end)]
        fitting = [hit for hit in inside if _shown(hit, begin, end)]
        yield (len({hit.term for hit in fitting}), len(fitting)), begin, end


def _shown(hit: _Hit, begin: int, end: int) -> bool:
    """Tell whether a snippet of [begin, end) shows `hit`: whole, or leading it, cut at `end`.

    A word longer than a snippet (a run of CJK, a hash, base64) is shown as far as it fits:
    it was marked nowhere, and its snippet often held other text.
    """
    return begin <= hit.start and (hit.end <= end or hit.start == begin < end)


def _word_start(text: str, position: int, at_most: int) -> int:
    """Find the start of the first whole word at or after `position`, but not after `at_most`."""
    if position == 0:
        return 0
    word = word_pattern(text)
    match = word.search(text, position)
    if match is not None and _goes_on(text, match.start(), word):
        match = word.search(text, match.end())  # the match is the rest of a word: skip it
    return at_most if match is None else min(match.start(), at_most)


def _goes_on(text: str, at: int, word: re.Pattern[str]) -> bool:
    """Tell whether a word runs on across `at`: its character before and its character at `at`.

    A mark belongs to the word it is written on, though no word starts with one: so the word
    is looked for before the marks that end at `at` (`cafe` + U+0301, cut after the `e` or
    after the mark).
    """
    if at <= 0:
        return False
    start = at - 1
    marks = None if text.isascii() else marks_pattern().match(text[start::-1])  # read backwards
    if marks is not None:
        start -= marks.end()
    # Read no further than `at`: a word of megabytes (CJK has no spaces) took 0.2 s a MB.
    found = word.match(text, start, at + 1) if start >= 0 else None
    return found is not None and found.end() > at


def _off_marks(source: str, begin: int, end: int) -> int:
    """Move `end` back before a letter whose marks run on past it: a long word cut at the limit.

    Cut between them, a snippet showed `a` where the text has `á`, and marked it so.
    """
    if end >= len(source) or source.isascii() or not _is_mark(source, end):
        return end
    back = end - 1  # back over the marks before `end`, then the letter they are written on
    while back > begin and _is_mark(source, back):
        back -= 1
    return back if back > begin else end


def _is_mark(source: str, at: int) -> bool:
    """Tell whether the character at `at` is a mark, which goes with the letter before it."""
    marks = marks_pattern().match(source, at, at + 1)
    return marks is not None and marks.end() > at


_OPENS: Final = {
    **dict.fromkeys("\u202a\u202b\u202d\u202e", "\u202c"),
    **dict.fromkeys("\u2066\u2067\u2068", "\u2069"),
}
"""The marks that open a direction (embeddings, overrides, isolates), with what closes each."""
_CLOSES_ISOLATE: Final = "\u2069"


def _closers(text: str) -> str:
    """Give what closes the directions `text` opens and leaves open, innermost first.

    A snippet that kept an override and cut its closing mark off turned the rest of the
    page's line around.
    """
    if text.isascii():
        return ""
    open_marks: list[str] = []
    for character in text:
        if character in _OPENS:
            open_marks.append(_OPENS[character])
        elif character == _CLOSES_ISOLATE and character in open_marks:
            # It closes its isolate and what was opened inside it (UAX #9, X6a).
            del open_marks[len(open_marks) - 1 - open_marks[::-1].index(character) :]
        elif open_marks and character == open_marks[-1]:
            open_marks.pop()
    return "".join(reversed(open_marks))


def _cut(text: _Text, begin: int, end: int) -> Snippet:
    """Cut [begin, end) out of the text, collapse white space, and mark the hits in it."""
    source = text.text
    end = _off_marks(source, begin, end)
    marked = sorted(
        {
            (word_start, min(word_end, end))
            for hit in text.hits
            if _shown(hit, begin, end)
            for word_start, word_end in hit.words
            if word_start < end
        }
    )
    pieces: list[str] = []
    highlights: list[tuple[int, int]] = []
    length, position = 0, begin
    for word_start, word_end in marked:
        pieces += [_SPACES.sub(" ", source[position:word_start]), source[word_start:word_end]]
        length += len(pieces[-2])
        highlights.append((length, length + word_end - word_start))
        length += word_end - word_start
        position = word_end
    pieces.append(_SPACES.sub(" ", source[position:end]))
    body = "".join(pieces)
    stripped = body.lstrip(" ")
    lead = _ELLIPSIS if begin > 0 else ""
    tail = _ELLIPSIS if end < len(source) or text.cut else ""
    shift = len(lead) - (len(body) - len(stripped))
    shown = stripped.rstrip(" ")
    return Snippet(
        text.field,
        lead + shown + _closers(shown) + tail,
        tuple((a + shift, b + shift) for a, b in highlights),
    )
