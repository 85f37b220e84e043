"""The history questions agree with a plain-Python oracle over random histories, on both engines.

Each example stores a few runs of a few tests, reads back what was stored, and asks every
question; the oracle answers it from the stored results alone, by the definitions in
docs/HISTORY.md.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any, Final

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    Database,
    NotFoundError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    all_runs,
    delete_run,
    save_results,
    save_run,
)
from persistence._interface import JsonObject
from persistence.run_history import (
    FAILING,
    Change,
    DurationFigures,
    FlakyTest,
    SlowTest,
    TestChange,
    TestHistoryCursor,
    compare_runs,
    counterexamples,
    duration_figures,
    flaky_tests,
    list_test_history,
    slowest_tests,
)
from persistence.runs import RunFilter, list_runs
from strategies import IN_MEMORY, ON_DATABASE
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
TEST_IDS: Final = ["a", "b", "c", "Zé", "tests/x.py::y"]
COMMITS: Final[list[str | int | None]] = ["c1", "c2", None, 7]
"""A string commit label, another, no label, and a label that is not a string."""
TIMES: Final = [0.0, 0.05, 0.1, 0.2, 0.3, 1.0, 2.5]

Stored = tuple[list[Run], list[TestResult]]
Plan = tuple[str | int | None, dict[str, tuple[TestStatus, float, int]]]
"""One run: its commit label (or none), and per test id its status, time and second."""


def _percentile(times: Sequence[float], p: int) -> float:
    """Nearest rank: the value at rank ceil(p * n / 100) of the sorted times (1-based)."""
    return times[(p * len(times) + 99) // 100 - 1]


run_plans = st.lists(
    st.tuples(
        st.sampled_from(COMMITS),
        st.dictionaries(
            st.sampled_from(TEST_IDS),
            st.tuples(
                st.sampled_from(list(TestStatus)),
                st.sampled_from(TIMES) | st.floats(0, 3),
                st.integers(0, 4),
            ),
            max_size=len(TEST_IDS),
        ),
    ),
    min_size=2,
    max_size=6,
)


async def _store(db: Database, plans: list[Plan]) -> Stored:
    """Empty the database, then store one run per plan with its results; read them back."""
    for old in await all_runs(db):
        assert old.id is not None
        await delete_run(db, old.id)
    for index, (commit, tests) in enumerate(plans):
        labels: JsonObject = {} if commit is None else {"commit": commit}
        run = await save_run(db, Run(started_at=T0 + dt.timedelta(minutes=index), labels=labels))
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=status,
                    execution_time=seconds,
                    created_at=T0 + dt.timedelta(minutes=index // 2, seconds=offset),
                    run_id=run.id,
                    test_id=test_id,
                )
                for test_id, (status, seconds, offset) in tests.items()
            ],
        )
    return await all_runs(db), await all_results(db)


def _compare_oracle(
    base: list[TestResult], head: list[TestResult], ratio: float, floor: float
) -> list[TestChange]:
    before = {r.test_id: r for r in base if r.test_id is not None}
    after = {r.test_id: r for r in head if r.test_id is not None}
    changes = []
    for test_id in before.keys() | after.keys():
        b, h = before.get(test_id), after.get(test_id)
        change: Change | None = None
        if h is not None and h.status in FAILING and (b is None or b.status not in FAILING):
            change = Change.NEW_FAILURE
        elif b is None:
            change = Change.ADDED
        elif h is None:
            change = Change.REMOVED
        elif b.status in FAILING and h.status is TestStatus.PASSED:
            change = Change.FIXED
        elif b.status in FAILING and h.status in FAILING:
            change = Change.STILL_FAILING
        elif (
            b.status is TestStatus.PASSED
            and h.status is TestStatus.PASSED
            and h.execution_time > b.execution_time * ratio
            and h.execution_time - b.execution_time > floor
        ):
            change = Change.SLOWER
        if change is not None:
            changes.append(
                TestChange(
                    test_id=test_id,
                    change=change,
                    base_status=None if b is None else b.status,
                    head_status=None if h is None else h.status,
                    base_time=None if b is None else b.execution_time,
                    head_time=None if h is None else h.execution_time,
                )
            )
    return sorted(changes, key=lambda c: (c.change.value, c.test_id))


def _flaky_oracle(
    runs: list[Run], results: list[TestResult], since: dt.datetime
) -> list[FlakyTest]:
    commits = {run.id: run.labels.get("commit") for run in runs}
    considered: dict[str, list[tuple[dt.datetime, int, bool, str]]] = {}
    for r in results:
        commit = commits.get(r.run_id)
        final = r.status is TestStatus.PASSED or r.status in FAILING
        if r.test_id is None or not isinstance(commit, str) or not final or r.created_at < since:
            continue
        assert r.id is not None
        considered.setdefault(r.test_id, []).append(
            (r.created_at, r.id, r.status in FAILING, commit)
        )
    flaky = []
    for test_id, rows in considered.items():
        outcomes: dict[str, set[bool]] = {}
        for _, _, failing, commit in rows:
            outcomes.setdefault(commit, set()).add(failing)
        mixed = sum(1 for seen in outcomes.values() if len(seen) == 2)
        if not mixed:
            continue
        rows.sort()
        flips = sum(1 for before, now in itertools.pairwise(rows) if before[2] != now[2])
        failures = sum(1 for row in rows if row[2])
        flaky.append(
            FlakyTest(
                test_id=test_id,
                results=len(rows),
                passes=len(rows) - failures,
                failures=failures,
                flips=flips,
                flip_rate=flips / (len(rows) - 1),
                flaky_commits=mixed,
                last_seen=max(row[0] for row in rows),
            )
        )
    return sorted(flaky, key=lambda f: (-f.flip_rate, f.test_id))


def _durations_oracle(
    results: list[TestResult], test_id: str, last: int, ratio: float, floor: float
) -> DurationFigures:
    passed = [r for r in results if r.test_id == test_id and r.status is TestStatus.PASSED]
    recent = sorted(passed, key=lambda r: (r.created_at, r.id or 0), reverse=True)[:last]
    times = [r.execution_time for r in sorted(recent, key=lambda r: (r.execution_time, r.id or 0))]
    if not times:
        return DurationFigures(
            test_id=test_id, results=0, p50=None, p95=None, max_time=None, latest=None, slower=False
        )
    p50, latest = _percentile(times, 50), recent[0].execution_time
    return DurationFigures(
        test_id=test_id,
        results=len(times),
        p50=p50,
        p95=_percentile(times, 95),
        max_time=max(times),
        latest=latest,
        slower=latest > p50 * ratio and latest - p50 > floor,
    )


def _slowest_oracle(
    results: list[TestResult], start: dt.datetime, end: dt.datetime, top: int
) -> list[SlowTest]:
    grouped: dict[str, list[tuple[float, int]]] = {}
    for r in results:
        if r.test_id is not None and r.status is TestStatus.PASSED and start <= r.created_at < end:
            grouped.setdefault(r.test_id, []).append((r.execution_time, r.id or 0))
    slow = []
    for test_id, pairs in grouped.items():
        times = [t for t, _ in sorted(pairs)]
        slow.append(
            SlowTest(
                test_id=test_id,
                results=len(times),
                p50=_percentile(times, 50),
                p95=_percentile(times, 95),
                max_time=max(times),
            )
        )
    return sorted(slow, key=lambda s: (-s.p95, s.test_id))[:top]


@ON_DATABASE
@given(
    plans=run_plans,
    ratio=st.sampled_from([1.0, 1.5, 2.0]),
    floor=st.sampled_from([0.0, 0.1]),
    pick=st.tuples(st.integers(0, 5), st.integers(0, 5)),
)
async def test_compare_runs_agrees_with_the_oracle(
    db: Database,
    plans: list[Plan],
    ratio: float,
    floor: float,
    pick: tuple[int, int],
) -> None:
    """Every change between two random runs, as the oracle finds it."""
    runs, results = await _store(db, plans)
    base, head = runs[pick[0] % len(runs)], runs[pick[1] % len(runs)]
    assert base.id is not None
    assert head.id is not None
    found = await compare_runs(db, base.id, head.id, slower_ratio=ratio, slower_floor=floor)
    expected = _compare_oracle(
        [r for r in results if r.run_id == base.id],
        [r for r in results if r.run_id == head.id],
        ratio,
        floor,
    )
    assert list(found.changes) == expected


@ON_DATABASE
@given(plans=run_plans, since_minutes=st.integers(0, 3))
async def test_flaky_tests_agree_with_the_oracle(
    db: Database,
    plans: list[Plan],
    since_minutes: int,
) -> None:
    """The flaky tests, their counts, flip rates and last times, as the oracle finds them."""
    runs, results = await _store(db, plans)
    since = T0 + dt.timedelta(minutes=since_minutes)
    assert await flaky_tests(db, since) == _flaky_oracle(runs, results, since)


@ON_DATABASE
@given(
    plans=run_plans,
    last=st.integers(1, 7),
    ratio=st.sampled_from([1.0, 1.2, 3.0]),
    floor=st.sampled_from([0.0, 0.1, 1.0]),
)
async def test_duration_figures_agree_with_the_oracle(
    db: Database,
    plans: list[Plan],
    last: int,
    ratio: float,
    floor: float,
) -> None:
    """p50, p95, max and the slower flag of every test over its last K passed results."""
    _, results = await _store(db, plans)
    for test_id in TEST_IDS:
        figures = await duration_figures(
            db, test_id, last=last, slower_ratio=ratio, slower_floor=floor
        )
        assert figures == _durations_oracle(results, test_id, last, ratio, floor)


@ON_DATABASE
@given(
    plans=run_plans,
    window=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    top=st.integers(1, 6),
)
async def test_slowest_tests_agree_with_the_oracle(
    db: Database,
    plans: list[Plan],
    window: tuple[int, int],
    top: int,
) -> None:
    """The slowest tests by p95 over a window of time, as the oracle ranks them."""
    _, results = await _store(db, plans)
    start = T0 + dt.timedelta(minutes=min(window))
    end = T0 + dt.timedelta(minutes=max(window), seconds=30)
    found = await slowest_tests(db, created_from=start, created_until=end, top=top)
    assert found == _slowest_oracle(results, start, end, top)


@ON_DATABASE
@given(plans=run_plans, limit=st.integers(1, 4))
async def test_a_test_history_pages_through_every_result(
    db: Database,
    plans: list[Plan],
    limit: int,
) -> None:
    """Page by page, each test's results newest first, each once."""
    _, results = await _store(db, plans)
    for test_id in TEST_IDS:
        pages = [await list_test_history(db, test_id, limit=limit)]
        while pages[-1].next_cursor is not None:
            pages.append(
                await list_test_history(db, test_id, limit=limit, after=pages[-1].next_cursor)
            )
        listed = [r for page in pages for r in page.items]
        expected = sorted(
            (r for r in results if r.test_id == test_id),
            key=lambda r: (r.created_at, r.id or 0),
            reverse=True,
        )
        assert listed == expected


