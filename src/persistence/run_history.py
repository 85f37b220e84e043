"""The questions asked of stored runs: what changed, what is flaky, what got slower.

Each question is one named SQL query, answered the same way on both engines. docs/HISTORY.md
defines each one and its terms: failing statuses, durations of passed results only, and
nearest-rank percentiles.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import sys
from fractions import Fraction
from typing import TYPE_CHECKING, Final

import attrs

from persistence._guards import (
    MAX_INT,
    as_utc,
    finite_amount,
    key_id,
    nonempty_key,
    nonempty_text,
    of_type,
    row_id,
    utc_instant,
)
from persistence._loans import borrow, run_query
from persistence._loop import map_in_slices
from persistence._paging import END_OF_TIME, START_OF_TIME, Page, page_limit, page_of, stored_id
from persistence._rows import TEST_STATUSES, finite_time, found, result_from_row, result_texts
from persistence.database import Database, read_snapshot
from persistence.exceptions import ValidationError
from persistence.models import TestResult, TestStatus
from persistence.runs import find_run

if TYPE_CHECKING:
    from persistence.queries import (
        CompareRunsRow,
        CounterexamplesRow,
        FlakyTestsRow,
        SlowestTestsRow,
    )

__all__ = [
    "DEFAULT_SLOWER_FLOOR",
    "DEFAULT_SLOWER_RATIO",
    "FAILING",
    "Change",
    "Counterexample",
    "DurationFigures",
    "FlakyTest",
    "RunComparison",
    "SlowTest",
    "TestChange",
    "TestHistoryCursor",
    "compare_runs",
    "counterexamples",
    "duration_figures",
    "flaky_tests",
    "list_test_history",
    "slowest_tests",
]

DEFAULT_SLOWER_RATIO: Final = 1.5
"""A test is slower when its time is above the base's times this ratio ..."""
DEFAULT_SLOWER_FLOOR: Final = 0.1
"""... and above it by more than this many seconds, so that noise in tiny times is no change."""
DEFAULT_LAST_RESULTS: Final = 100
"""How many of a test's newest passed results its duration figures read by default."""
MAX_LAST_RESULTS: Final = 100_000
"""The most results one test's duration figures may read."""

FAILING: Final = frozenset({TestStatus.FAILED, TestStatus.TIMEOUT, TestStatus.ERROR})
"""The statuses that count as a failure in every question."""


class Change(enum.StrEnum):
    """How one test changed from one run to another; the members sort as the query does."""

    ADDED = "added"
    FIXED = "fixed"
    NEW_FAILURE = "new_failure"
    REMOVED = "removed"
    SLOWER = "slower"
    STILL_FAILING = "still_failing"


@attrs.frozen(kw_only=True)
class TestChange:
    """One test that changed between the base run and the head run."""

    __test__ = False

    test_id: str
    change: Change
    base_status: TestStatus | None
    """None when the test is not in the base run."""
    head_status: TestStatus | None
    """None when the test is not in the head run."""
    base_time: float | None
    head_time: float | None


@attrs.frozen(kw_only=True)
class RunComparison:
    """What changed from `base` to `head`: every test that changed, by change, then test id."""

    base: int
    head: int
    changes: tuple[TestChange, ...]

    def of(self, change: Change) -> tuple[TestChange, ...]:
        """Give the tests with this change, by test id."""
        return tuple(item for item in self.changes if item.change is change)

    @property
    def new_failures(self) -> tuple[TestChange, ...]:
        """Failing in head, and passing, unfinished or absent in base."""
        return self.of(Change.NEW_FAILURE)


@attrs.frozen(kw_only=True)
class FlakyTest:
    """A test that both passed and failed on one commit, and how often its outcome flipped."""

    __test__ = False

    test_id: str
    results: int
    passes: int
    failures: int
    flips: int
    """Results whose outcome (passed or failing) differs from the result before."""
    flip_rate: float
    """flips / (results - 1), from 0 to 1."""
    flaky_commits: int
    """The commits on which it both passed and failed."""
    last_seen: dt.datetime


@attrs.frozen(kw_only=True)
class DurationFigures:
    """One test's execution times over its newest passed results."""

    test_id: str
    results: int
    """How many passed results were read: at most the `last` asked for."""
    p50: float | None
    p95: float | None
    max_time: float | None
    latest: float | None
    """The newest passed result's time."""
    slower: bool
    """Whether the latest time is above p50 times the ratio and above p50 by more than the floor."""


@attrs.frozen(kw_only=True)
class SlowTest:
    """A test among the slowest by p95 over a window of time."""

    __test__ = False

    test_id: str
    results: int
    p50: float
    p95: float
    max_time: float


