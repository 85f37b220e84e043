"""Opening a database, grouping calls in transactions, and lending connections.

A `Database` is a frozen value: the engine, the typed queries and the backend that owns the
connections. `transaction(db)` gives a copy bound to the transaction; the rules that keep it
whole, alike on both engines, are kept here (docs/GUARANTEES.md lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

import attrs

from persistence._backend import Backend, Engine, ScriptError, ScriptStatement, once_free
from persistence._changes import WRITTEN
from persistence._guards import argument, at_least, seconds
from persistence._postgres import open_postgres, split_postgres
from persistence._postgres.create import create_postgres_database
from persistence._sqlite import open_sqlite, split_sqlite
from persistence._tracing import Tracing, observer_for
from persistence._urls import (
    DEFAULT_DATABASE,
    PgBouncerMode,
    database_url,
    engine_of,
    pooled_target,
    redact_url,
)
from persistence.exceptions import DatabaseError, ValidationError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries

__all__ = [
    "DEFAULT_DATABASE",
    "Database",
    "Engine",
    "close_database",
    "connect",
    "connection",
    "create_database",
    "database_url",
    "engine_of",
    "open_database",
    "redact_url",
    "transaction",
    "watch_writes",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_OUTER_IN_BLOCK: Final = (
    "this task is inside transaction(db) and called with db itself: pass the database "
    "that transaction() gave, or its calls would escape the block's rollback or wait "
    "for the block forever"
)

_CLOSE_IN_BLOCK: Final = (
    "close_database() was called inside a transaction() block of this database, and would wait "
    "for the block to end: close it after the block"
)


WriteWatcher = Callable[[frozenset[str]], None]
"""Told the tables that a write through this package changed, once it has ended."""


@attrs.define(eq=False)
class _Watchers:
    """The write watchers of one open database, shared by the values `transaction()` gives."""

    callbacks: list[WriteWatcher] = attrs.field(factory=list)


@attrs.define(eq=False)
class _Frame:
    """One open `transaction()` block: the transaction itself, or a savepoint in it."""

    connection: Connection
    lock: asyncio.Lock
    """Shared by every frame of one transaction: one statement at a time."""
    depth: int = 0
    child: _Frame | None = None
    open: bool = True
    written: set[str] = attrs.field(factory=set)
    """The tables written in the transaction, shared by its frames; announced at commit."""
    snapshot: bool = False
    """A `read_snapshot()` block's, which only reads, rather than a transaction's."""

    @property
    def block(self) -> str:
        """Name the block the frame is of, as its user opened it."""
        return "read_snapshot()" if self.snapshot else "transaction()"

    def check(self) -> None:
        """Refuse use of a frame that has ended or that a nested block covers."""
        if not self.open:
            raise DatabaseError(f"this {self.block} block has ended: use a database outside it")
        if self.child is not None:
            raise DatabaseError(
                "a nested transaction() is open on this transaction: use the database it "
                "gave until it ends (two tasks cannot nest blocks in one transaction at once)"
            )


@attrs.define(eq=False)
class _Block:
    """Marks, for the block's task and the tasks it starts, that a transaction is open."""

    backend: Backend
    open: bool = True


_OPEN_BLOCKS: contextvars.ContextVar[tuple[_Block, ...]] = contextvars.ContextVar(
    "persistence_open_blocks", default=()
)


@attrs.frozen
class Database:
    """An open database: what every repository function needs. `url` hides its password."""

    url: str
    engine: Engine
    queries: Queries = attrs.field(repr=False)
    _backend: Backend = attrs.field(repr=False, alias="backend")
    _frame: _Frame | None = attrs.field(default=None, repr=False, alias="frame")
    _watchers: _Watchers = attrs.field(factory=_Watchers, repr=False, alias="watchers")

    @property
    def in_transaction(self) -> bool:
        """Whether calls on this value join a block: `transaction()` or `read_snapshot()`."""
        return self._frame is not None

    @property
    def block(self) -> str | None:
        """The block whose calls this value joins, `transaction()` or `read_snapshot()`, or None."""
        return None if self._frame is None else self._frame.block


def require_database(db: object, name: str = "db") -> Database:
    """Give `db`, refusing anything else as the argument `name`: untyped callers may pass a URL."""
    if not isinstance(db, Database):
        raise ValidationError(
            "Database",
            name,
            "expected the Database that open_database() or connect() gives (open_persistence's "
            f"is its .db), got {type(db).__name__}",
        )
    return db


