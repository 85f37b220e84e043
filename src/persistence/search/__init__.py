"""Full-text search over the output and error messages of test results, on both engines.

`search_results(db, "segmentation fault solve", where=ResultFilter(...))` returns the best
matches first, each with a snippet whose matched words are marked. The search language:

- `word`: the word, in any case (accents are kept); every such term must match;
- `"a phrase"`: words that follow one another, whatever separates them;
- `prefix*`: a word that starts with `prefix`; after a phrase, its last word is the prefix;
- `-word`, `-"a phrase"`: a term that must not appear.

A word is a run of letters, digits and the marks written on them: `solve.cpp` is the phrase
`"solve cpp"`, `x²` the word `x`. SQLite
keeps an FTS5 index and ranks by bm25; PostgreSQL keeps a tsvector column with a GIN index
and ranks by ts_rank_cd. Both read the same words, so a search finds the same results on
each (docs/SEARCH.md says where they may differ).
"""

from persistence.search._language import (
    MAX_SEARCH_CHARS,
    MAX_SEARCH_TERMS,
    MAX_WORD_BYTES,
    SearchQuery,
    SearchTerm,
    parse_search,
)
from persistence.search._results import SearchCursor, SearchHit, search_results
from persistence.search._snippets import INDEXED_CHARS, Snippet

__all__ = [
    "INDEXED_CHARS",
    "MAX_SEARCH_CHARS",
    "MAX_SEARCH_TERMS",
    "MAX_WORD_BYTES",
    "SearchCursor",
    "SearchHit",
    "SearchQuery",
    "SearchTerm",
    "Snippet",
    "parse_search",
    "search_results",
]
