"""The history questions give exactly the documented answer over hostile histories, on both engines.

tests/test_run_history.py checks the questions over tidy histories. Here the histories are the
ones a demanding user stores: test ids that differ only by case, by a trailing space or by
Unicode normalization; results without a run or without a test id; runs whose commit label is
missing, empty, a number or differs only by case; durations of 0, -0.0, subnormals and the
largest time; equal timestamps; results saved out of time order and stamped in other time
zones. Each answer is compared with a plain-Python model written from docs/HISTORY.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from _history_oracle import compare_oracle, durations_oracle, flaky_oracle, slowest_oracle
from persistence import (
    ConflictError,
    CounterexampleStore,
    Database,
    Run,
    RunFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    all_runs,
    delete_results_before,
    delete_run,
    keep_counterexample,
    list_runs,
    save_result,
    save_results,
    save_run,
)
from persistence._interface import JsonObject
from persistence._paging import END_OF_TIME, START_OF_TIME
from persistence.models import MAX_EXECUTION_TIME
from persistence.run_history import (
    FAILING,
    Counterexample,
    compare_runs,
    counterexamples,
    duration_figures,
    flaky_tests,
    list_test_history,
    slowest_tests,
)
from strategies import ON_DATABASE

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
FAR: Final = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
TEST_IDS: Final = ["a", "A", "a ", " a", "é", "e\u0301", "Zé", "ß", "SS", "😀", "t::x[1-2]", "%_"]
"""Ids a runner may give: equal to another but for case, a space or normalization."""
COMMITS: Final[list[object]] = ["c1", "c1", "c1", "C1", "c1 ", "", None, 7, True]
"""Commit labels, mostly one: strings that differ slightly, an empty one, none, not strings."""
TIMES: Final = [
    0.0,
    -0.0,
    5e-324,
    sys.float_info.min,
    1e-300,
    0.1,
    0.2,
    0.30000000000000004,
    0.3,
    1.0,
    2.5,
    MAX_EXECUTION_TIME,
]
ZONES: Final = [
    dt.UTC,
    dt.timezone(dt.timedelta(hours=14)),
    dt.timezone(-dt.timedelta(hours=12)),
    dt.timezone(dt.timedelta(hours=5, minutes=30)),
]
MOMENTS: Final = [
    dt.timedelta(0),
    dt.timedelta(microseconds=1),
    dt.timedelta(seconds=1),
    dt.timedelta(seconds=1, microseconds=999_999),
    dt.timedelta(minutes=1),
    dt.timedelta(days=1),
]
"""When a result was made, after T0: few, so that many share a timestamp."""

ResultPlan = tuple[int | None, str | None, TestStatus, float, int, int]
"""A result: its run (an index into the runs, or none), test id, status, time, moment, zone."""
History = tuple[list[object], list[ResultPlan]]


STATUSES: Final = [
    TestStatus.PASSED,
    TestStatus.PASSED,
    TestStatus.PASSED,
    TestStatus.FAILED,
    TestStatus.TIMEOUT,
    TestStatus.ERROR,
    TestStatus.SKIPPED,
    TestStatus.PENDING,
    TestStatus.RUNNING,
]
"""Every status, passed the most: a test has several passed results to take percentiles of."""


@st.composite
def histories(draw: st.DrawFn, labels: Sequence[object] = COMMITS) -> History:
    """A few runs, and results of a few of the test ids, so that each id has several."""
    commits = draw(st.lists(st.sampled_from(labels), min_size=2, max_size=6))
    test_ids = draw(st.lists(st.sampled_from(TEST_IDS), min_size=1, max_size=3, unique=True))
    plans = draw(
        st.lists(
            st.tuples(
                st.sampled_from([*range(len(commits)), None]),
                st.sampled_from([*test_ids, None]),
                st.sampled_from(STATUSES),
                st.sampled_from(TIMES) | st.floats(0, 3),
                st.integers(0, len(MOMENTS) - 1),
                st.integers(0, len(ZONES) - 1),
            ),
            min_size=8,
            max_size=30,
        )
    )
    return commits, plans


def _at(moment: int, zone: int) -> dt.datetime:
    return (T0 + MOMENTS[moment]).astimezone(ZONES[zone])


async def _empty(db: Database) -> None:
    """Delete every run and result: the examples of one test share its database."""
    await delete_results_before(db, FAR)
    for old in await all_runs(db):
        assert old.id is not None
        await delete_run(db, old.id)


async def _store(db: Database, history: History) -> tuple[list[Run], list[TestResult]]:
    """Store the runs, then the results in the order planned (not by time); read them back."""
    await _empty(db)
    commits, plans = history
    runs = []
    for index, commit in enumerate(commits):
        labels: JsonObject = {} if commit is None else {"commit": commit}  # type: ignore[dict-item]  # a str, an int or a bool
        runs.append(
            await save_run(db, Run(started_at=T0 - dt.timedelta(hours=index), labels=labels))
        )
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=status,
                execution_time=seconds,
                created_at=_at(moment, zone),
                run_id=None if run is None else runs[run].id,
                test_id=test_id,
            )
            for run, test_id, status, seconds, moment, zone in _unique_in_runs(plans)
        ],
    )
    return runs, await all_results(db)


def _unique_in_runs(plans: list[ResultPlan]) -> list[ResultPlan]:
    """Keep the first result of each (run, test id): a run holds a test id once."""
    seen: set[tuple[int, str]] = set()
    kept = []
    for plan in plans:
        if plan[0] is not None and plan[1] is not None:
            key = (plan[0], plan[1])
            if key in seen:
                continue
            seen.add(key)
        kept.append(plan)
    return kept


def _by_age(result: TestResult) -> tuple[dt.datetime, int]:
    assert result.id is not None
    return result.created_at, result.id


# compare_runs ------------------------------------------------------------------------------


@ON_DATABASE
@given(
    history=histories(),
    ratio=st.sampled_from([0.0, 1.0, 1.5, 1e300]),
    floor=st.sampled_from([0.0, 5e-324, 0.1]),
)
async def test_compare_runs_gives_the_documented_changes(
    db: Database, history: History, ratio: float, floor: float
) -> None:
    """Every pair of runs, a run with itself included: each change, by change then code point."""
    runs, results = await _store(db, history)
    for base, head in itertools.product(runs, repeat=2):
        assert base.id is not None
        assert head.id is not None
        found = await compare_runs(db, base.id, head.id, slower_ratio=ratio, slower_floor=floor)
        in_base = [r for r in results if r.run_id == base.id]
        in_head = [r for r in results if r.run_id == head.id]
        expected = compare_oracle(in_base, in_head, ratio, floor)
        assert list(found.changes) == expected
        assert [c for c in found.changes if _signed(c)] == []


# flaky_tests -------------------------------------------------------------------------------


@ON_DATABASE
@given(
    history=histories(["c1", "c1", "c1", "c1", "C1", None, 7]),
    pick=st.integers(0, 99),
    zone=st.integers(0, 3),
)
async def test_flaky_tests_give_the_documented_answer(
    db: Database, history: History, pick: int, zone: int
) -> None:
    """`since` at a result's very time includes it, in whatever zone `since` is given."""
    runs, results = await _store(db, history)
    times = sorted({r.created_at for r in results}) or [T0]
    since = times[pick % len(times)].astimezone(ZONES[zone])
    found = await flaky_tests(db, since)
    assert found == flaky_oracle(runs, results, since)
    assert all(f.last_seen.utcoffset() == dt.timedelta(0) for f in found)


