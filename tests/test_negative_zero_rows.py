"""A time stored as -0.0 by plain SQL reads as 0.0 in every answer, on both engines.

The model turns -0.0 into 0.0, but PostgreSQL's double precision keeps the sign of zero that
plain SQL (or an older version of the package) wrote, and the run-history answers, computed in
SQL, gave `-0.0` and the CLI `-0.000s`. Migration 0015 rewrites such a stored time to 0.0 on
PostgreSQL and refuses it from then on; SQLite stores -0.0 in a REAL column as 0.0 already.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _migration_helpers import package_versions_from
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    compare_runs,
    connect,
    duration_figures,
    get_result,
    list_test_history,
    migrate,
    save_results,
    save_run,
    slowest_tests,
)
from persistence.__main__ import main
from test_plain_ids import plain_sql
from test_stored_numbers import package_through

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
WRITTEN: Final = "2026-05-01T00:00:00.000000+00:00"
"""T0 as the package writes it, which SQLite's CHECK takes."""
INSERT: Final = "INSERT INTO test_results (test_type, status, execution_time, created_at)"

NEGATIVE_ZEROS: Final = [
    "'-0'",
    "'-0.0'",
    "'-0e10'",
    "CAST('-0' AS REAL)",
    "-CAST(0 AS REAL)",
    "CAST(0 AS REAL) * -1",
]
"""Ways plain SQL writes -0.0 into a float column (a bare `-0.0` is numeric 0 on PostgreSQL)."""


def unsigned_zero(value: float | None) -> bool:
    """Whether `value` is 0.0 without a minus sign."""
    return value == 0 and math.copysign(1.0, value) == 1.0


async def _before_0015(database_url: str, folder: Path) -> None:
    """Migrate a fresh database up to 0014, the last one before 0015."""
    async with connect(database_url) as db:
        await migrate(db, package_folder=package_through(db.engine, folder, 14))


async def _two_runs(db: Database) -> tuple[int, int]:
    """Run `base` fails test `f` and passes `t`; run `head` passes both; every time is 0 s."""
    runs = []
    for hour, f_status in enumerate((TestStatus.FAILED, TestStatus.PASSED)):
        run = await save_run(db, Run(started_at=T0 + dt.timedelta(hours=hour)))
        assert run.id is not None
        runs.append(run.id)
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT,
                    status=status,
                    created_at=T0 + dt.timedelta(hours=hour),
                    test_id=test_id,
                    run_id=run.id,
                )
                for test_id, status in (("f", f_status), ("t", TestStatus.PASSED))
            ],
        )
    return runs[0], runs[1]


async def _answers(db: Database, base: int, head: int) -> list[float | None]:
    """Every time that the run-history answers give for the two runs' tests."""
    figures = await duration_figures(db, "t")
    times = [figures.p50, figures.p95, figures.max_time, figures.latest]
    for slow in await slowest_tests(db):
        times += [slow.p50, slow.p95, slow.max_time]
    changes = (await compare_runs(db, base, head)).changes
    assert changes
    for change in changes:
        times += [change.base_time, change.head_time]
    times += [r.execution_time for r in (await list_test_history(db, "t")).items]
    return times


async def _stored_signs(database_url: str) -> list[str]:
    """The stored execution times as the engine writes them as text, by id."""
    if "://" in database_url:
        connection = await asyncpg.connect(database_url)
        try:
            rows = await connection.fetch(
                "SELECT execution_time::text FROM test_results ORDER BY id"
            )
        finally:
            await connection.close()
        return [str(row[0]) for row in rows]
    with closing(sqlite3.connect(database_url)) as plain:
        found = plain.execute("SELECT CAST(execution_time AS TEXT) FROM test_results ORDER BY id")
        return [str(row[0]) for row in found]


