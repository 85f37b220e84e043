"""The migration runner's promises, on both engines."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from contextlib import AbstractAsyncContextManager, closing
from pathlib import Path

import asyncpg
import pytest

from _early_rows import insert_early_results
from _migration_helpers import (
    BROKEN,
    CREATE_A,
    CREATE_B,
    empty_database,  # noqa: F401  # the `empty` fixture, used by name
    migrations,  # noqa: F401  # the `folder` fixture, used by name
    row_count,
    table_names,
    write,
)
from persistence import (
    Database,
    DatabaseError,
    MigrationError,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    connect,
    list_results,
    migrate,
    migration_status,
    search_results,
    transaction,
)
from persistence._backend import Backend
from persistence._database_value import backend_of
from persistence._interface import Connection
from persistence.migrations import checksum, discover_migrations, migrations_folder
from test_plain_ids import plain_sql


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Where a test's SQLite file goes."""
    return tmp_path / "test.db"


async def test_applies_in_order_then_nothing(empty: Database, folder: Path) -> None:
    """Migrate applies every file once, in order; a second run applies nothing."""
    applied = await migrate(empty, package_folder=folder)
    assert [m.version for m in applied] == [1, 2]
    assert await table_names(empty) == {"a", "b"}
    assert await migrate(empty, package_folder=folder) == []
    status = await migration_status(empty, package_folder=folder)
    assert status.up_to_date
    assert [a.name for a in status.applied] == ["0001_create_a", "0002_create_b"]
    assert all(a.duration_ms >= 0 for a in status.applied)
    assert status.applied[0].checksum == checksum(CREATE_A)


