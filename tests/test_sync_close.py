"""Closing a SyncRunner: newest first, while threads call or enter, within its timeout, once."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from _server import own_connections
from _sync_helpers import quietly, result
from persistence import ValidationError, all_results, connect, open_persistence, save_result
from persistence.exceptions import CloseTimeoutError
from persistence.sync import SyncRunner, _name_of


def test_close_exits_newest_first_and_raises_the_first_error() -> None:
    """Entered managers exit newest first; an exit's error comes out of close, after all exit."""
    order: list[str] = []

    @contextlib.asynccontextmanager
    async def named(name: str, *, fail: bool = False) -> AsyncIterator[str]:
        yield name
        order.append(name)
        if fail:
            msg = f"{name} failed"
            raise ValueError(msg)

    runner = SyncRunner()
    assert runner.enter(named("a", fail=True)) == "a"
    assert runner.enter(named("b")) == "b"
    with pytest.raises(ValueError, match="a failed"):
        runner.close()
    assert order == ["b", "a"]
    runner.close()  # again: nothing


def test_a_closed_runner_refuses_calls_and_leaves_no_coroutine() -> None:
    """After close, a call is a RuntimeError, and the coroutine handed over is closed unawaited."""
    runner = SyncRunner()
    runner.close()
    with pytest.raises(RuntimeError, match="closed"):
        runner.run(asyncio.sleep(0))  # no "never awaited" warning: warnings are errors here
    with pytest.raises(RuntimeError, match="closed"):
        runner.call(asyncio.sleep, 0)


def test_a_close_while_threads_call_ends_every_call_and_leaves_nothing(
    migrated_postgres_url: str,
) -> None:
    """Closed while eight threads call it, the runner ends each call and keeps nothing open.

    Each thread's call is cut off or refused, as closed (never a bare CancelledError), and
    returns; the loop's thread is gone, and no connection to the PostgreSQL database is left.
    Afterwards `enter` is refused too, and the manager given is never entered.
    """
    runner = SyncRunner()
    db = runner.enter(connect(migrated_postgres_url))
    ended: list[str] = []

    def calling() -> None:
        try:
            while True:
                runner.call(save_result, db, result())
        except RuntimeError as error:
            ended.append(type(error).__name__)

    threads = [threading.Thread(target=calling) for _ in range(8)]
    for thread in threads:
        thread.start()
    while len(runner.call(all_results, db)) < 8:
        time.sleep(0.01)
    runner.close()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(ended) == 8
    assert not any(thread.name == "persistence-sync" for thread in threading.enumerate())
    entered: list[str] = []

    @contextlib.asynccontextmanager
    async def manager() -> AsyncIterator[None]:
        entered.append("entered")
        yield

    with pytest.raises(RuntimeError, match="closed"):
        runner.enter(manager())
    assert entered == []

    assert asyncio.run(own_connections(migrated_postgres_url)) == 0


def _sync_threads() -> list[threading.Thread]:
    """The runners' loop threads still alive."""
    return [thread for thread in threading.enumerate() if thread.name == "persistence-sync"]


@pytest.mark.parametrize("timeout", [-1, 0, math.nan, math.inf, True, "1", None])
def test_close_refuses_a_bad_timeout_before_closing(timeout: object) -> None:
    """A timeout that is no finite number of seconds above 0 is refused by name; nothing closes.

    Each number refused says what is wanted, more than 0: -1 was told ">= 0", which 0 is.
    """
    wanted = r"must be a finite number > 0, got" if type(timeout) in {int, float} else "expected"
    with SyncRunner() as runner:
        with pytest.raises(ValidationError, match=rf"^SyncRunner\.timeout: {wanted}"):
            runner.close(timeout=timeout)  # type: ignore[arg-type]  # wrong on purpose
        assert not runner.closed
        assert runner.run(asyncio.sleep(0, "open")) == "open"


def test_close_gives_up_on_a_call_that_ignores_its_cancellation() -> None:
    """A call that swallows CancelledError no longer keeps close waiting for ever.

    After its timeout, close stops the loop anyway and raises CloseTimeoutError naming the call;
    the thread that made the call is woken with the same error, and no loop thread is left.
    """
    started = threading.Event()

    async def stubborn() -> None:
        started.set()
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    errors: list[BaseException] = []

    def calling(runner: SyncRunner) -> None:
        try:
            runner.call(stubborn)
        except BaseException as error:  # noqa: BLE001  # whatever it is, the test looks at it
            errors.append(error)

    before = len(_sync_threads())
    runner = SyncRunner()
    caller = threading.Thread(target=calling, args=(runner,))
    caller.start()
    assert started.wait(5)
    began = time.monotonic()
    with pytest.raises(CloseTimeoutError, match="stubborn") as raised:
        runner.close(timeout=0.3)
    assert time.monotonic() - began < 3
    assert [name.rsplit(".", 1)[-1] for name in raised.value.running] == ["stubborn"]
    assert not raised.value.thread_alive
    assert runner.closed
    caller.join(5)
    assert not caller.is_alive()
    assert [type(error) for error in errors] == [CloseTimeoutError]
    assert len(_sync_threads()) == before
    runner.close()  # again: nothing


