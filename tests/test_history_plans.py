"""Each history question reads its index, under PostgreSQL's generic plan and SQLite's planner.

As in test_plans.py: the statement the layer sends is captured, prepared with
`plan_cache_mode = force_generic_plan`, and its plan read with EXPLAIN EXECUTE. On SQLite the
same question's text is explained with EXPLAIN QUERY PLAN.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest

from _sqlite_steps import counted_steps, sqlite_text
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    compare_runs,
    connect,
    duration_figures,
    flaky_tests,
    list_runs,
    list_test_history,
    migrate,
    save_results,
    save_run,
    slowest_tests,
    transaction,
)

T0: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
RUNS: Final = 10
TESTS: Final = 1_000
EMPTY_RUNS: Final = 2_000
"""Runs of no result, started before the others: a history of many runs for list_runs."""
NO_RUN: Final = 5_000
"""Results of no run and no test id, saved before the runs: none is in the history indexes."""

Captured = list[tuple[str, tuple[object, ...]]]

_BY_TIME: Final = (
    "test_results_created_idx",
    "test_results_status_created_idx",
    "test_results_test_created_idx",
)


async def _fill(db: Database) -> None:
    """Results of no run, then runs: EMPTY_RUNS empty, RUNS of TESTS tests on two commits."""
    statuses = [TestStatus.PASSED] * 8 + [TestStatus.FAILED, TestStatus.ERROR]
    await migrate(db)
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=statuses[n % len(statuses)],
                created_at=T0 - dt.timedelta(days=1, seconds=n),
            )
            for n in range(NO_RUN)
        ],
    )
    async with transaction(db) as tx:
        for r in range(EMPTY_RUNS):
            await save_run(tx, Run(started_at=T0 - dt.timedelta(minutes=r + 1), labels={"n": r}))
    for r in range(RUNS):
        run = await save_run(
            db, Run(started_at=T0 + dt.timedelta(minutes=r), labels={"commit": f"c{r // 5}"})
        )
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=statuses[(r * 7 + t) % len(statuses)],
                    execution_time=(t % 13) / 10,
                    created_at=T0 + dt.timedelta(minutes=r, seconds=t % 60),
                    run_id=run.id,
                    test_id=f"tests/test_{t:03}.py::case",
                )
                for t in range(TESTS)
            ],
        )


async def _ask_everything(db: Database) -> None:
    """Ask each question once; the statements are captured by the caller."""
    await compare_runs(db, EMPTY_RUNS + RUNS - 1, EMPTY_RUNS + RUNS)
    await list_test_history(db, "tests/test_007.py::case", limit=5)
    await duration_figures(db, "tests/test_007.py::case", last=20)
    await list_runs(db, limit=2)
    await flaky_tests(db, T0 + dt.timedelta(minutes=RUNS - 5))
    await slowest_tests(db, created_from=T0 + dt.timedelta(minutes=RUNS - 5), top=5)


_WHOLE_TABLE: Final = re.compile(r"SCAN (test_results|runs|r|h|b|u|w)\b(?! USING)")
"""A step of SQLite's plan that reads a table whole; the questions' own subqueries are free."""

EXPECTED: Final = [
    ("compare_runs", ("test_results_run_test_idx",), "run_id"),
    ("list_test_history", ("test_results_test_created_idx",), "test_id"),
    ("duration_figures", ("test_results_test_created_idx",), "test_id"),
    ("list_runs", ("runs_started_idx",), "started_at"),
    ("flaky_tests", _BY_TIME, "created_at"),
    ("slowest_tests", _BY_TIME, "created_at"),
]
"""Per question, in the order _ask_everything asks them: the indexes that may serve it, and a
column it bounds. The questions over a window of time read the results of the window by the
time index, or by the (status, time) index, whose statuses they name."""


_SMALL_SCANS: Final = {("flaky_tests", "runs")}
"""Whole reads that a plan may make: flaky_tests may hash every run's commit label, since a run
is one row for each of its many results."""


@pytest.fixture(name="sent")
def capture_statements(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Every (SQL, arguments) that the layer fetches rows with, in order."""
    sent: Captured = []
    for method in ("fetch", "fetchrow"):
        original = getattr(asyncpg.connection.Connection, method)

        def spy(original: Any) -> Any:  # noqa: ANN401  # wraps asyncpg's own signature
            async def call(self: Any, query: str, *args: object, **options: Any) -> Any:  # noqa: ANN401
                sent.append((query, args))
                return await original(self, query, *args, **options)

            return call

        monkeypatch.setattr(asyncpg.connection.Connection, method, spy(original))
    return sent


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return "'" + value.isoformat() + "'::timestamptz"
    assert isinstance(value, str)
    return "'" + value.replace("'", "''") + "'"


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


