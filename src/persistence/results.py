"""Test results: save, find, filter page by page, summarise and expire them."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, Protocol, TypedDict

import attrs
from attrs.converters import optional

from persistence._backend import Engine, key_detail
from persistence._blocks import every_item_in_one_state
from persistence._database_value import require_database
from persistence._guards import (
    LAST_INSTANT,
    MAX_INT,
    as_metadata_subset,
    as_utc,
    instance_of,
    key_id,
    members_of,
    of_type,
    row_id,
    utc_instant,
    with_method,
)
from persistence._interface import JsonObject
from persistence._loans import borrow, run_query
from persistence._loop import drop_in_slices, gave_back, loop_held, share_loop
from persistence._paging import (
    END_OF_TIME,
    MAX_PAGE_SIZE,
    READ_PAGE,
    START_OF_TIME,
    Page,
    continued_filter,
    page_limit,
    page_of,
    stored_id,
    upper_bounds,
)
from persistence._rows import (
    params_now,
    params_off_loop,
    result_from_row,
    result_params,
    result_texts,
    saved_params,
    with_id,
)
from persistence.database import Database, transaction
from persistence.exceptions import ConflictError, NotFoundError, ValidationError
from persistence.models import TestResult, TestStatus, TestType, as_test_status, as_test_type

if TYPE_CHECKING:
    from persistence.queries import InsertTestResultsParams, TestResultsRow, TestResultStatsRow

__all__ = [
    "MAX_PAGE_SIZE",
    "TABLE",
    "ArtifactSweep",
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

RETENTION_FIRST_BATCH: Final = 8
"""How many rows the first batch of `delete_results_before` deletes."""
RETENTION_MAX_BATCH: Final = 2_000
"""How many rows one batch of `delete_results_before` deletes at most."""
RETENTION_BATCH_SECONDS: Final = 0.004
"""How long one retention batch's statement should take: rows cost from tens of microseconds
to half a millisecond each (the full-text index reads their text again), so time sizes them."""
RETENTION_PAUSE: Final = 1.0
"""On SQLite, outside a transaction: how long retention leaves the write lock free after
a batch, as a multiple of the time the batch held it, so that other processes get it."""
RETENTION_MAX_PAUSE: Final = 0.05
"""The longest pause between two retention batches, in seconds: a batch that waited long
for the lock (behind another writer) did not hold it that long."""

if TYPE_CHECKING:
    # mypy's attrs plugin takes a field's __init__ type from a named converter only.

    def as_test_types(value: Iterable[TestType] | None, /) -> frozenset[TestType] | None:
        """Convert test types, or their values, to a frozenset of members."""

    def as_statuses(value: Iterable[TestStatus] | None, /) -> frozenset[TestStatus] | None:
        """Convert statuses, or their values, to a frozenset of members."""

else:
    as_test_types = members_of(TestType)
    as_statuses = members_of(TestStatus)


def _compared_metadata(metadata: JsonObject | None) -> object:
    """Give what two metadata filters compare by: numbers by value, a bool apart from 1 and 0.

    Python's `True == 1` made a cursor of `{"flaky": 1}` go on under `{"flaky": True}`.
    """
    if metadata is None:
        return None
    return {key: (type(value) is bool, value) for key, value in metadata.items()}


@attrs.frozen(kw_only=True)
class ResultFilter:
    """Which results to list or search: a result must match every field that is set, in SQL."""

    test_type: TestType | None = attrs.field(default=None, converter=optional(as_test_type))
    """One test type."""
    status: TestStatus | None = attrs.field(default=None, converter=optional(as_test_status))
    """One status."""
    test_types: frozenset[TestType] | None = attrs.field(default=None, converter=as_test_types)
    """Any of these test types; an empty set matches nothing."""
    statuses: frozenset[TestStatus] | None = attrs.field(default=None, converter=as_statuses)
    """Any of these statuses; an empty set matches nothing."""
    metadata: JsonObject | None = attrs.field(
        default=None, converter=as_metadata_subset, eq=_compared_metadata, hash=False
    )
    """Keys the metadata must hold, each with an equal scalar value: `{"solution": "a.cpp"}`.

    Numbers compare by value (1 equals 1.0), a bool is not a number; `{}` becomes None.
    """
    created_from: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Inclusive lower bound on `created_at`."""
    created_until: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Exclusive upper bound on `created_at`."""


@attrs.frozen
class PageCursor:
    """Where the next page starts: after the last result of the page before, with its filter."""

    created_at: dt.datetime = attrs.field(converter=as_utc)
    id: int = attrs.field(validator=row_id)
    where: ResultFilter = attrs.field(factory=ResultFilter, validator=instance_of(ResultFilter))


@attrs.frozen
class TypeStats:
    """How the results of one test type went."""

    test_type: TestType
    counts: Mapping[TestStatus, int]
    """Number of results per status; statuses with none are absent."""
    total: int
    mean_time: float
    """The mean execution time, in seconds. Each engine sums a status's times in SQL, in the
    order its plan reads the rows, and floats added in another order round otherwise: the
    last digits may differ between engines, or between plans, for the same rows."""
    max_time: float


async def find_result(db: Database, result_id: int) -> TestResult | None:
    """Return the result with this id, or None."""
    result_id = key_id("TestResult", result_id)
    row = await run_query(db, lambda conn: db.queries.get_test_result(conn, id=result_id))
    return None if row is None else result_from_row(row)


async def get_result(db: Database, result_id: int) -> TestResult:
    """Return the result with this id, or raise NotFoundError."""
    # find_result's steps, without its coroutine: a point read pays for each.
    result_id = key_id("TestResult", result_id)
    row = await run_query(db, lambda conn: db.queries.get_test_result(conn, id=result_id))
    if row is None:
        raise NotFoundError("TestResult", result_id)
    return result_from_row(row)


async def list_results(
    db: Database,
    where: ResultFilter | None = None,
    *,
    limit: int = 100,
    after: PageCursor | None = None,
) -> Page[TestResult, PageCursor]:
    """Return one page of results, newest first, filtered in SQL.

    Pass the page's `next_cursor` as `after` for the next page; the cursor keeps the filter,
    so `where` may be left out, and refuses another. Rows inserted meanwhile neither repeat
    nor go missing; a row saved again meanwhile at another time moves, as keyset pages do: to
    a page already read (it repeats) or to one passed (it is missed).
    """
    limit = page_limit("ResultFilter", limit)
    cursor_where = None if after is None else of_type(PageCursor, after, "after").where
    where = continued_filter(ResultFilter, "PageCursor", where, cursor_where)
    cursor_at, cursor_id = (END_OF_TIME, MAX_INT) if after is None else (after.created_at, after.id)
    rows = await _listing(db, where, cursor_at, cursor_id, limit)
    return await page_of(
        rows,
        result_from_row,
        limit,
        lambda last: PageCursor(last.created_at, stored_id(last), where),
        result_texts,
    )


class _Bounds(TypedDict):
    created_from: dt.datetime
    cursor_created_at: dt.datetime
    cursor_id: int
    page_size: int


def wanted_values(
    one: TestType | TestStatus | None, several: frozenset[TestType] | frozenset[TestStatus] | None
) -> list[str] | None:
    """Give the values (sorted, unique) a field may have under `one` and `several`, or None."""
    if several is None:
        return None if one is None else [one.value]
    values = {member.value for member in several}
    return sorted(values if one is None else values & {one.value})


def _listing(
    db: Database, where: ResultFilter, cursor_at: dt.datetime, cursor_id: int, limit: int
) -> Awaitable[list[TestResultsRow]]:
    """Run the listing whose index suits the most selective filter: metadata, status, type, time."""
    cursor_at, cursor_id = upper_bounds(where.created_until, cursor_at, cursor_id)
    bounds: _Bounds = {
        "created_from": START_OF_TIME if where.created_from is None else where.created_from,
        "cursor_created_at": cursor_at,
        "cursor_id": cursor_id,
        "page_size": limit,
    }
    statuses = wanted_values(where.status, where.statuses)
    test_types = wanted_values(where.test_type, where.test_types)
    queries = require_database(db).queries
    if where.metadata is not None:
        metadata = where.metadata
        return run_query(
            db,
            lambda conn: queries.list_test_results_by_metadata(
                conn, metadata=metadata, statuses=statuses, test_types=test_types, **bounds
            ),
        )
    if statuses is not None:
        return run_query(
            db,
            lambda conn: queries.list_test_results_by_status(
                conn, statuses=statuses, test_types=test_types, **bounds
            ),
        )
    if test_types is not None:
        return run_query(
            db,
            lambda conn: queries.list_test_results_by_type(conn, test_types=test_types, **bounds),
        )
    return run_query(db, lambda conn: queries.list_test_results(conn, **bounds))


async def all_results(db: Database, where: ResultFilter | None = None) -> list[TestResult]:
    """Return every result (matching `where`), newest first."""
    return await every_item_in_one_state(
        db, lambda seen, after: list_results(seen, where, limit=READ_PAGE, after=after)
    )


async def results_by_type(db: Database, test_type: TestType) -> list[TestResult]:
    """Return every result of one test type, newest first."""
    return await all_results(db, ResultFilter(test_type=test_type))


async def save_result(db: Database, result: TestResult) -> TestResult:
    """Insert a result without an id or overwrite the stored one (else NotFoundError); give it."""
    result = of_type(TestResult, result, "result")
    params = await saved_params(result, result_params, result.metadata)
    if result.id is None:
        new_id = await run_query(db, lambda conn: db.queries.insert_test_result(conn, **params))
        return with_id(result, new_id)
    result_id = result.id
    changed = await run_query(
        db, lambda conn: db.queries.update_test_result(conn, id=result_id, **params)
    )
    if changed == 0:
        raise NotFoundError("TestResult", result.id)
    return result


async def save_results(db: Database, results: Iterable[TestResult]) -> int:
    """Insert many new results (without ids) in one batch, all or none; return how many."""
    given: object = results  # callers without type checking may pass anything
    if not isinstance(given, Iterable) or isinstance(given, str | bytes):
        raise ValidationError(
            "TestResult",
            "results",
            f"expected an iterable of TestResult, got {type(results).__name__}",
        )
    rows: list[InsertTestResultsParams] = []
    first_of: dict[tuple[int, str], int] = {}  # (run_id, test_id): the item that holds it
    for index, result in enumerate(results):
        if loop_held():  # each row's metadata is checked again, up to 32 kB of it on the loop
            await share_loop()
        of_type(TestResult, result, "results", index)
        if result.id is not None:
            raise ValidationError(
                "TestResult",
                "id",
                f"save_results inserts new results; item {index} has id {result.id}",
            )
        if result.run_id is not None and result.test_id is not None:
            _not_repeated(first_of, (result.run_id, result.test_id), index)
        now = params_now(result, result_params, result.metadata)
        # Else large, or to be looked at closely: in a worker thread, not looked at again here.
        rows.append(now if now is not None else await params_off_loop(result, result_params))
    count = len(rows)
    if rows:
        await run_query(db, lambda conn: db.queries.insert_test_results(conn, rows))
        await drop_in_slices(
            rows
        )  # tens of thousands of rows' values, freed in one go, held it too
    return count


def _not_repeated(first_of: dict[tuple[int, str], int], pair: tuple[int, str], index: int) -> None:
    """Refuse a batch's second result for one test of a run, naming both, before any write.

    The unique index would refuse it too, at the insert, naming the key but neither item.
    """
    first = first_of.setdefault(pair, index)
    if first != index:
        run_id, test_id = pair
        key = key_detail("run_id, test_id", f"{run_id}, {test_id}", "is in the batch twice")
        raise ConflictError(
            f"results[{index}] repeats the test of results[{first}] (a run holds each test"
            f" id once): {key}",
            constraint="test_results_run_test_idx",
        )


async def delete_result(db: Database, result_id: int) -> bool:
    """Delete the result with this id; return whether there was one."""
    result_id = key_id("TestResult", result_id)
    return await run_query(db, lambda conn: db.queries.delete_test_result(conn, id=result_id)) > 0


class ArtifactSweep(Protocol):
    """Files that results name, removed once no result does: a `CounterexampleStore`."""

    async def sweep(self, db: Database) -> int:
        """Remove the files that no result of `db` names any more; give how many."""


async def delete_results_before(
    db: Database, cutoff: dt.datetime, *, artifacts: ArtifactSweep | None = None
) -> int:
    """Retention: delete every result created before `cutoff`; return how many.

    Given `artifacts` (a `CounterexampleStore`), it then removes the files no result names any
    more, never one a result still names, and leaves one in use for the next call (logged, not
    waited for); that needs its own commits, so not in `transaction()`.
    The rows go in short batches, oldest first, each its own transaction outside
    `transaction()`: other writers wait milliseconds at most, and on SQLite no batch holds the
    loop long. A crash or cancellation part way leaves some old rows, whole: call it again.
    Inside `transaction()` the batches are kept or rolled back with it. A cutoff at the last
    instant (`datetime.max` in UTC), reserved for stored times, deletes every result.
    """
    cutoff = LAST_INSTANT if _end_of_time(cutoff) else utc_instant("TestResult", "cutoff", cutoff)
    if artifacts is not None:
        with_method("TestResult", "artifacts", artifacts, "sweep", "a CounterexampleStore")
    if require_database(db).in_transaction and artifacts is not None:
        raise ValidationError(
            "TestResult",
            "artifacts",
            "removing files no result names runs outside transaction(): a rollback would "
            "bring back results whose files were gone",
        )
    deleted = await _delete_before(db, cutoff)
    if artifacts is not None:
        try:
            await artifacts.sweep(db)
        except BaseException as error:  # the rows are gone: the count is told all the same
            error.add_note(f"delete_results_before deleted {deleted} results before this")
            raise
    return deleted


def _end_of_time(value: object) -> bool:
    """Tell whether `value` is the last instant, reserved for a stored time: every one is before.

    A result may be stored at the instant just before it, which no other cutoff reaches.
    """
    with contextlib.suppress(ValueError, TypeError, OverflowError):  # a tzinfo of its own
        return (
            isinstance(value, dt.datetime)
            and value.utcoffset() is not None
            and value == LAST_INSTANT
        )
    return False


async def _delete_before(db: Database, cutoff: dt.datetime) -> int:
    """Delete the results created before `cutoff` in bounded batches; give how many."""
    size = RETENTION_FIRST_BATCH
    total = 0
    left: int | None = None  # the oldest result found left after a batch that deleted none
    while True:
        started = time.perf_counter()
        batch: contextlib.AbstractAsyncContextManager[Database] = (
            contextlib.nullcontext(db) if db.in_transaction else transaction(db)
        )
        async with batch as tx:
            statement_started = time.perf_counter()
            async with borrow(tx) as conn:
                deleted = await tx.queries.delete_test_results_before_batch(
                    conn, cutoff=cutoff, batch_size=size
                )
            spent = time.perf_counter() - statement_started
        held = time.perf_counter() - started  # the lock, from BEGIN to COMMIT
        if deleted == 0:
            # None of the rows picked: on PostgreSQL, others may have deleted them while this
            # waited for their locks (another retention, plain SQL), though older ones are left.
            # The same one left twice is one no DELETE takes (a trigger of the user's skips it).
            found = await run_query(
                db, lambda conn: db.queries.first_test_result_before(conn, cutoff=cutoff)
            )
            if found is None or found.id == left:
                return total
            left = found.id
            continue
        total += deleted
        size = _next_batch(size, spent)
        if not db.in_transaction and db.engine is Engine.SQLITE:
            # One writer at a time per file: leave the lock free a while for the others.
            await asyncio.sleep(min(held * RETENTION_PAUSE, RETENTION_MAX_PAUSE))
            gave_back()
        else:
            await share_loop()


def _next_batch(size: int, took: float) -> int:
    """Size the next retention batch so that one takes about RETENTION_BATCH_SECONDS."""
    if took < RETENTION_BATCH_SECONDS / 2:
        return min(size * 2, RETENTION_MAX_BATCH)
    if took > RETENTION_BATCH_SECONDS * 2:
        return max(size // 2, 1)
    return size


async def result_stats(db: Database) -> dict[TestType, TypeStats]:
    """Per test type: counts per status, and the mean and longest execution time."""
    grouped: dict[TestType, list[TestResultStatsRow]] = {}
    for row in await run_query(db, require_database(db).queries.test_result_stats):
        grouped.setdefault(TestType(row.test_type), []).append(row)
    stats = {}
    for test_type, rows in grouped.items():
        total = sum(row.result_count for row in rows)
        stats[test_type] = TypeStats(
            test_type=test_type,
            counts={TestStatus(row.status): row.result_count for row in rows},
            total=total,
            mean_time=math.fsum(row.total_time for row in rows) / total,
            max_time=max(row.max_time for row in rows),
        )
    return stats
