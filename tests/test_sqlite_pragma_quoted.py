"""A PRAGMA written without blank space after its keyword, refused in a migration as any other.

SQLite takes a quoted name right after `PRAGMA` (`PRAGMA"query_only"=1`), and comments in
place of blank space. The check before a migration runs wanted blank space there: such a
PRAGMA passed it and stayed set on the package's connection (`query_only` left every later
write of the process failing).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from persistence import Database, MigrationError, connect, migrate, set_config
from persistence._database_value import backend_of

_WATCHED: Final = ("query_only", "synchronous", "cache_size", "busy_timeout")
"""The PRAGMAs the refused statements below would set."""

_NOTES: Final = "CREATE TABLE my_notes (id integer PRIMARY KEY);\n"


def _chain(tmp_path: Path, sqlite_text: str) -> Path:
    """Write a user's chain of one migration: `sqlite_text` for SQLite, nothing for PostgreSQL."""
    folder = tmp_path / "mine"
    for engine, text in (("sqlite", sqlite_text), ("postgres", "SELECT 1;\n")):
        (folder / engine).mkdir(parents=True, exist_ok=True)
        (folder / engine / "0001_mine.sql").write_text(text, encoding="utf-8")
    return folder


def _writer_pragmas(db: Database) -> dict[str, object]:
    writer: sqlite3.Connection = backend_of(db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # the package's own connection, which the PRAGMA would set
    return {name: writer.execute(f"PRAGMA {name}").fetchone()[0] for name in _WATCHED}


def _pragmas(connection: sqlite3.Connection) -> dict[str, object]:
    return {name: connection.execute(f"PRAGMA {name}").fetchone()[0] for name in _WATCHED}


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ('PRAGMA"query_only"=1;', "query_only"),
        ("PRAGMA[query_only]=1;", "query_only"),
        ("PRAGMA`query_only`=1;", "query_only"),
        ("PRAGMA'query_only'=1;", "query_only"),
        ('PRAGMA"QUERY_ONLY"(1);', "QUERY_ONLY"),
        ("PRAGMA/**/synchronous=OFF;", "synchronous"),
        ("PRAGMA-- a note\n synchronous=OFF;", "synchronous"),
        ('PRAGMA main."synchronous"=0;', "synchronous"),
        ('PRAGMA"main"."query_only"=1;', "query_only"),
        ("PRAGMA[main]/**/./**/[cache_size]=1;", "cache_size"),
        ("PRAGMA main.'busy_timeout'=0;", "busy_timeout"),
        ('EXPLAIN/**/PRAGMA"query_only"=1;', "query_only"),
    ],
)
async def test_a_pragma_sqlite_takes_unspaced_is_refused(
    tmp_path: Path, statement: str, name: str
) -> None:
    """Each form sets its PRAGMA on a plain connection; in a migration it is refused, by line."""
    with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as plain:
        before = _pragmas(plain)
        plain.execute(statement)
        assert _pragmas(plain) != before, "SQLite ran the form, and it took effect"
    folder = _chain(tmp_path, _NOTES + statement + "\n")
    async with connect(tmp_path / "app.db") as db:
        kept = _writer_pragmas(db)
        refused = rf"0001_mine\.sql:2: PRAGMA {re.escape(name)} is not allowed in a migration"
        with pytest.raises(MigrationError, match=refused) as caught:
            await migrate(db, folder)
        assert caught.value.line == 2
        assert _writer_pragmas(db) == kept
        assert kept["query_only"] == 0
        await migrate(db)  # the package's own chain: nothing of the user's ran
        await set_config(db, "after", "write", 1)  # refused had query_only stayed set


async def test_names_that_start_with_pragma_are_not_refused(tmp_path: Path) -> None:
    """Only the keyword PRAGMA is looked at: `pragmatic` is a name; an allowed PRAGMA applies."""
    text = (
        "CREATE TABLE pragmatic (pragma_x integer, pragmas text);\n"
        "INSERT INTO pragmatic VALUES (1, 'PRAGMA\"query_only\"=1');\n"
        'PRAGMA"user_version"=7;\n'
        "PRAGMA main.[table_info](pragmatic);\n"
    )
    folder = _chain(tmp_path, text)
    async with connect(tmp_path / "app.db") as db:
        assert [m.name for m in await migrate(db, folder)][-1] == "0001_mine"
        assert _writer_pragmas(db)["query_only"] == 0
        await set_config(db, "after", "write", 1)
    with contextlib.closing(sqlite3.connect(tmp_path / "app.db")) as plain:
        assert plain.execute("PRAGMA user_version").fetchone() == (7,)
        assert plain.execute("SELECT * FROM pragmatic").fetchall() == [(1, 'PRAGMA"query_only"=1')]
