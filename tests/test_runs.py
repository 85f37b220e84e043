"""Runs and test identity: saving, listing and ending runs; results that name their run and test."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from persistence import (
    ConflictError,
    Database,
    NotFoundError,
    Run,
    RunCursor,
    RunFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_runs,
    connect,
    delete_run,
    end_run,
    find_result,
    find_run,
    get_result,
    get_run,
    last_saved_runs,
    list_results,
    list_runs,
    make_converter,
    migrate,
    save_result,
    save_results,
    save_run,
    search_results,
)
from persistence.migrations import discover_migrations, migrations_folder
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


async def test_a_run_round_trips(db: Database) -> None:
    """A saved run reads back equal, with its labels; an unknown id is None or NotFoundError."""
    run = await save_run(db, Run(started_at=T0, labels={"commit": "9f2c1e0", "branch": "main"}))
    assert run.id is not None
    assert await get_run(db, run.id) == run
    assert await find_run(db, run.id + 1) is None
    with pytest.raises(NotFoundError):
        await get_run(db, run.id + 1)
    with pytest.raises(NotFoundError):
        await save_run(db, Run(started_at=T0, id=run.id + 1))


async def test_end_run_records_the_end_and_refuses_one_before_the_start(db: Database) -> None:
    """end_run sets ended_at; an end before the start is refused and nothing changes."""
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    ended = await end_run(db, run.id, T0 + dt.timedelta(seconds=5))
    assert (await get_run(db, run.id)).ended_at == T0 + dt.timedelta(seconds=5) == ended.ended_at
    with pytest.raises(ValidationError, match="ended_at"):
        await end_run(db, run.id, T0 - dt.timedelta(seconds=1))
    assert (await get_run(db, run.id)).ended_at == T0 + dt.timedelta(seconds=5)


def test_a_run_refuses_bad_values() -> None:
    """Naive times, labels that are not a JSON object and bad ids are refused when built."""
    with pytest.raises(ValidationError, match="started_at"):
        Run(started_at=dt.datetime(2026, 1, 1))  # noqa: DTZ001  # naive on purpose
    with pytest.raises(ValidationError, match="labels"):
        Run(labels=["commit"])  # type: ignore[arg-type]  # a list is not an object
    with pytest.raises(ValidationError, match="id"):
        Run(id=2**63)
    with pytest.raises(ValidationError, match="test_id"):
        TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id="")
    with pytest.raises(ValidationError, match="run_id"):
        TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=-(2**63) - 1)


async def test_list_runs_pages_newest_first_within_the_filter(db: Database) -> None:
    """Runs come latest started first, page by page, the cursor keeping the filter."""
    for i in range(7):
        await save_run(db, Run(started_at=T0 + dt.timedelta(minutes=i), labels={"n": i}))
    where = RunFilter(started_from=T0 + dt.timedelta(minutes=1))
    first = await list_runs(db, where, limit=4)
    assert first.next_cursor is not None
    rest = await list_runs(db, limit=4, after=first.next_cursor)
    assert [r.labels["n"] for r in first.items + rest.items] == [6, 5, 4, 3, 2, 1]
    assert rest.next_cursor is None
    assert len(await all_runs(db)) == 7
    with pytest.raises(ValidationError, match="where"):
        await list_runs(db, RunFilter(), after=first.next_cursor)


async def test_last_saved_runs_follow_the_saves_not_the_times(db: Database) -> None:
    """The runs saved last, the last first, whatever their start times; a bad count refused."""
    assert await last_saved_runs(db) == []
    for minutes in (5, 9, 1):  # the last saved started first
        await save_run(
            db, Run(started_at=T0 + dt.timedelta(minutes=minutes), labels={"m": minutes})
        )
    assert [r.labels["m"] for r in await last_saved_runs(db)] == [1, 9]
    assert [r.labels["m"] for r in await last_saved_runs(db, 10)] == [1, 9, 5]
    assert [r.labels["m"] for r in (await list_runs(db, limit=2)).items] == [9, 5]
    for bad in (0, -1, 10_001, 2.0, True, "2"):
        with pytest.raises(ValidationError, match=r"Run\.count: must be from 1 to 10000"):
            await last_saved_runs(db, bad)  # type: ignore[arg-type]  # refused at run time


async def test_results_carry_their_run_and_test_id(db: Database) -> None:
    """save_result and save_results store run_id and test_id; the listings read them back."""
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    one = await save_result(
        db,
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id, test_id="t::a"
        ),
    )
    assert one.id is not None
    assert await get_result(db, one.id) == one
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT, status=TestStatus.FAILED, run_id=run.id, test_id="t::b"
            ),
            TestResult(test_type=TestType.STRESS, status=TestStatus.PASSED),
        ],
    )
    listed = (await list_results(db)).items
    assert sorted((r.run_id, r.test_id) for r in listed if r.test_id) == [
        (run.id, "t::a"),
        (run.id, "t::b"),
    ]
    assert [r.run_id for r in listed if r.test_id is None] == [None]


async def test_a_run_holds_a_test_once(db: Database) -> None:
    """The same test id twice in one run is a ConflictError; in two runs, or with no run, fine."""
    first = await save_run(db, Run(started_at=T0))
    second = await save_run(db, Run(started_at=T0))
    assert first.id is not None
    assert second.id is not None

    def result(run_id: int | None) -> TestResult:
        return TestResult(
            test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run_id, test_id="t::a"
        )

    await save_results(db, [result(first.id), result(second.id), result(None), result(None)])
    with pytest.raises(ConflictError):
        await save_result(db, result(first.id))
    with pytest.raises(ConflictError):
        await save_results(db, [result(None), result(second.id)])
    assert len((await list_results(db)).items) == 4


async def test_a_result_of_a_run_that_does_not_exist_is_refused(db: Database) -> None:
    """run_id is a foreign key on both engines: nothing is written for a missing run."""
    with pytest.raises(ConflictError):
        await save_result(
            db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=999)
        )
    assert (await list_results(db)).items == ()


async def test_deleting_a_run_deletes_its_results_only(db: Database) -> None:
    """delete_run removes the run and the results that belong to it, and no other result."""
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    kept = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    gone = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)
    )
    assert gone.id is not None
    assert kept.id is not None
    assert await delete_run(db, run.id)
    assert not await delete_run(db, run.id)
    assert await find_result(db, gone.id) is None
    assert await find_result(db, kept.id) == kept


async def test_rows_written_before_the_migration_stay_valid(
    database_url: str, tmp_path: Path
) -> None:
    """A result stored before 0006 reads back after it with no run and no test id."""
    early = tmp_path / "early"
    early.mkdir()
    async with connect(database_url) as db:
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version < 6:
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=early)
    insert = (
        "INSERT INTO test_results (test_type, status, created_at, output) "
        "VALUES ('unit', 'passed', '2026-01-01T00:00:00.000000+00:00', 'segfault in solve')"
    )
    dropped = "DELETE FROM test_results WHERE id = 2"
    if database_url.startswith("postgresql"):
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(insert)
            await conn.execute(insert)
            await conn.execute(dropped)
        finally:
            await conn.close()
    else:
        with closing(sqlite3.connect(database_url)) as plain, plain:
            plain.execute(insert)
            plain.execute(insert)
            plain.execute(dropped)
    async with connect(database_url) as db:
        applied = [m.version for m in await migrate(db)]
        assert applied == list(range(6, applied[-1] + 1)), applied  # 0006 and any after it
        (old,) = (await list_results(db)).items
        assert (old.id, old.run_id, old.test_id, old.status) == (1, None, None, TestStatus.PASSED)
        hits = await search_results(db, "segfault")
        assert [hit.result.id for hit in hits.items] == [1]
        new = await save_result(
            db,
            TestResult(test_type=TestType.UNIT, status=TestStatus.SKIPPED, output="segfault"),
        )
        assert new.id == 3  # the id of the deleted row is not given again
        assert await get_result(db, 3) == new
        hits = await search_results(db, "segfault")
        assert [hit.result.id for hit in hits.items] == [3, 1]


async def test_a_run_cursor_survives_json(db: Database) -> None:
    """A run listing's cursor, through the converter and JSON, leads to the same next page."""
    for i in range(3):
        await save_run(db, Run(started_at=T0 + dt.timedelta(minutes=i), labels={"n": i}))
    converter = make_converter()
    first = await list_runs(db, RunFilter(started_from=T0), limit=2)
    assert first.next_cursor is not None
    text = json.dumps(converter.unstructure(first.next_cursor))
    cursor = converter.structure(json.loads(text), RunCursor)
    assert cursor == first.next_cursor
    assert [r.labels["n"] for r in (await list_runs(db, limit=2, after=cursor)).items] == [0]
    tampered = json.loads(text)
    tampered["id"] = 2**63  # no id column holds it
    with pytest.raises(ValidationError, match="id"):
        converter.structure(tampered, RunCursor)


async def test_a_run_stored_ending_before_its_start_is_refused(database_url: str) -> None:
    """No CHECK holds a run's end after its start: plain SQL may store one before it.

    Such a run was read into a Run that broke its own rule, and `end_run` then saved it.
    Now every read refuses it on `stored row.runs.ended_at`; the other runs still read.
    """
    async with connect(database_url) as db:
        await migrate(db)
        early = await save_run(db, Run(started_at=T0))
        late = await save_run(db, Run(started_at=T0 + dt.timedelta(hours=1)))
        assert late.id is not None
        await plain_sql(
            database_url,
            f"UPDATE runs SET ended_at = started_at WHERE id = {early.id}",  # noqa: S608  # the test's own SQL
        )
        ended = (
            "'2000-01-01T00:00:00.000000+00:00'" if "://" not in database_url else "'2000-01-01'"
        )
        await plain_sql(database_url, f"UPDATE runs SET ended_at = {ended} WHERE id = {late.id}")  # noqa: S608  # the test's own SQL
        for read in (lambda: get_run(db, late.id or 0), lambda: all_runs(db)):
            with pytest.raises(ValidationError, match=r"stored row\.runs\.ended_at"):
                await read()
        assert (await get_run(db, early.id or 0)).ended_at == T0