# list_test_history -------------------------------------------------------------------------


@ON_DATABASE
@given(history=histories(), limit=st.integers(1, 5))
async def test_a_test_history_lists_exactly_that_test_newest_first(
    db: Database, history: History, limit: int
) -> None:
    """Every status, newest first by time then id, each once, and no other test's result."""
    _, results = await _store(db, history)
    for test_id in TEST_IDS:
        listed: list[TestResult] = []
        page = await list_test_history(db, test_id, limit=limit)
        listed.extend(page.items)
        while page.next_cursor is not None:
            page = await list_test_history(db, test_id, limit=limit, after=page.next_cursor)
            listed.extend(page.items)
        expected = sorted((r for r in results if r.test_id == test_id), key=_by_age, reverse=True)
        assert listed == expected


# duration_figures --------------------------------------------------------------------------


@ON_DATABASE
@given(
    history=histories(),
    last=st.sampled_from([1, 2, 3, 19, 20, 21, 100_000]),
    ratio=st.sampled_from([0.0, 1.0, 1.5, 1e300]),
    floor=st.sampled_from([0.0, 5e-324, 0.1]),
)
async def test_duration_figures_give_the_documented_figures(
    db: Database, history: History, last: int, ratio: float, floor: float
) -> None:
    """Nearest-rank p50 and p95 of the newest `last` passed times, ties by id."""
    _, results = await _store(db, history)
    for test_id in TEST_IDS:
        found = await duration_figures(
            db, test_id, last=last, slower_ratio=ratio, slower_floor=floor
        )
        assert found == durations_oracle(results, test_id, last, ratio, floor)
        assert _signed(found) == []


