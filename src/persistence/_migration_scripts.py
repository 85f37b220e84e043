"""A migration file's statements: split and checked before any runs, and named when one fails.

A failing statement is named by the line of its file where it starts (past the comments and
blank lines before it) and that line's text. Which statement failed is the engine's answer:
on SQLite the one that raised, as each runs alone; on PostgreSQL, where the script goes in one
round trip, the one holding the place the server's error points at (a syntax error, which
stops the whole script before any of it runs), else the last the server said it started. An
error at the commit (a deferred constraint, SQLite's check of foreign keys) names the file alone.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from persistence._backend import EXPLAINED, ScriptError, ScriptStatement, line_at
from persistence.database import Engine, split_script
from persistence.exceptions import MigrationError, PersistenceError

if TYPE_CHECKING:
    from persistence._backend import Backend
    from persistence._interface import Connection

_TRANSACTION_CONTROL: Final = re.compile(
    r"(BEGIN|START|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE|VACUUM)\b", re.IGNORECASE
)
_CLIENT_COPY: Final = re.compile(
    r"COPY\b.*?\b(?:FROM\s+STDIN|TO\s+STDOUT)\b", re.IGNORECASE | re.DOTALL
)
"""A COPY that streams rows to or from the client (pg_dump writes them): the runner sends none,
and the server waited for them until the command timeout. Matched with its quoted text and
comments blanked (`_QUOTED`): `COPY t FROM '/x/from stdin.csv'` reads a file of the server's."""
_QUOTED: Final = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)
_LEADING_NOISE: Final = re.compile(r"^(?:\s+|\ufeff|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
"""What may come before a statement's first word; SQLite skips a byte order mark there too."""

_SHOWN: Final = 60
"""How much of a failing statement's first line its error shows."""


@functools.lru_cache(maxsize=256)
def checked_statements(
    engine: Engine, sql: str, file_name: str, name: str
) -> tuple[ScriptStatement, ...]:
    """Split one file and refuse statements that would end or start a transaction.

    Kept per file's text: every migrate checks every file, and most are old.
    """
    try:
        statements = split_script(engine, sql)
    except MigrationError as error:
        place = file_name if error.line is None else f"{file_name}:{error.line}"
        raise MigrationError(f"{place}: {error}", migration=name, line=error.line) from None
    for statement in statements:
        opening = _LEADING_NOISE.sub("", statement.text)
        if (explained := EXPLAINED.match(opening)) is not None:
            opening = _LEADING_NOISE.sub("", opening[explained.end() :])
        refused = None
        if (control := _TRANSACTION_CONTROL.match(opening)) is not None:
            refused = f"{control[1].upper()} is not allowed in a migration: the runner runs each "
            refused += "file in one transaction of its own"
        elif engine is Engine.POSTGRES and _CLIENT_COPY.match(_QUOTED.sub(" ", opening)):
            refused = "COPY FROM STDIN or TO STDOUT is not allowed in a migration: the runner "
            refused += "sends and reads no rows of a COPY; write the rows as INSERT statements"
        if refused is not None:
            line, _ = statement_place(sql, statement)
            raise MigrationError(f"{file_name}:{line}: {refused}", migration=name, line=line)
    return tuple(statements)


async def run_statements(
    backend: Backend,
    conn: Connection,
    statements: tuple[ScriptStatement, ...],
    *,
    sql: str,
    file_name: str,
    name: str,
) -> None:
    """Run one file's statements; a failure is a `MigrationError` naming the file and statement."""
    try:
        await backend.run_script(conn, [statement.text for statement in statements])
    except Exception as error:
        index = error.index if isinstance(error, ScriptError) else None
        cause = error.__cause__ if isinstance(error, ScriptError) else error
        if cause is None:  # pragma: no cover  # a ScriptError is always raised from its cause
            raise
        translated = cause if isinstance(cause, PersistenceError) else backend.translate(cause)
        if translated is None:
            raise
        if index is None:
            raise MigrationError(f"{file_name}: {translated}", migration=name) from cause
        line, shown = statement_place(sql, statements[index])
        raise MigrationError(
            f'{file_name}:{line}: in the statement starting "{shown}": {translated}',
            migration=name,
            line=line,
        ) from cause


def statement_place(sql: str, statement: ScriptStatement) -> tuple[int, str]:
    """Give the line where `statement` starts in `sql`, counted from 1, and its text there."""
    line = line_at(sql, statement.start)
    first = sql[statement.start : statement.end].split("\n", 1)[0].rstrip()
    if len(first) > _SHOWN:
        first = first[:_SHOWN].rstrip() + "..."
    return line, first