async def test_compare_names_its_changes(db: Database) -> None:
    """One of each change, by the definitions; unchanged tests are left out."""
    base = await save_run(db, Run(started_at=T0))
    head = await save_run(db, Run(started_at=T0 + dt.timedelta(minutes=1)))
    assert base.id is not None
    assert head.id is not None
    p, f = TestStatus.PASSED, TestStatus.FAILED

    def results(run_id: int, tests: dict[str, tuple[TestStatus, float]]) -> list[TestResult]:
        return [
            TestResult(
                test_type=TestType.UNIT, status=s, execution_time=t, run_id=run_id, test_id=k
            )
            for k, (s, t) in tests.items()
        ]

    await save_results(
        db,
        results(
            base.id,
            {
                "fix": (f, 1),
                "still": (f, 1),
                "gone": (p, 1),
                "new": (p, 1),
                "slow": (p, 1.0),
                "tiny": (p, 0.01),
                "same": (p, 1),
            },
        ),
    )
    await save_results(
        db,
        results(
            head.id,
            {
                "fix": (p, 1),
                "still": (TestStatus.TIMEOUT, 1),
                "new": (f, 1),
                "slow": (p, 2.0),
                "tiny": (p, 0.05),
                "same": (p, 1.2),
                "born": (p, 1),
                "born_failing": (TestStatus.ERROR, 1),
            },
        ),
    )
    found = await compare_runs(db, base.id, head.id)
    assert [(c.test_id, c.change) for c in found.changes] == [
        ("born", Change.ADDED),
        ("fix", Change.FIXED),
        ("born_failing", Change.NEW_FAILURE),
        ("new", Change.NEW_FAILURE),
        ("gone", Change.REMOVED),
        ("slow", Change.SLOWER),
        ("still", Change.STILL_FAILING),
    ]
    assert [c.test_id for c in found.new_failures] == ["born_failing", "new"]


