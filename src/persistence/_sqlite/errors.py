"""sqlite3's errors, as this package's."""

from __future__ import annotations

import re
import sqlite3
from typing import Final

from persistence._sqlite.statements import is_busy
from persistence.exceptions import ConflictError, DatabaseError, PersistenceError, ValidationError

_NOT_UTF8: Final = re.compile(r"(?s)Could not decode to UTF-8 column '(?P<column>.*?)' with text ")
"""sqlite3's words for a stored text that is not UTF-8, which plain SQL may cast to TEXT."""


_FULL: Final = (
    ": the disk has no room left, or the table written to has given out its largest id, "
    f"{2**63 - 1} (a row stored by plain SQL with that id), and numbers no new row"
)
"""What SQLITE_FULL may mean: SQLite says the same of both, where PostgreSQL names its sequence."""


def sqlite_error(error: BaseException) -> sqlite3.Error | None:
    """Give the sqlite3 error that a sqlite3 call failed with; None for another error.

    SQLite's message quotes a corrupt schema's names as stored: one that is not UTF-8 makes
    sqlite3 raise a UnicodeDecodeError in its error's place. It is given as the
    sqlite3.DatabaseError it stands for (its bytes escaped), chained from it. Asked only of a
    sqlite3 call's failure, where nothing else decodes.
    """
    if isinstance(error, sqlite3.Error):
        return error
    if isinstance(error, UnicodeDecodeError) and isinstance(error.object, bytes):
        failure = sqlite3.DatabaseError(error.object.decode("utf-8", "backslashreplace"))
        failure.__cause__ = error
        return failure
    return None


def _schema_message(error: UnicodeDecodeError) -> bool:
    """Tell whether `error` is sqlite3's failure to decode SQLite's words on a corrupt schema.

    Only those: a UnicodeDecodeError of the caller's own, in a block, stays theirs.
    """
    return error.object.startswith(b"malformed database schema")


def translate_sqlite(error: BaseException) -> PersistenceError | None:  # noqa: PLR0911  # one outcome a return
    """Map a sqlite3 error to this package's error: None for errors that are not sqlite3's."""
    match error:
        case PersistenceError():
            return None
        case UnicodeDecodeError() if _schema_message(error):  # a schema corrupted while open
            return DatabaseError(f"SQLite: {sqlite_error(error)}")
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
            return _database_error(error)
    return None


def _database_error(error: sqlite3.Error) -> PersistenceError:
    """Map a sqlite3 error that no constraint raised."""
    if (not_utf8 := _NOT_UTF8.match(str(error))) is not None:
        reason = f"stored text is not valid UTF-8, which no model holds ({error})"
        return ValidationError("stored row", not_utf8["column"], reason)
    if is_busy(error):
        return DatabaseError(f"SQLite: the database is locked: {error}")
    full = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return DatabaseError(f"SQLite: {error}{_FULL if full else ''}")
