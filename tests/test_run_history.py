"""The history questions agree with a plain-Python oracle over random histories, on both engines.

Each example stores a few runs of a few tests, reads back what was stored, and asks every
question; the oracle (_history_oracle.py) answers it from the stored results alone, by the
definitions in docs/HISTORY.md. Chosen cases are in test_run_history_cases.py.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import example, given
from hypothesis import strategies as st

from _history_oracle import (
    T0,
    TEST_IDS,
    Plan,
    compare_oracle,
    durations_oracle,
    flaky_oracle,
    run_plans,
    slowest_oracle,
    store_plans,
)
from persistence import Database, TestStatus, all_results, all_runs
from persistence.run_history import (
    compare_runs,
    duration_figures,
    flaky_tests,
    list_test_history,
    slowest_tests,
)
from strategies import ON_DATABASE
from test_plain_ids import plain_sql


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
    runs, results = await store_plans(db, plans)
    base, head = runs[pick[0] % len(runs)], runs[pick[1] % len(runs)]
    assert base.id is not None
    assert head.id is not None
    found = await compare_runs(db, base.id, head.id, slower_ratio=ratio, slower_floor=floor)
    expected = compare_oracle(
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
    runs, results = await store_plans(db, plans)
    since = T0 + dt.timedelta(minutes=since_minutes)
    assert await flaky_tests(db, since) == flaky_oracle(runs, results, since)


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
    _, results = await store_plans(db, plans)
    for test_id in TEST_IDS:
        figures = await duration_figures(
            db, test_id, last=last, slower_ratio=ratio, slower_floor=floor
        )
        assert figures == durations_oracle(results, test_id, last, ratio, floor)


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
    _, results = await store_plans(db, plans)
    start = T0 + dt.timedelta(minutes=min(window))
    end = T0 + dt.timedelta(minutes=max(window), seconds=30)
    found = await slowest_tests(db, created_from=start, created_until=end, top=top)
    assert found == slowest_oracle(results, start, end, top)


@ON_DATABASE
@given(plans=run_plans, limit=st.integers(1, 4))
async def test_a_test_history_pages_through_every_result(
    db: Database,
    plans: list[Plan],
    limit: int,
) -> None:
    """Page by page, each test's results newest first, each once."""
    _, results = await store_plans(db, plans)
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
    runs, _ = await store_plans(db, plans)
    run_id = runs[gone % len(runs)].id
    replica = "SET session_replication_role = replica" if "://" in database_url else "SELECT 1"
    await plain_sql(database_url, replica, f"DELETE FROM runs WHERE id = {run_id}")  # noqa: S608  # the test's own SQL
    runs, results = await all_runs(db), await all_results(db)
    assert await flaky_tests(db, T0) == flaky_oracle(runs, results, T0)
