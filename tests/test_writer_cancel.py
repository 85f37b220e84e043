"""SQLite's writer task cancelled from outside, as a shutdown handler or `asyncio.run` does.

The writer runs its queue in a task of its own. Cancelled at any of its awaits, it still hands
every caller its answer (its value once committed, or an error), leaves no transaction open,
and serves later writes; `close_database` then ends promptly, leaving no thread or descriptor.
A transaction's COMMIT waiting for a worker thread has no task of its own to be cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from _budget import arm_past
from persistence import (
    Database,
    DatabaseError,
    TestResult,
    all_results,
    close_database,
    connect,
    open_database,
    save_result,
    save_results,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence.migrations import migrate
from test_lone_writes import Gate, gate_on, result, stored_outputs, writer_of

_T = TypeVar("_T")


def writer_runner() -> asyncio.Task[object] | None:
    """The writer's own task on the running loop, if one runs: found as a program would."""
    for task in asyncio.all_tasks():
        if task.get_coro().__qualname__ == "Writer._run_queue":  # type: ignore[union-attr]  # a task's coroutine has a name
            return task
    return None


def runner_in(state: str) -> bool:
    """Whether the writer's task runs, its coroutine in `state` (`inspect.CORO_CREATED`...)."""
    runner = writer_runner()
    return runner is not None and inspect.getcoroutinestate(runner.get_coro()) == state  # type: ignore[arg-type]  # a task's coroutine


def cancel_writer() -> None:
    """Cancel the writer's task, which must be there."""
    runner = writer_runner()
    assert runner is not None
    runner.cancel()


async def goes_through(db: Database) -> None:
    """The next write is neither lost nor stuck: it commits promptly."""
    async with asyncio.timeout(2):
        assert (await save_result(db, result("next"))).id is not None
    assert not writer_of(db).in_transaction


async def answered(tasks: list[asyncio.Task[TestResult]]) -> list[str | None]:
    """Every caller's answer, promptly: the outputs saved, in order."""
    async with asyncio.timeout(2):
        saved = await asyncio.gather(*tasks)
    return [s.output for s in saved]


def package_threads() -> int:
    """How many of the package's SQLite threads are alive: the writer's and the workers'."""
    return sum(t.name.startswith("persistence-sqlite") for t in threading.enumerate())


def descriptors() -> int:
    """How many file descriptors this process has open."""
    return len(list(Path("/proc/self/fd").iterdir()))


async def until(condition: Callable[[], bool]) -> None:
    """Give the loop a turn at a time until `condition` holds (for 2 s at most)."""
    deadline = time.monotonic() + 2
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0)


@contextlib.contextmanager
def executor_held(db: Database) -> Iterator[threading.Event]:
    """Keep every worker thread of the database busy until the event is set (or the block ends)."""
    free = threading.Event()
    executor = backend_of(db)._executor  # type: ignore[attr-defined]  # noqa: SLF001  # the test holds its workers
    held = [executor.submit(free.wait, 5) for _ in range(executor._max_workers)]  # noqa: SLF001  # each worker
    try:
        yield free
    finally:
        free.set()
        for work in held:
            work.result()


async def test_cancelled_while_its_batch_runs_every_caller_gets_its_value(
    sqlite_db: Database,
) -> None:
    """Cancelled while a thread runs a batch of three: all commit, each caller gets its row."""
    gate = gate_on(sqlite_db)
    tasks = [asyncio.create_task(save_result(sqlite_db, result(o))) for o in ("held", "b", "c")]
    await gate.wait_entered()
    cancel_writer()
    gate.opened.set()
    assert await answered(tasks) == ["held", "b", "c"]
    assert stored_outputs(sqlite_db) == ["held", "b", "c"]
    await goes_through(sqlite_db)


