"""asyncpg's errors, as this package's."""

from __future__ import annotations

import contextlib
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import asyncpg
import asyncpg.pool

from persistence._backend import key_detail
from persistence.exceptions import ConflictError, DatabaseError, PersistenceError, ValidationError

_ASYNCPG: Final = "asyncpg"
"""The folder of asyncpg's modules, compiled ones included, in a frame's file name."""
CLOSED: Final = "PostgreSQL: the database is closed"
"""What a call on a closed database is told: `closed_message`, and the backend's own refusals."""
CONNECTION_FAILURES: Final = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    ConnectionError,
)
"""The errors of a connection lost, or in a state asyncpg refuses: said lost, never reused."""
CONNECT_FAILURES: Final = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    AttributeError,
)
"""What a new connection fails with: the network's, the server's, and asyncpg's own for a reply
it cannot read (an `InternalClientError`; an `AttributeError` for a peer that skips the
authentication), which escaped raw, and as a traceback from the command line."""

_TIME_PAST_PYTHON: Final = "date value out of range"
"""What asyncpg raises, as Python's datetime does, reading a time outside the years 1 to 9999."""
_TIME_PAST_PYTHON_REASON: Final = (
    "a time read lies outside the years 1 to 9999 that Python's datetime holds "
    "(PostgreSQL's timestamptz holds 4713 BC to 294276 AD), which no model writes"
)


def translate_postgres(  # noqa: C901, PLR0911  # one case a line
    error: BaseException, command_timeout: float, *, closed: bool = False
) -> PersistenceError | None:
    """Map an asyncpg error to this package's error: None for errors that are not asyncpg's.

    Once the database is `closed`, a lost or released connection is said to be closed.
    """
    match error:
        case PersistenceError():
            return None
        case (
            asyncpg.UniqueViolationError()
            | asyncpg.ExclusionViolationError()
            | asyncpg.ForeignKeyViolationError()
        ):
            return ConflictError(_naming_table(error), constraint=error.constraint_name)
        case asyncpg.CheckViolationError() | asyncpg.NotNullViolationError():
            table = error.table_name or "row"
            field = error.column_name or error.constraint_name or "constraint"
            return ValidationError(table, field, _message(error))
        case asyncpg.InFailedSQLTransactionError():
            return DatabaseError(
                "PostgreSQL: an earlier statement of this transaction() or read_snapshot() block "
                "failed, or was cut short (a timeout, a cancel), so the server refuses every "
                "later one until the block ends: let such an error end the block, or catch it "
                "around a nested transaction() block, which undoes its own part alone"
            )
        case asyncpg.QueryCanceledError():
            return DatabaseError(f"PostgreSQL: the statement was cancelled: {_message(error)}")
        case TimeoutError():
            return DatabaseError(
                f"PostgreSQL: no answer within the command timeout ({command_timeout:g}s); "
                "the server was asked to cancel the statement, and the connection is closed (in "
                "a transaction() block, once the error ends the block; caught inside it, the "
                "block's transaction has most likely failed, and the block's end says so). A "
                "COMMIT whose answer was lost may still have taken effect, so look before doing "
                "its writes again"
            )
        case ConnectionRefusedError() if not closed:  # a new connection, before any statement
            return cannot_connect(error)
        case (
            asyncpg.ConnectionDoesNotExistError()
            | asyncpg.PostgresConnectionError()
            | asyncpg.InterfaceError()
            | asyncpg.InternalClientError()
            | ConnectionError()
        ):
            if closed:
                return DatabaseError(CLOSED)
            why = _why_lost(error)
            # Which call was cut, and where, is not known here: say what holds for each.
            return DatabaseError(
                f"PostgreSQL: the connection to the server was lost mid-call: {why}. A "
                "transaction open on it was rolled back; a COMMIT cut off may or may not have "
                "taken effect, so look before doing its writes again"
            )
        case AttributeError() if closed:
            # A connection the close terminated while a call was about to use it: asyncpg has
            # dropped its protocol, and its next step reads an attribute of None.
            return DatabaseError(CLOSED)
        case OSError():
            return DatabaseError(f"PostgreSQL: network error: {detail(error)}")
        case asyncpg.PostgresError():
            return DatabaseError(f"PostgreSQL: {_message(error)}")
    return None


