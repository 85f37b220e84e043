"""The migration runner's promises, on both engines."""

from __future__ import annotations

import asyncio
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, closing
from pathlib import Path

import asyncpg
import pytest

from _early_rows import insert_early_results
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
from persistence._interface import Connection
from persistence._sqlite import split_sqlite
from persistence.database import backend_of
from persistence.migrations import checksum, discover_migrations, migrations_folder

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


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """Where a test's SQLite file goes."""
    return tmp_path / "test.db"


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
    applied = await migrate(empty, package_folder=folder)
    assert [m.version for m in applied] == [1, 2]
    assert await _table_names(empty) == {"a", "b"}
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
    assert "c" not in await _table_names(empty)
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
    assert "d" not in await _table_names(empty)
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
    assert {"a", "b"} <= await _table_names(empty)


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
    statements = [statement.text for statement in split_sqlite(script)]
    assert len(statements) == 3
    assert statements[1].startswith("-- a comment")
    assert statements[1].endswith("END;")


async def test_statements_sharing_a_line_apply_on_both_engines(
    empty: Database, folder: Path
) -> None:
    """Several statements on one line run one by one on SQLite too, as they do on PostgreSQL.

    The SQLite splitter cut scripts at line ends only, so two statements on one line reached
    the driver together and the migration failed: "You can only execute one statement at a time".
    """
    write(
        folder,
        "0003_one_line.sql",
        "CREATE TABLE p (id integer); CREATE TABLE q (note text DEFAULT ';'); -- and; more\n"
        "INSERT INTO p (id) VALUES (1); /* ; */ INSERT INTO q (note) VALUES ('a;b');\n",
    )
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2, 3]
    assert {"p", "q"} <= await _table_names(empty)
    assert await _count(empty, "q") == 1
    write(folder, "0004_sneaky.sql", "CREATE TABLE r (id integer); COMMIT;\n")
    with pytest.raises(MigrationError, match=r"0004_sneaky\.sql: COMMIT is not allowed"):
        await migrate(empty, package_folder=folder)


async def test_an_unterminated_comment_is_refused_on_both_engines(
    empty: Database, folder: Path
) -> None:
    """A /* comment never closed is refused on SQLite as on PostgreSQL, not applied as empty.

    SQLite reads such a comment to the end of the script, so the statements after it were
    silently left out, and the migration was recorded as applied.
    """
    write(
        folder,
        "0003_open.sql",
        "CREATE TABLE kept (id integer);\n/* closed */\n/* never closed\n"
        "CREATE TABLE lost (id integer);\n",
    )
    with pytest.raises(
        MigrationError, match=r"^0003_open\.sql:3: a /\* comment opened here is never closed$"
    ):
        await migrate(empty, package_folder=folder)
    assert await _table_names(empty) == set()


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
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [1, 2]
    assert await _table_names(empty) == set()
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


@pytest.mark.parametrize(
    "statement",
    ["COMMIT;", "commit;", "END;", "BEGIN;", "ROLLBACK;", "/* why */ COMMIT;", "-- x\nBEGIN;"],
)
async def test_transaction_control_in_a_file_is_refused_first(
    empty: Database, folder: Path, statement: str
) -> None:
    """A file that would end or start a transaction is refused before any file runs."""
    write(folder, "0003_sneaky.sql", f"CREATE TABLE c (id integer);\n{statement}\nBROKEN;\n")
    with pytest.raises(MigrationError, match=r"0003_sneaky\.sql: .* is not allowed"):
        await migrate(empty, package_folder=folder)
    assert await _table_names(empty) == set()
    assert (await migration_status(empty, package_folder=folder)).applied == ()


@pytest.mark.parametrize(
    "sneaky",
    [
        "\ufeffCOMMIT;\nCREATE TABLE half (id integer);\nSELECT * FROM nowhere;\n",
        "CREATE TABLE half (id integer);\n\ufeffCOMMIT;\nSELECT * FROM nowhere;\n",
    ],
    ids=["first", "later"],
)
async def test_a_byte_order_mark_hides_nothing_and_breaks_nothing(
    empty: Database, folder: Path, sneaky: str
) -> None:
    """A file saved with a UTF-8 BOM applies on both engines; a BOM before COMMIT hides it not.

    SQLite skips a BOM at the start of a statement and PostgreSQL does not: read as it is, such a
    file failed on PostgreSQL alone, and on SQLite a BOM let COMMIT past the check, ending the
    migration's transaction early and leaving half of it behind.
    """
    write(folder, "0003_bom.sql", "\ufeffCREATE TABLE bom (id integer);\n")
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2, 3]
    write(folder, "0004_sneaky.sql", sneaky)
    with pytest.raises(MigrationError, match=r"0004_sneaky\.sql: COMMIT is not allowed"):
        await migrate(empty, package_folder=folder)
    assert "half" not in await _table_names(empty)
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [4]