@pytest.fixture(name="pg")
async def filled_postgres(postgres_url: str) -> AsyncIterator[Database]:
    """A PostgreSQL database of 15,000 results, 10,000 of them in 10 of 2,010 runs, analysed."""
    async with connect(postgres_url) as db:
        await _fill(db)
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute("ANALYZE")
        finally:
            await admin.close()
        yield db


async def test_each_question_uses_its_index_on_postgres(
    pg: Database, postgres_url: str, sent: Captured
) -> None:
    """No question scans test_results whole; each reads its index with a bound parameter."""
    await _ask_everything(pg)
    statements = [(sql, args) for sql, args in sent if "FROM runs WHERE id" not in sql]
    assert len(statements) == len(EXPECTED)
    problems = []
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        for (name, indexes, column), (sql, args) in zip(EXPECTED, statements, strict=True):
            await conn.execute(f"PREPARE question AS {sql}")
            explained = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE question({', '.join(map(_literal, args))})"
            )
            await conn.execute("DEALLOCATE question")
            found = list(_nodes(json.loads(explained)[0]["Plan"]))
            problems += [
                f"{name}: a sequential scan of {node['Relation Name']}"
                for node in found
                if node["Node Type"] == "Seq Scan"
                and (name, node["Relation Name"]) not in _SMALL_SCANS
            ]
            using = [n for n in found if n.get("Index Name") in indexes]
            if not any(column in n.get("Index Cond", "") for n in using):
                problems.append(f"{name}: none of {indexes} is read with a condition on {column}")
    finally:
        await conn.close()
    assert problems == [], "\n".join(problems)


async def test_each_question_uses_its_index_on_sqlite(tmp_path: Path) -> None:
    """SQLite's planner searches each question's index too, and scans no table whole."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await _fill(db)
    with closing(sqlite3.connect(path)) as lite:
        lite.execute("ANALYZE")
        texts = _sqlite_statements()
        problems = []
        for name, indexes, _ in EXPECTED:
            sql, args = texts[name]
            steps = [row[3] for row in lite.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
            if not any(
                re.search(f"USING (COVERING )?INDEX {index} \\(", step)
                for step in steps
                for index in indexes
            ):
                problems.append(f"{name}: none of {indexes} is searched: {steps}")
            small = (name, "runs") in _SMALL_SCANS
            problems += [
                f"{name}: {step}"
                for step in steps
                if _WHOLE_TABLE.match(step) and not (small and re.match(r"SCAN (runs|u)\b", step))
            ]
    assert problems == [], "\n".join(problems)


def _sqlite_statements() -> dict[str, tuple[str, dict[str, object]]]:
    """Each question's SQLite text, from the generated file, with sample arguments."""
    since = (T0 + dt.timedelta(minutes=RUNS - 5)).isoformat(timespec="microseconds")
    end = dt.datetime.max.replace(tzinfo=dt.UTC).isoformat(timespec="microseconds")
    test = "tests/test_007.py::case"
    return {
        "compare_runs": (
            sqlite_text("compare_runs"),
            {
                "base": EMPTY_RUNS + RUNS - 1,
                "head": EMPTY_RUNS + RUNS,
                "slower_ratio": 1.5,
                "slower_cap": 6e307,
                "slower_least": 5e-324,
                "slower_floor": 0.1,
            },
        ),
        "list_test_history": (
            sqlite_text("list_test_history"),
            {"test_id": test, "cursor_created_at": end, "cursor_id": 2**63 - 1, "page_size": 5},
        ),
        "duration_figures": (sqlite_text("test_durations"), {"test_id": test, "last_results": 20}),
        "list_runs": (
            sqlite_text("list_runs"),
            {
                "started_from": dt.datetime.min.replace(tzinfo=dt.UTC).isoformat(),
                "started_until": end,
                "cursor_started_at": end,
                "cursor_id": 2**63 - 1,
                "page_size": 2,
            },
        ),
        "flaky_tests": (sqlite_text("flaky_tests"), {"since": since}),
        "slowest_tests": (
            sqlite_text("slowest_tests"),
            {"created_from": since, "created_until": end, "top": 5},
        ),
    }


_RUNS: Final = 300
_TESTS: Final = 30


