"""Lending a connection: `connection()` for the caller's SQL, `borrow` and `run_query` for ours.

In a block the loan is the block's own connection, one statement at a time; outside, the
backend lends one from its pool (SQLite's session, a PostgreSQL connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

from persistence._backend import Engine
from persistence._changes import WRITTEN, WRITTEN_TABLES
from persistence._database_value import (
    OPEN_BLOCKS,
    OPEN_LOANS,
    Block,
    Database,
    announce,
    entered_again,
    refuse_outer,
    require_database,
)
from persistence._driver_errors import raise_translated
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._backend import Backend
    from persistence._interface import Connection

_T = TypeVar("_T")
_INTERRUPTS: Final = (asyncio.CancelledError, KeyboardInterrupt)
"""What ends a loan's hand-back from outside: raised as it is, never replaced by the call's error,
which was raised in its place, and the caller, cancelled, went on."""


async def _give_back(
    hand_back: Awaitable[object] | None,
    then: Callable[[], None],
    error: BaseException | None,
    backend: Backend,
    database: str,
) -> None:
    """Give a loan back, then raise `error` translated, unless the hand-back was interrupted.

    A cancellation that lands in the hand-back (a rollback, the wait for a cancel request) goes
    on as it is: raised in its place, the call's error let the cancelled caller go on.
    """
    interrupted = False
    try:
        if hand_back is not None:
            await hand_back
    except _INTERRUPTS:
        interrupted = True
        raise
    finally:
        then()
        if error is not None and not interrupted:
            raise_translated(backend, error, database)


class _Lent:
    """The context of `connection()`: a class, since it runs once per call."""

    __slots__ = (
        "_backend",
        "_database",
        "_engine",
        "_entered",
        "_frame",
        "_lent",
        "_recording",
        "_watchers",
        "_written",
    )

    _callers = False  # the package's own loan: whatever its calls raise is the driver's

    def __init__(self, db: Database) -> None:
        self._backend = require_database(db)._backend  # noqa: SLF001
        self._engine = db.engine
        self._database = db.url
        self._frame = db._frame  # noqa: SLF001
        self._watchers = db._watchers  # noqa: SLF001
        self._lent: contextlib.AbstractAsyncContextManager[Connection] | None = None
        self._written: set[str] = set() if self._frame is None else self._frame.written
        self._recording: contextvars.Token[set[str] | None] | None = None
        self._entered = False

    async def __aenter__(self) -> Connection:
        if self._entered:  # a second loan would take the place of the first, never given back
            raise entered_again("connection")
        self._entered = True
        self._recording = WRITTEN.set(self._written)
        try:
            frame = self._frame
            if frame is not None:
                frame.check()
                await frame.lock.acquire()
                if frame.open and frame.child is None and frame.ended_by_loan.why is None:
                    return frame.connection
                frame.lock.release()
                frame.check()  # the block ended, or a nested one began, while this call waited
            if OPEN_BLOCKS.get():
                refuse_outer(self._backend)
            lent = self._backend.lend()
            try:
                connection = await lent.__aenter__()
            except BaseException as error:
                raise_translated(self._backend, error, self._database)
                raise
        except BaseException:
            self._stop()
            raise
        self._lent = lent
        return connection

    def _stop(self) -> None:
        """End the record of written tables; announce them if they were committed on their own."""
        token, self._recording = self._recording, None
        if token is not None:
            _end_record(token)
            if self._frame is None:
                announce(self._watchers, self._written)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._frame is not None:
            self._frame.lock.release()
            hand_back = None
        elif self._lent is not None:
            hand_back = self._lent.__aexit__(kind, error, traceback)
        else:
            hand_back = None
        translated = error if error is not None and self._translates(error) else None
        await _give_back(hand_back, self._stop, translated, self._backend, self._database)

    def _translates(self, error: BaseException) -> bool:
        """Tell whether `error` is translated: every one of the package's calls, the driver's only.

        In the caller's SQL (`_CallersLoan`), the caller's own errors are raised as they are.
        """
        return not self._callers or self._backend.raised_by_driver(error)


class _CallersLoan(_Lent):
    """The context of `connection()`: the caller's SQL may set session state, reset after.

    The errors that leave the block are translated only if the driver raised them: the
    caller's own `asyncio.timeout` came out as a command timeout of PostgreSQL's.
    """

    __slots__ = ("_mark", "_marked")
    _callers = True

    async def __aenter__(self) -> Connection:
        self._backend.lent_to_caller(lent := await super().__aenter__())
        # A close in the block would wait for the block: `close_database` refuses it.
        self._mark = Block(self._backend)
        self._marked = OPEN_LOANS.set((*OPEN_LOANS.get(), self._mark))
        # The caller's SQL may write any table, and no query of ours reports it: the caches
        # trusted their entries until the feed's notification came, a moment later. SQLite's
        # session runs the generated queries alone, which report what they write.
        if self._engine is Engine.POSTGRES:
            self._written.update(WRITTEN_TABLES)
        return lent

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._frame is not None:  # the caller's SQL may have ended the block's transaction
                self._frame.check_after_loan(self._backend)
        except DatabaseError:
            if error is None:
                raise
            # Else the caller's own error is raised; every later call of the block raises this.
        finally:
            self._mark.open = False
            with contextlib.suppress(ValueError):  # in another context: see `_end_record`
                OPEN_LOANS.reset(self._marked)
            await super().__aexit__(kind, error, traceback)


async def run_query(db: Database, query: Callable[[Connection], Awaitable[_T]]) -> _T:
    """Run `lambda conn: db.queries.name(conn, ...)` on a lent connection (mypy names the query).

    Outside any block, when the backend lends at once (SQLite's session, PostgreSQL's free
    lane), it does what `_Lent` does in a few lines, without the object and the coroutines of
    two contexts: most calls are these.
    """
    if type(db) is not Database:
        require_database(db)  # refuses anything else, naming what it is
    backend = db._backend  # noqa: SLF001
    conn = None
    if db._frame is None and not OPEN_BLOCKS.get():  # noqa: SLF001
        conn = backend.lend_at_once()
    if conn is None:
        async with _Lent(db) as lent:
            return await query(lent)
    written: set[str] = set()
    token = WRITTEN.set(written)
    try:
        result = await query(conn)
    except BaseException as error:
        _end_record(token)
        watchers = db._watchers  # noqa: SLF001
        await _give_back(
            backend.end_failed_loan(error),
            lambda: announce(watchers, written),
            error,
            backend,
            db.url,
        )
        raise
    backend.end_loan()
    WRITTEN.reset(token)
    if written:
        announce(db._watchers, written)  # noqa: SLF001
    return result


def _end_record(token: contextvars.Token[set[str] | None]) -> None:
    """Reset WRITTEN; in another context, nothing: a coroutine collected unfinished ends here.

    A program that left its loop with calls under way had each one's loan end as the
    coroutine was collected, outside its task's context: each printed a traceback at exit.
    """
    with contextlib.suppress(ValueError):
        WRITTEN.reset(token)


def connection(db: Database) -> _Lent:
    """Lend a connection (a block's in a block), errors translated; reset after on PostgreSQL."""
    return _CallersLoan(db)


def announce_every_table(db: Database) -> None:
    """Tell the caches that any table may have changed: SQL of no generated query committed."""
    announce(require_database(db)._watchers, set(WRITTEN_TABLES))  # noqa: SLF001


borrow = _Lent  # connection() for this package's own calls, which set no session state: no reset
