"""Migration files: their names and versions, and their text split into statements, or refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from _migration_helpers import (
    CREATE_A,
    CREATE_B,
    empty_database,  # noqa: F401  # the `empty` fixture, used by name
    migrations,  # noqa: F401  # the `folder` fixture, used by name
    row_count,
    table_names,
    write,
)
from persistence import Database, MigrationError, connect, migrate, migration_status
from persistence._sqlite import split_sqlite
from persistence.migrations import discover_migrations


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
    assert {"p", "q"} <= await table_names(empty)
    assert await row_count(empty, "q") == 1
    write(folder, "0004_sneaky.sql", "CREATE TABLE r (id integer); COMMIT;\n")
    with pytest.raises(MigrationError, match=r"0004_sneaky\.sql:\d+: COMMIT is not allowed"):
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
    assert await table_names(empty) == set()


def test_incomplete_statement_is_refused() -> None:
    """A script ending in an unfinished statement is an error."""
    with pytest.raises(MigrationError, match="incomplete"):
        split_sqlite("CREATE TABLE x (id integer);\nCREATE TABLE y (")


@pytest.mark.parametrize(
    "statement",
    ["COMMIT;", "commit;", "END;", "BEGIN;", "ROLLBACK;", "/* why */ COMMIT;", "-- x\nBEGIN;"],
)
async def test_transaction_control_in_a_file_is_refused_first(
    empty: Database, folder: Path, statement: str
) -> None:
    """A file that would end or start a transaction is refused before any file runs."""
    write(folder, "0003_sneaky.sql", f"CREATE TABLE c (id integer);\n{statement}\nBROKEN;\n")
    with pytest.raises(MigrationError, match=r"0003_sneaky\.sql:\d+: .* is not allowed"):
        await migrate(empty, package_folder=folder)
    assert await table_names(empty) == set()
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
    with pytest.raises(MigrationError, match=r"0004_sneaky\.sql:\d+: COMMIT is not allowed"):
        await migrate(empty, package_folder=folder)
    assert "half" not in await table_names(empty)
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
        with pytest.raises(MigrationError, match=r"0002_sneaky\.sql:\d+: COMMIT is not allowed"):
            await migrate(db, package_folder=folder)
        assert await table_names(db) == {"t"}
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
    assert await table_names(empty) == set()


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
    assert await table_names(empty) == set()
    write(folder, "9223372036854775808_huge.sql", "")
    (folder / "9223372036854775808_huge.sql").rename(folder / "9223372036854775807_last.sql")
    assert [m.version for m in await migrate(empty, package_folder=folder)][-1] == 2**63 - 1


def test_other_files_are_left_alone(tmp_path: Path) -> None:
    """A README or an editor's hidden file beside the migrations is not a migration."""
    write(tmp_path, "0001_a.sql", CREATE_A)
    write(tmp_path, "README.md", "notes")
    write(tmp_path, ".0002_x.sql.swp", "junk")
    assert [m.version for m in discover_migrations(tmp_path)] == [1]