async def test_dollar_quoted_bodies_may_say_begin(postgres_url: str, tmp_path: Path) -> None:
    """BEGIN and COMMIT inside a function body are not transaction control (PostgreSQL)."""
    folder = tmp_path / "plpgsql"
    write(
        folder,
        "0001_function.sql",
        "CREATE FUNCTION one() RETURNS integer LANGUAGE plpgsql AS $body$\n"
        "BEGIN\n  RETURN 1; -- COMMIT; here is a comment\nEND;\n$body$;\n"
        "CREATE TABLE t (note text DEFAULT 'COMMIT; BEGIN;');\n",
    )
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1]


async def test_escape_strings_are_read_as_the_server_reads_them(
    postgres_url: str, tmp_path: Path
) -> None:
    r"""A `\'` inside `E'...'` neither cuts the string nor hides a COMMIT after it (PostgreSQL).

    The splitter ended such a string at `\'`: a valid migration failed with a syntax error, and
    `E'\''; COMMIT; --'` passed the check, its COMMIT ending the migration's transaction.
    """
    folder = tmp_path / "escapes"
    write(folder, "0001_quote.sql", "CREATE TABLE t (note text DEFAULT E'it\\'s; fine');\n")
    sneaky = "CREATE TABLE half (id integer);\nSELECT E'\\''; COMMIT; --'\nSELECT * FROM nowhere;\n"
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1]
        write(folder, "0002_sneaky.sql", sneaky)
        with pytest.raises(MigrationError, match=r"0002_sneaky\.sql: COMMIT is not allowed"):
            await migrate(db, package_folder=folder)
        assert await _table_names(db) == {"t"}
    server = await asyncpg.connect(postgres_url)
    try:
        await server.execute("INSERT INTO t DEFAULT VALUES")
        assert await server.fetchval("SELECT note FROM t") == "it's; fine"
    finally:
        await server.close()


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    """A migration file that is not UTF-8 is a MigrationError naming it, not a decode error."""
    (tmp_path / "0001_latin1.sql").write_bytes(
        "-- café\nCREATE TABLE a (id integer);\n".encode("latin-1")
    )
    with pytest.raises(MigrationError, match=r"0001_latin1\.sql is not UTF-8"):
        discover_migrations(tmp_path)


async def test_a_nul_character_in_a_file_is_refused_by_name(empty: Database, folder: Path) -> None:
    """A NUL in a migration file is refused by name before any file runs, on both engines.

    SQLite's driver raised a bare ValueError, which the command line showed as a traceback, and
    PostgreSQL dropped the connection, reported as lost mid-call.
    """
    write(folder, "0003_nul.sql", "CREATE TABLE n (id integer);\n\x00\n")
    with pytest.raises(MigrationError, match=r"0003_nul\.sql holds a NUL character \(byte 29\)"):
        await migrate(empty, package_folder=folder)
    assert await _table_names(empty) == set()


def test_a_folder_named_like_a_migration_is_named(tmp_path: Path) -> None:
    """A folder named 0002_x.sql is a MigrationError naming it, not IsADirectoryError."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    (tmp_path / "0002_x.sql").mkdir()
    with pytest.raises(MigrationError, match=r"0002_x\.sql is a folder"):
        discover_migrations(tmp_path)


SPECIAL_FILE_BOUND = float(os.environ.get("TEST_SPECIAL_FILE_BOUND", "10"))
"""Seconds a child process gets to refuse a special file; reading one never ends."""

_DISCOVER_IN_A_CHILD = """\
import resource, sys
from pathlib import Path
from persistence.exceptions import MigrationError
from persistence.migrations import discover_migrations
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
try:
    discover_migrations(Path(sys.argv[1]))
except MigrationError as error:
    print(error)
