"""sqlite3's errors, as this package's."""

from __future__ import annotations

import sqlite3

from persistence._sqlite.statements import is_busy
from persistence.exceptions import ConflictError, DatabaseError, PersistenceError, ValidationError


def translate_sqlite(error: BaseException) -> PersistenceError | None:  # noqa: PLR0911  # one outcome a return
    """Map a sqlite3 error to this package's error: None for errors that are not sqlite3's."""
    match error:
        case PersistenceError():
            return None
        case sqlite3.IntegrityError():
            message = str(error)
            key = "".join(f": {note}" for note in getattr(error, "__notes__", ()))  # note_key's
            if message.startswith("UNIQUE constraint failed:") or "PRIMARY KEY" in message:
                return ConflictError(
                    f"SQLite: {message}{key}", constraint=message.partition(": ")[2]
                )
            if message.startswith("FOREIGN KEY"):
                return ConflictError(f"SQLite: {message}{key}")
            detail = message.partition(": ")[2]
            table, _, field = detail.partition(".")
            if not field:
                table, field = "row", detail or "constraint"
            return ValidationError(table, field, f"SQLite: {message}")
        case sqlite3.Error():
            if is_busy(error):
                return DatabaseError(f"SQLite: the database is locked: {error}")
            return DatabaseError(f"SQLite: {error}")
    return None