@attrs.frozen(kw_only=True)
class Counterexample:
    """An input on which a test failed, and the newest failing result that kept it.

    The hashes name kept files: `CounterexampleStore.read(sha256)` gives their content.
    """

    input_sha256: str
    input_size: int
    """The input's length in bytes."""
    failures: int
    """How many failing results kept this input."""
    first_failed_at: dt.datetime
    failed_at: dt.datetime
    """When it last failed: the newest failing result's time."""
    result_id: int
    """The newest failing result that kept it."""
    status: TestStatus
    expected_sha256: str | None
    """The output expected, as that result kept it, if it did."""
    actual_sha256: str | None
    """The output the program gave, as that result kept it, if it did."""


@attrs.frozen
class TestHistoryCursor:
    """Where the next page of one test's history starts: just after this result."""

    __test__ = False

    test_id: str = attrs.field(validator=nonempty_key)
    """A test id a result may hold: non-empty text of at most 1,024 bytes, without NUL."""
    created_at: dt.datetime = attrs.field(converter=as_utc)
    id: int = attrs.field(validator=row_id)


async def compare_runs(
    db: Database,
    base: int,
    head: int,
    *,
    slower_ratio: float = DEFAULT_SLOWER_RATIO,
    slower_floor: float = DEFAULT_SLOWER_FLOOR,
) -> RunComparison:
    """Compare run `head` with run `base`: new failures, fixed, still failing, slower, and so on.

    A test is slower when it passed in both and its head time exceeds its base time times
    `slower_ratio` and exceeds it by more than `slower_floor` seconds. Either run missing
    raises NotFoundError.
    """
    base = key_id("Run", base, "base")
    head = key_id("Run", head, "head")
    ratio = finite_amount("RunComparison", "slower_ratio", slower_ratio)
    floor = finite_amount("RunComparison", "slower_floor", slower_floor)
    # The runs and their results as one committed state: looked at apart, a run written with
    # its results in between was compared as empty, each of its tests `removed`.
    async with read_snapshot(db) as seen:
        async with borrow(seen) as conn:
            rows = await seen.queries.compare_runs(
                conn,
                base=base,
                head=head,
                slower_ratio=ratio,
                slower_cap=sys.float_info.max / 2 / ratio if ratio else math.inf,
                slower_least=slower_least(ratio),
                slower_floor=floor,
            )
        found("Run", base, await find_run(seen, base), "base")
        found("Run", head, await find_run(seen, head), "head")
    # a slice at a time: a run of 100,000 new tests held the loop 150 ms in one go
    changes = tuple(await map_in_slices(_change_of, rows))
    return RunComparison(base=base, head=head, changes=changes)


_HALF_TINIEST: Final = Fraction(1, 2**1075)
"""Half the smallest float above zero: an exact product up to it rounds to zero."""


def slower_least(ratio: float) -> float:
    """Give the least time whose product with `ratio` is a float above zero (0.0 for a 0 ratio).

    The product of a smaller time rounds to zero: `compare_runs` compares the head time with
    zero then, where PostgreSQL would refuse the product as an underflow.
    """
    if ratio == 0.0:
        return 0.0
    least = float(_HALF_TINIEST / Fraction(ratio))  # within a float or two of the bound
    while least * ratio == 0.0:
        least = math.nextafter(least, math.inf)
    while least > 0.0 and math.nextafter(least, 0.0) * ratio > 0.0:
        least = math.nextafter(least, 0.0)
    return least


def _stored_test_id(value: str) -> str:
    """Give a test id that a stored row holds, held to a result's rules.

    Plain SQL may have stored one that no result takes (a blob, a NUL, 2,000 bytes): handed on,
    it broke what prints it, and the look-ups by test id refuse it. The refusal says how it
    begins, which finds the results holding it: a question's row names no result's id.
    """
    try:
        return nonempty_text("stored row", "test_results.test_id", value)
    except ValidationError as error:
        begins = f"{value[:40]!r}{'...' if len(value) > 40 else ''}"  # noqa: PLR2004  # a start
        reason = f"{error.reason}; the results holding it have a test id beginning {begins}"
        raise ValidationError(error.model, error.field, reason) from None


def _change_of(row: CompareRunsRow) -> TestChange:
    return TestChange(
        test_id=_stored_test_id(row.test_id),
        change=Change(row.change),
        base_status=None if row.base_status is None else TEST_STATUSES[row.base_status],
        head_status=None if row.head_status is None else TEST_STATUSES[row.head_status],
        base_time=row.base_time,
        head_time=row.head_time,
    )


async def flaky_tests(db: Database, since: dt.datetime) -> list[FlakyTest]:
    """Give the tests that both passed and failed on one commit since `since`, flippiest first."""
    since = utc_instant("FlakyTest", "since", since)
    rows = await run_query(db, lambda conn: db.queries.flaky_tests(conn, since=since))
    return await map_in_slices(_flaky_of, rows)  # as many as the tests: a slice at a time