# slowest_tests -----------------------------------------------------------------------------


bounds = st.none() | st.tuples(st.integers(0, len(MOMENTS) - 1), st.integers(0, 3))


@ON_DATABASE
@given(history=histories(), start=bounds, end=bounds, top=st.sampled_from([1, 2, 5, 10_000]))
async def test_slowest_tests_give_the_documented_ranking(
    db: Database,
    history: History,
    start: tuple[int, int] | None,
    end: tuple[int, int] | None,
    top: int,
) -> None:
    """Highest p95 first, ties by code point; from inclusive, until exclusive, in any zone."""
    _, results = await _store(db, history)
    created_from = None if start is None else _at(*start)
    created_until = None if end is None else _at(*end)
    found = await slowest_tests(db, created_from=created_from, created_until=created_until, top=top)
    assert found == slowest_oracle(
        results, created_from or START_OF_TIME, created_until or END_OF_TIME, top
    )
    assert [s for s in found if _signed(s)] == []


# counterexamples ---------------------------------------------------------------------------

INPUTS: Final = [b"", b"1\n", b"1\n ", "é\n".encode(), b"\x00\xff"]
"""Inputs a failing test may keep: empty, one differing by a trailing space, binary."""

KeepPlan = tuple[str, TestStatus, int, int, int | None, int | None, bool]
"""A failing result: test id, status, input, moment, expected, actual, and whether it is later
overwritten as passed."""