async def _fill_flaky(db: Database) -> None:
    """300 runs of 30 tests on 3 commits: one result in 20 failing, and 3 tests failing always."""
    await migrate(db)
    async with transaction(db) as tx:
        for r in range(_RUNS):
            run = await save_run(
                tx, Run(started_at=T0 + dt.timedelta(minutes=r), labels={"commit": f"c{r % 3}"})
            )
            await save_results(
                tx,
                [
                    TestResult(
                        test_type=TestType.UNIT,
                        status=TestStatus.FAILED
                        if t < 3 or (r + 7 * t) % 20 == 0
                        else TestStatus.PASSED,
                        created_at=T0 + dt.timedelta(minutes=r, seconds=t),
                        run_id=run.id,
                        test_id=f"t{t}",
                    )
                    for t in range(_TESTS)
                ],
            )


async def test_flaky_tests_reads_each_result_of_a_flaky_test_a_bounded_number_of_times(
    postgres_url: str, sent: Captured
) -> None:
    """A flaky test of many results costs a read of them, not one read per failing result.

    Looking up each failing result's neighbours was planned as a read of every earlier result
    of the test per failing result: 16 s over 1,000 runs of 100 tests. And a test failing in
    every run of a commit had each run of the commit probed per failure: 217 s over 1,000 runs.
    Here 300 runs of 30 tests, one result in 20 failing, and 3 tests failing always: each scan
    of test_results is counted, row by row, and look-up by look-up.
    """
    async with connect(postgres_url) as db:
        await _fill_flaky(db)
        sent.clear()
        flaky = await flaky_tests(db, T0)
    assert len(flaky) == _TESTS - 3
    ((sql, args),) = sent
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("ANALYZE")
        explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    finally:
        await conn.close()
    scans = [
        node
        for node in _nodes(json.loads(explained)[0]["Plan"])
        if node.get("Relation Name") == "test_results"
    ]
    read = sum(node["Actual Rows"] * node["Actual Loops"] for node in scans)
    assert read <= 3 * _RUNS * _TESTS, f"{read} rows read of {_RUNS * _TESTS} results"
    looked = sum(node["Actual Loops"] for node in scans)
    assert looked <= 3 * _RUNS * _TESTS, f"{looked} look-ups for {_RUNS * _TESTS} results"


_WIDE_TESTS: Final = 2_000


async def test_flaky_tests_of_many_flaky_tests_joins_no_two_parts_row_by_row(
    postgres_url: str, sent: Captured
) -> None:
    """2 runs of one commit, 2,000 tests, each failing in one: 2,000 flaky tests, unanalysed.

    Each flaky test's count of commits was joined to its figures at the end: two MATERIALIZED
    parts the planner takes for a row or two each until the tables are analysed (as after an
    import), so a nested loop compared every pair, 27 s for 25,000 flaky tests. No join of the
    plan may drop more rows than there are results.
    """
    async with connect(postgres_url) as db:
        await migrate(db)
        for r in range(2):
            run = await save_run(db, Run(started_at=T0, labels={"commit": "c"}))
            await save_results(
                db,
                [
                    TestResult(
                        test_type=TestType.UNIT,
                        status=TestStatus.FAILED if (t + r) % 2 else TestStatus.PASSED,
                        created_at=T0 + dt.timedelta(minutes=r),
                        run_id=run.id,
                        test_id=f"t{t}",
                    )
                    for t in range(_WIDE_TESTS)
                ],
            )
        sent.clear()
        flaky = await flaky_tests(db, T0)
    assert len(flaky) == _WIDE_TESTS
    ((sql, args),) = sent
    conn = await asyncpg.connect(postgres_url)
    try:
        explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
    finally:
        await conn.close()
    dropped = [
        node.get("Rows Removed by Join Filter", 0) * node["Actual Loops"]
        for node in _nodes(json.loads(explained)[0]["Plan"])
    ]
    assert max(dropped) <= 2 * _WIDE_TESTS, f"a join dropped {max(dropped)} rows"


async def test_flaky_tests_on_sqlite_does_work_in_proportion_to_the_results(
    tmp_path: Path,
) -> None:
    """SQLite's steps for the question, counted by its progress handler, grow with the results.

    A failing result's run was found by a scan of the runs with a commit, and a test failing
    in every run of a commit had each run probed per failure: 3.06 million steps here, and
    283 s over 1,000 runs of 100 tests; 0.3 million now.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await _fill_flaky(db)
        assert len(await flaky_tests(db, T0)) == _TESTS - 3
    sql, _ = _sqlite_statements()["flaky_tests"]
    since = {"since": T0.isoformat(timespec="microseconds")}
    rows, steps = counted_steps(path, sql, since, 1_000)
    assert len(rows) == _TESTS - 3
    assert steps <= 100 * _RUNS * _TESTS, f"{steps} steps"
