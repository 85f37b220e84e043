"""Backup, restore and copy: whole, consistent, all or nothing, across engines."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import pytest

import persistence._transfer as transfer
import persistence.backup
from _backup_helpers import (
    BASE,
    EMPTY,
    KEPT,
    TEST,
    assert_same,
    contents,
    indexes,
    migrated_postgres,  # noqa: F401  # the `postgres` fixture, used by name
    names,
    new_id,
    row_counts,
    run,
    writing,
)
from persistence import (
    CounterexampleStore,
    DatabaseError,
    Engine,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    counterexamples,
    delete_result,
    delete_results_before,
    migrate,
    migration_status,
    queries,
    save_results,
    set_config,
)
from persistence._database_value import backend_of
from persistence.backup import backup_database, copy_database, restore_database
from persistence.database import connection, transaction

if TYPE_CHECKING:
    from persistence import Database
    from persistence._postgres.backend import PostgresBackend


async def test_a_killed_copy_leaves_postgres_empty_then_a_live_copy_fills_it(
    tmp_path: Path, source: Database, postgres: Database, postgres_url: str
) -> None:
    """A killed copy commits nothing; one taken while writers run holds one committed state.

    `persistence copy` is killed (SIGKILL) while it writes. Then a copy of a SQLite database
    that a writer is filling matches the source at one commit: every row, listing page and
    search hit.
    """
    async with connect(tmp_path / "big.db") as big:
        await migrate(big)
        await save_results(
            big,
            [
                TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="x")
                for _ in range(3000)
            ],
        )
    migrated = await indexes(postgres_url)
    assert any("gin_pending_list_limit" in str(index[1]) for index in migrated)
    command = [sys.executable, "-m", "persistence", "copy", str(tmp_path / "big.db"), postgres_url]
    process = subprocess.Popen(command)  # noqa: ASYNC220  # polled below, waited for in a thread
    try:
        seen = await asyncpg.connect(postgres_url)
        try:
            copying = 0
            for _ in range(2000):
                copying = await seen.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'COPY%'"
                )
                if copying:
                    break
                await asyncio.sleep(0.005)
            assert copying, "the copy was seen writing"
        finally:
            await seen.close()
        process.send_signal(signal.SIGKILL)
    finally:
        await asyncio.to_thread(process.wait)
    assert process.returncode == -signal.SIGKILL
    assert await contents(postgres) == EMPTY
    assert await indexes(postgres_url) == migrated  # the copy had dropped them: back as they were

    stop, written = asyncio.Event(), list[int]()
    writer = asyncio.create_task(writing(tmp_path / "source.db", stop, written))
    while len(written) < 5:  # noqa: ASYNC110  # the writer is under way
        await asyncio.sleep(0.01)
    during = len(written)
    report = await copy_database(source, postgres, page_size=50)
    stop.set()
    await writer
    assert len(written) > during, "the writer wrote while the copy ran"
    copied = {result.id for result in await all_results(postgres)}
    last = max(i for i in copied if i is not None)
    live = [i for i in written if i > last]  # committed after the snapshot
    assert set(written) - set(live) <= copied
    assert report.test_results == len(copied)
    for result_id in live:  # the source as it was at the snapshot
        await delete_result(source, result_id)
    await assert_same(source, postgres)
    assert await indexes(postgres_url) == migrated  # built again, each as the migrations made it
    assert await new_id(postgres) == last + 1


async def test_every_table_and_every_counterexample_goes_through_copies_and_a_backup(
    tmp_path: Path,
    source: Database,
    postgres: Database,
    postgres_url: str,
    store: CounterexampleStore,
) -> None:
    """SQLite, copied to PostgreSQL, backed up, restored and copied into SQLite, is as it was.

    Every table that the migrations make on a fresh database of either engine holds the same
    rows after each step, but those `LEFT_TABLES` names, which each database makes itself (its
    migration history, SQLite's search index): a table that a new migration adds fails here
    until `fill` writes to it and the copy moves it. The counterexamples come through too, and
    retention on a copy keeps every file that they name.
    """
    left = persistence.backup.LEFT_TABLES
    assert all(
        table in {"persistence_migrations", "persistence_user_migrations"}
        or table.startswith("test_results_fts")
        for table in left
    ), "only what each database makes itself is left behind"
    async with connect(tmp_path / "fresh.db") as fresh:
        await migrate(fresh)
        made = {
            engine: set(await row_counts(db, url)) - left
            for engine, db, url in (
                ("sqlite", fresh, tmp_path / "fresh.db"),
                ("postgres", postgres, postgres_url),
            )
        }
    (tmp_path / "fresh.db").unlink()
    assert made["sqlite"] == made["postgres"], "both engines make the same tables"
    moved = made["sqlite"]
    assert moved == set(persistence.backup.COPIED_TABLES)
    counts = await row_counts(source, tmp_path / "source.db")
    empty = sorted(table for table in moved if not counts[table])
    assert not empty, f"fill writes no row in {empty}: write some, so that the copy is checked"
    kept = await counterexamples(source, TEST)
    assert len(kept) == 2
    assert kept[0].failures == 2

    async def check(db: Database, url: str | Path) -> None:
        assert {t: n for t, n in (await row_counts(db, url)).items() if t in moved} == {
            t: counts[t] for t in moved
        }
        await assert_same(source, db)
        assert await counterexamples(db, TEST) == kept

    await copy_database(source, postgres, page_size=40)
    await check(postgres, postgres_url)
    with pytest.raises(DatabaseError, match=r"not empty \(runs holds 2 rows, test_results holds"):
        await copy_database(source, postgres)
    backup = tmp_path / "pg.backup"
    report = await backup_database(postgres, backup)
    runs, results, links, _, config, files = await contents(source)
    assert report.result_artifacts == len(links) == counts["result_artifacts"]
    assert report.rows == len(runs) + len(results) + len(links) + len(config) + len(files)
    assert names(tmp_path) == [
        "pg.backup",
        "source.db",
        "source.db-shm",
        "source.db-wal",
    ]
    async with connect(tmp_path / "back.db") as back, connect(tmp_path / "copied.db") as copied:
        await migrate(back)
        await restore_database(back, backup, page_size=30)
        await check(back, tmp_path / "back.db")
        await migrate(copied)
        report = await copy_database(postgres, copied, page_size=2)  # pages end inside a result
        assert report.tables() == {t: counts[t] for t in persistence.backup.COPIED_TABLES}
        await check(copied, tmp_path / "copied.db")
        assert await new_id(back) == await new_id(source)
    files_kept = await store.keys()
    assert len(files_kept) == 5  # two inputs, one expected, two actual
    assert await delete_results_before(postgres, BASE + dt.timedelta(hours=1), artifacts=store)
    assert await store.keys() == files_kept, "the copy's links name every kept file"
    assert await counterexamples(postgres, TEST) == kept


async def test_a_sqlite_backup_is_a_database_of_one_commit(
    tmp_path: Path, source: Database
) -> None:
    """A backup taken while a writer runs is one self-contained file, restorable anywhere."""
    stop, written = asyncio.Event(), list[int]()
    writer = asyncio.create_task(writing(tmp_path / "source.db", stop, written))
    while len(written) < 5:  # noqa: ASYNC110  # the writer is under way
        await asyncio.sleep(0.01)
    await backup_database(source, tmp_path / "app.backup")
    stop.set()
    await writer
    assert names(tmp_path) == ["app.backup", "source.db", "source.db-shm", "source.db-wal"]
    async with connect(tmp_path / "app.backup", create=False) as backup:
        assert (await migration_status(backup)).up_to_date
        kept = {result.id for result in await all_results(backup)}
    last = max(i for i in kept if i is not None)
    for result_id in written:
        if result_id > last:
            await delete_result(source, result_id)
    async with connect(tmp_path / "restored.db") as restored:
        await migrate(restored)
        await restore_database(restored, tmp_path / "app.backup")
        await assert_same(source, restored)


async def test_restore_and_copy_refuse_a_target_with_rows_before_writing(
    tmp_path: Path, source: Database
) -> None:
    """A target holding rows, or not migrated, is refused with nothing written."""
    await backup_database(source, tmp_path / "a.backup")
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        await set_config(target, "app", "mine", 1)
        mine = await contents(target)
        with pytest.raises(DatabaseError, match=r"not empty \(config_entries holds 1 rows\)"):
            await copy_database(source, target)
        with pytest.raises(DatabaseError, match="not empty"):
            await restore_database(target, tmp_path / "a.backup")
        assert await contents(target) == mine
    async with connect(tmp_path / "bare.db") as bare:
        with pytest.raises(DatabaseError, match=r"not migrated: run `persistence migrate"):
            await restore_database(bare, tmp_path / "a.backup")
        assert (await migration_status(bare)).applied == ()


async def test_a_copy_that_stops_halfway_leaves_the_target_empty(
    source: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that fails, or is cancelled, after pages were written leaves no row behind."""
    converted = 0
    halfway = asyncio.Event()
    as_params = queries.copy_write_test_results_params  # the step every result passes

    def counting(row: queries.TestResultsRow) -> queries.CopyWriteTestResultsParams:
        nonlocal converted
        converted += 1
        if converted == 40:  # past the first pages
            halfway.set()
            raise RuntimeError("the disk went away")
        if converted == 80:  # in the second copy, past its first pages
            halfway.set()
        return as_params(row)

    monkeypatch.setattr(transfer, "copy_write_test_results_params", counting)
    async with connect(database_url) as target:
        await migrate(target)
        postgres = target.engine is not source.engine
        migrated = await indexes(database_url) if postgres else []
        with pytest.raises(RuntimeError, match="disk went away"):
            await copy_database(source, target, page_size=20)
        assert await contents(target) == EMPTY
        halfway.clear()
        copying = asyncio.create_task(copy_database(source, target, page_size=20))
        await halfway.wait()
        copying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await copying
        assert await contents(target) == EMPTY
        if postgres:  # dropped by each copy, restored by each rollback
            assert await indexes(database_url) == migrated
        await copy_database(source, target)  # and the target is usable: a copy runs again
        await assert_same(source, target)


async def test_a_copy_whose_read_ahead_is_cancelled_by_another_task_is_a_database_error(
    source: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next page, read in a task of its own while one is written, cancelled from outside.

    Code that cancels every task but its own (a shutdown handler) cancelled that read, and
    the copy, which nobody had cancelled, got `CancelledError`. It now gets `DatabaseError`,
    the target stays empty, and a copy runs again.
    """
    from _server import no_connection_left  # noqa: PLC0415
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415

    reading, gate = asyncio.Event(), asyncio.Event()
    real = source.queries.copy_read_test_results

    async def held(conn: Any, *, from_id: int, page_size: int) -> list[Any]:  # noqa: ANN401  # as the query's
        if from_id > 0:  # a page after the first: read ahead, while the first is written
            reading.set()
            await gate.wait()
        return await real(conn, from_id=from_id, page_size=page_size)

    async with connect(database_url) as target:
        await migrate(target)
        monkeypatch.setattr(source.queries, "copy_read_test_results", held)
        copying = asyncio.ensure_future(copy_database(source, target, page_size=20))
        async with asyncio.timeout(5):
            await reading.wait()
        cancel_all_tasks_but(copying)
        await asyncio.sleep(0.01)
        gate.set()
        with pytest.raises(DatabaseError, match="another task"):
            async with asyncio.timeout(5):
                await copying
        monkeypatch.undo()
        assert await contents(target) == EMPTY
        await copy_database(source, target)
        await assert_same(source, target)
    if target.engine is Engine.POSTGRES:
        await no_connection_left(database_url)


async def test_the_commands_back_up_restore_and_copy(
    tmp_path: Path, source: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`backup`, `restore` and `copy` do what the functions do, and say so, in JSON too."""
    backup, restored, copied = tmp_path / "b.backup", tmp_path / "r.db", tmp_path / "c.db"
    assert await run("backup", str(backup), "--database", source.url) == 0
    assert "backed up" in capsys.readouterr().out
    for url in (restored, copied):
        assert await run("migrate", "--database", str(url)) == 0
    assert await run("restore", str(backup), "--database", str(restored), "--json") == 0
    out = capsys.readouterr().out
    assert f'"test_results": {60 + KEPT}' in out.split("applied")[-1]
    assert '"result_artifacts": 6' in out.split("applied")[-1]
    assert await run("copy", source.url, str(copied)) == 0
    assert "copied" in capsys.readouterr().out
    for url in (restored, copied):
        async with connect(url) as db:
            await assert_same(source, db)


SETTINGS_OF_INDEXES: tuple[str, ...] = (
    "CREATE INDEX test_results_upper_idx ON test_results ((upper(test_id)))",
    "COMMENT ON INDEX test_results_upper_idx IS 'the owner''s look-ups'",
    "ALTER INDEX test_results_upper_idx ALTER COLUMN 1 SET STATISTICS 1000",
    "ALTER TABLE test_results CLUSTER ON test_results_upper_idx",
    "COMMENT ON INDEX test_results_created_idx IS 'newest first'",
    "CREATE UNIQUE INDEX runs_id_again_idx ON runs (id)",
    "ALTER TABLE runs REPLICA IDENTITY USING INDEX runs_id_again_idx",
)
"""What a migration may set on an index beyond its CREATE INDEX, on an index of the package's
and on one of its own."""


async def test_a_copy_builds_each_index_again_with_what_was_set_on_it(
    source: Database, postgres: Database, postgres_url: str
) -> None:
    """A comment, CLUSTER ON, REPLICA IDENTITY and a statistics target come through a copy.

    The copy dropped each index and built it again from `pg_get_indexdef`, which holds none of
    them: all four were lost, the command exited 0, and `status` said up to date.
    """
    admin = await asyncpg.connect(postgres_url)
    try:
        for statement in SETTINGS_OF_INDEXES:
            await admin.execute(statement)
    finally:
        await admin.close()
    before = await indexes(postgres_url)
    assert ("test_results_upper_idx", True, [1000]) in [(r[0], r[4], r[6]) for r in before]
    await copy_database(source, postgres)
    assert await indexes(postgres_url) == before


async def test_a_role_that_does_not_own_the_tables_keeps_their_indexes(
    postgres: Database, postgres_url: str
) -> None:
    """DROP INDEX needs the table's owner: a role that may only write rows drops nothing.

    The owner's builds are allowed time for each row beyond the statement bound.
    """
    role = f"persistence_writer_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            async with transaction(postgres) as tx, connection(tx) as conn:
                backend = cast("PostgresBackend", backend_of(tx))
                owner = await backend.drop_indexes(conn, persistence.backup.COPIED_TABLES)
                bound, backend.command_timeout = backend.command_timeout, 1e-6
                try:  # a build of many rows may outlast the statement bound
                    await backend.create_indexes(conn, owner, rows=100_000)
                finally:
                    backend.command_timeout = bound
                raw = cast("asyncpg.Connection[asyncpg.Record]", conn)
                await raw.execute(f"SET LOCAL ROLE {role}")
                assert await backend_of(tx).drop_indexes(conn, ["test_results"]) == ()
            assert len(owner) > 2  # the owner drops them, the GIN indexes among them
            assert any("USING gin" in sql for sql in owner)
        finally:
            await admin.execute(f"DROP ROLE {role}")
    finally:
        await admin.close()