async def test_an_up_to_date_database_is_locked_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrating a database with nothing pending takes the runners' lock once, not once a file.

    Every `open_persistence` migrates; on an up-to-date database it used to lock, read the
    history and compare again for each applied file, half the time of an open.
    """
    kind = type(backend_of(db))
    taken: list[float] = []
    real = kind.migration

    def counted(self: Backend, lock_timeout: float) -> AbstractAsyncContextManager[Connection]:
        taken.append(lock_timeout)
        return real(self, lock_timeout)

    monkeypatch.setattr(kind, "migration", counted)
    assert await migrate(db) == []
    assert len(taken) == 1, f"the lock was taken {len(taken)} times"


async def test_status_lists_pending(empty: Database, folder: Path) -> None:
    """Before migrating, every file is pending and nothing is applied."""
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [1, 2]
    assert status.applied == ()
    assert not status.up_to_date


async def test_failing_migration_changes_nothing(empty: Database, folder: Path) -> None:
    """A failing migration leaves schema and history as they were, and names its file."""
    await migrate(empty, package_folder=folder)
    write(folder, "0003_broken.sql", BROKEN)
    with pytest.raises(MigrationError, match=r"0003_broken\.sql") as raised:
        await migrate(empty, package_folder=folder)
    assert raised.value.__cause__ is not None
    assert "c" not in await table_names(empty)
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.applied] == [1, 2]
    assert [m.version for m in status.pending] == [3]


async def test_edited_file_stops_the_run(empty: Database, folder: Path) -> None:
    """An applied file that was edited stops the run, naming it, until accepted."""
    await migrate(empty, package_folder=folder)
    write(folder, "0001_create_a.sql", CREATE_A + "-- an edit\n")
    write(folder, "0003_more.sql", "CREATE TABLE d (id integer PRIMARY KEY);\n")
    with pytest.raises(MigrationError, match=r"0001_create_a\.sql was edited"):
        await migrate(empty, package_folder=folder)
    assert "d" not in await table_names(empty)
    status = await migration_status(empty, package_folder=folder)
    assert [d.applied.version for d in status.drifted] == [1]
    applied = await migrate(empty, package_folder=folder, accept=[1])
    assert [m.version for m in applied] == [3]
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_deleted_file_stops_the_run(empty: Database, folder: Path) -> None:
    """An applied file that was deleted stops the run, naming it, until accepted."""
    write(folder, "0003_more.sql", "CREATE TABLE d (id integer PRIMARY KEY);\n")
    await migrate(empty, package_folder=folder)
    (folder / "0002_create_b.sql").unlink()
    with pytest.raises(MigrationError, match="0002_create_b was applied but its file is gone"):
        await migrate(empty, package_folder=folder)
    await migrate(empty, package_folder=folder, accept=[2])
    status = await migration_status(empty, package_folder=folder)
    assert status.up_to_date
    assert [a.version for a in status.applied] == [1, 3]


async def test_accepting_what_was_never_applied_is_refused(empty: Database, folder: Path) -> None:
    """Accepting a version that was never applied is an error."""
    with pytest.raises(MigrationError, match="never applied"):
        await migrate(empty, package_folder=folder, accept=[7])


async def test_line_endings_are_not_drift(empty: Database, folder: Path) -> None:
    """A file checked out with CRLF line endings has the same checksum."""
    await migrate(empty, package_folder=folder)
    path = folder / "0001_create_a.sql"
    path.write_bytes(CREATE_A.replace("\n", "\r\n").encode())
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_a_file_of_lone_cr_line_ends_runs_its_statements(
    empty: Database, folder: Path
) -> None:
    """A file whose lines end in a lone CR (as old Mac editors save) runs what it says.

    The splitter ended a `--` comment at LF alone, so the comment on the first line took the
    whole file: the migration was recorded as applied with none of its statements run, though
    the checksum reads CR as a line end and PostgreSQL's own lexer ends the comment there.
    """
    write(folder, "0001_create_a.sql", CREATE_A.replace("\n", "\r"))
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2]
    assert {"a", "b"} <= await table_names(empty)


async def test_two_runners_apply_each_migration_once(database_url: str, folder: Path) -> None:
    """Two runners started at once apply each migration exactly once between them."""
    for number in range(3, 13):
        write(folder, f"{number:04d}_t{number}.sql", f"CREATE TABLE t{number} (id integer);\n")
    async with connect(database_url) as first, connect(database_url) as second:
        results = await asyncio.gather(
            migrate(first, package_folder=folder), migrate(second, package_folder=folder)
        )
        versions = sorted(m.version for applied in results for m in applied)
        assert versions == list(range(1, 13))
        status = await migration_status(first, package_folder=folder)
    assert status.up_to_date
    assert len(status.applied) == 12


async def test_migrate_refuses_to_run_inside_a_transaction(db: Database) -> None:
    """Migrate manages its own transactions, so it refuses a bound database."""
    async with transaction(db) as tx:
        with pytest.raises(MigrationError, match="outside transaction"):
            await migrate(tx)


async def test_status_only_reads(empty: Database, folder: Path) -> None:
    """Status on a database that was never migrated reports all pending and creates nothing."""
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [1, 2]
    assert await table_names(empty) == set()
    if empty.engine.value == "sqlite":
        with closing(sqlite3.connect(empty.url)) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


async def _hold_runners_lock(url: str, seconds: float, held: asyncio.Event) -> None:
    """Hold the lock that migration runners take, as a runner in another process would."""
    if url.startswith("postgresql"):
        pg = await asyncpg.connect(url)
        try:
            async with pg.transaction():
                await pg.execute("SELECT pg_advisory_xact_lock($1)", 0x70657273)
                held.set()
                await asyncio.sleep(seconds)
        finally:
            await pg.close()
        return
    lite = sqlite3.connect(url, isolation_level=None)
    try:
        lite.execute("BEGIN IMMEDIATE")
        held.set()
        await asyncio.sleep(seconds)
        lite.execute("ROLLBACK")
    finally:
        lite.close()


@pytest.mark.parametrize("lock_timeout", [math.nan, math.inf, -1.0, "5", True])
async def test_a_bad_lock_timeout_is_refused_before_anything_runs(
    empty: Database, folder: Path, lock_timeout: object
) -> None:
    """`lock_timeout` is a finite number of seconds, 0 or more, or is refused by name first.

    On PostgreSQL NaN and infinity raised a bare ValueError or OverflowError, and "5" went into
    the SQL a thousand times over; SQLite applied every migration with NaN. A bound beyond what
    PostgreSQL's setting holds (about 24 days) means waiting that long, not an error.
    """
    with pytest.raises(ValidationError, match="lock_timeout"):
        await migrate(empty, package_folder=folder, lock_timeout=lock_timeout)  # type: ignore[arg-type]  # refused
    assert (await migration_status(empty, package_folder=folder)).applied == ()
    applied = await migrate(empty, package_folder=folder, lock_timeout=1e300)
    assert [m.version for m in applied] == [1, 2]


async def test_runner_waits_its_lock_timeout_on_both_engines(
    database_url: str, folder: Path
) -> None:
    """A runner waits for another one up to lock_timeout, beyond SQLite's busy timeout."""
    async with connect(database_url, busy_timeout=0.2) as db:
        held = asyncio.Event()
        holder = asyncio.create_task(_hold_runners_lock(database_url, 1.0, held))
        await held.wait()
        started = asyncio.get_running_loop().time()
        applied = await migrate(db, package_folder=folder, lock_timeout=10)
        waited = asyncio.get_running_loop().time() - started
        await holder
    assert [m.version for m in applied] == [1, 2]
    assert 0.7 < waited < 8


