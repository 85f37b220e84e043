"""Migration scripts on SQLite: split into statements, and checked before they commit."""

from __future__ import annotations

import re
import sqlite3
from typing import Final

from persistence.exceptions import MigrationError

_COMMENTS: Final = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)


def split_sqlite(script: str) -> list[str]:
    """Split a script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending):
        raise MigrationError(
            f"the script ends in an incomplete statement: {pending.strip()[:80]!r}"
        )
    return statements


def _has_code(text: str) -> bool:
    """Tell whether text holds anything but comments and blank space."""
    return _COMMENTS.sub(" ", text).strip() != ""


def check_foreign_keys(writer: sqlite3.Connection) -> None:
    """Refuse a migration that leaves rows whose foreign key has no parent."""
    problems = writer.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = ", ".join(
            f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in problems[:5]
        )
        raise MigrationError(
            f"the migration leaves {len(problems)} row(s) whose foreign key has no parent: {shown}"
        )