async def open_database(  # each limit is the caller's to set
    url: str | os.PathLike[str] | None = None,
    *,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    release_timeout: float = 1.0,
    busy_timeout: float = 5.0,
    pool_size: int = 10,
    create: bool = True,
    tracing: Tracing | None = None,
    slow_query: float | None = None,
    pgbouncer: PgBouncerMode | None = None,
    listen_url: str | None = None,
) -> Database:
    """Open a database by URL or path: `url`, else `$DATABASE_URL`, else `data/app.db`.

    SQLite gets WAL, foreign keys and a full sync on commit; a write waits `busy_timeout` at most
    for another process's lock; with `create=False` a missing file is an error and an existing
    one opens read-only. PostgreSQL gets a pool bounded by `connect_timeout`, `command_timeout`
    (each statement) and `release_timeout` (a connection handed back). Queries are OpenTelemetry
    spans with the `otel` extra and a tracer provider (global or `tracing`); one of `slow_query`
    seconds or more (else `$PERSISTENCE_SLOW_QUERY`) is logged at WARNING on `persistence.queries`.

    `pgbouncer="transaction"` (PgBouncer in transaction mode) and `listen_url` (PostgreSQL's own
    address, for the change feed) work as in the URL's query; given both ways they must agree,
    and SQLite refuses them: a `ValidationError` before anything opens.
    """
    engine, target = pooled_target(
        url, pgbouncer=pgbouncer, listen_url=listen_url, caller="open_database"
    )
    # Every limit is checked, whichever engine it serves, before anything opens.
    limits = _limits(
        "open_database",
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        release_timeout=release_timeout,
    )
    busy_timeout = seconds("open_database", "busy_timeout", busy_timeout, zero_ok=True)
    pool_size = at_least("open_database", "pool_size", pool_size, 1)
    create = argument("open_database", "create", bool, create)
    shown = redact_url(target)
    observer = observer_for(engine.value, target, tracing, slow_query)
    if engine is Engine.SQLITE:
        backend: Backend = await open_sqlite(
            target, busy_timeout=busy_timeout, create=create, observer=observer
        )
    else:
        backend = await open_postgres(
            target, shown, **limits, pool_size=pool_size, observer=observer
        )
    return Database(url=shown, engine=engine, queries=backend.queries, backend=backend)


async def create_database(
    url: str | os.PathLike[str] | None = None,
    *,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    dry_run: bool = False,
) -> bool:
    """Create the PostgreSQL database `url` names if missing: say whether it was (or would be).

    SQLite needs no such step (False). A role that may not create databases gets a DatabaseError.
    """
    engine, target = engine_of(url)
    limits = _limits(
        "create_database", connect_timeout=connect_timeout, command_timeout=command_timeout
    )
    dry_run = argument("create_database", "dry_run", bool, dry_run)
    if engine is Engine.SQLITE:
        return False
    return await create_postgres_database(target, redact_url(target), **limits, dry_run=dry_run)


def _limits(caller: str, **given: float) -> dict[str, float]:
    """Check each time limit given by name: a finite number of seconds, more than 0."""
    return {name: seconds(caller, name, value) for name, value in given.items()}


def split_script(engine: Engine, script: str) -> list[ScriptStatement]:
    """Split a migration script as `engine` reads it, with no database open.

    What the engine cannot run in a migration is refused with a `MigrationError`.
    """
    return split_sqlite(script) if engine is Engine.SQLITE else split_postgres(script)


async def close_database(db: Database) -> None:
    """Close the connections behind `db`, after the writes already queued.

    A `transaction()` block open in another task ends first; one open in this task (or a task
    it started), which the close would wait for, is refused. A `read_snapshot()` block, which
    only reads, ends at once: its later calls raise `DatabaseError`.
    """
    backend = require_database(db)._backend  # noqa: SLF001  # the module that made it closes it
    _refuse_outer(backend, _CLOSE_IN_BLOCK)
    await backend.close()