async def test_cancelled_while_its_batch_waits_for_a_worker_thread(sqlite_db: Database) -> None:
    """Cancelled with its batch queued for a busy worker: the batch still runs, and commits.

    The worker never ran it: its transaction stayed open on the writer, and nothing more
    could be written or closed.
    """
    with executor_held(sqlite_db) as free:
        tasks = [asyncio.create_task(save_result(sqlite_db, result(o))) for o in "abc"]
        await until(lambda: writer_of(sqlite_db).in_transaction)  # BEGIN ran: the batch waits
        cancel_writer()
        await asyncio.sleep(0.01)
        free.set()
    assert await answered(tasks) == ["a", "b", "c"]
    assert stored_outputs(sqlite_db) == ["a", "b", "c"]
    await goes_through(sqlite_db)


async def test_cancelled_while_its_batch_waits_for_another_process_lock(tmp_path: Path) -> None:
    """Cancelled while BEGIN IMMEDIATE waits for another connection: the batch goes on waiting."""
    async with connect(tmp_path / "locked.db", busy_timeout=2) as db:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(db.url, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            tasks = [asyncio.create_task(save_result(db, result(o))) for o in "ab"]
            await asyncio.sleep(0.02)
            cancel_writer()
            await asyncio.sleep(0.02)
            other.execute("COMMIT")
            assert await answered(tasks) == ["a", "b"]
        assert stored_outputs(db) == ["a", "b"]
        await goes_through(db)


async def test_every_task_cancelled_then_closed_as_a_shutdown_handler_does(
    tmp_path: Path,
) -> None:
    """All tasks cancelled mid-batch, then close_database: what ran commits, the close ends.

    The close failed on the writer's state, and left its threads and files open.
    """
    threads, files = package_threads(), descriptors()
    db = await open_database(tmp_path / "shutdown.db")
    await migrate(db)
    gate = gate_on(db)
    tasks = [asyncio.create_task(save_result(db, result(o))) for o in ("held", "b", "c")]
    await gate.wait_entered()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    gate.opened.set()
    async with asyncio.timeout(2):
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await close_database(db)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert stored_outputs(db) == ["held"]  # the two behind it were cancelled before they ran
    assert package_threads() == threads
    assert descriptors() == files


def test_asyncio_run_ending_with_a_batch_in_flight(tmp_path: Path) -> None:
    """`asyncio.run` ended with a batch in a thread: what ran commits; the next loop writes on."""
    path = tmp_path / "ended.db"
    threads, files = package_threads(), descriptors()
    bound = threading.Timer(5, lambda: None)

    async def start() -> Database:
        nonlocal bound
        db = await open_database(path)
        await migrate(db)
        gate = gate_on(db)
        callers = [
            asyncio.get_running_loop().create_task(save_result(db, result(output)))
            for output in ("held", "b", "c")
        ]
        await gate.wait_entered()
        # The gate opens once asyncio.run has cancelled the callers behind the batch, not on a
        # timer that a loaded machine can outrun; the timer stays as a bound on the wait.
        callers[-1].add_done_callback(lambda _: gate.opened.set())
        bound = threading.Timer(5, gate.opened.set)
        bound.start()
        return db  # the loop ends with the batch still in the thread

    db = asyncio.run(start())
    bound.cancel()
    assert stored_outputs(db) == ["held"]  # the two behind it were cancelled before they ran

    async def go_on() -> None:
        try:
            await goes_through(db)
        finally:
            async with asyncio.timeout(2):
                await close_database(db)

    asyncio.run(go_on())
    assert stored_outputs(db) == ["held", "next"]
    assert package_threads() == threads
    assert descriptors() == files


_DEAD_TASKS_COLLECTED = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning"  # the callers' own context resets
)
"""The closed loop's tasks, collected in the test: their callers' cleanup cannot reset their
context variables outside their tasks."""


