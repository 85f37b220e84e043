"""A failing migration names where its failing statement starts, on both engines."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from persistence import Database, MigrationError, connect, migrate, migration_status

BASE = "CREATE TABLE base (n integer CHECK (n > 0), note text);\n"
"""The first migration: the table that the failing statements meet."""

GOOD = (
    "CREATE TABLE one (\r\n  note text DEFAULT 'a;b" + "\u00e9" * 100 + "\U0001f600'\r\n)",
    "INSERT INTO base (n, note)\r\nVALUES (1, 'c;d')",
)
"""Two statements that succeed, each holding a string literal with `;` inside.

The first holds characters of several bytes: the server counts its position in characters.
"""

FAILING = {
    # a syntax error, on the statement's second line
    "syntax": "CREATE TABLE broken (\r\n  note text DEFAULT 'x;y',,\r\n  n integer\r\n)",
    # errors at execution
    "duplicate table": "CREATE TABLE base (\r\n  note text DEFAULT 'x;y'\r\n)",
    "check": "INSERT INTO base (n, note)\r\nVALUES (-1, 'x;y')",
    # a `)` left out: PostgreSQL points at the `;` after it, or at the end of the script
    "unclosed": "CREATE TABLE broken (\r\n  n integer,\r\n  note text DEFAULT 'x;y'",
    # a check that fails on its second row, which SQLite never stepped to
    "later row": (
        "SELECT abs(CAST(column1 AS bigint))\r\nFROM (VALUES (1), (-9223372036854775807 - 1)) AS t"
    ),
}
SAYS = {
    "syntax": "syntax error",
    "duplicate table": "already exists",
    "check": "(?i)check constraint",
    "unclosed": "syntax error",
    "later row": "(?i)out of range|overflow",
}


def script(statements: list[str]) -> str:
    """A file with CRLF line ends, comments and blank lines before each statement."""
    text = "-- 0002: a migration that fails\r\n\r\n"
    for statement in statements:
        text += "/* before the statement,\r\n   on two lines */\r\n-- and a line\r\n\r\n"
        text += f"{statement};\r\n\r\n"
    return text


def line_of(text: str, statement: str) -> int:
    """The line of `text` on which `statement` starts, counted from 1."""
    return text[: text.index(statement)].count("\n") + 1


def write(folder: Path, name: str, text: str) -> None:
    """Write one migration file, its bytes as given (CRLF kept)."""
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(text.encode())


@pytest.fixture(name="empty")
async def empty_database(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with nothing applied, of each engine."""
    async with connect(database_url) as db:
        yield db


@pytest.mark.parametrize("place", [0, 1, 2], ids=["first", "middle", "last"])
@pytest.mark.parametrize("kind", list(FAILING))
async def test_the_failing_statement_is_named(
    empty: Database, tmp_path: Path, kind: str, place: int
) -> None:
    """The error names the line where the failing statement starts, and that line's text.

    The file has CRLF line ends, comments and blank lines before each statement, and a `;`
    inside string literals; the failing statement is the first, a middle or the last.
    """
    folder = tmp_path / "migrations"
    write(folder, "0001_base.sql", BASE)
    statements = list(GOOD)
    statements.insert(place, FAILING[kind])
    text = script(statements)
    write(folder, "0002_bad.sql", text)
    line = line_of(text, FAILING[kind])
    first_line = FAILING[kind].split("\r\n")[0]
    with pytest.raises(MigrationError) as raised:
        await migrate(empty, package_folder=folder)
    message = str(raised.value)
    prefix = f'0002_bad.sql:{line}: in the statement starting "{first_line}": '
    assert message.startswith(prefix), message
    assert re.search(SAYS[kind], message), message
    assert raised.value.line == line
    assert raised.value.migration == "0002_bad"
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [2]


async def test_a_long_first_line_is_cut_short(empty: Database, tmp_path: Path) -> None:
    """A statement's first line of hundreds of characters is named by its start alone."""
    folder = tmp_path / "migrations"
    columns = ", ".join(f"column_{number} integer" for number in range(40))
    write(folder, "0001_wide.sql", f"CREATE TABLE wide ({columns});\nCREATE TABLE wide (x int);\n")
    with pytest.raises(MigrationError) as raised:
        await migrate(empty, package_folder=folder)
    message = str(raised.value)
    assert message.startswith('0001_wide.sql:2: in the statement starting "CREATE TABLE wide (x')
    quoted = message.split('"')[1]
    assert quoted == "CREATE TABLE wide (x int)"
    with pytest.raises(MigrationError) as raised:
        write(folder, "0001_wide.sql", f"CREATE TABLE wide ({columns},);\n")
        await migrate(empty, package_folder=folder)
    quoted = str(raised.value).split('"')[1]
    assert quoted.startswith("CREATE TABLE wide (column_0 integer, ")
    assert quoted.endswith("...")
    assert len(quoted) <= 63