def _for_a_block(
    open_: Callable[_P, Awaitable[Database]],
) -> Callable[_P, contextlib.AbstractAsyncContextManager[Database]]:
    """Make `connect` of `open_database`: the same arguments, checked alike by type checkers."""

    @contextlib.asynccontextmanager
    async def connect(*args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[Database]:
        """Open a database for the length of an `async with` block; see `open_database`."""
        db = await open_(*args, **kwargs)
        try:
            yield db
        finally:
            await close_database(db)

    # help() and inspect.signature() follow __wrapped__: they show open_database's arguments.
    connect.__wrapped__ = open_  # type: ignore[attr-defined]  # set on the made function
    return connect


connect = _for_a_block(open_database)


async def _open_file_as_is(path: str | os.PathLike[str]) -> Database:
    """Open an existing SQLite file to read it only, adding no file beside it: for a restore.

    A file open elsewhere (its `-wal` or `-shm` beside it) is read through SQLite's locks.
    """
    engine, target = engine_of(path)
    if engine is not Engine.SQLITE:
        raise ValidationError("restore", "path", f"must be a SQLite file: {redact_url(target)!r}")
    observer = observer_for(engine.value, target, None, None)
    backend = await open_sqlite(
        target, busy_timeout=5.0, create=False, observer=observer, as_is=True
    )
    return Database(url=redact_url(target), engine=engine, queries=backend.queries, backend=backend)


read_file_as_is = _for_a_block(_open_file_as_is)


def watch_writes(db: Database, watcher: WriteWatcher) -> Callable[[], None]:
    """Have `watcher` told the tables (from `QUERY_WRITES`) of every write through this package.

    It is told when the `connection()` block ends, or in a transaction the `transaction()`
    block; whether the write succeeded, failed or was cancelled (a cancelled call may still
    have committed), so it must be cheap and must not raise. Returns the function that stops it.
    """
    callbacks = require_database(db)._watchers.callbacks  # noqa: SLF001
    callbacks.append(watcher)

    def stop() -> None:
        if watcher in callbacks:
            callbacks.remove(watcher)

    return stop


def _announce(watchers: _Watchers, tables: set[str]) -> None:
    """Tell every write watcher the tables that a statement or a transaction changed."""
    if tables and watchers.callbacks:
        changed = frozenset(tables)
        for watcher in tuple(watchers.callbacks):
            watcher(changed)


def backend_of(db: Database) -> Backend:
    """Give the backend behind `db`, for the modules of this package."""
    return require_database(db)._backend  # noqa: SLF001


def _refuse_outer(backend: Backend, why: str = _OUTER_IN_BLOCK) -> None:
    """Raise `why` in a transaction() block of `backend`, or in a task it started."""
    for block in _OPEN_BLOCKS.get():
        if block.open and block.backend is backend:
            raise DatabaseError(why)


def check_usable(db: Database, *, writes: bool = False) -> None:
    """Raise now the DatabaseError a call (a write, if `writes`) on `db` would raise here."""
    frame = require_database(db)._frame  # noqa: SLF001
    if frame is not None:
        frame.check()
        if writes and frame.snapshot:
            raise DatabaseError(
                "a read_snapshot() block only reads: open transaction() on the database outside it"
            )
    elif _OPEN_BLOCKS.get():
        _refuse_outer(db._backend)  # noqa: SLF001


@contextlib.asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Database]:
    """Group calls: commit when the block ends, roll back on any error.

    The write lock is taken at the start, so reading then writing never fails to upgrade it.
    Nested use makes a savepoint, so an inner block can fail alone.
    """
    check_usable(db, writes=True)  # a block ended or covered, a snapshot's, the outer database
    frame = db._frame  # noqa: SLF001
    if frame is not None:
        async with _savepoint(db, frame) as nested:
            yield nested
        return
    backend = db._backend  # noqa: SLF001
    block = _Block(backend)
    top: _Frame | None = None
    try:
        async with backend.begin() as conn:
            top = _Frame(conn, asyncio.Lock())
            token = _OPEN_BLOCKS.set((*_OPEN_BLOCKS.get(), block))
            try:
                yield attrs.evolve(db, frame=top)
            finally:
                block.open = top.open = False
                _OPEN_BLOCKS.reset(token)
                await once_free(top.lock)  # after a statement another task sent through it
    except BaseException as error:
        _raise_translated(backend, error, db.url)
        raise
    finally:
        # Told after the commit or a rollback: a COMMIT whose caller was cancelled still commits.
        _announce(db._watchers, top.written if top is not None else set())  # noqa: SLF001


@contextlib.asynccontextmanager
async def read_snapshot(db: Database) -> AsyncIterator[Database]:
    """Give a `db` whose reads in the block all see the state committed when it began.

    Writers go on meanwhile, and what they commit is not seen in the block. Inside
    `transaction()`, `db` is given as it is: its block sees its own writes. Only reads: a write
    raises `DatabaseError`, as does a call after the block.
    """
    if require_database(db)._frame is not None:  # noqa: SLF001
        yield db
        return
    async with translate_errors(db), db._backend.snapshot() as reading:  # noqa: SLF001
        frame = _Frame(reading, asyncio.Lock(), snapshot=True)
        try:
            yield attrs.evolve(db, frame=frame)
        finally:
            frame.open = False
            await once_free(frame.lock)  # after a read another task sent, never under it


