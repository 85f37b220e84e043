"""The `Database` value: what it holds, the blocks it may be bound to, and its write watchers.

Every call's first checks are here too: that `db` is a `Database`, and that a call on it may
run where it is made (not on a block that ended, nor the outer database inside its block).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, NoReturn, ParamSpec, TypeVar

import attrs

from persistence._backend import Backend, Engine
from persistence.exceptions import DatabaseError, ValidationError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries

_OUTER_IN_BLOCK: Final = (
    "this task is inside transaction(db) and called with db itself: pass the database "
    "that transaction() gave, or its calls would escape the block's rollback or wait "
    "for the block forever"
)
CACHE_IN_BLOCK: Final = (
    "this task is inside transaction(db), whose uncommitted writes no cache of db can see: "
    "read through the database that transaction() gave, not the cache"
)
"""A cache's read in a block: the cache takes no database to pass in its stead."""


_P = ParamSpec("_P")
_T = TypeVar("_T")


def entered_again(name: str) -> DatabaseError:
    """Give the error of a second `async with` on one value of `name(...)`: it opens one block."""
    return DatabaseError(
        f"this {name}(...) was entered already: call {name}(...) again for each `async with`"
    )


class _EnteredOnce(contextlib.AbstractAsyncContextManager[_T]):
    """A block that refuses a second entry, naming its function.

    contextlib's raised a bare AttributeError, and a loan entered twice lost its first connection.
    """

    def __init__(
        self, block: contextlib.AbstractAsyncContextManager[_T], made_by: Callable[..., object]
    ) -> None:
        self._block, self._entered = block, False
        self._name = getattr(made_by, "__name__", "block")
        self.made_by = made_by
        """The function that made the block, which names it (in `SyncRunner`'s errors)."""

    async def __aenter__(self) -> _T:
        if self._entered:
            raise entered_again(self._name)
        self._entered = True
        return await self._block.__aenter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        return await self._block.__aexit__(kind, error, traceback)


def entered_once(
    make: Callable[_P, contextlib.AbstractAsyncContextManager[_T]],
) -> Callable[_P, contextlib.AbstractAsyncContextManager[_T]]:
    """Make `make`'s blocks refuse a second `async with`, naming `make`."""

    @functools.wraps(make)
    def once(*args: _P.args, **kwargs: _P.kwargs) -> contextlib.AbstractAsyncContextManager[_T]:
        return _EnteredOnce(make(*args, **kwargs), once)

    return once


WriteWatcher = Callable[[frozenset[str]], None]
"""Told the tables that a write through this package changed, once it has ended."""


@attrs.define(eq=False)
class Watchers:
    """The write watchers of one open database, shared by the values `transaction()` gives."""

    callbacks: list[WriteWatcher] = attrs.field(factory=list)
    any_handle: list[WriteWatcher] = attrs.field(factory=list)
    """Those told of the writes through every database open in this process at its URL."""


class _SharedWatchers(list[WriteWatcher]):
    """The watchers of every database open at one URL: a list that a weak map can hold."""

    __slots__ = ("__weakref__",)


_ANY_HANDLE: Final[weakref.WeakValueDictionary[tuple[Engine, str], _SharedWatchers]] = (
    weakref.WeakValueDictionary()
)
"""By engine and URL (its password hidden), the watchers of every database opened there.

Held by the databases alone: a URL's entry goes with the last of them, so a process that
opens many databases in turn does not keep one entry for each.
"""


_ANY_HANDLE_LOCK: Final = threading.Lock()
"""Held while a URL's list is looked up or made: two threads opening one URL (two runners)
each made one, and the writes through one database went unheard by the other's caches."""


def _watchers_of(db: Database) -> Watchers:
    key = db.engine, db.url
    with _ANY_HANDLE_LOCK:
        shared = _ANY_HANDLE.get(key)
        if shared is None:
            shared = _ANY_HANDLE[key] = _SharedWatchers()
    return Watchers(any_handle=shared)


@attrs.define(eq=False)
class EndedByLoan:
    """Why the caller's SQL, lent by `connection()`, ended a transaction: shared by its frames."""

    why: str | None = None


@attrs.define(eq=False)
class Frame:
    """One open `transaction()` block: the transaction itself, or a savepoint in it."""

    connection: Connection
    lock: asyncio.Lock
    """Shared by every frame of one transaction: one statement at a time."""
    depth: int = 0
    child: Frame | None = None
    open: bool = True
    written: set[str] = attrs.field(factory=set)
    """The tables written in the transaction, shared by its frames; announced at commit."""
    snapshot: bool = False
    """A `read_snapshot()` block's, which only reads, rather than a transaction's."""
    ended_by_loan: EndedByLoan = attrs.field(factory=EndedByLoan)
    """Set as the loan that ended the transaction ends; shared by the frames of one transaction."""

    @property
    def block(self) -> str:
        """Name the block the frame is of, as its user opened it."""
        return "read_snapshot()" if self.snapshot else "transaction()"

    def check_after_loan(self, backend: Backend) -> None:
        """Raise, and refuse every later call, if the caller's lent SQL ended the transaction.

        Checked as a loan of `connection()` ends, the one way the caller's SQL reaches a
        block's connection: the package's own calls, which never end it, pay nothing for it.
        """
        try:
            backend.check_block(self.connection)
        except DatabaseError as error:
            self.ended_by_loan.why = str(error)
            raise

    def check(self) -> None:
        """Refuse use of a frame that has ended or that a nested block covers."""
        if not self.open:
            raise DatabaseError(f"this {self.block} block has ended: use a database outside it")
        if self.ended_by_loan.why is not None:
            raise DatabaseError(self.ended_by_loan.why)
        if self.child is not None:
            raise DatabaseError(
                "a nested transaction() is open on this transaction: use the database it "
                "gave until it ends (two tasks cannot nest blocks in one transaction at once)"
            )