async def test_postgres_runs_no_statement_twice_and_is_not_misled(
    postgres_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL the statement is named with the script sent once, whatever it sets.

    A sequence's `nextval` is not rolled back: it shows that each statement ran once. The
    migration silencing notices, or raising notices of its own, does not change what is named.
    """
    folder = tmp_path / "migrations"
    write(folder, "0001_base.sql", BASE + "CREATE SEQUENCE counter;\n")
    statements = [
        "SELECT nextval('counter')",
        "SET client_min_messages = error",
        "DO $$BEGIN RAISE NOTICE 'persistence migration statement 0'; END$$",
        "SET LOCAL client_min_messages = warning",
        "SELECT nextval('counter')",
        FAILING["check"],
        "SELECT nextval('counter')",
    ]
    text = script(statements)
    write(folder, "0002_bad.sql", text)
    async with connect(postgres_url) as db:
        with pytest.raises(MigrationError) as raised:
            await migrate(db, package_folder=folder)
    assert raised.value.line == line_of(text, FAILING["check"]), str(raised.value)
    server = await asyncpg.connect(postgres_url)
    try:
        assert await server.fetchval("SELECT last_value FROM counter") == 2
    finally:
        await server.close()


async def test_an_error_at_the_commit_names_the_file(empty: Database, tmp_path: Path) -> None:
    """A deferred foreign key that fails when the migration commits names the migration.

    On PostgreSQL it raised a bare `ConflictError`, naming no file; SQLite's own check of
    foreign keys at the commit named it already.
    """
    folder = tmp_path / "migrations"
    parent = (
        "CREATE TABLE parent (id integer PRIMARY KEY);\n"
        "CREATE TABLE child (p integer REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);\n"
    )
    write(folder, "0001_parent.sql", parent)
    write(folder, "0002_orphan.sql", "INSERT INTO child (p) VALUES (7);\n")
    with pytest.raises(MigrationError, match=r"^0002_orphan\.sql: ") as raised:
        await migrate(empty, package_folder=folder)
    assert raised.value.migration == "0002_orphan"
    assert raised.value.__cause__ is not None
    status = await migration_status(empty, package_folder=folder)
    assert [m.version for m in status.pending] == [2]


ROUTINES = (
    "CREATE TABLE said (note text);\r\n"
    "-- a function whose SQL-standard body holds statements, CASE and a `;` in a string\r\n"
    "CREATE FUNCTION sign_of(x integer) RETURNS text LANGUAGE sql\r\n"
    "BEGIN /* not; the end */ ATOMIC\r\n"
    "  SELECT CASE WHEN x > 0 THEN 'plus;' ELSE CASE x WHEN 0 THEN 'zero' END END;\r\n"
    "END;\r\n"
    "create or replace procedure say(note text) language sql\r\n"
    "begin atomic\r\n"
    "  insert into said values (note || ';END;'); -- END;\r\n"
    "  insert into said values (case when note = '' then 'empty' end);\r\n"
    "end;\r\n"
)
"""A migration holding a function and a procedure with `BEGIN ATOMIC ... END` bodies."""


async def test_routine_bodies_apply_and_a_failure_after_them_is_named(
    postgres_url: str, tmp_path: Path
) -> None:
    """Functions and procedures of SQL-standard bodies apply, and work (PostgreSQL 14+).

    The splitter cut them at the semicolons inside, and the migration was refused: "END is not
    allowed in a migration". A statement failing after such a body is still named by its line.
    """
    folder = tmp_path / "migrations"
    write(folder, "0001_routines.sql", ROUTINES)
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1]
        bad = ROUTINES.replace("sign_of", "other_sign").replace("say", "shout")
        bad = bad.replace("CREATE TABLE said", "CREATE TABLE heard") + FAILING["check"] + ";\r\n"
        write(folder, "0002_bad.sql", BASE + bad)
        with pytest.raises(MigrationError) as raised:
            await migrate(db, package_folder=folder)
    assert raised.value.line == line_of(BASE + bad, FAILING["check"]), str(raised.value)
    server = await asyncpg.connect(postgres_url)
    try:
        signs = await server.fetch("SELECT sign_of(x) AS s FROM unnest(ARRAY[2, 0, -1]) AS x")
        assert [row["s"] for row in signs] == ["plus;", "zero", None]
        await server.execute("CALL say('hi')")
        assert await server.fetchval("SELECT array_agg(note) FROM said") == ["hi;END;", None]
        assert await server.fetchval("SELECT to_regclass('heard')") is None
    finally:
        await server.close()
