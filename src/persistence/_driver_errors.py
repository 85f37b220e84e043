"""Driver errors turned into this package's: one translation, from each backend's `translate`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

import attrs

from persistence._backend import Backend, ScriptError
from persistence._database_value import require_database
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._database_value import Database


@contextlib.asynccontextmanager
async def translated(backend: Backend, database: str = "") -> AsyncIterator[None]:
    """Turn driver errors raised in the block into this package's errors, chained."""
    try:
        yield
    except BaseException as error:
        raise_translated(backend, error, database)
        raise


@attrs.define
class Body:
    """Keeps the error that a block's own body raised: the caller's, never translated again.

    The package's calls in it raise its errors already; what else the body raises is the
    caller's own (a TimeoutError of its `asyncio.timeout`, an OSError of a file it read),
    which PostgreSQL's translation took for a lost connection or a command timeout.
    """

    error: BaseException | None = None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, error: BaseException | None, _: object) -> None:
        self.error = error


@contextlib.asynccontextmanager
async def translated_apart_from_body(backend: Backend, database: str) -> AsyncIterator[Body]:
    """Translate driver errors raised in the block, except what the `Body` it gives kept.

    For a block around the caller's code (`transaction()`, `read_snapshot()`): the errors of
    its own BEGIN, COMMIT or rollback are translated, the caller's are raised as they were.
    """
    body = Body()
    try:
        yield body
    except BaseException as error:
        if error is not body.error:
            raise_translated(backend, error, database)
        raise


def translate_errors(db: Database) -> contextlib.AbstractAsyncContextManager[None]:
    """Translate the driver errors of `db`'s engine raised in an `async with` block."""
    return translated(require_database(db)._backend, db.url)  # noqa: SLF001


def raise_translated(backend: Backend, error: BaseException, database: str = "") -> None:
    """Raise the package's error for a driver error (a missing table: say to migrate), if any."""
    if isinstance(error, ScriptError) and error.__cause__ is not None:
        error = error.__cause__  # a script's statement failed: as its driver error
    translated = backend.translate(error)
    if translated is None:
        return
    table = _missing_table(error)
    if table is not None:
        where = f"the database {database}" if database else "the database"
        translated = DatabaseError(
            f"{translated}: {where} has no table {table}, so it was not migrated, or not "
            "fully: run `persistence migrate --database URL` on it, or call migrate(db)"
        )
    raise translated from error


_NO_SUCH_TABLE: Final = re.compile(r'no such table: (?P<sqlite>\S+)|relation "(?P<postgres>[^"]+)"')
_UNDEFINED_TABLE: Final = "42P01"  # PostgreSQL's SQLSTATE for a relation that does not exist


def _missing_table(error: BaseException) -> str | None:
    """Name the table a driver error says is missing, on either engine; None for others."""
    on_postgres = getattr(error, "sqlstate", None) == _UNDEFINED_TABLE
    on_sqlite = type(error).__module__ == "sqlite3" and str(error).startswith("no such table:")
    if not (on_postgres or on_sqlite):
        return None
    match = _NO_SUCH_TABLE.search(str(error))
    return (match["sqlite"] or match["postgres"]) if match else "that the statement names"