async def store_times(db: Database, times: list[float]) -> None:
    """Passed results of test `t`, one a second from T0, in this order."""
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                execution_time=seconds,
                created_at=T0 + dt.timedelta(seconds=second),
                test_id="t",
            )
            for second, seconds in enumerate(times)
        ],
    )


async def test_a_latest_time_barely_above_a_p50_of_zero_is_not_slower(db: Database) -> None:
    """`slower` takes the floor `compare_runs` takes: 0 s then 0.001 s is noise, not news.

    Without it any time above a p50 of 0 was slower, however small the step.
    """
    await store_times(db, [0.0, 0.0, 0.001])
    figures = await duration_figures(db, "t")
    assert (figures.p50, figures.latest, figures.slower) == (0.0, 0.001, False)
    assert (await duration_figures(db, "t", slower_floor=0.0005)).slower
    assert not (await duration_figures(db, "t", slower_floor=0.001)).slower
    for floor in (float("nan"), -0.1, "0"):
        with pytest.raises(ValidationError, match=r"^DurationFigures\.slower_floor: "):
            await duration_figures(db, "t", slower_floor=floor)  # type: ignore[arg-type]  # refused


async def test_the_questions_refuse_bad_arguments(db: Database) -> None:
    """Bad ids, ratios, counts and times are refused before any query; missing runs too.

    Each error names the argument as the caller wrote it (`top`, not the page's `limit`).
    """
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    with pytest.raises(NotFoundError, match=rf"Run not found: {run.id + 1} \(head\)") as missing:
        await compare_runs(db, run.id, run.id + 1)
    assert (missing.value.key, missing.value.argument) == (run.id + 1, "head")
    with pytest.raises(NotFoundError, match=rf"Run not found: {run.id + 1} \(base\)"):
        await compare_runs(db, run.id + 1, run.id)
    for ratio in (float("nan"), float("inf"), -1.0, "2"):
        with pytest.raises(ValidationError, match="slower_ratio"):
            await compare_runs(db, run.id, run.id, slower_ratio=ratio)  # type: ignore[arg-type]  # refused
    with pytest.raises(ValidationError, match="base"):
        await compare_runs(db, 0, run.id)
    with pytest.raises(ValidationError, match="last"):
        await duration_figures(db, "a", last=0)
    with pytest.raises(ValidationError, match="test_id"):
        await list_test_history(db, "x" * 2000)
    with pytest.raises(ValidationError, match="since"):
        await flaky_tests(db, dt.datetime(2026, 1, 1))  # noqa: DTZ001  # naive on purpose
    with pytest.raises(ValidationError, match=r"^SlowTest\.top: "):
        await slowest_tests(db, top=0)
    with pytest.raises(ValidationError, match=r"^Counterexample\.top: "):
        await counterexamples(db, "a", top=10**6)
    with pytest.raises(ValidationError, match=r"^DurationFigures\.slower_ratio: "):
        await duration_figures(db, "a", slower_ratio=-1.0)