def test_close_says_so_when_the_loop_thread_is_blocked() -> None:
    """A call blocking the loop's thread in synchronous code cannot be stopped: close says so.

    It raises after its timeout, naming the call and the blocked thread; the thread ends,
    closing the loop, once the synchronous call returns.
    """
    started = threading.Event()

    async def blocking() -> None:
        started.set()
        time.sleep(1.5)  # noqa: ASYNC251  # the fault under test

    runner = SyncRunner()
    caller = threading.Thread(target=quietly, args=(runner.call, blocking))
    caller.start()
    assert started.wait(5)
    with pytest.raises(CloseTimeoutError, match="blocked in a synchronous call") as raised:
        runner.close(timeout=0.2)
    assert "blocking" in str(raised.value)
    assert raised.value.thread_alive
    caller.join(5)
    deadline = time.monotonic() + 5
    while runner._thread.is_alive() and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.05)
    assert not runner._thread.is_alive()  # noqa: SLF001
    assert runner._loop.is_closed()  # noqa: SLF001


def test_enter_racing_close_never_gives_a_manager_already_exited() -> None:
    """enter() from many threads while another thread closes gives a manager held until close.

    Each enter gives a manager that the close then exits normally, or raises; none hands out
    a manager the close has already cut short, and every manager entered is exited.
    """
    for _ in range(20):
        _enter_while_closing()


def _enter_while_closing() -> None:
    """One round: eight threads enter managers as fast as they can while the runner closes."""
    entered: set[int] = set()
    exits: dict[int, str] = {}
    returned: list[int] = []
    guard = threading.Lock()
    first_returned = threading.Event()

    @contextlib.asynccontextmanager
    async def manager(number: int) -> AsyncIterator[int]:
        entered.add(number)
        try:
            yield number
        except BaseException as error:
            exits[number] = type(error).__name__
            raise
        exits[number] = "normal"

    runner = SyncRunner()
    go = threading.Barrier(9)

    def entering(first: int) -> None:
        go.wait()
        for number in range(first, first + 1000):
            try:
                value = runner.enter(manager(number))
            except RuntimeError:
                return
            with guard:
                returned.append(value)
            first_returned.set()

    threads = [threading.Thread(target=entering, args=(1000 * n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    go.wait()
    # Closed once an enter has returned, while the threads go on entering: a fixed 10 ms
    # was sometimes too short for any, on a machine busy with other tests.
    assert first_returned.wait(10), "no enter returned before the close"
    runner.close()
    for thread in threads:
        thread.join(10)
    assert returned
    assert {exits.get(number) for number in returned} == {"normal"}
    assert set(exits) == entered


@pytest.mark.parametrize("timeout", [1e12, 1e300, 2**1000])
def test_close_takes_a_timeout_longer_than_a_thread_can_wait(timeout: float) -> None:
    """A timeout beyond what a thread's wait takes (about 292 years) still closes the runner.

    It raised OverflowError once the close had begun, leaving the loop's thread running.
    """
    before = len(_sync_threads())
    runner = SyncRunner()
    runner.close(timeout=timeout)
    assert runner.closed
    assert len(_sync_threads()) == before


def test_a_second_close_returns_only_once_the_first_has_closed() -> None:
    """close() from a second thread while another closes waits for that close to end.

    It returned at once, while the entered managers were still being exited, so its caller
    went on (and could exit the process) with the database still open.
    """
    exiting, exited = threading.Event(), threading.Event()

    @contextlib.asynccontextmanager
    async def slow_exit() -> AsyncIterator[None]:
        yield
        exiting.set()
        await asyncio.sleep(0.5)
        exited.set()

    before = len(_sync_threads())
    runner = SyncRunner()
    runner.enter(slow_exit())
    first = threading.Thread(target=runner.close)
    first.start()
    assert exiting.wait(5)
    runner.close()
    assert exited.is_set()
    first.join(5)
    assert len(_sync_threads()) == before


def test_a_block_is_named_by_the_function_that_made_it(tmp_path: Path) -> None:
    """What a close that gives up, or a cancelled call, names: `enter(connect)`, not a class.

    Every block of the package's is one class that refuses a second entry, and a close that
    gave up named each `enter(_EnteredOnce)`, the same for `connect` and `open_persistence`.
    """

    @contextlib.asynccontextmanager
    async def mine() -> AsyncIterator[int]:
        yield 1

    made = [connect(tmp_path / "x.db"), open_persistence(tmp_path / "y.db"), mine()]
    assert [_name_of(block) for block in made] == [
        "connect",
        "open_persistence",
        "test_a_block_is_named_by_the_function_that_made_it.<locals>.mine",
    ]