async def test_runner_gives_up_after_its_lock_timeout(database_url: str, folder: Path) -> None:
    """A runner that cannot get the lock within lock_timeout says so, and applies nothing."""
    async with connect(database_url) as db:
        held = asyncio.Event()
        holder = asyncio.create_task(_hold_runners_lock(database_url, 2.0, held))
        await held.wait()
        started = asyncio.get_running_loop().time()
        with pytest.raises(DatabaseError, match=r"for over 0\.3s"):
            await migrate(db, package_folder=folder, lock_timeout=0.3)
        assert asyncio.get_running_loop().time() - started < 1.5
        await holder
        assert not (await migration_status(db, package_folder=folder)).applied


REBUILD = """
-- SQLite's recipe for changing a table: build the new one, copy, drop, rename.
CREATE TABLE parent_new (id integer PRIMARY KEY, name text NOT NULL DEFAULT '');
INSERT INTO parent_new (id) SELECT id FROM parent;
DROP TABLE parent;
ALTER TABLE parent_new RENAME TO parent;
"""


async def test_table_rebuild_keeps_the_children(sqlite_path: Path, tmp_path: Path) -> None:
    """A migration that rebuilds a parent table keeps its 100 child rows (SQLite)."""
    folder = tmp_path / "rebuild"
    write(
        folder,
        "0001_family.sql",
        "CREATE TABLE parent (id integer PRIMARY KEY);\n"
        "CREATE TABLE child (id integer PRIMARY KEY, "
        "parent_id integer NOT NULL REFERENCES parent (id) ON DELETE CASCADE);\n",
    )
    async with connect(sqlite_path) as db:
        await migrate(db, package_folder=folder)
    with closing(sqlite3.connect(sqlite_path)) as lite:
        lite.executemany("INSERT INTO parent (id) VALUES (?)", [(n,) for n in range(100)])
        lite.executemany("INSERT INTO child (parent_id) VALUES (?)", [(n,) for n in range(100)])
        lite.commit()
    write(folder, "0002_rebuild_parent.sql", REBUILD)
    async with connect(sqlite_path) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [2]
    with closing(sqlite3.connect(sqlite_path)) as lite:
        assert lite.execute("SELECT count(*) FROM child").fetchone() == (100,)
        assert lite.execute("PRAGMA foreign_key_check").fetchall() == []


async def test_a_migration_that_orphans_rows_is_refused(sqlite_path: Path, tmp_path: Path) -> None:
    """With foreign keys off for a migration, foreign_key_check still guards the commit."""
    folder = tmp_path / "orphans"
    write(
        folder,
        "0001_family.sql",
        "CREATE TABLE parent (id integer PRIMARY KEY);\n"
        "CREATE TABLE child (id integer PRIMARY KEY, parent_id integer REFERENCES parent (id));\n"
        "INSERT INTO parent (id) VALUES (1);\nINSERT INTO child (parent_id) VALUES (1);\n",
    )
    write(folder, "0002_drop_parent.sql", "DELETE FROM parent;\n")
    async with connect(sqlite_path) as db:
        with pytest.raises(MigrationError, match=r"0002_drop_parent\.sql.*foreign key"):
            await migrate(db, package_folder=folder)
        status = await migration_status(db, package_folder=folder)
    assert [m.version for m in status.pending] == [2]
    with closing(sqlite3.connect(sqlite_path)) as lite:
        assert lite.execute("SELECT count(*) FROM parent").fetchone() == (1,)


async def test_a_gap_filled_later_is_not_applied_out_of_order(
    empty: Database, folder: Path
) -> None:
    """A file numbered below one already applied is refused, not run out of order."""
    (folder / "0002_create_b.sql").rename(folder / "0003_create_b.sql")
    await migrate(empty, package_folder=folder)
    write(folder, "0002_late.sql", "CREATE TABLE late (id integer);\n")
    with pytest.raises(MigrationError, match=r"0002_late\.sql is pending but a later"):
        await migrate(empty, package_folder=folder)
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.out_of_order] == [2]
    assert not status.up_to_date
    assert "late" not in await table_names(empty)