async def test_an_empty_test_id_is_refused(db: Database) -> None:
    """No result has an empty test id (the model and the schema refuse it): asking is an error.

    `list_test_history`, `duration_figures` and `counterexamples` answered it with nothing,
    so a script that lost its test id (`test-history ""`) printed an empty history.
    """
    for ask in (
        lambda: list_test_history(db, ""),
        lambda: duration_figures(db, ""),
        lambda: counterexamples(db, ""),
    ):
        with pytest.raises(ValidationError, match=r"^TestResult\.test_id: must not be empty"):
            await ask()


@IN_MEMORY
@given(
    test_id=st.one_of(
        st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x" * 1025, "é" * 513]),
        st.text(min_size=1).map(lambda t: f"{t}\x00"),
        st.text().map(lambda t: f"{t}\udfff"),
        st.text(min_size=1, max_size=4).map(lambda t: t * 1025),
        st.none() | st.integers() | st.binary(),
    )
)
def test_a_test_history_cursor_refuses_a_bad_test_id_when_built(test_id: object) -> None:
    """An id no result holds (empty, with NUL, a lone surrogate, over 1,024 bytes) is refused.

    The cursor checked only that its test id was a str: a cursor built by hand, or read back
    from JSON, held an id that no query could be given, and failed only when used, if at all.
    """
    with pytest.raises(ValidationError, match=r"^TestHistoryCursor\.test_id: "):
        TestHistoryCursor(test_id, T0, 1)  # type: ignore[arg-type]  # refused