keeps = st.lists(
    st.tuples(
        st.sampled_from(TEST_IDS[:4]),
        st.sampled_from(sorted(FAILING)),
        st.integers(0, len(INPUTS) - 1),
        st.integers(0, len(MOMENTS) - 1),
        st.none() | st.integers(0, len(INPUTS) - 1),
        st.none() | st.integers(0, len(INPUTS) - 1),
        st.booleans(),
    ),
    max_size=10,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@ON_DATABASE
@given(plans=keeps, top=st.sampled_from([1, 2, 100]))
async def test_counterexamples_give_the_documented_inputs(
    db: Database, store: CounterexampleStore, plans: list[KeepPlan], top: int
) -> None:
    """Per input of the test's failing results: count, first and last failure, newest result."""
    await _empty(db)
    kept: list[tuple[TestResult, int, int | None, int | None]] = []
    for test_id, status, data, moment, expected, actual, passes_later in plans:
        result = await keep_counterexample(
            db,
            store,
            TestResult(
                test_type=TestType.STRESS,
                status=status,
                created_at=_at(moment, moment % len(ZONES)),
                test_id=test_id,
            ),
            input=INPUTS[data],
            expected=None if expected is None else INPUTS[expected],
            actual=None if actual is None else INPUTS[actual],
        )
        if passes_later:  # a rerun found it passing: it is no failure any more
            result = await save_result(db, attrs.evolve(result, status=TestStatus.PASSED))
        kept.append((result, data, expected, actual))
    for test_id in TEST_IDS[:4]:
        newest: dict[int, tuple[TestResult, int | None, int | None]] = {}
        counts: dict[int, list[dt.datetime]] = {}
        for result, data, expected, actual in kept:
            if result.test_id != test_id or result.status not in FAILING:
                continue
            counts.setdefault(data, []).append(result.created_at)
            if data not in newest or _by_age(result) > _by_age(newest[data][0]):
                newest[data] = (result, expected, actual)
        wanted = [
            Counterexample(
                input_sha256=_sha(INPUTS[data]),
                input_size=len(INPUTS[data]),
                failures=len(counts[data]),
                first_failed_at=min(counts[data]),
                failed_at=result.created_at,
                result_id=result.id or 0,
                status=result.status,
                expected_sha256=None if expected is None else _sha(INPUTS[expected]),
                actual_sha256=None if actual is None else _sha(INPUTS[actual]),
            )
            for data, (result, expected, actual) in newest.items()
        ]
        wanted.sort(key=lambda c: (c.failed_at, c.result_id), reverse=True)
        found = await counterexamples(db, test_id, top=top)
        assert found == wanted[:top]
        utc = dt.timedelta(0)
        assert all(c.failed_at.utcoffset() == c.first_failed_at.utcoffset() == utc for c in found)


# list_runs ---------------------------------------------------------------------------------


@ON_DATABASE
@given(
    starts=st.lists(st.tuples(st.integers(0, len(MOMENTS) - 1), st.integers(0, 3)), max_size=8),
    start=bounds,
    end=bounds,
    limit=st.integers(1, 3),
)
async def test_runs_list_latest_started_first_within_the_window(
    db: Database,
    starts: list[tuple[int, int]],
    start: tuple[int, int] | None,
    end: tuple[int, int] | None,
    limit: int,
) -> None:
    """Runs started in [from, until), in any zone, latest first, ties by id; each once."""
    await _empty(db)
    saved = [await save_run(db, Run(started_at=_at(*at))) for at in starts]
    where = RunFilter(
        started_from=None if start is None else _at(*start),
        started_until=None if end is None else _at(*end),
    )
    listed: list[Run] = []
    page = await list_runs(db, where, limit=limit)
    listed.extend(page.items)
    while page.next_cursor is not None:
        page = await list_runs(db, limit=limit, after=page.next_cursor)
        listed.extend(page.items)
    expected = [
        run
        for run in saved
        if (where.started_from is None or where.started_from <= run.started_at)
        and (where.started_until is None or run.started_at < where.started_until)
    ]
    expected.sort(key=lambda run: (run.started_at, run.id or 0), reverse=True)
    assert listed == expected
    assert all(run.started_at.utcoffset() == dt.timedelta(0) for run in listed)


# what is refused -----------------------------------------------------------------------------


@ON_DATABASE
@given(history=histories())
async def test_a_second_result_of_a_test_in_a_run_is_refused_whole(
    db: Database, history: History
) -> None:
    """The same test id twice in one run is a ConflictError, and nothing of the batch is kept.

    Ids that differ by case, a trailing space or normalization are other tests: all are kept.
    """
    _, results = await _store(db, history)
    again = [r for r in results if r.run_id is not None and r.test_id is not None]
    assume(again)
    new = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id="new")
    with pytest.raises(ConflictError, match="run_id, test_id"):
        await save_results(db, [new, attrs.evolve(again[-1], id=None)])
    assert await all_results(db) == results


class _NoQueries:
    """Stands for the queries: any use of them fails the test."""

    def __getattr__(self, name: str) -> object:
        pytest.fail(f"a bad argument reached the query {name}")


