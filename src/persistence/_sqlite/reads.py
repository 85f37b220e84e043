"""Reads outside transactions: on the event loop within its budget, else in a worker thread.

In WAL mode a reader sees the last commit and never waits for the writer. A read interrupted
past the loop's slice, or that must wait for a lock, is read again in a worker thread, on a
reader of its own. Rows are mapped afterwards, on the loop, a slice at a time. A snapshot is a
reader of its own held in one read transaction: every read sees the state its first read saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from operator import length_hint
from typing import TYPE_CHECKING, Any, Final, Protocol

from persistence._cancelling import kept_if_cancelled, stopped_if_cancelled
from persistence._loop import FIRST_SLICE_ITEMS, OFF_LOOP_SIZE, loop_held, map_slices, share_loop
from persistence._sqlite.statements import (
    CLOSED,
    COUNT,
    MANY,
    ROW,
    ROWS,
    VALUE,
    Budget,
    Mode,
    Plan,
    execute,
    is_busy,
)
from persistence.exceptions import DatabaseError
from persistence.queries import SQLITE_LARGE_VALUES

if TYPE_CHECKING:
    from persistence._interface import RowMapper


# Starts a function in the backend's worker threads. A future, not a task: code that cancels
# every task but its own (a shutdown handler) would cancel a read's hop, not its caller.
InThread = Callable[..., asyncio.Future[Any]]


class Reads(Protocol):
    """Where a session outside a transaction sends its reads."""

    async def read(self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None) -> Any:
        """Run one read and give its rows, mapped by `rows_as` if given."""


def mapped_now(rows_as: RowMapper | None, picked: Any, mode: Mode) -> Any:
    """Map what an unmapped `execute` gave in one go: one row, or a slice of rows at most.

    What `map_rows` does when there is no slice to give the loop back between, without a
    coroutine: most reads give one row or one short page.
    """
    # Compared by identity: an Enum's hash runs in Python, and a set of three cost four.
    if rows_as is None or mode is VALUE or mode is COUNT or mode is MANY:
        return picked
    if mode is ROW:
        return None if picked is None else rows_as([picked])[0]
    return rows_as(picked)


async def map_rows(rows_as: RowMapper | None, picked: Any, mode: Mode) -> Any:
    """Map what an unmapped `execute` gave, on the loop, a slice of rows at a time.

    A row holding JSON text past OFF_LOOP_SIZE is mapped alone in a worker thread: no slice
    cuts one row, and one of 3.5 MB held the loop 250 to 1,180 ms. One row read by a point
    read (ROW) too: it held the loop 290 ms.
    """
    if not must_map_in_slices(rows_as, picked, mode):
        return mapped_now(rows_as, picked, mode)
    assert rows_as is not None  # noqa: S101  # `must_map_in_slices` says so
    stored_of = SQLITE_LARGE_VALUES.get(rows_as)
    if mode is ROW:
        return (await map_slices(rows_as, [picked], stored_of))[0]
    return await map_slices(rows_as, picked, stored_of)


def must_map_in_slices(rows_as: RowMapper | None, picked: Any, mode: Mode) -> bool:
    """Whether `map_rows` would give the loop back: more rows than a first slice, or a large one.

    Rows holding JSON of hundreds of kB take milliseconds each: a page of them, mapped in one
    go, held the loop for hundreds. A page of one row holding megabytes goes to a thread, and
    so does such a row read alone (ROW).
    """
    if rows_as is None:
        return False
    if mode is ROW:
        return picked is not None and is_large_row(rows_as, picked)
    if mode is not ROWS:
        return False
    if len(picked) > FIRST_SLICE_ITEMS:
        return True
    return len(picked) == 1 and is_large_row(rows_as, picked[0])


def is_large_row(rows_as: RowMapper, row: Any) -> bool:
    """Whether `row` holds JSON text past OFF_LOOP_SIZE, which `rows_as` would decode."""
    stored_of = SQLITE_LARGE_VALUES.get(rows_as)
    return stored_of is not None and length_hint(stored_of(row)) > OFF_LOOP_SIZE


ELSEWHERE: Final = object()
"""What `on_loop` gives for a statement to run again elsewhere: past the budget, or waiting."""


def on_loop(
    connection: sqlite3.Connection,
    plan: Plan,
    params: Any,
    mode: Mode,
    budget: Budget,
    *,
    when_busy: bool,
) -> Any:
    """Give what `execute` gives on `connection` within the budget, or `ELSEWHERE` past it.

    With `when_busy`, a statement that must wait for a lock gives `ELSEWHERE` too. A plain
    function: most reads end here, and a coroutine more would cost each of them.
    """
    budget.arm()
    try:
        return execute(connection, plan, params, mode)
    except sqlite3.OperationalError as error:
        if not (budget.tripped or (when_busy and is_busy(error))):
            raise
        return ELSEWHERE
    finally:
        budget.disarm()


async def within_budget(
    connection: sqlite3.Connection,
    plan: Plan,
    params: Any,
    mode: Mode,
    *,
    budget: Budget,
    elsewhere: Callable[[Plan, Any, Mode], Awaitable[Any]],
    when_busy: bool,
) -> Any:
    """Give what `execute` gives on `connection`, or what `elsewhere` gives once past the budget.

    A `plan` marked to run long goes elsewhere at once; with `when_busy`, one that must wait
    for a lock too. Called with the parts of the call, not with functions made for it: one
    call makes no objects of its own.
    """
    if plan.runs_long:
        return await elsewhere(plan, params, mode)
    if loop_held():
        await share_loop()
    picked = on_loop(connection, plan, params, mode, budget, when_busy=when_busy)
    if picked is ELSEWHERE:
        return await elsewhere(plan, params, mode)
    return picked


class Readers:
    """The reader on the loop, and a pool of readers for worker threads."""

    def __init__(
        self,
        reader: sqlite3.Connection,
        open_reader: Callable[[], sqlite3.Connection],
        in_thread: InThread,
    ) -> None:
        self.connection = reader  # on the loop, also for short statements of the backend's own
        self._open_reader = open_reader
        self._in_thread = in_thread
        self._budget = Budget(reader, resident=True)  # the loop's own: see `Budget`
        self._idle: list[sqlite3.Connection] = []  # thread readers not in use
        # Thread readers out for a read: closed by `close` too, if a loop closed under it.
        self._lent: set[sqlite3.Connection] = set()
        self._held: set[Snapshot] = set()  # the open snapshots
        self._closed = False
        # `_keep` runs on the loop while `close` may run in a worker thread: a reader handed
        # back between close's look at `_idle` and its end was left open.
        self._guard = threading.Lock()

    async def read(self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None) -> Any:
        """Read on the loop; if it runs long or must wait, read again in a thread."""
        if plan.runs_long or loop_held():
            picked = await within_budget(
                self.connection,
                plan,
                params,
                mode,
                budget=self._budget,
                elsewhere=self._read_in_thread,
                when_busy=True,
            )
        else:  # most reads: `within_budget`'s steps, without its coroutine
            picked = on_loop(self.connection, plan, params, mode, self._budget, when_busy=True)
            if picked is ELSEWHERE:
                picked = await self._read_in_thread(plan, params, mode)
        if mode is ROW and rows_as is not None:  # a point read: `mapped_now`'s, one call less
            if picked is None:
                return None
            if not is_large_row(rows_as, picked):
                return rows_as([picked])[0]
        if must_map_in_slices(rows_as, picked, mode):
            return await map_rows(rows_as, picked, mode)
        return mapped_now(rows_as, picked, mode)

    async def _read_in_thread(self, plan: Plan, params: Any, mode: Mode) -> Any:
        if self._idle:
            reader = self._idle.pop()
            self._lent.add(reader)
        else:  # a reader that opens after its caller was cancelled is kept
            reader = await kept_if_cancelled(self._in_thread(self._open_lent), self._keep)
        work = self._in_thread(execute, reader, plan, params, mode)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            reader.interrupt()  # the read stops at its next step; the reader is reused after
            raise
        finally:
            work.add_done_callback(lambda done: self._give_back(reader, done))

    def _open_lent(self) -> sqlite3.Connection:
        """Open a thread reader, lent at once: in the thread, whether its caller waits or not."""
        reader = self._open_reader()
        with self._guard:
            self._lent.add(reader)
        return reader

    def _give_back(self, reader: sqlite3.Connection, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # read, so that an abandoned read is not reported as lost
        self._keep(reader)

    def _keep(self, reader: sqlite3.Connection) -> None:
        """Keep a reader for the next read in a thread; close it if the readers are closed."""
        with self._guard:
            self._lent.discard(reader)
            if not self._closed:
                self._idle.append(reader)
                return
        reader.close()

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """Hold a reader of its own in a read transaction for the block; writers go on (WAL)."""
        # Cancelled before its thread starts, the reader is not opened: a burst of cancels
        # would open (and SQLite keep the descriptors of) as many readers as were queued.
        gone = threading.Event()
        opening = self._in_thread(_begin_reading, self._open_reader, gone)
        try:
            reader = await kept_if_cancelled(opening, _end)
        except asyncio.CancelledError:
            gone.set()
            raise
        assert reader is not None  # noqa: S101  # only a cancelled caller's open gives none
        snapshot = Snapshot(reader, self._in_thread)
        with self._guard:
            if self._closed:
                snapshot.end()
                raise DatabaseError(CLOSED)
            self._held.add(snapshot)
        try:
            yield snapshot
        finally:
            with self._guard:  # ended here, or by a close (in a worker thread) that took it
                mine = snapshot in self._held
                self._held.discard(snapshot)
            if mine:
                snapshot.end()

    def close(self) -> None:
        """Close every reader: called once the worker threads have stopped, so none is reading."""
        with self._guard:
            self._closed = True
            idle, self._idle = self._idle, []
            lent, self._lent = self._lent, set()
            held, self._held = self._held, set()
        for snapshot in held:
            snapshot.end()
        for connection in (*idle, *lent, self.connection):
            connection.close()


class Snapshot:
    """A reader in one read transaction: each read, in a worker thread, sees the same state."""

    def __init__(self, reader: sqlite3.Connection, in_thread: InThread) -> None:
        self._reader = reader
        self._in_thread = in_thread
        self._ended = False

    async def read(self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None) -> Any:
        """Read in a thread; a cancelled read is stopped and waited for, the reader being shared."""
        if self._ended:
            raise DatabaseError(f"{CLOSED}, and the snapshot with it")
        # Cancelled, it stops at its next step; the transaction stays.
        work = self._in_thread(execute, self._reader, plan, params, mode)
        picked = await stopped_if_cancelled(work, self._reader.interrupt)
        return await map_rows(rows_as, picked, mode)

    def end(self) -> None:
        """End the read transaction and close the reader: by the block, or by a close."""
        self._ended = True
        _end(self._reader)


def _begin_reading(
    open_reader: Callable[[], sqlite3.Connection], gone: threading.Event
) -> sqlite3.Connection | None:
    """Open a reader and start its read transaction: the state it sees is fixed by this read.

    None, and nothing opened, if the caller is `gone` already.
    """
    if gone.is_set():
        return None
    reader = open_reader()
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM sqlite_schema").fetchall()
    except BaseException:
        reader.close()
        raise
    return reader


def _end(reader: sqlite3.Connection | None) -> None:
    """End a snapshot's read transaction and close its reader, if one was opened."""
    if reader is None:
        return
    try:
        if reader.in_transaction:
            reader.execute("ROLLBACK")
    finally:
        reader.close()