def _flaky_of(row: FlakyTestsRow) -> FlakyTest:
    _stored_test_id(row.test_id)
    _stored_time(row.last_seen)
    return FlakyTest(**row._asdict())


def _stored_time(value: dt.datetime) -> None:
    """Refuse a result's time that plain SQL stored as one of PostgreSQL's infinities.

    A question's answer gave it on as a naive time, which no model holds, where the listings
    of results refuse it.
    """
    finite_time("stored row", "test_results.created_at", value)


def _counterexample_of(row: CounterexamplesRow) -> Counterexample:
    _stored_time(row.first_failed_at)
    _stored_time(row.failed_at)
    return Counterexample(**row._asdict() | {"status": TEST_STATUSES[row.status]})


async def list_test_history(
    db: Database,
    test_id: str,
    *,
    limit: int = 100,
    after: TestHistoryCursor | None = None,
) -> Page[TestResult, TestHistoryCursor]:
    """Return one page of a test's results, newest first; `next_cursor` leads to the next."""
    test_id = nonempty_text("TestResult", "test_id", test_id)
    limit = page_limit("TestResult", limit)
    if after is not None and of_type(TestHistoryCursor, after, "after").test_id != test_id:
        raise ValidationError(
            "TestHistoryCursor",
            "test_id",
            f"the cursor belongs to test {after.test_id!r:.80}, not {test_id!r:.80}",
        )
    cursor_at, cursor_id = (END_OF_TIME, MAX_INT) if after is None else (after.created_at, after.id)
    async with borrow(db) as conn:
        rows = await db.queries.list_test_history(
            conn, test_id=test_id, cursor_created_at=cursor_at, cursor_id=cursor_id, page_size=limit
        )
    return await page_of(
        rows,
        result_from_row,
        limit,
        lambda last: TestHistoryCursor(test_id, last.created_at, stored_id(last)),
        result_texts,
    )


async def duration_figures(
    db: Database,
    test_id: str,
    *,
    last: int = DEFAULT_LAST_RESULTS,
    slower_ratio: float = DEFAULT_SLOWER_RATIO,
    slower_floor: float = DEFAULT_SLOWER_FLOOR,
) -> DurationFigures:
    """Give one test's p50, p95 and longest time over its `last` newest passed results.

    `slower` says whether the newest of them took more than p50 times `slower_ratio` and more
    than p50 plus `slower_floor` seconds, as `compare_runs` judges a slower test.
    """
    test_id = nonempty_text("TestResult", "test_id", test_id)
    last = page_limit("DurationFigures", last, "last", MAX_LAST_RESULTS)
    ratio = finite_amount("DurationFigures", "slower_ratio", slower_ratio)
    floor = finite_amount("DurationFigures", "slower_floor", slower_floor)
    async with borrow(db) as conn:
        row = await db.queries.test_durations(conn, test_id=test_id, last_results=last)
    assert row is not None  # noqa: S101  # an aggregate gives one row
    slower = (
        row.latest is not None
        and row.p50 is not None
        and row.latest > row.p50 * ratio
        and row.latest - row.p50 > floor
    )
    return DurationFigures(test_id=test_id, slower=slower, **row._asdict())


async def slowest_tests(
    db: Database,
    *,
    created_from: dt.datetime | None = None,
    created_until: dt.datetime | None = None,
    top: int = 20,
) -> list[SlowTest]:
    """Give the `top` tests with the highest p95 over their passed results in [from, until)."""
    start: dt.datetime = START_OF_TIME
    end: dt.datetime | None = None
    if created_from is not None:
        start = utc_instant("SlowTest", "created_from", created_from)
    if created_until is not None:
        end = utc_instant("SlowTest", "created_until", created_until)
    top = page_limit("SlowTest", top, "top")
    async with borrow(db) as conn:
        rows = await db.queries.slowest_tests(conn, created_from=start, created_until=end, top=top)
    return await map_in_slices(_slow_of, rows)  # `top` may be 10,000: 35 ms in one go


def _slow_of(row: SlowestTestsRow) -> SlowTest:
    _stored_test_id(row.test_id)
    return SlowTest(**row._asdict())


async def counterexamples(db: Database, test_id: str, *, top: int = 100) -> list[Counterexample]:
    """Give the distinct inputs on which a test failed, newest failure first, for replay.

    Only failing results (failed, timeout, error) that kept an input count; at most `top`.
    """
    test_id = nonempty_text("TestResult", "test_id", test_id)
    top = page_limit("Counterexample", top, "top")
    async with borrow(db) as conn:
        rows = await db.queries.counterexamples(conn, test_id=test_id, top=top)
    return await map_in_slices(_counterexample_of, rows)