@attrs.define(eq=False)
class Block:
    """Marks, for the block's task and the tasks it starts, that a transaction is open."""

    backend: Backend
    open: bool = True


OPEN_BLOCKS: contextvars.ContextVar[tuple[Block, ...]] = contextvars.ContextVar(
    "persistence_open_blocks", default=()
)
OPEN_LOANS: contextvars.ContextVar[tuple[Block, ...]] = contextvars.ContextVar(
    "persistence_open_loans", default=()
)
"""The `connection()` blocks of this task, and of the tasks it started: open until they end.

A mark may outlive its block: reset in another context (a generator closed by the loop's
finalizer) or copied into a task that goes on after it. So it says whether it is still open."""


@attrs.frozen
class Database:
    """An open database: what every repository function needs. `url` hides its password."""

    url: str
    engine: Engine
    queries: Queries = attrs.field(repr=False)
    _backend: Backend = attrs.field(repr=False, alias="backend")
    _frame: Frame | None = attrs.field(default=None, repr=False, alias="frame")
    _watchers: Watchers = attrs.field(
        default=attrs.Factory(_watchers_of, takes_self=True), repr=False, alias="watchers"
    )

    @property
    def in_transaction(self) -> bool:
        """Whether calls on this value join a block: `transaction()` or `read_snapshot()`."""
        return self._frame is not None

    @property
    def block(self) -> str | None:
        """The block whose calls this value joins, `transaction()` or `read_snapshot()`, or None."""
        return None if self._frame is None else self._frame.block

    def __reduce__(self) -> NoReturn:
        """Refuse a copy, or a pickle for another process, saying what to do instead.

        Its connections and threads are this process's and this loop's: pickled, it failed
        naming a queue or a lambda (`cannot pickle '_queue.SimpleQueue'`).
        """
        raise TypeError(
            f"a Database ({self.url}) holds this process's connections: it cannot be copied or "
            "sent to another process; pass its URL, and connect() there"
        )


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


def watch_writes(
    db: Database, watcher: WriteWatcher, *, any_handle: bool = False
) -> Callable[[], None]:
    """Have `watcher` told the tables (from `QUERY_WRITES`) of every write through this package.

    It is told when the `connection()` block ends, or in a transaction the `transaction()`
    block; whether the write succeeded, failed or was cancelled (a cancelled call may still
    have committed), so it must be cheap and must not raise. Returns the function that stops it.
    With `any_handle`, it is told of the writes through every database open in this process at
    `db`'s URL, not `db` alone: a second `connect()` to one database is another value.
    """
    watchers = require_database(db)._watchers  # noqa: SLF001
    callbacks = watchers.any_handle if any_handle else watchers.callbacks
    callbacks.append(watcher)

    def stop() -> None:
        if watcher in callbacks:
            callbacks.remove(watcher)

    return stop


def announce(watchers: Watchers, tables: set[str]) -> None:
    """Tell every write watcher the tables that a statement or a transaction changed."""
    if tables and (watchers.callbacks or watchers.any_handle):
        changed = frozenset(tables)
        for watcher in (*watchers.callbacks, *watchers.any_handle):
            watcher(changed)


def backend_of(db: Database) -> Backend:
    """Give the backend behind `db`, for the modules of this package."""
    return require_database(db)._backend  # noqa: SLF001


def refuse_outer(backend: Backend, why: str = _OUTER_IN_BLOCK) -> None:
    """Raise `why` in a transaction() block of `backend`, or in a task it started."""
    for block in OPEN_BLOCKS.get():
        if block.open and block.backend is backend:
            raise DatabaseError(why)


def check_usable(db: Database, *, writes: bool = False, outer: str = _OUTER_IN_BLOCK) -> None:
    """Raise now the DatabaseError a call (a write, if `writes`) on `db` would raise here.

    `outer` says why a call on `db` itself is refused inside a `transaction(db)` block.
    """
    frame = require_database(db)._frame  # noqa: SLF001
    # A block's own connection stays usable until it ends, as the close waits for it.
    if frame is None and db._backend.closed:  # noqa: SLF001
        raise DatabaseError(db._backend.closed_message)  # noqa: SLF001
    if frame is not None:
        frame.check()
        if writes and frame.snapshot:
            raise DatabaseError(
                "a read_snapshot() block only reads: open transaction() on the database outside it"
            )
    elif OPEN_BLOCKS.get():
        refuse_outer(db._backend, outer)  # noqa: SLF001
