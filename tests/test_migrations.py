"""The migration runner's promises, on both engines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from persistence import Database, MigrationError, connect, migrate, migration_status, transaction
from persistence._sqlite import split_sqlite
from persistence.migrations import checksum, discover_migrations

CREATE_A = "-- first\nCREATE TABLE a (id integer PRIMARY KEY, name text NOT NULL);\n"
CREATE_B = "CREATE TABLE b (id integer PRIMARY KEY);\nINSERT INTO b (id) VALUES (1);\n"
BROKEN = "CREATE TABLE c (id integer PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n"


def write(folder: Path, name: str, text: str) -> Path:
    """Write one migration file."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(name="folder")
def migrations(tmp_path: Path) -> Path:
    """A folder with two good migrations."""
    folder = tmp_path / "migrations"
    write(folder, "0001_create_a.sql", CREATE_A)
    write(folder, "0002_create_b.sql", CREATE_B)
    return folder


@pytest.fixture(name="empty")
async def empty_database(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with nothing applied, of each engine."""
    async with connect(database_url) as db:
        yield db


async def _table_names(db: Database) -> set[str]:
    """The tables of the database behind `db`, read over a connection of the test's own."""
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            names = [
                row[0]
                for row in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
    else:
        pg = await asyncpg.connect(db.url)
        try:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            names = [row[0] for row in await pg.fetch(query)]
        finally:
            await pg.close()
    return set(names) - {"persistence_migrations", "sqlite_sequence"}


async def test_applies_in_order_then_nothing(empty: Database, folder: Path) -> None:
    """Migrate applies every file once, in order; a second run applies nothing."""
    applied = await migrate(empty, folder)
    assert [m.version for m in applied] == [1, 2]
    assert await _table_names(empty) == {"a", "b"}
    assert await migrate(empty, folder) == []
    status = await migration_status(empty, folder)
    assert status.up_to_date
    assert [a.name for a in status.applied] == ["0001_create_a", "0002_create_b"]
    assert all(a.duration_ms >= 0 for a in status.applied)
    assert status.applied[0].checksum == checksum(CREATE_A)


async def test_status_lists_pending(empty: Database, folder: Path) -> None:
    """Before migrating, every file is pending and nothing is applied."""
    status = await migration_status(empty, folder)
    assert [m.version for m in status.pending] == [1, 2]
    assert status.applied == ()
    assert not status.up_to_date


async def test_failing_migration_changes_nothing(empty: Database, folder: Path) -> None:
    """A failing migration leaves schema and history as they were, and names its file."""
    await migrate(empty, folder)
    write(folder, "0003_broken.sql", BROKEN)
    with pytest.raises(MigrationError, match=r"0003_broken\.sql") as raised:
        await migrate(empty, folder)
    assert raised.value.__cause__ is not None
    assert "c" not in await _table_names(empty)
    status = await migration_status(empty, folder)
    assert [m.version for m in status.applied] == [1, 2]
    assert [m.version for m in status.pending] == [3]


async def test_edited_file_stops_the_run(empty: Database, folder: Path) -> None:
    """An applied file that was edited stops the run, naming it, until accepted."""
    await migrate(empty, folder)
    write(folder, "0001_create_a.sql", CREATE_A + "-- an edit\n")
    write(folder, "0003_more.sql", "CREATE TABLE d (id integer PRIMARY KEY);\n")
    with pytest.raises(MigrationError, match=r"0001_create_a\.sql was edited"):
        await migrate(empty, folder)
    assert "d" not in await _table_names(empty)
    status = await migration_status(empty, folder)
    assert [d.applied.version for d in status.drifted] == [1]
    applied = await migrate(empty, folder, accept=[1])
    assert [m.version for m in applied] == [3]
    assert (await migration_status(empty, folder)).up_to_date


async def test_deleted_file_stops_the_run(empty: Database, folder: Path) -> None:
    """An applied file that was deleted stops the run, naming it, until accepted."""
    write(folder, "0003_more.sql", "CREATE TABLE d (id integer PRIMARY KEY);\n")
    await migrate(empty, folder)
    (folder / "0002_create_b.sql").unlink()
    with pytest.raises(MigrationError, match="0002_create_b was applied but its file is gone"):
        await migrate(empty, folder)
    await migrate(empty, folder, accept=[2])
    status = await migration_status(empty, folder)
    assert status.up_to_date
    assert [a.version for a in status.applied] == [1, 3]


async def test_accepting_what_was_never_applied_is_refused(empty: Database, folder: Path) -> None:
    """Accepting a version that was never applied is an error."""
    with pytest.raises(MigrationError, match="never applied"):
        await migrate(empty, folder, accept=[7])


async def test_line_endings_are_not_drift(empty: Database, folder: Path) -> None:
    """A file checked out with CRLF line endings has the same checksum."""
    await migrate(empty, folder)
    path = folder / "0001_create_a.sql"
    path.write_bytes(CREATE_A.replace("\n", "\r\n").encode())
    assert (await migration_status(empty, folder)).up_to_date


async def test_two_runners_apply_each_migration_once(database_url: str, folder: Path) -> None:
    """Two runners started at once apply each migration exactly once between them."""
    for number in range(3, 13):
        write(folder, f"{number:04d}_t{number}.sql", f"CREATE TABLE t{number} (id integer);\n")
    async with connect(database_url) as first, connect(database_url) as second:
        results = await asyncio.gather(migrate(first, folder), migrate(second, folder))
        versions = sorted(m.version for applied in results for m in applied)
        assert versions == list(range(1, 13))
        status = await migration_status(first, folder)
    assert status.up_to_date
    assert len(status.applied) == 12


@pytest.mark.parametrize(
    ("name", "reason"),
    [("1_short.sql", "NNNN_slug"), ("0001-dash.sql", "NNNN_slug"), ("0001_Upper.sql", "NNNN_slug")],
)
def test_badly_named_files_are_refused(tmp_path: Path, name: str, reason: str) -> None:
    """A migration file whose name is not NNNN_slug.sql is an error naming it."""
    write(tmp_path, name, CREATE_A)
    with pytest.raises(MigrationError, match=reason) as raised:
        discover_migrations(tmp_path)
    assert name in str(raised.value)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    """Two files with one version number are an error naming both."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    write(tmp_path, "0001_b.sql", CREATE_B)
    with pytest.raises(MigrationError, match=r"0001_b.sql and 0001_a.sql|0001_a.sql and 0001_b"):
        discover_migrations(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    """A folder that does not exist is an error naming it."""
    with pytest.raises(MigrationError, match="does not exist"):
        discover_migrations(tmp_path / "nope")


def test_statement_splitting_keeps_triggers_whole() -> None:
    """Splitting a script keeps a trigger body, with its inner semicolons, as one statement."""
    script = (
        "CREATE TABLE x (id integer);\n"
        "-- a comment; with a semicolon\n"
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN\n  UPDATE x SET id = 1;\n  SELECT 1;\nEND;\n"
        "INSERT INTO x VALUES (';');\n"
    )
    statements = split_sqlite(script)
    assert len(statements) == 3
    assert statements[1].startswith("-- a comment")
    assert statements[1].endswith("END;")


def test_incomplete_statement_is_refused() -> None:
    """A script ending in an unfinished statement is an error."""
    with pytest.raises(MigrationError, match="incomplete"):
        split_sqlite("CREATE TABLE x (id integer);\nCREATE TABLE y (")


async def test_migrate_refuses_to_run_inside_a_transaction(db: Database) -> None:
    """Migrate manages its own transactions, so it refuses a bound database."""
    async with transaction(db) as tx:
        with pytest.raises(MigrationError, match="outside transaction"):
            await migrate(tx)


async def test_status_only_reads(empty: Database, folder: Path) -> None:
    """Status on a database that was never migrated reports all pending and creates nothing."""
    status = await migration_status(empty, folder)
    assert [m.version for m in status.pending] == [1, 2]
    assert await _table_names(empty) == set()
    if empty.engine.value == "sqlite":
        with closing(sqlite3.connect(empty.url)) as conn:
            assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