async def test_a_cursor_of_another_listing_or_test_is_refused(db: Database) -> None:
    """A test's cursor for another test, or a run listing's cursor, is refused by name."""
    for minute in range(3):
        run = await save_run(db, Run(started_at=T0 + dt.timedelta(minutes=minute)))
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id, test_id="a"
                )
            ],
        )
    cursor = (await list_test_history(db, "a", limit=1)).next_cursor
    runs_cursor = (await list_runs(db, limit=1)).next_cursor
    assert cursor is not None
    assert runs_cursor is not None
    with pytest.raises(ValidationError, match="belongs to test 'a', not 'b'"):
        await list_test_history(db, "b", after=cursor)
    with pytest.raises(ValidationError, match="expected TestHistoryCursor, got RunCursor"):
        await list_test_history(db, "a", after=runs_cursor)  # type: ignore[arg-type]  # refused
    with pytest.raises(ValidationError, match="expected RunCursor, got TestHistoryCursor"):
        await list_runs(db, after=cursor)  # type: ignore[arg-type]  # refused
    with pytest.raises(ValidationError, match="RunFilter"):
        await list_runs(db, RunFilter(started_from=T0), after=runs_cursor)


async def test_a_run_deleted_while_it_is_compared_is_not_found(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted by plain SQL just before the comparison reads it: NotFoundError.

    Not a comparison in which every test of the deleted run shows as added or removed.
    """
    runs = []
    for _ in range(2):
        run = await save_run(db, Run(started_at=T0))
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id, test_id="a"
                )
            ],
        )
        assert run.id is not None
        runs.append(run.id)
    real = db.queries.compare_runs

    async def delete_then_compare(*arguments: Any, **named: Any) -> Any:  # noqa: ANN401  # passed on
        await plain_sql(
            database_url,
            f"DELETE FROM test_results WHERE run_id = {runs[0]}",  # noqa: S608  # an int
            f"DELETE FROM runs WHERE id = {runs[0]}",  # noqa: S608  # an int
        )
        return await real(*arguments, **named)

    monkeypatch.setattr(db.queries, "compare_runs", delete_then_compare)
    with pytest.raises(NotFoundError, match=str(runs[0])):
        await compare_runs(db, runs[0], runs[1])


async def test_compare_takes_any_finite_ratio_on_both_engines(db: Database) -> None:
    """A ratio near the largest float: no overflow error on PostgreSQL, the answer SQLite gives."""
    runs = []
    for seconds in (1e10, 1e12, 5e-324):
        run = await save_run(db, Run(started_at=T0))
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=TestStatus.PASSED,
                    execution_time=seconds,
                    run_id=run.id,
                    test_id="a",
                )
            ],
        )
        assert run.id is not None
        runs.append(run.id)
    for ratio in (1e300, 1.7e308):
        assert (await compare_runs(db, runs[0], runs[1], slower_ratio=ratio)).changes == ()
    found = await compare_runs(db, runs[2], runs[0], slower_ratio=1e300, slower_floor=0.0)
    assert [c.change for c in found.changes] == [Change.SLOWER]


async def test_a_test_that_passed_and_failed_on_one_commit_is_flaky(db: Database) -> None:
    """Pass, fail, pass on commit c1: two flips of two; a test that always passed is not flaky."""
    for minute, status in enumerate((TestStatus.PASSED, TestStatus.FAILED, TestStatus.PASSED)):
        run = await save_run(db, Run(started_at=T0, labels={"commit": "c1"}))
        at = T0 + dt.timedelta(minutes=minute)
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT, status=status, created_at=at, run_id=run.id, test_id=k
                )
                for k in ("flaky", "also_flaky")
            ]
            + [
                TestResult(
                    test_type=TestType.UNIT,
                    status=TestStatus.PASSED,
                    created_at=at,
                    run_id=run.id,
                    test_id="steady2",
                )
            ],
        )
    found = await flaky_tests(db, T0)
    assert [(f.test_id, f.flips, f.flip_rate, f.passes, f.failures) for f in found] == [
        ("also_flaky", 2, 1.0, 2, 1),
        ("flaky", 2, 1.0, 2, 1),
    ]
    assert found[0].last_seen == T0 + dt.timedelta(minutes=2)
    assert await flaky_tests(db, T0 + dt.timedelta(minutes=2)) == []


@ON_DATABASE
@given(plans=run_plans, gone=st.integers(0, 5))
@example(
    plans=[
        ("c1", {"t": (status, 0.0, second)})
        for second, status in enumerate(
            [TestStatus.PASSED, TestStatus.FAILED, TestStatus.PASSED, TestStatus.PASSED]
        )
    ],
    gone=2,
)
async def test_results_whose_run_plain_sql_deleted_are_not_read_as_flaky(
    db: Database, database_url: str, plans: list[Plan], gone: int
) -> None:
    """A run deleted by plain SQL without its foreign key leaves results that no run names.

    The sqlite3 shell enforces no foreign key unless asked, and PostgreSQL's replica role
    fires none: such results have no commit label, so `flaky_tests` reads none of them. It
    counted them among a flaky test's results and flips, as if their run had a commit.
    """
    orphans = "DELETE FROM test_results WHERE run_id NOT IN (SELECT id FROM runs)"
    await plain_sql(database_url, orphans)  # those of the example before
    runs, _ = await _store(db, plans)
    run_id = runs[gone % len(runs)].id
    replica = "SET session_replication_role = replica" if "://" in database_url else "SELECT 1"
    await plain_sql(database_url, replica, f"DELETE FROM runs WHERE id = {run_id}")  # noqa: S608  # the test's own SQL
    runs, results = await all_runs(db), await all_results(db)
    assert await flaky_tests(db, T0) == _flaky_oracle(runs, results, T0)
