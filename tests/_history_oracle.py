"""The history questions answered in plain Python, by docs/HISTORY.md, over random histories."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Final

from hypothesis import strategies as st

from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
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
)

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


async def store_plans(db: Database, plans: list[Plan]) -> Stored:
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


def compare_oracle(
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


def flaky_oracle(runs: list[Run], results: list[TestResult], since: dt.datetime) -> list[FlakyTest]:
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


def durations_oracle(
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


def slowest_oracle(
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
