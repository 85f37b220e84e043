"""The one case fold both engines search with, and its use on the search text and snippets.

SQLite's FTS5 (Unicode 6.1 tables) and PostgreSQL's 'simple' configuration (the C library's
lower()) disagree on 13 common letters. Migration 0005 makes both read them as this table
says, the search text goes through it before it reaches an engine, and snippets compare words
by full case folding, which reads each the same way. Letters paired after Unicode 6.1 still
fold on PostgreSQL only (docs/SEARCH.md lists them).
"""

from __future__ import annotations

from typing import Final

# micro sign, long s, final sigma, the Greek symbol letters, long s with dot, prosgegrammeni, İ
FOLDED_FROM: Final = (
    "\u00b5\u017f\u03c2\u03d0\u03d1\u03d5\u03d6\u03f0\u03f1\u03f5\u1e9b\u1fbe\u0130"
)
"""The letters that one engine's fold would keep apart from the letter it is read as."""

# mu, s, sigma, the Greek letters, s with dot above, iota, i
FOLDED_TO: Final = "\u03bc\u0073\u03c3\u03b2\u03b8\u03c6\u03c0\u03ba\u03c1\u03b5\u1e61\u03b9\u0069"
"""What each letter of FOLDED_FROM is read as, on both engines."""

_TABLE: Final = str.maketrans(FOLDED_FROM, FOLDED_TO)


def fold_word(word: str) -> str:
    """Map the letters the engines fold differently to the one both read; each folds the rest."""
    return word.translate(_TABLE)


def fold(word: str) -> str:
    """Fold a word's case to compare it in a snippet: full case folding, and a dotted I as i.

    Full folding makes `ΟΔΟΣ`, `οδος` and `οδοσ` one word, and `ß` the same as `ss`; it
    reads every letter of FOLDED_FROM as the index does, so a snippet may mark a little more
    than the index matched, never less.
    """
    return word.casefold().replace("i\u0307", "i")