@contextlib.asynccontextmanager
async def _savepoint(db: Database, frame: _Frame) -> AsyncIterator[Database]:
    backend = db._backend  # noqa: SLF001
    frame.check()
    name = f"persistence_{frame.depth + 1}"
    async with frame.lock, _translated(backend):
        frame.check()
        await backend.savepoint(frame.connection, name)
        child = _Frame(frame.connection, frame.lock, frame.depth + 1, written=frame.written)
        frame.child = child
    end = backend.rollback_to  # unless the block completes
    try:
        yield attrs.evolve(db, frame=child)
        end = backend.release
    finally:
        child.open = False
        frame.child = None
        try:
            await once_free(frame.lock)  # after a statement another task sent through it
        except asyncio.CancelledError:
            end = backend.rollback_to  # cancelled at its end, it keeps nothing
            raise
        finally:
            async with frame.lock, _translated(backend):
                await end(frame.connection, name)


class _Lent:
    """The context of `connection()`: a class, since it runs once per call."""

    __slots__ = ("_backend", "_database", "_frame", "_lent", "_recording", "_watchers", "_written")

    def __init__(self, db: Database) -> None:
        self._backend = require_database(db)._backend  # noqa: SLF001
        self._database = db.url
        self._frame = db._frame  # noqa: SLF001
        self._watchers = db._watchers  # noqa: SLF001
        self._lent: contextlib.AbstractAsyncContextManager[Connection] | None = None
        self._written: set[str] = set() if self._frame is None else self._frame.written
        self._recording: contextvars.Token[set[str] | None] | None = None

    async def __aenter__(self) -> Connection:
        self._recording = WRITTEN.set(self._written)
        try:
            frame = self._frame
            if frame is not None:
                frame.check()
                await frame.lock.acquire()
                if frame.open and frame.child is None:
                    try:  # the caller's SQL may have ended the block's transaction earlier
                        self._backend.check_block(frame.connection)
                    except BaseException:
                        frame.lock.release()
                        raise
                    return frame.connection
                frame.lock.release()
                frame.check()  # the block ended, or a nested one began, while this call waited
            if _OPEN_BLOCKS.get():
                _refuse_outer(self._backend)
            lent = self._backend.lend()
            try:
                connection = await lent.__aenter__()
            except BaseException as error:
                _raise_translated(self._backend, error, self._database)
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
            WRITTEN.reset(token)
            if self._frame is None:
                _announce(self._watchers, self._written)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._frame is not None:
                self._frame.lock.release()
                if error is None:  # the caller's SQL may have ended the block's transaction
                    self._backend.check_block(self._frame.connection)
            elif self._lent is not None:
                await self._lent.__aexit__(kind, error, traceback)
        finally:
            self._stop()
            if error is not None:
                _raise_translated(self._backend, error, self._database)


class _CallersLoan(_Lent):
    """The context of `connection()`: the caller's SQL may set session state, reset after."""

    __slots__ = ()

    async def __aenter__(self) -> Connection:
        self._backend.lent_to_caller(lent := await super().__aenter__())
        return lent


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
    if db._frame is None and not _OPEN_BLOCKS.get():  # noqa: SLF001
        conn = backend.lend_at_once()
    if conn is None:
        async with _Lent(db) as lent:
            return await query(lent)
    written: set[str] = set()
    token = WRITTEN.set(written)
    try:
        result = await query(conn)
    except BaseException as error:
        WRITTEN.reset(token)
        try:
            await backend.end_failed_loan(error)
        finally:
            _announce(db._watchers, written)  # noqa: SLF001
            _raise_translated(backend, error, db.url)
        raise
    backend.end_loan()
    WRITTEN.reset(token)
    if written:
        _announce(db._watchers, written)  # noqa: SLF001
    return result


def connection(db: Database) -> _Lent:
    """Lend a connection (a block's in a block), errors translated; reset after on PostgreSQL."""
    return _CallersLoan(db)


borrow = _Lent  # connection() for this package's own calls, which set no session state: no reset


@contextlib.asynccontextmanager
async def _translated(backend: Backend, database: str = "") -> AsyncIterator[None]:
    """Turn driver errors raised in the block into this package's errors, chained."""
    try:
        yield
    except BaseException as error:
        _raise_translated(backend, error, database)
        raise


def translate_errors(db: Database) -> contextlib.AbstractAsyncContextManager[None]:
    """Translate the driver errors of `db`'s engine raised in an `async with` block."""
    return _translated(require_database(db)._backend, db.url)  # noqa: SLF001


def _raise_translated(backend: Backend, error: BaseException, database: str = "") -> None:
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
