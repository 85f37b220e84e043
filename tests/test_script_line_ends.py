r"""A migration script's line ends (LF, CRLF, a lone CR), as each engine's splitter reads them.

`migrate` reads a file with each CRLF and lone CR made an LF; `split_script` takes text as
given. PostgreSQL's server ends a `--` comment at a CR as at an LF, SQLite at an LF only: each
splitter reads the text as its engine does.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import asyncpg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import MigrationError
from persistence._postgres import split_postgres
from persistence.database import Engine, split_script
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
    """The statements the PostgreSQL splitter gives, line ends as read; or its refusal."""
    try:
        return [as_read(statement.text) for statement in split_postgres(script)]
    except MigrationError as refused:
        return str(refused)


@IN_MEMORY
@given(script=SCRIPTS)
@example(script="SELECT 1; -- a\rSELECT 2;")
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
