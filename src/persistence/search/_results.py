"""Searching test results: ranked matches, each with a snippet, one page at a time."""

from __future__ import annotations

from typing import Final

import attrs

from persistence._backend import Engine
from persistence._database_value import require_database
from persistence._guards import argument, count, instance_of, of_type
from persistence._loans import borrow
from persistence._loop import map_in_slices, share_loop
from persistence._paging import Page, continued_filter, page_limit
from persistence._rows import result_from_row, result_texts
from persistence.database import Database
from persistence.exceptions import ValidationError
from persistence.models import TestResult
from persistence.results import ResultFilter, wanted_values
from persistence.search._language import parse_search, words_ready
from persistence.search._snippets import Snippet, snippet_of

DEFAULT_SEARCH_LIMIT: Final = 20
"""How many matches a page of search results holds unless told otherwise."""


@attrs.frozen
class SearchHit:
    """One result that a search found, how well it matched, and where."""

    result: TestResult
    score: float
    """Higher is better. SQLite's is bm25 and PostgreSQL's ts_rank_cd: compare scores of one
    search on one engine only."""
    snippet: Snippet


def _search_text(instance: object, field: attrs.Attribute[str], value: str) -> None:
    """Validate a cursor's search text: one that `search_results` takes, as it made the cursor."""
    try:
        parse_search(value)
    except ValidationError as error:
        raise ValidationError(type(instance).__name__, field.name, error.reason) from None


@attrs.frozen
class SearchCursor:
    """Where the next page of a search starts: after `offset` matches, in rank order.

    It carries the search text and the filter it was made with: `search_results` refuses it
    with other ones, and uses its filter when given none. Ranks are computed again for each
    page, so writes between two pages may repeat or skip matches: on SQLite even writes of
    results that do not match, which change bm25's statistics (docs/SEARCH.md, Pages).
    """

    offset: int = attrs.field(validator=count)
    text: str = attrs.field(validator=_search_text)
    where: ResultFilter = attrs.field(factory=ResultFilter, validator=instance_of(ResultFilter))


async def search_results(
    db: Database,
    text: str,
    where: ResultFilter | None = None,
    *,
    limit: int = DEFAULT_SEARCH_LIMIT,
    after: SearchCursor | None = None,
) -> Page[SearchHit, SearchCursor]:
    """Return the best matches of a search over results' output and error messages.

    `text` is in the search language (see `persistence.search`): words that must all match,
    `"phrases"`, `prefix*` and `-excluded` terms. `where` narrows the results as it does for
    `list_results`. Pass the page's `next_cursor` as `after`, with the same text, to get the
    next page. Text that holds no word to search for raises ValidationError.
    """
    text = argument("SearchQuery", "text", str, text)  # before words_ready reads it
    await words_ready([text])
    query = parse_search(text)
    limit = page_limit("SearchQuery", limit)
    if after is not None:
        after = of_type(SearchCursor, after, "after")
        if after.text != text:
            raise ValidationError(
                "SearchCursor",
                "text",
                f"the cursor belongs to the search {after.text!r}, not {text!r}",
            )
    where = continued_filter(
        ResultFilter, "SearchCursor", where, None if after is None else after.where
    )
    skip = 0 if after is None else after.offset
    match = query.fts5() if require_database(db).engine is Engine.SQLITE else query.tsquery()
    async with borrow(db) as conn:
        rows = await db.queries.search_test_results(
            conn,
            match=match,
            statuses=wanted_values(where.status, where.statuses),
            test_types=wanted_values(where.test_type, where.test_types),
            created_from=where.created_from,
            created_until=where.created_until,
            metadata=where.metadata,
            skip=skip,
            page_size=limit,
        )
    await words_ready(field for row in rows for field in (row.output, row.error_message))
    # Mapped as the listings map results: a row of megabytes in a worker thread.
    results = await map_in_slices(result_from_row, rows, result_texts)
    hits = []
    for row, result in zip(rows, results, strict=True):  # a snippet costs up to a few ms
        hits.append(SearchHit(result, row.score, snippet_of(result, query.terms)))
        await share_loop()
    next_cursor = SearchCursor(skip + len(hits), text, where) if len(hits) == limit else None
    return Page(tuple(hits), next_cursor)