async def test_a_newer_database_says_so(empty: Database, folder: Path, tmp_path: Path) -> None:
    """History beyond every file means newer code migrated it, and the error says that."""
    newer = tmp_path / "newer"
    write(newer, "0001_create_a.sql", CREATE_A)
    write(newer, "0002_create_b.sql", CREATE_B)
    write(newer, "0003_new.sql", "CREATE TABLE n (id integer);\n")
    await migrate(empty, package_folder=newer)
    with pytest.raises(MigrationError, match="0003_new applied, newer than every migration"):
        await migrate(empty, package_folder=folder)
    status = await migration_status(empty, package_folder=folder)
    assert [a.version for a in status.newer] == [3]
    assert status.drifted == ()


@pytest.mark.parametrize(
    "foreign",
    [
        "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)",
        "CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY)",
        "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY NOT NULL)",
    ],
    ids=["golang-migrate", "rails", "dbmate"],
)
async def test_another_tools_history_table_is_left_alone(
    empty: Database, folder: Path, foreign: str
) -> None:
    """A schema_migrations table of another tool neither breaks the runner nor is touched."""
    await plain_sql(empty.url, foreign)
    await plain_sql(
        empty.url,
        "INSERT INTO schema_migrations (version) VALUES ('20200101000000')"
        if "dirty" not in foreign
        else "INSERT INTO schema_migrations (version, dirty) VALUES (1, false)",
    )
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2]
    assert (await migration_status(empty, package_folder=folder)).up_to_date
    assert {"schema_migrations", "a", "b"} <= await table_names(empty)
    assert await row_count(empty, "schema_migrations") == 1


async def test_the_history_of_an_earlier_version_is_adopted(empty: Database, folder: Path) -> None:
    """A history kept under the old name schema_migrations is renamed, not run again."""
    await migrate(empty, package_folder=folder)
    await plain_sql(empty.url, "ALTER TABLE persistence_migrations RENAME TO schema_migrations")
    status = await migration_status(empty, package_folder=folder)
    assert any("earlier version" in note for note in status.notes)
    assert await migrate(empty, package_folder=folder) == []
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_a_migration_of_comments_only_applies(empty: Database, folder: Path) -> None:
    """A new, still empty migration (comments only) applies and is recorded, on both engines."""
    write(folder, "0003_empty.sql", "-- nothing yet\n/* still nothing */\n")
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2, 3]
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_search_finds_every_result_saved_before_its_migration(
    empty: Database, tmp_path: Path
) -> None:
    """10,000 results saved at 0001 are all found by search once 0002 has indexed them."""
    first = tmp_path / "first"
    first.mkdir()
    initial = discover_migrations(migrations_folder(empty.engine))[0]
    (first / initial.path.name).write_text(initial.sql, encoding="utf-8")
    await migrate(empty, package_folder=first)
    statuses = [status for status in TestStatus if status is not TestStatus.SKIPPED]  # 0001's
    await insert_early_results(
        empty.url,
        [
            TestResult(
                test_type=TestType.STRESS,
                status=statuses[i % len(statuses)],
                output=f"case r{i} of the stress run",
                error_message=None if i % 2 else f"wrong answer on r{i}",
            )
            for i in range(10_000)
        ],
    )
    applied = await migrate(empty)
    assert [m.version for m in applied][:1] == [2]
    everything = await search_results(empty, "stress run", limit=10_000)
    assert len({hit.result.id for hit in everything.items}) == 10_000
    assert everything.next_cursor is not None
    assert (await search_results(empty, "stress run", after=everything.next_cursor)).items == ()
    for i in (0, 1, 4_321, 9_999):
        (hit,) = (await search_results(empty, f"r{i}")).items
        assert hit.result.output == f"case r{i} of the stress run"
    failed = await list_results(empty, ResultFilter(statuses={TestStatus.FAILED}), limit=10_000)
    assert len(failed.items) == sum(
        1 for i in range(10_000) if statuses[i % 6] is TestStatus.FAILED
    )


async def test_another_programs_database_refused_at_the_first_migration_is_left_as_it_was(
    empty: Database,
) -> None:
    """A database whose own `config_entries` is in 0001's way: refused, with no table added.

    The history table was made in a transaction of its own, before the first migration: the
    refused database kept an empty `persistence_migrations`, of a package it never took.
    """
    await plain_sql(empty.url, "CREATE TABLE config_entries (name TEXT)")
    theirs = await table_names(empty, every=True)
    assert theirs == {"config_entries"}
    with pytest.raises(MigrationError, match="0001_initial_schema"):
        await migrate(empty)
    assert await table_names(empty, every=True) == theirs
    status = await migration_status(empty)
    assert status.applied == ()
    assert status.pending[0].version == 1
    await plain_sql(empty.url, "DROP TABLE config_entries")  # out of the way: it migrates
    assert [m.version for m in await migrate(empty)][:1] == [1]
    assert (await migration_status(empty)).up_to_date
