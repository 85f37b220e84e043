"""The history questions on chosen cases, on both engines: each change, flaky, bad arguments."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _history_oracle import T0, store_times
from persistence import (
    Database,
    NotFoundError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    save_results,
    save_run,
)
from persistence.run_history import (
    Change,
    TestHistoryCursor,
    compare_runs,
    counterexamples,
    duration_figures,
    flaky_tests,
    list_test_history,
    slowest_tests,
)
from persistence.runs import RunFilter, list_runs
from strategies import IN_MEMORY
from test_plain_ids import plain_sql


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
        await compare_runs(db, 2**63, run.id)  # no id column holds it (0 and below are ids)
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


async def test_a_run_deleted_while_it_is_compared_is_compared_whole_or_not_found(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted by plain SQL as the comparison reads it: compared as it was, then NotFoundError.

    Not a comparison in which every test of the deleted run shows as added or removed: the
    comparison and the runs are read in one snapshot, taken before the delete, and the next
    comparison does not find the run.
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
    assert (await compare_runs(db, runs[0], runs[1])).changes == ()  # test "a" passed in both
    monkeypatch.setattr(db.queries, "compare_runs", real)
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
