"""Backup, restore and copy: whole, consistent, all or nothing, across engines."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg
import pytest

import persistence._transfer as transfer
import persistence.backup
from persistence import (
    ConfigEntry,
    ConfigType,
    Counterexample,
    CounterexampleStore,
    DatabaseError,
    Engine,
    FileRecord,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_config_entries,
    all_file_records,
    all_results,
    all_runs,
    connect,
    counterexamples,
    delete_result,
    delete_results_before,
    keep_counterexample,
    list_results,
    migrate,
    migration_status,
    open_counterexample_store,
    queries,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    save_run,
    search_results,
    set_config,
)
from persistence.__main__ import main
from persistence.backup import backup_database, copy_database, restore_database
from persistence.database import backend_of, connection, transaction
from persistence.storage import open_storage

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from persistence import Database, PageCursor
    from persistence._postgres.backend import PostgresBackend

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
WORDS = ("alpha", "bravo", "charlie", "delta", "echo")
SEARCHES = ("alpha", "bravo charlie", '"echo alpha"', "delt*", "alpha -bravo")
TEST = "solutions/a.cpp#stress"
"""The test whose failing results keep counterexamples."""
KEPT = 3
"""How many results `fill` keeps a counterexample with."""
EMPTY: tuple[list[object], ...] = ([], [], [], [], [], [])
"""What `contents` gives of an empty database."""


async def fill(db: Database, store: CounterexampleStore, n: int = 60) -> None:
    """Put rows in every copied table: runs, results, kept counterexamples, config, files."""
    first = await save_run(db, Run(started_at=BASE, labels={"commit": "9f2c1e0"}))
    second = await save_run(db, Run(started_at=BASE + dt.timedelta(hours=1)))
    await save_results(
        db,
        [
            TestResult(
                test_type=tuple(TestType)[i % 4],
                status=tuple(TestStatus)[i % 6],
                execution_time=i / 7,
                memory_usage=i * 1024,
                test_cases_passed=i % 3,
                test_cases_total=3,
                output=f"{WORDS[i % 5]} {WORDS[(i * 3) % 5]} ünïcode ς {i}",
                error_message=None if i % 4 else f"{WORDS[(i + 1) % 5]} failed",
                created_at=BASE + dt.timedelta(seconds=i // 2, microseconds=i),
                metadata={"i": i, "tags": ["x", i % 2 == 0], "f": 0.1 * i, "none": None},
                run_id=(first.id, second.id, None)[i % 3],
                test_id=f"tests/test_{i}.py::t" if i % 3 != 2 else None,
            )
            for i in range(n)
        ],
    )
    doomed = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="gone")
    )
    assert doomed.id is not None
    await delete_result(db, doomed.id)  # the counter has passed every id left
    for i, (data, expected, actual) in enumerate(
        [(b"3\n1 2 3\n", b"6\n", b"7\n"), (b"5\n", None, None), (b"3\n1 2 3\n", None, b"8\n")]
    ):
        failing = TestResult(
            test_type=TestType.STRESS,
            status=(TestStatus.FAILED, TestStatus.TIMEOUT)[i % 2],
            created_at=BASE + dt.timedelta(days=1, minutes=i),
            test_id=TEST,
            run_id=second.id if i == 0 else None,  # a test has one result in a run
        )
        await keep_counterexample(db, store, failing, input=data, expected=expected, actual=actual)
    for i in range(5):
        await set_config(db, "app", f"key{i}", [i, "x"] if i % 2 else i * 1.5)
    await save_config_entry(
        db, ConfigEntry(section="s", key="k", value="v", type=ConfigType.STR, description="d")
    )
    for i in range(7):
        await save_file_record(
            db, FileRecord(path=f"files/{i}.bin", size=i, created_at=BASE, metadata={"n": i})
        )


async def contents(
    db: Database,
) -> tuple[
    list[Run],
    list[TestResult],
    list[queries.ResultArtifactsRow],
    list[Counterexample],
    list[ConfigEntry],
    list[FileRecord],
]:
    """Every row of every copied table, ids included, and the counterexamples of `TEST`."""
    async with connection(db) as conn:
        links = await db.queries.copy_read_result_artifacts(
            conn, after_result_id=0, after_role="", page_size=1_000_000
        )
    return (
        await all_runs(db),
        await all_results(db),
        links,
        await counterexamples(db, TEST),
        await all_config_entries(db),
        await all_file_records(db),
    )


async def row_counts(db: Database, url: str | Path) -> dict[str, int]:
    """The rows of every table of a database, by plain SQL: SQLite's file, or PostgreSQL's URL."""
    async with connection(db) as conn:
        tables = await backend_of(db).table_names(conn)
    sql = [f'SELECT count(*) FROM "{table}"' for table in tables]  # noqa: S608  # its own names
    if isinstance(url, Path):

        def count() -> list[int]:
            with contextlib.closing(sqlite3.connect(url)) as file:
                return [int(file.execute(query).fetchone()[0]) for query in sql]

        return dict(zip(tables, await asyncio.to_thread(count), strict=True))
    seen = await asyncpg.connect(url)
    try:
        return {
            table: int(await seen.fetchval(query)) for table, query in zip(tables, sql, strict=True)
        }
    finally:
        await seen.close()


async def pages(db: Database, where: ResultFilter | None = None) -> list[list[int | None]]:
    """The ids of every page of a results listing, seven to a page."""
    found: list[list[int | None]] = []
    after: PageCursor | None = None
    while True:
        page = await list_results(db, where, limit=7, after=after)
        found.append([result.id for result in page.items])
        if page.next_cursor is None:
            return found
        after = page.next_cursor


async def hits(db: Database, text: str) -> list[list[int | None]]:
    """The ids of every page of a search, five to a page, in rank order."""
    found: list[list[int | None]] = []
    page = await search_results(db, text, limit=5)
    found.append([hit.result.id for hit in page.items])
    while page.next_cursor is not None:
        page = await search_results(db, text, limit=5, after=page.next_cursor)
        found.append([hit.result.id for hit in page.items])
    return found


async def assert_same(source: Database, target: Database) -> None:
    """Every row, every listing page and every search hit of `target` is as in `source`."""
    assert await contents(target) == await contents(source)
    for where in (
        None,
        ResultFilter(test_type=TestType.UNIT),
        ResultFilter(status=TestStatus.FAILED),
    ):
        assert await pages(target, where) == await pages(source, where)
    for text in SEARCHES:
        mine, theirs = await hits(target, text), await hits(source, text)
        if target.engine is source.engine:
            assert mine == theirs  # the same ranking
        else:  # each engine ranks its own way: the same hits, as many pages
            assert sorted(map(str, chain(*mine))) == sorted(map(str, chain(*theirs)))
            assert [len(page) for page in mine] == [len(page) for page in theirs]
    source_status, target_status = await migration_status(source), await migration_status(target)
    assert target_status.up_to_date
    assert [a.version for a in target_status.applied] == [a.version for a in source_status.applied]


async def indexes(url: str) -> list[tuple[str, str]]:
    """Each index of the copied tables of a PostgreSQL database, by name, with its SQL."""
    seen = await asyncpg.connect(url)
    try:
        rows = await seen.fetch(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY (SELECT t::regclass FROM unnest($1::text[]) AS t) ORDER BY 1",
            list(persistence.backup.COPIED_TABLES),
        )
    finally:
        await seen.close()
    return [(str(row[0]), str(row[1])) for row in rows]


async def new_id(db: Database) -> int | None:
    """The id the database gives the next result."""
    return (await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))).id


def names(folder: Path) -> list[str]:
    """The names in a folder, sorted."""
    return sorted(path.name for path in folder.iterdir())


async def run(*args: str) -> int:
    """Run the command line in a thread of its own, as from a shell: its exit code."""
    return await asyncio.to_thread(main, list(args))


async def writing(url: Path, stop: asyncio.Event, written: list[int]) -> None:
    """Save results one by one through a connection of its own until told to stop."""
    async with connect(url) as db:
        i = 0
        while not stop.is_set():
            result = TestResult(
                test_type=TestType.STRESS,
                status=TestStatus.FAILED,
                output=f"live alpha {i}",
                created_at=BASE,
            )
            saved = await save_result(db, result)
            assert saved.id is not None
            written.append(saved.id)
            i += 1
            await asyncio.sleep(0)


@pytest.fixture(name="store")
async def kept_store(tmp_path_factory: pytest.TempPathFactory) -> CounterexampleStore:
    """The kept files of the counterexamples, under a storage root of their own."""
    return await open_counterexample_store(await open_storage(tmp_path_factory.mktemp("kept")))


@pytest.fixture(name="source")
async def filled_sqlite(tmp_path: Path, store: CounterexampleStore) -> AsyncIterator[Database]:
    """A migrated SQLite database with rows in every copied table."""
    async with connect(tmp_path / "source.db") as db:
        await migrate(db)
        await fill(db, store)
        yield db


@pytest.fixture(name="postgres")
async def migrated_postgres(postgres_url: str) -> AsyncIterator[Database]:
    """A migrated, empty PostgreSQL database."""
    async with connect(postgres_url) as db:
        await migrate(db)
        yield db


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
    assert any("gin_pending_list_limit" in sql for _, sql in migrated)
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
    as_params = transfer._result_params  # noqa: SLF001  # the step every result passes

    def counting(row: queries.TestResultsRow) -> queries.CopyWriteTestResultsParams:
        nonlocal converted
        converted += 1
        if converted == 40:  # past the first pages
            halfway.set()
            raise RuntimeError("the disk went away")
        if converted == 80:  # in the second copy, past its first pages
            halfway.set()
        return as_params(row)

    monkeypatch.setattr(transfer, "_result_params", counting)
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

    async def held(conn: Any, *, after_id: int, page_size: int) -> list[Any]:  # noqa: ANN401  # as the query's
        if after_id > 0:  # a page after the first: read ahead, while the first is written
            reading.set()
            await gate.wait()
        return await real(conn, after_id=after_id, page_size=page_size)

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


async def test_bad_arguments_are_refused_before_anything_happens(
    tmp_path: Path, source: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Wrong types, sizes and paths are refused, naming what is wrong, with nothing written."""
    with pytest.raises(ValidationError, match="Database"):
        await copy_database(source, "target.db")  # type: ignore[arg-type]  # the mistake tested
    with pytest.raises(ValidationError, match="page_size"):
        await copy_database(source, source, page_size=0)
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(ValidationError, match="never overwrites"):
        await backup_database(source, tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"
    with pytest.raises(ValidationError, match="does not exist"):
        await backup_database(source, tmp_path / "no" / "where.backup")
    with pytest.raises(DatabaseError, match="no backup file"):
        await restore_database(source, tmp_path / "missing.backup")
    with pytest.raises(DatabaseError, match="not empty"):
        await copy_database(source, source)
    before = names(tmp_path)
    assert await run("copy", source.url, str(tmp_path / "new.db")) == 3
    assert await run("restore", str(tmp_path / "gone"), "--database", str(tmp_path / "x.db")) == 3
    assert await run("backup", str(tmp_path / "taken"), "--database", source.url) == 3
    assert await run("copy", source.url, "postgresql://u:secret@[bad/db") == 3
    err = capsys.readouterr().err
    assert "create and migrate it first" in err
    assert "no backup file" in err
    assert "never overwrites" in err
    assert "secret" not in err
    assert names(tmp_path) == before
    with pytest.raises(SystemExit):
        main(["copy", source.url])  # usage: refused before any loop runs


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


async def test_tables_of_the_users_own_migrations_are_refused_unless_skipped(
    tmp_path: Path, source: Database, postgres: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source holding the user's own tables is refused up front, naming them, unless skipped.

    The copy moves the package's tables only; leaving the user's behind must be asked for.
    Every table the package's migrations make, on either engine, is known as the package's.
    """
    for db in (source, postgres):
        async with connection(db) as conn:
            tables = await backend_of(db).table_names(conn)
        assert set(persistence.backup.COPIED_TABLES) <= set(tables)
        assert set(tables) <= persistence.backup.PACKAGE_TABLES, "a new table: name it there"
    mine = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (mine / engine).mkdir(parents=True)
        (mine / engine / "0001_notes.sql").write_text(
            "CREATE TABLE my_notes (id integer PRIMARY KEY, body text NOT NULL);\n"
            "CREATE VIEW my_failures AS SELECT id FROM test_results WHERE status = 'failed';\n",
            encoding="utf-8",
        )
    await migrate(source, mine)
    await migrate(postgres, mine)
    with pytest.raises(DatabaseError, match=r"tables of your own migrations.*: my_notes\. "):
        await copy_database(source, postgres)
    assert await contents(postgres) == EMPTY
    assert await run("copy", source.url, postgres.url) == 3
    assert "my_notes" in capsys.readouterr().err
    await backup_database(source, tmp_path / "lite.backup")  # a SQLite file is copied whole
    async with connect(tmp_path / "back.db") as back:
        await migrate(back)
        with pytest.raises(DatabaseError, match="my_notes"):
            await restore_database(back, tmp_path / "lite.backup")
        await restore_database(back, tmp_path / "lite.backup", skip_user_tables=True)
        await assert_same(source, back)

    await copy_database(source, postgres, skip_user_tables=True)
    await assert_same(source, postgres)
    with pytest.raises(DatabaseError, match="my_notes"):
        await backup_database(postgres, tmp_path / "pg.backup")
    assert not (tmp_path / "pg.backup").exists()
    assert (
        await run(
            "backup", str(tmp_path / "pg.backup"), "--database", postgres.url, "--skip-user-tables"
        )
        == 0
    )
    with pytest.raises(ValidationError, match="skip_user_tables"):
        await copy_database(source, postgres, skip_user_tables="yes")  # type: ignore[arg-type]  # the mistake tested


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


async def test_rows_at_ids_of_zero_and_below_are_copied_and_a_short_copy_is_refused(
    tmp_path: Path, source: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain SQL may write ids of 0 or below; the copy takes them, and checks every count."""
    with contextlib.closing(sqlite3.connect(tmp_path / "source.db")) as plain, plain:
        plain.execute(
            "UPDATE test_results SET id = -7 WHERE id = (SELECT min(id) FROM test_results"
            " WHERE id NOT IN (SELECT result_id FROM result_artifacts))"
        )
        plain.execute(
            "UPDATE config_entries SET id = 0 WHERE id = (SELECT min(id) FROM config_entries)"
        )
    async with connect(database_url) as target:
        await migrate(target)
        monkeypatch.setattr(transfer, "_BEFORE_EVERY_ID", 0)  # as paging once began
        short = r"test_results: (\d+) of (?!\1)\d+; config_entries: "
        with pytest.raises(DatabaseError, match=short):
            await copy_database(source, target)
        assert await contents(target) == EMPTY
        monkeypatch.undo()
        await copy_database(source, target)
        assert await contents(target) == await contents(source)
        assert -7 in [result.id for result in await all_results(target)]


def _descriptors_on(folder: Path) -> list[str]:
    """Where this process's descriptors open on `folder` (or in it) point, gone or not."""
    links = (os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir())
    return [link for link in links if link.startswith(str(folder))]


async def test_a_backup_whose_folder_is_made_while_other_tasks_are_cancelled_goes_on(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working folder being made, every task but the backup's cancelled: the backup ends.

    The folder was made in a task of its own: code that cancels every task but its own (a
    shutdown handler) cancelled it, the backup, which nobody had cancelled, failed, and the
    folder the thread then made was never removed, nor its locked descriptor closed.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    made: list[Path] = []
    started, go_on = threading.Event(), threading.Event()
    real = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:  # noqa: ANN401  # as tempfile's
        started.set()
        go_on.wait(5)
        folder = str(real(*args, **kwargs))
        made.append(Path(folder))
        return folder

    out = tmp_path / "out"
    out.mkdir()
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
    backing_up = asyncio.ensure_future(backup_database(db, out / "a.backup"))
    assert await asyncio.to_thread(started.wait, 5)
    cancel_all_tasks_but(backing_up)
    await asyncio.sleep(0.01)
    go_on.set()
    async with asyncio.timeout(10):
        report = await backing_up
    assert report.test_results == 1
    assert len(made) == 1
    assert names(out) == ["a.backup"]
    assert _descriptors_on(made[0]) == []
    monkeypatch.undo()
    assert (await backup_database(db, out / "b.backup")).test_results == 1
    assert names(out) == ["a.backup", "b.backup"]


async def test_a_cancel_while_a_working_folder_is_made_leaves_no_folder(
    tmp_path: Path, source: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its working folder is being made, a backup removes that folder.

    The folder, `.FILE.*.partial` beside the file, is made in a worker thread, which goes on
    after the cancel. A restore and a copy make no folder: they read in a read transaction.
    """
    made: list[Path] = []
    started, finished = threading.Event(), threading.Event()
    real = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:  # noqa: ANN401  # as tempfile's
        started.set()
        time.sleep(0.1)  # a slow file system: the cancel comes meanwhile
        folder = str(real(*args, **kwargs))
        made.append(Path(folder))
        finished.set()
        return folder

    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        await backup_database(source, tmp_path / "a.backup")
        monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
        for name, into in (("restored.db", "restore"), ("copied.db", "copy")):
            async with connect(tmp_path / name) as other:
                await migrate(other)
                if into == "restore":
                    await restore_database(other, tmp_path / "a.backup")
                else:
                    await copy_database(source, other)
        assert made == [], "a restore or a copy made a folder"
        before = names(tmp_path)
        task = asyncio.ensure_future(backup_database(source, tmp_path / "b.backup"))
        assert await asyncio.to_thread(started.wait, 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(finished.wait, 5)
        deadline = time.monotonic() + 1
        while any(folder.exists() for folder in made) and time.monotonic() < deadline:  # noqa: ASYNC110  # removed by a callback
            await asyncio.sleep(0.01)
        assert made
        assert [folder for folder in made if folder.exists()] == []
        assert names(tmp_path) == before
        monkeypatch.undo()
        assert await contents(target) == EMPTY


async def test_a_backup_with_undecodable_rows_is_refused_as_a_database_error(
    tmp_path: Path, source: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stored bytes that no longer decode (bad JSON, a bad time) fail the restore cleanly.

    The error is the package's, naming the file, so `persistence restore` reports it and exits
    with its code for a failed operation, not a traceback; the target stays empty.
    """
    good = tmp_path / "good.backup"
    await backup_database(source, good)
    for column, poison in (("metadata", '{"i": 1'), ("created_at", "2026-\x112-04T00:00:00")):
        bad = tmp_path / f"bad-{column}.backup"
        bad.write_bytes(good.read_bytes())
        with contextlib.closing(sqlite3.connect(bad)) as plain, plain:
            plain.execute("PRAGMA ignore_check_constraints = ON")
            plain.execute(
                f"UPDATE test_results SET {column} = ? "  # noqa: S608  # the test's own names
                "WHERE id = (SELECT max(id) FROM test_results)",
                (poison,),
            )
        async with connect(tmp_path / f"target-{column}.db") as target:
            await migrate(target)
            with pytest.raises(DatabaseError, match="cannot be decoded") as caught:
                await restore_database(target, bad)
            assert str(bad) in str(caught.value)
            assert await contents(target) == EMPTY
        code = await run("restore", str(bad), "--database", str(tmp_path / f"target-{column}.db"))
        assert code == 3
        assert "cannot be decoded" in capsys.readouterr().err


async def test_a_restore_refuses_bad_arguments_before_opening_the_file(tmp_path: Path) -> None:
    """A bad page size or flag is refused before the file is opened, so nothing appears beside it.

    A SQLite database in WAL mode, given as the file, gets `-wal` and `-shm` files once opened.
    """
    async with connect(tmp_path / "wal.db"):
        pass  # a file in WAL mode, closed: only the file is left
    assert "wal.db-shm" not in names(tmp_path)
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        before = names(tmp_path)
        with pytest.raises(ValidationError, match="page_size"):
            await restore_database(target, tmp_path / "wal.db", page_size=0)
        assert names(tmp_path) == before
        with pytest.raises(ValidationError, match="skip_user_tables"):
            await restore_database(target, tmp_path / "wal.db", skip_user_tables="yes")  # type: ignore[arg-type]  # the mistake tested
        assert names(tmp_path) == before


_STALLED = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import persistence.backup as backup
    from persistence import connect

    async def stall(*args, **kwargs):
        print("working", flush=True)
        await asyncio.sleep(30)  # killed long before

    publish = backup._publish

    def stall_publish(made, target):
        print("working", flush=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{target}.go") and time.monotonic() < deadline:
            time.sleep(0.01)  # killed meanwhile, or told to go on
        publish(made, target)

    async def main(what, database, file):
        async with connect(database) as db:
            if what == "backup":
                backup._publish = stall_publish
                await backup.backup_database(db, file)
            else:
                backup.move_rows = stall
                await backup.restore_database(db, file)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def stalled(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    """Start a backup or a restore in a process of its own, stalled in the middle of its work.

    A backup waits before it publishes until a file named as its own plus `.go` appears.
    """
    script = tmp_path / "stalled.py"
    script.write_text(_STALLED, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line == b"working\n", "the process got to its work"
    return process


async def killed(process: asyncio.subprocess.Process) -> None:
    """SIGKILL a process and reap it."""
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def test_working_folders_of_killed_processes_are_removed_by_the_next_one(
    tmp_path: Path, source: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process killed mid-backup or mid-restore left is removed, what a live one uses is not.

    A backup killed (SIGKILL) before it publishes leaves its `.FILE.*.partial` folder beside
    the file: the next backup of that file removes it, and the folder of a process still at
    work stays. A restore killed while it copies leaves nothing behind, in $TMPDIR or beside
    the file: it reads the backup in place, in a read transaction, and another restore meanwhile
    works.
    """
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    await backup_database(source, tmp_path / "a.backup")
    for name in ("t1.db", "t2.db", "t3.db"):
        async with connect(tmp_path / name) as target:
            await migrate(target)

    def partials() -> list[str]:
        return sorted(name for name in names(tmp_path) if name.endswith(".partial"))

    dead = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / "k"))
    await killed(dead)
    left = partials()
    assert len(left) == 1
    live = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / "k"))
    try:
        working = [name for name in partials() if name not in left]
        await backup_database(source, tmp_path / "k")
        assert partials() == working, "the dead process's folder went, the live one's stayed"
    finally:
        await killed(live)

    dead = await stalled(tmp_path, "restore", str(tmp_path / "t1.db"), str(tmp_path / "a.backup"))
    await killed(dead)
    assert names(tmp_path / "tmp") == []
    live = await stalled(tmp_path, "restore", str(tmp_path / "t2.db"), str(tmp_path / "a.backup"))
    try:
        async with connect(tmp_path / "t3.db") as target:
            await restore_database(target, tmp_path / "a.backup")
            await assert_same(source, target)
        assert names(tmp_path / "tmp") == []
    finally:
        await killed(live)
    async with connect(tmp_path / "t1.db") as target:
        assert await contents(target) == EMPTY


async def test_two_backups_to_one_file_give_one_and_leave_nothing_else(
    tmp_path: Path, source: Database
) -> None:
    """Of two backups to one file, the one that publishes first wins; the other overwrites nothing.

    A backup in another process, about to publish, finds the file made meanwhile by a backup of
    this one, or a symbolic link planted there (to a file that does not exist): it fails saying
    so, the link is left as it was and creates nothing, and no working folder stays.
    """
    (tmp_path / "tmp").mkdir()
    for name, plant in (("mine", "link"), ("theirs", "backup")):
        other = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / name))
        if plant == "link":
            (tmp_path / name).symlink_to(tmp_path / "victim")
        else:
            await backup_database(source, tmp_path / name)
        made = os.lstat(tmp_path / name)
        (tmp_path / f"{name}.go").touch()
        assert other.stderr is not None
        err = await asyncio.wait_for(other.stderr.read(), 30)
        assert await other.wait() != 0
        assert b"appeared meanwhile: a backup never overwrites a file" in err
        assert os.lstat(tmp_path / name) == made
        assert not (tmp_path / "victim").exists()
        assert [n for n in names(tmp_path) if n.endswith(".partial")] == []
    async with connect(tmp_path / "theirs", create=False) as backup:
        assert (await migration_status(backup)).up_to_date


@pytest.mark.parametrize("suffix", ["-journal", "-wal", "-shm"])
async def test_a_backup_is_refused_where_sqlite_keeps_a_databases_journal(
    tmp_path: Path, source: Database, suffix: str
) -> None:
    """A backup named as the journal, WAL or shared memory of a database would be deleted.

    SQLite takes `app.db-journal`, `app.db-wal` and `app.db-shm` for files of `app.db`, and
    removes them the next time `app.db` is used; and a `-journal` file planted beside a new
    backup is taken for its unfinished journal, so that the backup cannot be read. Both are
    refused up front, with nothing written.
    """
    async with connect(tmp_path / "app.db") as app:
        await migrate(app)
    before = names(tmp_path)
    with pytest.raises(ValidationError, match="SQLite"):
        await backup_database(source, tmp_path / f"app.db{suffix}")
    assert names(tmp_path) == before
    if suffix == "-journal":
        (tmp_path / "b.backup-journal").write_bytes(b"planted")
        before = names(tmp_path)
        with pytest.raises(ValidationError, match="journal"):
            await backup_database(source, tmp_path / "b.backup")
        assert names(tmp_path) == before


async def test_a_row_written_into_the_target_after_its_check_stops_the_copy(
    source: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer that fills the target between the check and the copy is seen, and kept.

    The target's emptiness is checked again as the first statement of the copy's transaction:
    the copy fails, the other writer's row stays alone, and none of the source's is written.
    """
    checked = persistence.backup._require_empty  # noqa: SLF001  # the check raced here
    async with connect(database_url) as target, connect(database_url) as other:
        await migrate(target)
        calls = 0

        async def then_another_writes(db: Database) -> None:
            nonlocal calls
            calls += 1
            await checked(db)
            if calls == 1:  # after the first check, before the copy's transaction
                await set_config(other, "theirs", "k", 1)

        monkeypatch.setattr(persistence.backup, "_require_empty", then_another_writes)
        with pytest.raises(DatabaseError, match=r"not empty \(config_entries holds 1 rows\)"):
            await copy_database(source, target)
        assert calls == 2
        runs, results, links, _, config, files = await contents(target)
        assert (runs, results, links, files) == ([], [], [], [])
        assert [(entry.section, entry.key) for entry in config] == [("theirs", "k")]


async def test_a_backup_path_holding_a_nul_is_refused_as_invalid(
    tmp_path: Path, source: Database
) -> None:
    """A path no file system can hold is a ValidationError, as other bad paths are, not a crash."""
    before = names(tmp_path)
    for path in (str(tmp_path / "a\0b"), tmp_path / "a\0b"):
        with pytest.raises(ValidationError, match="NUL"):
            await backup_database(source, path)
    assert names(tmp_path) == before