def cannot_connect(error: BaseException) -> DatabaseError:
    """Say that a call's new connection failed: before any statement, so it sent nothing."""
    why = (
        "the server is down, or not listening where the URL says"
        if isinstance(error, ConnectionRefusedError)
        else "the connection failed as it was made"
    )
    return DatabaseError(
        f"PostgreSQL: cannot connect to the server: {detail(error)}. The call sent nothing: {why}"
    )


def time_past_python(error: BaseException) -> ValidationError | None:
    """Say that a time read is one Python's datetime cannot hold, when asyncpg failed so."""
    if isinstance(error, OverflowError) and str(error) == _TIME_PAST_PYTHON:
        return ValidationError("stored row", "time", _TIME_PAST_PYTHON_REASON)
    return None


def _why_lost(error: BaseException) -> str:
    """Say why a connection was lost: its cause, not asyncpg's account of its own state.

    asyncpg detaches a pooled proxy whose connection died, then blames the pool. And the
    server's last words on an idle connection (the FATAL notice of a killed backend) leave
    asyncpg's protocol waiting for a sync that never comes: until the socket's close is read,
    the next call fails with InternalClientError, "cannot switch to state 12; another
    operation (2) is in progress", which no caller can act on. And a connection lost inside
    asyncpg's own transaction fails its rollback too ("cannot call Transaction.__aexit__(): the
    underlying connection is closed"): the error that rollback was raised in handling says why.
    """
    while isinstance(error.__context__, CONNECTION_FAILURES):
        error = error.__context__
    if isinstance(error, asyncpg.InternalClientError) or "released back to the pool" in str(error):
        return "the server or the network closed it"
    return detail(error)


def raised_by_asyncpg(error: BaseException) -> bool:
    """Tell whether asyncpg raised `error`: one of its types, or raised up through its code.

    A `TimeoutError`, an `OSError` or an `AttributeError` is asyncpg's only if it came up
    through asyncpg's frames (a command timeout, a socket's failure, a protocol it dropped);
    the caller's own `asyncio.timeout`, or a file it read, raised it in the caller's code alone.
    """
    if not isinstance(error, OSError | AttributeError):
        return translate_postgres(error, 0.0) is not None or time_past_python(error) is not None
    frames = traceback.walk_tb(error.__traceback__)
    return any(_ASYNCPG in Path(frame.f_code.co_filename).parts for frame, _ in frames)


@contextlib.contextmanager
def connect_failures(what: str) -> Iterator[None]:
    """Raise a `DatabaseError` that begins with `what` for a connection that cannot be made.

    An `AttributeError` that this package's code raised, not asyncpg's reading of a reply, goes
    on as it is: a bug of the package's own must not be told as a server that cannot be reached.
    """
    try:
        yield
    except CONNECT_FAILURES as error:
        if isinstance(error, AttributeError) and not raised_by_asyncpg(error):
            raise
        raise DatabaseError(f"{what}: {detail(error)}") from error


def detail(error: BaseException) -> str:
    """Say what went wrong in a few words: the error's own, or its kind."""
    said = str(error) or type(error).__name__
    if isinstance(error, AttributeError | asyncpg.InternalClientError):  # asyncpg's own stumble
        return f"the server's reply could not be read (asyncpg: {said})"
    return said


def _naming_table(error: asyncpg.PostgresError) -> str:
    """Give `_message`, with the table after the constraint, as SQLite's names `table.column`.

    PostgreSQL's message of a unique or exclusion constraint names the constraint alone; its
    table is in the error's fields. A foreign key's names both already.
    """
    message = _message(error)
    table, constraint = error.table_name, error.constraint_name
    if table and constraint and f'"{table}"' not in message:
        named = f'constraint "{constraint}"'
        message = message.replace(named, f'{named} on table "{table}"', 1)
    return message


_KEY: Final = re.compile(r"(?s)Key \((?P<columns>.*?)\)=\((?P<values>.*)\) (?P<outcome>.*)\.")


def _message(error: asyncpg.PostgresError) -> str:
    """Give the server's message, detail and hint on one line, a key in it cut as on SQLite.

    Not str(error): asyncpg writes the detail and the hint there on lines of their own.
    """
    detail = getattr(error, "detail", None)
    key = _KEY.fullmatch(detail or "")
    if key is not None:
        detail = key_detail(key["columns"], key["values"], key["outcome"])
    first = error.args[0] if error.args else type(error).__name__
    return ": ".join(part for part in (first, detail, getattr(error, "hint", None)) if part)
