"""Test results: save, find, filter page by page, summarise and expire them."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Final

import attrs
from attrs.converters import optional

from persistence._guards import MAX_INT, as_utc, key_id, of_type, row_id, utc_instant
from persistence._rows import SLICE, map_in_slices, result_from_row, result_params, with_id
from persistence.database import Database, connection, wrote
from persistence.exceptions import NotFoundError, ValidationError
from persistence.models import TestResult, TestStatus, TestType, as_test_status, as_test_type

if TYPE_CHECKING:
    from persistence.queries import InsertTestResultsParams

__all__ = [
    "TABLE",
    "Page",
    "PageCursor",
    "ResultFilter",
    "TypeStats",
    "all_results",
    "delete_result",
    "delete_results_before",
    "find_result",
    "get_result",
    "list_results",
    "result_stats",
    "results_by_type",
    "save_result",
    "save_results",
]

TABLE = "test_results"
"""The table these functions read and write; caches key their invalidation on it."""

MAX_PAGE_SIZE: Final = 10_000
"""The largest page `list_results` gives; `all_results` reads page by page at this size."""

_END_OF_TIME: Final = dt.datetime.max.replace(tzinfo=dt.UTC)


@attrs.frozen(kw_only=True)
class ResultFilter:
    """Which results to list: each field that is set narrows the listing, in SQL."""

    test_type: TestType | None = attrs.field(default=None, converter=optional(as_test_type))
    status: TestStatus | None = attrs.field(default=None, converter=optional(as_test_status))
    created_from: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Inclusive lower bound on `created_at`."""
    created_until: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Exclusive upper bound on `created_at`."""


@attrs.frozen
class PageCursor:
    """Where the next page starts: just after the last result of the page before."""

    created_at: dt.datetime = attrs.field(converter=as_utc)
    id: int = attrs.field(validator=row_id)


@attrs.frozen
class Page:
    """One page of results, newest first, and the cursor of the next page, if any."""

    items: tuple[TestResult, ...]
    next_cursor: PageCursor | None


@attrs.frozen
class TypeStats:
    """How the results of one test type went."""

    test_type: TestType
    counts: Mapping[TestStatus, int]
    """Number of results per status; statuses with none are absent."""
    total: int
    mean_time: float
    max_time: float


async def find_result(db: Database, result_id: int) -> TestResult | None:
    """Return the result with this id, or None."""
    result_id = key_id("TestResult", result_id)
    async with connection(db) as conn:
        row = await db.queries.get_test_result(conn, id=result_id)
    return None if row is None else result_from_row(row)


async def get_result(db: Database, result_id: int) -> TestResult:
    """Return the result with this id, or raise NotFoundError."""
    result = await find_result(db, result_id)
    if result is None:
        raise NotFoundError("TestResult", result_id)
    return result


async def list_results(
    db: Database,
    where: ResultFilter | None = None,
    *,
    limit: int = 100,
    after: PageCursor | None = None,
) -> Page:
    """Return one page of results, newest first, filtered in SQL.

    Pass the page's `next_cursor` as `after` to get the page that follows it. Pages are
    keyset pages: rows written meanwhile neither repeat nor go missing.
    """
    if type(limit) is not int or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(
            "ResultFilter", "limit", f"must be from 1 to {MAX_PAGE_SIZE}, got {limit!r}"
        )
    where = ResultFilter() if where is None else of_type(ResultFilter, where)
    if after is not None:
        of_type(PageCursor, after)
    cursor_at, cursor_id = (
        (_END_OF_TIME, MAX_INT) if after is None else (after.created_at, after.id)
    )
    async with connection(db) as conn:
        rows = [
            row
            async for row in db.queries.list_test_results(
                conn,
                test_type=None if where.test_type is None else where.test_type.value,
                status=None if where.status is None else where.status.value,
                created_from=where.created_from,
                created_until=where.created_until,
                cursor_created_at=cursor_at,
                cursor_id=cursor_id,
                page_size=limit,
            )
        ]
    items = tuple(await map_in_slices(result_from_row, rows))
    next_cursor = None
    if len(items) == limit:
        last = items[-1]
        assert last.id is not None  # noqa: S101  # rows read from the table have ids
        next_cursor = PageCursor(last.created_at, last.id)
    return Page(items, next_cursor)


async def all_results(db: Database, where: ResultFilter | None = None) -> list[TestResult]:
    """Return every result (matching `where`), newest first."""
    results: list[TestResult] = []
    cursor: PageCursor | None = None
    while True:
        page = await list_results(db, where, limit=MAX_PAGE_SIZE, after=cursor)
        results.extend(page.items)
        if page.next_cursor is None:
            return results
        cursor = page.next_cursor


async def results_by_type(db: Database, test_type: TestType) -> list[TestResult]:
    """Return every result of one test type, newest first."""
    return await all_results(db, ResultFilter(test_type=test_type))


async def save_result(db: Database, result: TestResult) -> TestResult:
    """Insert a result without an id, or overwrite the stored one with its id.

    Returns the result as stored, with its id. Overwriting an id that does not exist
    raises NotFoundError.
    """
    params = result_params(of_type(TestResult, result))
    async with connection(db) as conn:
        if result.id is None:
            new_id = await db.queries.insert_test_result(conn, **params)
        else:
            changed = await db.queries.update_test_result(conn, id=result.id, **params)
    await wrote(db, TABLE)
    if result.id is None:
        return with_id(result, new_id)
    if changed == 0:
        raise NotFoundError("TestResult", result.id)
    return result


async def save_results(db: Database, results: Iterable[TestResult]) -> int:
    """Insert many new results in one batch, all or none; return how many.

    Results must not have ids yet: use `save_result` to overwrite stored ones.
    """
    given: object = results  # callers without type checking may pass anything
    if not isinstance(given, Iterable) or isinstance(given, str | bytes):
        raise ValidationError(
            "TestResult",
            "results",
            f"expected an iterable of TestResult, got {type(results).__name__}",
        )
    rows: list[InsertTestResultsParams] = []
    for index, result in enumerate(results):
        if index and index % SLICE == 0:
            await asyncio.sleep(0)  # converting a big batch would hold the loop otherwise
        of_type(TestResult, result, index)
        if result.id is not None:
            raise ValidationError(
                "TestResult",
                "id",
                f"save_results inserts new results; item {index} has id {result.id}",
            )
        rows.append(result_params(result))
    if rows:
        async with connection(db) as conn:
            await db.queries.insert_test_results(conn, rows)
        await wrote(db, TABLE)
    return len(rows)


async def delete_result(db: Database, result_id: int) -> bool:
    """Delete the result with this id; return whether there was one."""
    result_id = key_id("TestResult", result_id)
    async with connection(db) as conn:
        deleted = await db.queries.delete_test_result(conn, id=result_id)
    await wrote(db, TABLE)
    return deleted > 0


async def delete_results_before(db: Database, cutoff: dt.datetime) -> int:
    """Retention: delete every result created before `cutoff`; return how many."""
    async with connection(db) as conn:
        deleted = await db.queries.delete_test_results_before(
            conn, cutoff=utc_instant("TestResult", "cutoff", cutoff)
        )
    await wrote(db, TABLE)
    return deleted


async def result_stats(db: Database) -> dict[TestType, TypeStats]:
    """Per test type: counts per status, and the mean and longest execution time."""
    grouped: dict[TestType, list[tuple[TestStatus, int, float, float]]] = {}
    async with connection(db) as conn:
        async for row in db.queries.test_result_stats(conn):
            grouped.setdefault(TestType(row.test_type), []).append(
                (TestStatus(row.status), row.result_count, row.total_time, row.max_time)
            )
    stats = {}
    for test_type, groups in grouped.items():
        total = sum(count for _, count, _, _ in groups)
        stats[test_type] = TypeStats(
            test_type=test_type,
            counts={status: count for status, count, _, _ in groups},
            total=total,
            mean_time=math.fsum(time for _, _, time, _ in groups) / total,
            max_time=max(longest for _, _, _, longest in groups),
        )
    return stats