"""


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "symlink-to-fifo"])
def test_a_special_file_named_like_a_migration_is_refused_unread(tmp_path: Path, kind: str) -> None:
    """A FIFO, or a symlink to /dev/zero or to a FIFO, is refused at once, never read.

    Read, a FIFO with no writer blocks forever and /dev/zero fills memory; the folder is read
    in a child process bounded in time and memory, so that neither can hang the tests.
    """
    folder = tmp_path / "migrations"
    write(folder, "0001_a.sql", CREATE_A)
    special = folder / "0002_x.sql"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "dev-zero":
        special.symlink_to("/dev/zero")
    else:
        os.mkfifo(tmp_path / "outside")
        special.symlink_to(tmp_path / "outside")
    child = subprocess.run(
        [sys.executable, "-c", _DISCOVER_IN_A_CHILD, str(folder)],
        capture_output=True,
        text=True,
        timeout=SPECIAL_FILE_BOUND,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert "0002_x.sql is not a regular file" in child.stdout


@pytest.mark.parametrize("name", ["0002_x.SQL", "0002_x.Sql", "0002-x.sql"])
def test_near_miss_names_are_not_skipped(tmp_path: Path, name: str) -> None:
    """A file that looks like a migration but is misnamed is refused, not silently skipped."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    write(tmp_path, name, CREATE_B)
    with pytest.raises(MigrationError, match=re.escape(name)):
        discover_migrations(tmp_path)


@pytest.mark.parametrize(
    "name", ["\u0660\u0660\u0660\u0662_arabic.sql", "\uff10\uff10\uff10\uff12_wide.sql"]
)
def test_a_version_of_other_digits_is_refused(tmp_path: Path, name: str) -> None:
    """Versions are ASCII digits: Arabic-Indic or full-width ones are a near miss, refused."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    write(tmp_path, name, CREATE_B)
    with pytest.raises(MigrationError, match=re.escape(name)):
        discover_migrations(tmp_path)


async def test_a_version_beyond_64_bits_is_refused_before_anything_runs(
    empty: Database, folder: Path
) -> None:
    """A version the history's bigint cannot hold is refused by name, before any file runs.

    It ran its statements, then failed to record its row with a bare OverflowError on SQLite.
    """
    write(folder, "9223372036854775808_huge.sql", "CREATE TABLE huge (id integer);\n")
    with pytest.raises(MigrationError, match=r"9223372036854775808_huge\.sql: .*version"):
        await migrate(empty, package_folder=folder)
    assert await _table_names(empty) == set()
    write(folder, "9223372036854775808_huge.sql", "")
    (folder / "9223372036854775808_huge.sql").rename(folder / "9223372036854775807_last.sql")
    assert [m.version for m in await migrate(empty, package_folder=folder)][-1] == 2**63 - 1


def test_other_files_are_left_alone(tmp_path: Path) -> None:
    """A README or an editor's hidden file beside the migrations is not a migration."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    write(tmp_path, "README.md", "notes")
    write(tmp_path, ".0002_x.sql.swp", "junk")
    assert [m.version for m in discover_migrations(tmp_path)] == [1]


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
    assert "late" not in await _table_names(empty)


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
    await _admin_sql(empty, foreign)
    await _admin_sql(
        empty,
        "INSERT INTO schema_migrations (version) VALUES ('20200101000000')"
        if "dirty" not in foreign
        else "INSERT INTO schema_migrations (version, dirty) VALUES (1, false)",
    )
    assert [m.version for m in await migrate(empty, package_folder=folder)] == [1, 2]
    assert (await migration_status(empty, package_folder=folder)).up_to_date
    assert {"schema_migrations", "a", "b"} <= await _table_names(empty)
    assert await _count(empty, "schema_migrations") == 1


async def test_the_history_of_an_earlier_version_is_adopted(empty: Database, folder: Path) -> None:
    """A history kept under the old name schema_migrations is renamed, not run again."""
    await migrate(empty, package_folder=folder)
    await _admin_sql(empty, "ALTER TABLE persistence_migrations RENAME TO schema_migrations")
    status = await migration_status(empty, package_folder=folder)
    assert any("earlier version" in note for note in status.notes)
    assert await migrate(empty, package_folder=folder) == []
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def _admin_sql(db: Database, statement: str) -> None:
    """Run one statement over a connection of the test's own."""
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            lite.execute(statement)
            lite.commit()
        return
    pg = await asyncpg.connect(db.url)
    try:
        await pg.execute(statement)
    finally:
        await pg.close()


async def _count(db: Database, table: str) -> int:
    """Count the rows of a table over a connection of the test's own."""
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            return int(lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608  # a test's own table name
    pg = await asyncpg.connect(db.url)
    try:
        return int(await pg.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608  # a test's own table name
    finally:
        await pg.close()


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
