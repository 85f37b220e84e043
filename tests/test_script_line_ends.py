r"""A migration script's line ends (LF, CRLF, a lone CR), as each engine's splitter reads them.

`migrate` reads a file with each CRLF and lone CR made an LF; `split_script` takes text as
given. PostgreSQL's server ends a `--` comment at a CR as at an LF, SQLite at an LF only: each
splitter reads the text as its engine does.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import MigrationError
from persistence._postgres import split_postgres
from persistence.database import Engine, split_script
from persistence.migrations import read_migrations
from strategies import IN_MEMORY

LINE_ENDS: Final = ("\n", "\r\n", "\r")

PIECES: Final = st.sampled_from(
    [
        *LINE_ENDS,
        *LINE_ENDS,
        ";",
        " ",
        "-",
        "--",
        "-- a; 'note",
        "SELECT 1",
        "'a\rb'",
        "/* c\r */",
        "$t$\r;$t$",
        "E'\\\\'",
        "'",
    ]
)
SCRIPTS: Final = st.lists(PIECES, max_size=30).map("".join)
"""Text made of line ends, comments, quotes and semicolons, a quote at times left open."""


def as_read(text: str) -> str:
    """`text` as `migrate` reads a file: each CRLF and lone CR an LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def postgres_reading(script: str) -> list[str] | str:
    r"""The statements the PostgreSQL splitter gives, each blank run as one space; or its refusal.

    Blank runs are compared as one: a comment the splitter drops between a CR and an LF leaves
    `\r\n`, one line end, where the same text read as a file leaves two.
    """
    try:
        return [" ".join(statement.text.split()) for statement in split_postgres(script)]
    except MigrationError as refused:
        return str(refused)


@IN_MEMORY
@given(script=SCRIPTS)
@example(script="SELECT 1; -- a\rSELECT 2;")
@example(script="-\r--\nSELECT 1")
def test_postgres_reads_any_line_end_as_a_file_read_by_migrate(script: str) -> None:
    r"""On PostgreSQL, a CR or CRLF ends a `--` comment as an LF does, as the server reads it.

    The splitter ended the comment at an LF only: in `SELECT 1; -- a\rSELECT 2;` it read the
    second statement as part of the comment, where the server runs it.
    """
    assert postgres_reading(script) == postgres_reading(as_read(script))


SCRIPT: Final = (
    "CREATE TABLE t (n integer);{0}INSERT INTO t VALUES (1); -- one{0}INSERT INTO t VALUES (2);"
)


@pytest.mark.parametrize("line_end", LINE_ENDS, ids=["lf", "crlf", "cr"])
async def test_postgres_splits_as_the_server_runs(postgres_url: str, line_end: str) -> None:
    """The statements split out, run one by one, write what the server writes given it all."""
    script = SCRIPT.format(line_end)
    server = await asyncpg.connect(postgres_url)
    try:
        written = []
        for statements in ([script], [s.text for s in split_script(Engine.POSTGRES, script)]):
            transaction = server.transaction()
            await transaction.start()
            for statement in statements:
                await server.execute(statement)
            written.append([row["n"] for row in await server.fetch("SELECT n FROM t ORDER BY n")])
            await transaction.rollback()
    finally:
        await server.close()
    assert written == [[1, 2], [1, 2]]


@pytest.mark.parametrize("line_end", LINE_ENDS, ids=["lf", "crlf", "cr"])
def test_sqlite_splits_as_sqlite_runs(line_end: str) -> None:
    """SQLite ends a `--` comment at an LF only: after a lone CR the comment goes on."""
    script = SCRIPT.format(line_end)
    written = []
    for statements in ([script], [s.text for s in split_script(Engine.SQLITE, script)]):
        with sqlite3.connect(":memory:") as file:
            for statement in statements:
                file.executescript(statement)
            written.append([row[0] for row in file.execute("SELECT n FROM t ORDER BY n")])
        file.close()
    assert written == [[1], [1]] if line_end == "\r" else [[1, 2], [1, 2]]


BEFORE: Final = st.lists(
    st.sampled_from(["SELECT 1;", "SELECT 'a\rb\r\nc';", "/* a\r\n\rb */", " ", ""]), max_size=6
)
WRONG: Final = {
    "a string": ("SELECT 'never closed;", "a string opened here is never closed"),
    "a comment": ("/* never closed", "a /* comment opened here is never closed"),
    "a NUL": ("SELECT 1\x00;", "a NUL character is here, which no engine takes in SQL"),
}


@IN_MEMORY
@pytest.mark.parametrize("engine", list(Engine))
@pytest.mark.parametrize("wrong", list(WRONG))
@given(lines=BEFORE, ends=st.lists(st.sampled_from(LINE_ENDS), min_size=6, max_size=6))
def test_an_error_names_the_line_a_file_read_by_migrate_has(
    engine: Engine, wrong: str, lines: list[str], ends: list[str]
) -> None:
    """A CRLF ends one line and a lone CR one, in a refusal's line as in the file `migrate` reads.

    The splitters counted LFs alone: after lone CRs every error named line 1.
    """
    before = "".join(line + end for line, end in zip(lines, ends, strict=False))
    statement, says = WRONG[wrong]
    with pytest.raises(MigrationError) as raised:
        split_script(engine, before + statement + "\r\nSELECT 2;\r")
    assert (str(raised.value), raised.value.line) == (says, as_read(before).count("\n") + 1)


def test_a_routine_body_never_ended_names_its_line_past_crs() -> None:
    """A `BEGIN ATOMIC` body no END closes is named by its line, a lone CR ending one."""
    script = "SELECT 1;\rSELECT 2;\r\n\rCREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1;\r"
    with pytest.raises(MigrationError, match=r"^the statement at line 4 opens a BEGIN ATOMIC"):
        split_postgres(script)


@pytest.mark.parametrize("engine", list(Engine))
def test_migrate_and_split_script_name_the_same_line(engine: Engine, tmp_path: Path) -> None:
    """A file of lone CRs and CRLFs is refused at the line that `split_script` names in its text."""
    text = "CREATE TABLE a (n integer);\r\rCREATE TABLE b (n integer);\r\nSELECT 'open;\r"
    for folder in ("sqlite", "postgres"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "0001_open.sql").write_bytes(text.encode())
    with pytest.raises(MigrationError) as read:
        read_migrations(engine, tmp_path)
    with pytest.raises(MigrationError) as split:
        split_script(engine, text)
    assert (read.value.line, split.value.line) == (4, 4)
    assert str(read.value) == "0001_open.sql:4: a string opened here is never closed"