BAD_CALLS: Final[list[tuple[str, Callable[[Database], Awaitable[object]]]]] = [
    (r"^FlakyTest\.since: expected datetime, got str", lambda db: flaky_tests(db, "2026-05-01")),  # type: ignore[arg-type]  # refused
    (
        r"^FlakyTest\.since: expected datetime, got date",
        lambda db: flaky_tests(db, dt.date(2026, 5, 1)),  # type: ignore[arg-type]  # refused
    ),
    (
        r"^FlakyTest\.since: must be timezone-aware",
        lambda db: flaky_tests(db, dt.datetime(2026, 5, 1)),  # noqa: DTZ001  # naive on purpose
    ),
    (
        r"^SlowTest\.created_until: must be timezone-aware",
        lambda db: slowest_tests(db, created_until=dt.datetime(2026, 5, 1)),  # noqa: DTZ001  # naive
    ),
    *[
        (r"^SlowTest\.top: must be from 1 to 10000", lambda db, top=top: slowest_tests(db, top=top))
        for top in (0, -1, 10_001, 10**30, True, 2.0)
    ],
    *[
        (
            r"^Counterexample\.top: must be from 1 to 10000",
            lambda db, top=top: counterexamples(db, "a", top=top),
        )
        for top in (0, -5, 10_001)
    ],
    (
        r"^Run\.base: must be between -9223372036854775808",
        lambda db: compare_runs(db, -(2**63) - 1, 1),
    ),
    (r"^Run\.head: expected int, got str", lambda db: compare_runs(db, 1, "2")),  # type: ignore[arg-type]  # refused
    (r"^Run\.head: expected int, got bool", lambda db: compare_runs(db, 1, head=True)),
    (r"^Run\.base: must be between -9223372036854775808", lambda db: compare_runs(db, 2**64, 1)),
    (
        r"^RunComparison\.slower_floor: must be a finite number >= 0",
        lambda db: compare_runs(db, 1, 1, slower_floor=math.nan),
    ),
    (
        r"^RunComparison\.slower_floor: must be a finite number >= 0",
        lambda db: compare_runs(db, 1, 1, slower_floor=-0.1),
    ),
    (r"^TestResult\.test_id: must not be empty", lambda db: list_test_history(db, "")),
    (r"^TestResult\.test_id: expected str", lambda db: list_test_history(db, None)),  # type: ignore[arg-type]  # refused
    (r"^TestResult\.test_id: must not contain NUL", lambda db: duration_figures(db, "a\x00")),
    (
        r"^TestResult\.test_id: must be at most 1024 bytes",
        lambda db: counterexamples(db, "é" * 513),
    ),
    (
        r"^TestResult\.limit: must be from 1 to 10000",
        lambda db: list_test_history(db, "a", limit=0),
    ),
    (
        r"^DurationFigures\.last: must be from 1 to 100000",
        lambda db: duration_figures(db, "a", last=100_001),
    ),
    (
        r"^DurationFigures\.slower_ratio: must be a finite number >= 0",
        lambda db: duration_figures(db, "a", slower_ratio=math.inf),
    ),
    (
        r"^DurationFigures\.slower_floor: must be a finite number >= 0",
        lambda db: duration_figures(db, "a", slower_floor=-0.1),
    ),
]
"""(what the error says, a question asked wrongly)."""


@pytest.mark.parametrize(("message", "ask"), BAD_CALLS)
async def test_a_bad_argument_is_refused_by_name_before_any_query(
    db: Database, message: str, ask: Callable[[Database], Awaitable[object]]
) -> None:
    """Each bad argument is a ValidationError naming it, the same on both engines."""
    blind = attrs.evolve(db, queries=_NoQueries())  # type: ignore[arg-type]  # no query may run
    with pytest.raises(ValidationError, match=message):
        await ask(blind)


def _signed(value: object) -> list[float]:
    """The times in an answer that carry a minus sign: -0.0 is == 0.0, so look at the sign."""
    fields = attrs.asdict(value, recurse=False) if attrs.has(type(value)) else {}  # type: ignore[arg-type]  # attrs instances only
    return [v for v in fields.values() if isinstance(v, float) and math.copysign(1.0, v) < 0]


class _Float(float):
    """A float of another type, as numpy's float64 is."""

    __slots__ = ()


async def test_a_time_of_minus_zero_is_zero_in_every_answer_on_both_engines(db: Database) -> None:
    """-0.0 (a runner's `-0`, or `0 * -1`) is a time of 0: no answer says `-0.0`.

    SQLite stored it as 0.0, PostgreSQL kept the sign: there, `test-history` printed
    `p50 -0.000s` and `--json` gave `"p50": -0.0`, where SQLite gave 0.0.
    """
    base = await save_run(db, Run(started_at=T0))
    head = await save_run(db, Run(started_at=T0))
    for run, seconds in ((base, -0.0), (head, 0.5)):
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=TestStatus.PASSED,
                    execution_time=seconds,
                    run_id=run.id,
                    test_id="t",
                )
            ],
        )
    await save_results(  # a float of a subclass, such as numpy's, takes the other way in
        db,
        [
            TestResult(
                test_type=TestType.UNIT, status=TestStatus.PASSED, execution_time=_Float(-0.0)
            )
        ],
    )
    assert base.id is not None
    assert head.id is not None
    answers: list[object] = [
        *await all_results(db),
        *(await list_test_history(db, "t")).items,
        await duration_figures(db, "t"),
        *await slowest_tests(db),
        *(await compare_runs(db, base.id, head.id, slower_floor=0.0)).changes,
    ]
    assert [signed for answer in answers if (signed := _signed(answer))] == []