def run_then_close(start: Callable[[], Coroutine[object, object, _T]]) -> _T:
    """Run `start` on a loop of its own, then close that loop without ending its tasks."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(start())
    finally:
        loop.close()


@_DEAD_TASKS_COLLECTED
def test_a_loop_closed_inside_a_transaction_with_a_write_queued(tmp_path: Path) -> None:
    """A loop closed, its tasks left pending, inside a block, a single-call write queued behind.

    The database said for ever that writes were left unfinished: every later call and the
    close were refused. The block, never committed, is now rolled back; the write behind it,
    never run, is told so; the next loop writes and closes. The old block's cleanup, run when
    the garbage collector closes it, leaves the new loop's transaction alone.
    """
    path = tmp_path / "closed.db"
    threads, files = package_threads(), descriptors()
    behind: list[asyncio.Task[TestResult]] = []

    async def start() -> Database:
        db = await open_database(path)
        await migrate(db)
        entered = asyncio.Event()

        async def block() -> None:
            async with transaction(db) as tx:
                await save_result(tx, result("in"))
                entered.set()
                await asyncio.Event().wait()  # until its loop closes

        loop = asyncio.get_running_loop()
        loop.create_task(block())  # noqa: RUF006  # left pending on purpose
        await entered.wait()
        behind.append(loop.create_task(save_result(db, result("behind"))))
        await asyncio.sleep(0.01)  # queued behind the block
        return db

    db = run_then_close(start)
    assert stored_outputs(db) == []
    assert writer_of(db).in_transaction  # the block's, left open

    async def go_on() -> None:
        try:
            async with transaction(db) as tx:
                await save_result(tx, result("new"))
                gc.collect()  # the old block's cleanup runs
            await goes_through(db)
        finally:
            async with asyncio.timeout(2):
                await close_database(db)

    asyncio.run(go_on())
    assert stored_outputs(db) == ["new", "next"]
    waited = behind[0]._fut_waiter  # type: ignore[attr-defined]  # noqa: SLF001  # its write's answer
    with pytest.raises(DatabaseError, match="closed before it ran"):
        waited.result()
    del behind[:], waited
    gc.collect()
    assert package_threads() == threads
    assert descriptors() == files


@_DEAD_TASKS_COLLECTED
def test_a_loop_closed_while_a_batch_runs_in_a_thread(tmp_path: Path) -> None:
    """A loop closed, its tasks left pending, while a batch runs in a worker thread.

    The close from a new loop was refused for ever. Calls are refused while the thread runs
    on the writer connection; the close waits for it. The batch, which ran whole, stays.
    """
    path = tmp_path / "closed.db"
    threads, files = package_threads(), descriptors()
    gates: list[Gate] = []

    async def start() -> Database:
        db = await open_database(path)
        await migrate(db)
        gates.append(gate_on(db))
        for output in ("held", "b", "c"):
            asyncio.get_running_loop().create_task(save_result(db, result(output)))
        await gates[0].wait_entered()
        return db  # the loop closes with the batch held in its thread

    db = run_then_close(start)

    async def go_on() -> None:
        with pytest.raises(DatabaseError, match="still runs"):
            await save_result(db, result("refused"))
        threading.Timer(0.05, gates[0].opened.set).start()
        async with asyncio.timeout(2):
            await close_database(db)

    asyncio.run(go_on())
    gc.collect()
    assert stored_outputs(db) == ["held", "b", "c"]
    assert package_threads() == threads
    assert descriptors() == files


@_DEAD_TASKS_COLLECTED
@pytest.mark.parametrize("reader", ["opened for it", "kept"])
def test_a_loop_closed_while_a_read_waits_for_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """A loop closed, its tasks left pending, while a read waits for a worker thread.

    The thread reader it was lent, or that the thread opened for it, was never handed back:
    the close from the next loop left it open, until the garbage collector found it.
    """
    path = tmp_path / "closed.db"
    threads, files = package_threads(), descriptors()
    held: list[threading.Event] = []

    async def start() -> Database:
        db = await open_database(path)
        await migrate(db)
        await save_result(db, result("kept"))
        readers = backend_of(db)._readers  # type: ignore[attr-defined]  # noqa: SLF001  # held
        monkeypatch.setattr(type(readers._budget), "arm", arm_past)  # noqa: SLF001  # to a thread
        if reader == "kept":
            await all_results(db)
            await asyncio.sleep(0)  # its reader handed back, kept for the read below
        executor = backend_of(db)._executor  # type: ignore[attr-defined]  # noqa: SLF001  # watched
        free = threading.Event()
        held.append(free)
        for _ in range(executor._max_workers):  # noqa: SLF001  # each worker
            executor.submit(free.wait, 5)
        asyncio.get_running_loop().create_task(all_results(db))
        await until(lambda: executor._work_queue.qsize() > 0)  # noqa: SLF001  # its hop waits
        return db

    db = run_then_close(start)
    monkeypatch.undo()
    held[0].set()
    asyncio.run(close_database(db))
    assert package_threads() == threads
    assert descriptors() == files
    gc.collect()


async def test_cancelled_while_a_lone_write_meets_another_process_lock(tmp_path: Path) -> None:
    """Cancelled while its thread runs a lone write that finds the lock taken: it still commits.

    The write, refused by the lock, goes to a batch that waits for it; it was never answered.
    """
    async with connect(tmp_path / "locked.db", busy_timeout=2) as db:
        await migrate(db)
        writer = backend_of(db)._writer  # type: ignore[attr-defined]  # noqa: SLF001  # its thread held
        busy = threading.Event()
        writer._start_in_thread(busy.wait, 2)  # noqa: SLF001  # the lone write waits behind it
        with contextlib.closing(sqlite3.connect(db.url, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            task = asyncio.create_task(save_result(db, result("alone")))
            await until(lambda: not writer._thread_free.is_set())  # noqa: SLF001  # handed over
            cancel_writer()
            busy.set()
            await asyncio.sleep(0.02)  # refused by the lock
            other.execute("COMMIT")
            assert await answered([task]) == ["alone"]
        assert stored_outputs(db) == ["alone"]
        await goes_through(db)


async def test_cancelled_while_a_lone_write_runs_the_next_waits_for_it(
    sqlite_db: Database,
) -> None:
    """Cancelled during a lone write: the writes behind it wait their turn, then go through.

    The writer's task had ended: their batch began on the writer connection while the thread's
    statement still ran on it, holding the loop until it ended.
    """
    gate = gate_on(sqlite_db)
    first = asyncio.create_task(save_result(sqlite_db, result("held")))
    await gate.wait_entered()
    cancel_writer()
    behind = [asyncio.create_task(save_result(sqlite_db, result(o))) for o in "ab"]
    threading.Timer(0.2, gate.opened.set).start()
    started = time.monotonic()
    await asyncio.sleep(0.01)  # their batch must wait its turn, not block the loop on the writer
    assert time.monotonic() - started < 0.1
    assert await answered([first, *behind]) == ["held", "a", "b"]
    assert stored_outputs(sqlite_db) == ["held", "a", "b"]
    await goes_through(sqlite_db)


@pytest.mark.parametrize(
    "state",
    [inspect.CORO_CREATED, inspect.CORO_SUSPENDED],
    ids=["before its first step", "at its first pause"],
)
async def test_cancelled_with_writes_queued_it_serves_them(sqlite_db: Database, state: str) -> None:
    """Cancelled with three writes queued, its coroutine in `state`: each write is answered."""
    await until(lambda: writer_runner() is None)  # the migration's has ended
    tasks = [asyncio.create_task(save_result(sqlite_db, result(o))) for o in "abc"]
    await until(lambda: runner_in(state))
    cancel_writer()
    assert await answered(tasks) == ["a", "b", "c"]
    assert stored_outputs(sqlite_db) == ["a", "b", "c"]
    await goes_through(sqlite_db)


async def test_cancelled_while_a_transaction_holds_the_writer(sqlite_db: Database) -> None:
    """Cancelled while waiting for a transaction's end: it commits, and the write behind goes on.

    The writer asserted on the transaction still open, stayed leased, and the write queued
    behind was never answered.
    """
    entered, go_on = asyncio.Event(), asyncio.Event()

    async def block() -> TestResult:
        async with transaction(sqlite_db) as tx:
            await save_result(tx, result("in"))
            entered.set()
            await go_on.wait()
            return await save_result(tx, result("in too"))

    holder = asyncio.create_task(block())
    await entered.wait()
    behind = asyncio.create_task(save_result(sqlite_db, result("behind")))
    await asyncio.sleep(0.01)
    cancel_writer()
    await asyncio.sleep(0.01)
    go_on.set()
    assert await answered([holder, behind]) == ["in too", "behind"]
    assert stored_outputs(sqlite_db) == ["in", "in too", "behind"]
    await goes_through(sqlite_db)


async def test_every_task_cancelled_as_writes_are_queued_then_closed(tmp_path: Path) -> None:
    """All tasks cancelled before the writer's task first ran, then close_database: it closes.

    The task, cancelled before its first step, never cleared itself: the close raised
    CancelledError, and every later write waited for it forever.
    """
    threads, files = package_threads(), descriptors()
    db = await open_database(tmp_path / "shutdown.db")
    await migrate(db)
    await until(lambda: writer_runner() is None)  # the migration's has ended
    tasks = [asyncio.create_task(save_result(db, result(o))) for o in "abc"]
    await until(lambda: runner_in(inspect.CORO_CREATED))  # queued; the writer's task not yet run
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()
    async with asyncio.timeout(2):
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        await close_database(db)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert stored_outputs(db) == []
    assert package_threads() == threads
    assert descriptors() == files


async def test_cancelled_at_every_turn_every_write_is_answered(sqlite_db: Database) -> None:
    """Cancelled at every turn of the loop: lone, batched, mapped, bulk and transaction writes.

    Each caller gets its value, each row is stored once, and no transaction is left open.
    """
    stop = asyncio.Event()

    async def storm() -> None:
        # A task not yet started is passed over: cancelled, it is replaced by a new one (see
        # the test of that case), which a cancel at every turn would replace for ever. Every
        # other turn the loop idles a little: spinning, it would starve the worker threads.
        for turn in itertools.count():
            if stop.is_set():
                return
            if runner_in(inspect.CORO_SUSPENDED):
                cancel_writer()
            await asyncio.sleep(0.0005 if turn % 2 else 0)

    stormer = asyncio.create_task(storm())
    expected: list[str | None] = []
    try:
        async with asyncio.timeout(5):
            for turn in range(12):
                outputs = [f"{turn}.{n}" for n in range(turn % 3 + 1)]
                saved, entry = await asyncio.gather(
                    asyncio.gather(*(save_result(sqlite_db, result(o)) for o in outputs)),
                    set_config(sqlite_db, "storm", f"k{turn % 2}", turn),  # its row mapped
                )
                assert [s.output for s in saved] == outputs
                assert entry.value == turn
                assert await save_results(sqlite_db, [result(f"{turn}.bulk")] * 2) == 2
                async with transaction(sqlite_db) as tx:
                    await save_result(tx, result(f"{turn}.tx"))
                expected += [*outputs, f"{turn}.bulk", f"{turn}.bulk", f"{turn}.tx"]
    finally:
        stop.set()
        await stormer
    assert stored_outputs(sqlite_db) == expected
    await goes_through(sqlite_db)


async def test_the_package_tasks_cancelled_while_a_transaction_commits(sqlite_db: Database) -> None:
    """The package's own tasks cancelled while a block's COMMIT waits for a worker: it commits.

    The COMMIT ran in a task of its own: cancelled, it never ran, the block rolled back, and
    its caller, which nobody had cancelled, got a CancelledError.
    """
    executor = backend_of(sqlite_db)._executor  # type: ignore[attr-defined]  # noqa: SLF001  # its queue watched

    async def block() -> TestResult:
        async with transaction(sqlite_db) as tx:
            return await save_result(tx, result("in"))

    with executor_held(sqlite_db) as free:
        holder = asyncio.create_task(block())
        await until(lambda: executor._work_queue.qsize() > 0)  # noqa: SLF001  # the COMMIT waits
        for task in asyncio.all_tasks():
            if task.get_coro().__qualname__.startswith(("SqliteBackend.", "Writer.")):  # type: ignore[union-attr]  # a task's coroutine has a name
                task.cancel()
        await asyncio.sleep(0.01)
        free.set()
    assert await answered([holder]) == ["in"]
    assert stored_outputs(sqlite_db) == ["in"]
    await goes_through(sqlite_db)
