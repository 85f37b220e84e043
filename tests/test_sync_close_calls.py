"""A SyncRunner closed while other threads' calls run: what each of those callers gets.

The close cancels each call still running. Its caller got that bare `CancelledError`, a
BaseException that synchronous code does not expect and that escapes `except Exception`; it
now gets the runner's closed error, a RuntimeError, chained from the cancellation. A
CancelledError that the call raised of its own, with no close behind it, is left as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from _server import own_connections
from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    find_config_entry_by_key,
    migrate,
    save_result,
    set_config,
    transaction,
)
from persistence.exceptions import CloseTimeoutError
from persistence.sync import SyncRunner


def _descriptors() -> int:
    """The process's open file descriptors, once what is garbage has been collected."""
    gc.collect()
    return len(list(Path("/proc/self/fd").iterdir()))


def _sync_threads() -> int:
    """The runners' loop threads still alive."""
    return sum(1 for thread in threading.enumerate() if thread.name == "persistence-sync")


def _in_a_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    """Start `call` in a thread of its own; the list gets what it raised."""
    raised: list[BaseException] = []

    def calling() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001  # whatever it is, the test looks at it
            raised.append(error)

    thread = threading.Thread(target=calling)
    thread.start()
    return thread, raised


def test_a_call_cut_by_close_gets_the_closed_error(database_url: str) -> None:
    """A call still running when close cancels it gets the closed error, saying what it means.

    The call had saved its row before the close: the error says the call was cut short and
    that what it had committed stays, and the row is indeed there. Descriptors, loop threads
    and connections are back where they were.
    """
    descriptors, threads = _descriptors(), _sync_threads()
    saved = threading.Event()

    async def save_then_wait(db: Database) -> None:
        await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        saved.set()
        await asyncio.Event().wait()  # work after the write, which the close cuts short

    runner = SyncRunner()
    db = runner.enter(connect(database_url))
    runner.call(migrate, db)
    caller, raised = _in_a_thread(lambda: runner.call(save_then_wait, db))
    assert saved.wait(10)
    runner.close(timeout=10)
    caller.join(10)
    assert not caller.is_alive()
    [error] = raised
    assert isinstance(error, RuntimeError), repr(error)
    assert "save_then_wait was cancelled because the SyncRunner was closed" in str(error)
    assert "what it had committed stays" in str(error)
    assert isinstance(error.__cause__, asyncio.CancelledError)

    async def stored() -> int:
        async with connect(database_url) as again:
            return len(await all_results(again))

    assert asyncio.run(stored()) == 1
    if database_url.startswith("postgres"):
        assert asyncio.run(own_connections(database_url)) == 0
    assert _sync_threads() == threads
    assert _descriptors() == descriptors


def test_enter_cut_by_close_gets_the_closed_error() -> None:
    """An enter whose manager is still entering when close cancels it gets the closed error."""
    entering = threading.Event()

    @contextlib.asynccontextmanager
    async def slow() -> AsyncIterator[None]:
        entering.set()
        await asyncio.sleep(60)
        yield

    runner = SyncRunner()
    caller, raised = _in_a_thread(lambda: runner.enter(slow()))
    assert entering.wait(10)
    runner.close(timeout=10)
    caller.join(10)
    [error] = raised
    assert isinstance(error, RuntimeError), repr(error)
    assert "cancelled because the SyncRunner was closed" in str(error)
    assert isinstance(error.__cause__, asyncio.CancelledError)


def test_a_calls_own_cancelled_error_is_not_taken_for_the_close() -> None:
    """A CancelledError that the call raised itself, with no close behind it, is left as it was."""
    with SyncRunner() as plain:
        with pytest.raises(asyncio.CancelledError, match="the call's own"):
            plain.call(_raise, asyncio.CancelledError("the call's own"))
        assert plain.run(asyncio.sleep(0, "open")) == "open"


def test_a_call_inside_a_transaction_is_cut_before_the_database_exits(database_url: str) -> None:
    """The close cancels a call holding a transaction first: the database's exit waited for it.

    It waited out the close's whole timeout and left the database unexited, its caller told of
    a timeout. Now the call is cut at once, its transaction rolled back, and the database is
    exited within the timeout, leaving no connection open.
    """
    inside = threading.Event()

    async def write_then_wait(db: Database) -> None:
        async with transaction(db) as tx:
            await set_config(tx, "close", "in_transaction", 1)
            inside.set()
            await asyncio.Event().wait()

    runner = SyncRunner()
    db = runner.enter(connect(database_url))
    runner.call(migrate, db)
    caller, raised = _in_a_thread(lambda: runner.call(write_then_wait, db))
    assert inside.wait(10)
    began = time.monotonic()
    runner.close(timeout=10)
    assert time.monotonic() - began < 5
    caller.join(10)
    [error] = raised
    assert isinstance(error, RuntimeError), repr(error)
    assert "write_then_wait was cancelled because the SyncRunner was closed" in str(error)

    async def stored() -> object:
        async with connect(database_url) as again:
            return await find_config_entry_by_key(again, "close", "in_transaction")

    assert asyncio.run(stored()) is None
    if database_url.startswith("postgres"):
        assert asyncio.run(own_connections(database_url)) == 0


def test_a_call_that_ignores_its_cancellation_keeps_no_manager_from_exiting() -> None:
    """The close waits for the cancelled calls half its timeout, then exits the managers.

    Waiting for the calls with no bound, one whose clean-up outlasted the timeout left every
    entered manager unexited (a SQLite `-wal`, PostgreSQL connections open).
    """
    exited: list[str] = []
    started = threading.Event()

    @contextlib.asynccontextmanager
    async def held() -> AsyncIterator[None]:
        yield
        exited.append("exited")

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(5)  # a clean-up longer than the close's timeout

    runner = SyncRunner()
    runner.enter(held())
    caller, raised = _in_a_thread(lambda: runner.call(stubborn))
    assert started.wait(10)
    with pytest.raises(CloseTimeoutError, match="stubborn still running"):
        runner.close(timeout=1)
    assert exited == ["exited"]
    caller.join(10)
    assert [type(error) for error in raised] == [CloseTimeoutError]


def test_a_thread_given_the_closed_loops_id_is_told_the_runner_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The system gives a thread that has ended its id again: the runner is not fooled by it.

    A thread given the closed runner's loop thread's id was taken for that thread: a second
    close raised that it would wait for itself, where closing again does nothing.
    """
    runner = SyncRunner()
    loop_thread_id = runner._thread.ident  # noqa: SLF001  # the id the system may give again
    runner.close()
    monkeypatch.setattr(threading, "get_ident", lambda: loop_thread_id)
    runner.close()
    with pytest.raises(RuntimeError, match=r"^this SyncRunner is closed$"):
        runner.call(asyncio.sleep, 0)


def test_a_call_that_stops_the_loop_is_answered_and_the_runner_goes_on() -> None:
    """A call may stop the loop, as code written for asyncio.run may: the loop goes on.

    The loop's thread ended with it: the call's caller waited for good, and the next close
    raised a bare "Event loop is closed".
    """

    async def stops_the_loop() -> str:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)
        return "answered"

    runner = SyncRunner()
    caller, raised = _in_a_thread(lambda: runner.call(stops_the_loop))
    caller.join(10)
    assert not caller.is_alive()
    assert raised == []
    assert runner.call(stops_the_loop) == "answered"
    assert runner.run(asyncio.sleep(0, "still open")) == "still open"
    runner.close(timeout=10)
    assert not runner._thread.is_alive()  # noqa: SLF001  # the loop's thread ended with the close


async def _raise(error: BaseException) -> None:
    raise error
