"""The writer connection: group commit of single-call writes, and leases for transactions.

Single-call writes that arrive together share one transaction (`BEGIN IMMEDIATE`, on the
loop) and one commit; each caller returns once it is durable, and a write that fails fails
alone. Queued writes go to a worker thread together, one hop for a run of them, since one
insert may spend tens of ms in a step no budget sees (FTS5 merging its segments); a bulk or
long write takes a hop of its own. When no other write waits, the COMMIT runs in the same hop;
a plain write alone in the queue runs outside any transaction, as one statement that commits
itself (no BEGIN, no COMMIT), in the writer's own thread, and falls back to a batch if
another connection holds the lock.
A transaction takes the writer for its whole block (a lease), queued in turn with the batches.

The runner's task outlives a cancel from outside (a program's shutdown cancelling every task):
work handed to a thread cannot be taken back, so the runner waits for it, hands each caller
its answer, and goes on with its queue, ending as always once the queue is empty. A loop closed
without ending its tasks never runs them again: the next loop takes the writer back.

The writer's states are explicit (`WriterState`), and each step asserts the one it needs: a
batch or a lease starts only from IDLE, outside any SQLite transaction; a statement of a
transaction runs only under a lease; a lease ends outside any SQLite transaction; nothing is
queued once CLOSED.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import enum
import itertools
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from persistence._cancelling import finish_then_cancel
from persistence._loop import gave_back, share_loop
from persistence._sqlite.reads import InThread, map_rows, mapped_now, within_budget
from persistence._sqlite.statements import (
    CLOSED,
    MANY,
    Budget,
    Mode,
    Plan,
    execute,
    is_busy,
    lock_poll,
    savepointed,
)
from persistence._sqlite.writes import (
    Job,
    Write,
    commit_checked,
    fail,
    run_alone,
    run_writes,
    serve,
    then_set,
)
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._interface import RowMapper
    from persistence._sqlite.identity import OpenedFile


_BATCH_LIMIT: Final = 1000  # the most single-call writes that share one commit

_T = TypeVar("_T")


class WriterState(enum.Enum):
    """What the writer connection is doing."""

    IDLE = "idle"  # no SQLite transaction is open on it
    BATCH = "batch"  # the runner's transaction holds queued single-call writes
    LEASED = "leased"  # a `transaction()` block holds it, from BEGIN IMMEDIATE to its end
    CLOSED = "closed"  # nothing more is queued


@attrs.define(eq=False)
class Lease:
    """A request for the writer connection by a transaction: granted, then released once."""

    granted: asyncio.Future[None]
    released: asyncio.Future[None]
    queued: float = attrs.field(factory=time.monotonic)  # when its block began to wait

    def release(self) -> None:
        """Give the writer back to the queue."""
        if not self.released.done():
            self.released.set_result(None)

    def abandoned(self) -> bool:
        """Whether its loop closed under it: the writer, taken back, is no longer its to touch.

        Its block's cleanup may run later still, when the garbage collector closes it.
        """
        return self.granted.get_loop().is_closed()


class Writer:
    """The writer connection and its queue, which holds single-call writes and leases."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        in_worker: InThread,
        busy_timeout: float,
        opened: OpenedFile,
    ) -> None:
        self.connection = connection  # only a lease's holder may use it
        self._opened = opened  # checked at each commit: see `commit_checked`
        self._in_worker = in_worker
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # for its own thread
        self._thread: threading.Thread | None = None  # started by the first lone write
        # Clear while a thread runs a statement on the connection, which may outlive its loop.
        self._thread_free = threading.Event()
        self._thread_free.set()
        self._busy_timeout = busy_timeout
        self._budget = Budget(connection)
        self._queue: collections.deque[Write | Lease] = collections.deque()
        self._runner: asyncio.Task[None] | None = None
        self.state = WriterState.IDLE
        self._closing = False  # a close has begun: what is queued runs, nothing more is taken
        # When a try at the write lock first found it held elsewhere, since the last that took it.
        self._held_elsewhere: float | None = None

    @property
    def idle(self) -> bool:
        """Whether nothing is queued, running or leased: the writer may move to another loop."""
        return (
            self._runner is None
            and not self._queue
            and self.state is WriterState.IDLE
            and self._thread_free.is_set()
        )

    def in_thread(self, function: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        """Start `function` on the connection in a worker thread; not `idle` until it ends."""
        self._thread_free.clear()
        try:
            return self._in_worker(then_set, self._thread_free, function, *args)
        except BaseException:
            self._thread_free.set()
            raise

    def commit(self) -> asyncio.Future[None]:
        """Commit the open transaction in a thread, checking the file: see `commit_checked`."""
        return self.in_thread(commit_checked, self.connection, self._opened)

    def take_back(self) -> None:
        """Take the writer back from an event loop that closed without ending its tasks.

        None of them runs again. A transaction left open was never committed, so none of its
        writes was acknowledged: it is rolled back. A write still queued never ran: its caller
        is told so. Refused while a thread still runs a statement that loop started.
        """
        if not self._thread_free.is_set():
            raise DatabaseError(
                "a statement that a closed event loop started still runs on the SQLite writer "
                "in a worker thread: try again once it has ended, or close the database"
            )
        if self.connection.in_transaction:
            self.connection.execute("ROLLBACK")
        self.connection.execute("PRAGMA foreign_keys = ON")  # a migration's block turns it off
        runner, self._runner = self._runner, None
        # 3.12+ gives no coroutine for a task that an eager task factory ran to its end
        if runner is not None and (work := runner.get_coro()) is not None:
            work.close()  # its cleanup runs now, not when it is collected
        not_run = DatabaseError("not written: the event loop it was queued on closed before it ran")
        for item in self._queue:
            waiting = item.future if isinstance(item, Write) else item.granted
            if not waiting.done():
                with contextlib.suppress(RuntimeError):  # the closed loop has no one to wake
                    waiting.set_exception(not_run)
        self._queue.clear()
        self.state = WriterState.IDLE

    def wait_for_thread(self) -> None:
        """Block until no thread runs a statement on the connection: called in a thread."""
        self._thread_free.wait()

    async def run_leased(
        self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None
    ) -> Any:
        """Run on the loop; bulk writes, long statements and reads past the budget in a thread."""
        writer = self.leased()
        if mode is MANY:
            return await finish_then_cancel(self.in_thread(savepointed, writer, plan, params))
        if plan.writes and not plan.runs_long:
            await share_loop()
            return execute(writer, plan, params, mode, rows_as)

        def elsewhere(plan: Plan, params: Any, mode: Mode) -> Awaitable[Any]:
            return finish_then_cancel(self.in_thread(execute, writer, plan, params, mode))

        picked = await within_budget(
            writer, plan, params, mode, budget=self._budget, elsewhere=elsewhere, when_busy=False
        )
        return await map_rows(rows_as, picked, mode)

    def leased(self) -> sqlite3.Connection:
        """Give the writer, asserting that a transaction holds it, inside its SQLite transaction.

        A statement may have made SQLite roll that transaction back whole (a trigger's
        `RAISE(ROLLBACK)`, a full disk): what the block sends next would commit alone.
        """
        assert self.state is WriterState.LEASED, self.state  # noqa: S101  # the writer's invariant
        if not self.connection.in_transaction:
            raise DatabaseError(
                "SQLite rolled back this transaction() block's transaction, after an error in "
                "one of its statements: nothing of the block is kept, and it can only end"
            )
        return self.connection

    async def queue_write(
        self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None
    ) -> Any:
        """Queue a write for the next batch; return once the batch has committed."""
        if self._closing:
            raise DatabaseError(CLOSED)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(Write(plan, params, mode, rows_as, future))
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._runner is None:
            # A context of its own: the runner serves every caller, not the one that woke it.
            runner = asyncio.get_running_loop().create_task(
                self._run_queue(), context=contextvars.Context()
            )
            runner.add_done_callback(self._never_ran)
            self._runner = runner

    def _never_ran(self, runner: asyncio.Task[None]) -> None:
        """Clear a runner cancelled before its first step, whose own `finally` never ran.

        The writes it left queued are served by a new one, unless their callers are gone.
        """
        if self._runner is not runner:
            return  # it ran, and cleared itself
        self._runner = None
        self._queue = collections.deque(item for item in self._queue if not _gone(item))
        if self._queue:
            self._wake()

    async def _run_queue(self) -> None:
        try:
            woken = False  # whether the last write's caller has had its turn already
            while True:
                if not woken:
                    await _pause(0)  # callers woken by the last commit queue their next
                woken = False
                if not self._queue:
                    return
                head = self._queue[0]
                if isinstance(head, Lease):
                    self._queue.popleft()
                    if head.granted.done():
                        continue  # its transaction was cancelled while waiting
                    self._enter(WriterState.LEASED)  # the transaction's until it releases it
                    head.granted.set_result(None)
                    try:
                        await _outlast(head.released)  # its block ends it, cancelled or not
                    finally:
                        self._leave(WriterState.LEASED)
                    continue
                self._enter(WriterState.BATCH)  # the runner's, until it commits or rolls back
                try:
                    lone = len(self._queue) == 1 and head.mode is not MANY
                    alone = await self._alone(head) if lone else None
                    if alone is None:  # not run alone, or the lock was taken: a batch runs it
                        await self._batch()
                    woken = alone is True
                finally:
                    self._leave(WriterState.BATCH)
        finally:
            self._runner = None

    def _start_in_thread(self, function: Callable[..., None], *args: object) -> None:
        """Start `function` in the writer's own thread, not waiting for it: it reports back.

        Cheaper than the backend's executor for a lone write: no future and no locks of
        Python's on either side, only a queue.
        """
        if self._thread is None:
            self._thread = threading.Thread(
                target=serve, args=(self._jobs,), name="persistence-sqlite-writer", daemon=True
            )
            self._thread.start()
        self._jobs.put((function, args))

    @property
    def jobs(self) -> queue.SimpleQueue[Job | None]:
        """What its own thread is given to run; None ends the thread."""
        return self._jobs

    def stop_thread(self) -> None:
        """End the writer's own thread once what it was given has run; blocks, for a thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _enter(self, state: WriterState) -> None:
        assert self.state is WriterState.IDLE, self.state  # noqa: S101  # one holder at a time
        assert not self.connection.in_transaction  # noqa: S101  # the last holder ended its own
        self.state = state

    def _leave(self, state: WriterState) -> None:
        assert self.state is state, self.state  # noqa: S101  # the holder that entered leaves
        assert not self.connection.in_transaction  # noqa: S101  # committed or rolled back
        self.state = WriterState.IDLE

    async def _alone(self, item: Write) -> bool | None:
        """Run a lone write as its own autocommit statement, in one hop: it commits itself.

        No BEGIN and no COMMIT to run: half the statements of a batch of one. The thread hands
        the outcome to the loop itself, and a value needing no mapping goes to its caller in that
        callback, woken one turn of the loop sooner: then True. None when another connection
        held the write lock: the write, which changed nothing, stays queued for a batch, whose
        BEGIN IMMEDIATE waits for the lock.
        """
        self._queue.popleft()
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[tuple[object, Exception | None]] = loop.create_future()

        def report(outcome: object, error: Exception | None) -> None:
            # A loop closed meanwhile has no one waiting; raising would end the thread.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_hand_over, item, ended, outcome, error)

        self._thread_free.clear()
        self._start_in_thread(
            run_alone, self.connection, item, report, self._thread_free, self._opened
        )
        outcome, error = await _outlast(ended)  # the thread runs it through a cancel
        gave_back()
        if error is None:
            if item.rows_as is None:
                return True  # `_hand_over` gave the caller its value
            await self._settle(self.connection, [(item, outcome)], None)
        elif is_busy(error) and not item.future.done():
            self._queue.appendleft(item)
            return None
        else:
            fail(item, error)
        return False

    async def _batch(self) -> None:
        """Open a transaction, run the queued writes in it, and commit them all at once."""
        writer = self.connection
        try:
            await self.begin_immediate(self._busy_timeout, self._queue[0].queued, sleep=_pause)
        except Exception as error:  # noqa: BLE001  # handed to every waiting caller
            while self._queue and isinstance(waiting := self._queue[0], Write):
                self._queue.popleft()
                fail(waiting, error)
            return
        done: list[tuple[Write, object]] = []
        while self._queue and len(done) < _BATCH_LIMIT and not isinstance(self._queue[0], Lease):
            if await self._run_hop(writer, done):
                return  # committed, or rolled back by SQLite
        commit_error: Exception | None = None
        try:
            await _outlast(self.commit())
        except Exception as error:  # noqa: BLE001  # every write of the batch failed with it
            commit_error = error
        gave_back()
        await self._settle(writer, done, commit_error)

    async def _run_hop(self, writer: sqlite3.Connection, done: list[tuple[Write, object]]) -> bool:
        """Run the writes at the head of the queue in one hop; True if the batch ended."""
        run = self._take_run(_BATCH_LIMIT - len(done))
        if not run:
            return False  # every write of it was cancelled before it ran
        last = not self._queue or isinstance(self._queue[0], Lease)
        commit = last or len(done) + len(run) >= _BATCH_LIMIT
        ran = await _outlast(self.in_thread(run_writes, writer, run, commit, self._opened))
        gave_back()
        for item, outcome, failed in ran.outcomes:
            if failed is None:
                done.append((item, outcome))
            else:
                fail(item, failed)
        if ran.lost is not None:
            # SQLite rolled the whole transaction back (disk full, I/O error).
            for earlier, _ in done:
                fail(earlier, ran.lost)
            self._queue.extendleft(reversed(ran.unrun))  # they never ran: the next batch
            return True
        if commit:
            await self._settle(writer, done, ran.commit_error)
        return commit

    def _take_run(self, room: int) -> list[Write]:
        """Take the plain writes at the head of the queue, up to `room`, or a bulk or long one."""
        run: list[Write] = []
        queue = self._queue
        while queue and len(run) < room and not isinstance(item := queue[0], Lease):
            alone = item.mode is MANY or item.plan.runs_long
            if alone and run:
                break
            queue.popleft()
            if not item.future.done():  # cancelled before it ran: it never runs
                run.append(item)
            if alone:
                break
        return run

    async def _settle(
        self,
        writer: sqlite3.Connection,
        done: list[tuple[Write, object]],
        commit_error: Exception | None,
    ) -> None:
        """Give each caller its write's outcome once its batch has committed, or failed to."""
        if commit_error is not None:
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            for item, _ in done:
                fail(item, commit_error)
            return
        for item, picked in done:
            if item.future.done():
                continue  # its caller was cancelled; its write committed all the same
            if item.rows_as is None:
                item.future.set_result(picked)
                continue
            try:
                mapped = await _map_rows(item, picked)
            except Exception as error:  # noqa: BLE001  # handed to its caller alone
                fail(item, error)
                continue
            if not item.future.done():
                item.future.set_result(mapped)
            await _share_loop()

    async def begin_immediate(
        self,
        wait: float,
        queued: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Take the write lock, sleeping between tries while another process holds it.

        Given up once the caller, queued at `queued`, has waited `wait` for that lock: the
        callers queued behind others that found it held have waited with them, not after them.
        """
        for attempt in itertools.count():  # ended by the lock or the wait, never by a count
            try:
                self.connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if not is_busy(error):
                    raise
                now = time.monotonic()
                if self._held_elsewhere is None:
                    self._held_elsewhere = now
                if now >= max(self._held_elsewhere, queued) + wait:
                    raise DatabaseError(
                        f"SQLite: the database is locked: another connection held the "
                        f"write lock for over {wait:g}s"
                    ) from error
                await sleep(lock_poll(attempt))
            else:
                self._held_elsewhere = None
                return

    async def lease(self) -> Lease:
        """Wait for the writer: after the batches and transactions queued before."""
        if self._closing:
            raise DatabaseError(CLOSED)
        loop = asyncio.get_running_loop()
        lease = Lease(loop.create_future(), loop.create_future())
        self._queue.append(lease)
        self._wake()
        try:
            await lease.granted
        except asyncio.CancelledError:
            if lease.granted.done() and not lease.granted.cancelled():
                lease.release()  # granted just as the wait was cancelled
            else:
                lease.granted.cancel()
            raise
        return lease

    async def close(self) -> None:
        """Refuse more, then finish what is queued.

        Refused from the start: a caller that queued its next write as each one committed
        kept the queue from ever emptying. A close cancelled meanwhile still refuses them.
        """
        self._closing = True
        while (runner := self._runner) is not None:
            await asyncio.wait((runner,))  # not shielded: a runner never run ends cancelled
            self._never_ran(runner)
            if not runner.cancelled():
                runner.result()  # its failure, if any, is the close's
        assert not self._queue  # noqa: S101  # the runner ends only on an empty queue
        assert self.state is WriterState.IDLE, self.state  # noqa: S101  # nothing holds it
        self.state = WriterState.CLOSED


def _hand_over(
    item: Write,
    ended: asyncio.Future[tuple[object, Exception | None]],
    outcome: object,
    error: Exception | None,
) -> None:
    """On the loop: give a lone write's caller its committed value, then wake the runner.

    The caller is woken first, so it queues its next write before the runner looks.
    """
    if error is None and item.rows_as is None and not item.future.done():
        item.future.set_result(outcome)
    if not ended.done():  # else the runner was cancelled meanwhile
        ended.set_result((outcome, error))


async def _outlast(work: asyncio.Future[_T]) -> _T:
    """Await `work` to its end, on the runner's task, through any cancel from outside.

    The work (a thread's statements, a lease's transaction) cannot be taken back: leaving it
    would leave its transaction open and its callers unanswered. The cancel is forgotten.
    """
    while True:
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if work.cancelled():
                raise
            _outlived()


async def _pause(delay: float) -> None:
    """Sleep on the runner's task; a cancel from outside only ends the sleep early."""
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        _outlived()


async def _share_loop() -> None:
    """`share_loop` on the runner's task, outliving a cancel from outside."""
    try:
        await share_loop()
    except asyncio.CancelledError:
        _outlived()


async def _map_rows(item: Write, picked: object) -> object:
    """Map a committed write's rows for its caller; cancelled from outside, map them in one go."""
    try:
        return await map_rows(item.rows_as, picked, item.mode)
    except asyncio.CancelledError:
        _outlived()
        return mapped_now(item.rows_as, picked, item.mode)


def _outlived() -> None:
    """Forget the cancels of the runner's task: it goes on, ending once its queue is empty.

    The writer's own close never cancels it (it waits for the queue to empty): every cancel
    comes from outside, as a program's shutdown cancelling every task.
    """
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


def _gone(item: Write | Lease) -> bool:
    """Whether a queued write or lease was cancelled while it waited: nobody waits for it."""
    return (item.future if isinstance(item, Write) else item.granted).done()