async def test_a_negative_zero_stored_before_the_migration_reads_as_zero(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Times written as -0.0 by plain SQL before 0015 are 0.0 in each answer after it.

    duration_figures, slowest_tests, compare_runs and list_test_history give 0.0, and the
    CLI's test-history shows `0.000s`, never a minus sign.
    """
    await _before_0015(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        base, head = await _two_runs(db)
    await plain_sql(
        database_url,
        *(
            f"UPDATE test_results SET execution_time = {zero} WHERE id = {number}"  # noqa: S608  # the test's own SQL
            for number, zero in enumerate(NEGATIVE_ZEROS[:4], start=1)
        ),
    )
    async with connect(database_url) as db:
        await migrate(db)
        times = await _answers(db, base, head)
        assert all(unsigned_zero(time) for time in times), times
        assert set(await _stored_signs(database_url)) <= {"0", "0.0"}
    assert await asyncio.to_thread(main, ["test-history", "t", "--database", database_url]) == 0
    out = capsys.readouterr().out
    assert "p50 0.000s" in out
    assert "-0.0" not in out


@pytest.mark.parametrize("zero", NEGATIVE_ZEROS)
async def test_plain_sql_cannot_store_a_negative_zero_after_the_migration(
    db: Database, database_url: str, zero: str
) -> None:
    """After 0015 PostgreSQL refuses a -0.0 time by a CHECK that says so; SQLite stores 0.0.

    Both on insert and on update.
    """
    base, head = await _two_runs(db)
    statements = [
        f"UPDATE test_results SET execution_time = {zero} WHERE id = 1",  # noqa: S608  # the test's own SQL
        f"{INSERT} VALUES ('unit', 'passed', {zero}, '{WRITTEN}')",
    ]
    for statement in statements:
        if "://" in database_url:
            with pytest.raises(
                asyncpg.CheckViolationError, match="test_results_execution_time_not_negative_zero"
            ):
                await plain_sql(database_url, statement)
        else:
            await plain_sql(database_url, statement)
    assert set(await _stored_signs(database_url)) <= {"0", "0.0"}
    times = await _answers(db, base, head)
    assert all(unsigned_zero(time) for time in times), times


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seconds=st.floats(min_value=0.0, max_value=1e9, allow_subnormal=True))
@example(seconds=2.819704012736389e-303).via("a literal SQLite reads a bit off")
async def test_the_migration_leaves_every_other_time_as_it_was(
    db: Database, database_url: str, seconds: float
) -> None:
    """A time of 0.0 or above, tiny and subnormal ones too, is stored and read as written.

    Written as SQL text, it is what the engine makes of the literal: SQLite reads a few
    literals a bit off (`2.819704012736389e-303` as `2.8197040127363888e-303`), and the
    package must read what it stored.
    """
    literal = repr(seconds)
    await plain_sql(database_url, f"{INSERT} VALUES ('unit', 'passed', {literal}, '{WRITTEN}')")
    if "://" not in database_url:
        with closing(sqlite3.connect(":memory:")) as engine:
            seconds = engine.execute(f"SELECT {literal}").fetchone()[0]
    newest = max(await all_results(db), key=lambda r: r.id or 0)
    assert newest.execution_time == seconds
    assert math.copysign(1.0, newest.execution_time) == 1.0
    assert (await get_result(db, newest.id or 0)).execution_time == seconds


async def test_a_negative_zero_committed_during_the_migration_is_rewritten(
    postgres_url: str, tmp_path: Path
) -> None:
    """A -0.0 a plain writer commits while 0015 waits for the table is rewritten to 0.0 too.

    The rewrite ran before the constraint's lock was taken, so a row committed between them
    was left -0.0, and the constraint failed the migration with "violated by some row".
    """
    from test_migration_0016_hostile import blocked_on_a_lock  # noqa: PLC0415  # PostgreSQL only

    await _before_0015(postgres_url, tmp_path / "early")
    writer = await asyncpg.connect(postgres_url)
    try:
        block = writer.transaction()
        await block.start()
        row_id = await writer.fetchval(
            f"{INSERT} VALUES ('unit', 'passed', '-0', now()) RETURNING id"
        )
        async with connect(postgres_url) as db:
            migrating = asyncio.ensure_future(migrate(db, lock_timeout=30))
            try:
                await blocked_on_a_lock(postgres_url)
                await block.commit()
                assert [m.version for m in await migrating] == package_versions_from(15)
            finally:
                if not migrating.done():
                    migrating.cancel()
        stored = "SELECT execution_time::text FROM test_results WHERE id = $1"
        assert await writer.fetchval(stored, row_id) == "0"
    finally:
        await writer.close()
