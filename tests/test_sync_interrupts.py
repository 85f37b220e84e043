"""Ctrl-C, or a signal handler, at the SyncRunner's worst moments.

A signal's Python handler runs in the main thread between any two steps, the runner's own
included: while it queues a call under its lock, and while it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from persistence.sync import SyncRunner

WITHIN = 10.0
"""Seconds within which each scenario ends; past them it hangs."""


def _ended_within(scenario: Callable[[], None]) -> None:
    """Run `scenario` in a thread of its own; fail if it has not ended `WITHIN` seconds later."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            scenario()
        except BaseException as error:  # noqa: BLE001  # handed to the test's thread
            failure.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WITHIN)
    assert not thread.is_alive(), "it hung"
    if failure:
        raise failure[0]


def _signal_as_it_queues(
    monkeypatch: pytest.MonkeyPatch,
    runner: SyncRunner,
    handler: Callable[[], None],
    *,
    before: bool = False,
) -> None:
    """Have the runner's next queue onto its loop run `handler` inside, as a signal would."""
    loop = runner._loop  # noqa: SLF001  # the step a signal may land in
    queue = loop.call_soon_threadsafe
    landed: list[bool] = []

    def queued(callback: Callable[..., object], *args: object) -> asyncio.Handle:
        if landed:
            return queue(callback, *args)
        landed.append(True)
        if before:
            handler()
        handle = queue(callback, *args)
        handler()
        return handle

    monkeypatch.setattr(loop, "call_soon_threadsafe", queued)  # the signal's place


def _interrupt() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("before", [False, True], ids=["start queued", "start not queued"])
def test_a_close_in_a_signal_handler_as_a_call_is_queued_does_not_deadlock(
    monkeypatch: pytest.MonkeyPatch, *, before: bool
) -> None:
    """The handler's close ran while the same thread held the runner's lock: it waited for good."""
    runner = SyncRunner()

    def scenario() -> None:
        _signal_as_it_queues(monkeypatch, runner, runner.close, before=before)
        with pytest.raises(RuntimeError, match=r"closed|cut short|cancelled"):
            runner.call(asyncio.sleep, 0.5)
        assert runner.closed

    _ended_within(scenario)


@pytest.mark.parametrize("before", [False, True], ids=["start queued", "start not queued"])
def test_ctrl_c_as_a_call_is_queued_cancels_it_and_waits(
    monkeypatch: pytest.MonkeyPatch, *, before: bool
) -> None:
    """Ctrl-C inside the queueing: the call was queued, never cancelled, and ran to its end.

    Landing before the queueing, it must not wait for a start that never comes.
    """
    runner = SyncRunner()
    started, finished = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(1.0)
        finished.set()

    def scenario() -> None:
        _signal_as_it_queues(monkeypatch, runner, _interrupt, before=before)
        with pytest.raises(KeyboardInterrupt):
            runner.call(slow)

    try:
        _ended_within(scenario)
        time.sleep(1.5)
        assert not finished.is_set(), "the call ran on after its caller's Ctrl-C"
        assert runner.call(asyncio.sleep, 0, "usable") == "usable"
    finally:
        runner.close()


def test_ctrl_c_during_a_close_still_exits_what_was_entered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Ctrl-C into a close lets the close go on: what `enter` entered is exited.

    The interrupt cancelled the close's own work, so the entered database stayed open, and a
    second close said nothing.
    """
    exited = threading.Event()

    @contextlib.asynccontextmanager
    async def slow_to_exit() -> AsyncIterator[str]:
        yield "held"
        await asyncio.sleep(0.5)  # a close that takes a while, as a checkpoint may
        exited.set()

    runner = SyncRunner()
    assert runner.enter(slow_to_exit()) == "held"

    def scenario() -> None:
        real_wait = threading.Event.wait
        closer = threading.get_ident()
        fired: list[bool] = []

        def interrupted_wait(event: threading.Event, timeout: float | None = None) -> bool:
            if threading.get_ident() == closer and not fired:
                fired.append(True)
                real_wait(event, 0.1)
                raise KeyboardInterrupt  # as a Ctrl-C 0.1 s into the close
            return real_wait(event, timeout)

        monkeypatch.setattr(threading.Event, "wait", interrupted_wait)  # the Ctrl-C
        try:
            with pytest.raises(KeyboardInterrupt):
                runner.close()
        finally:
            monkeypatch.undo()

    _ended_within(scenario)
    assert exited.is_set(), "the close left what enter entered"


@pytest.mark.parametrize("before", [False, True], ids=["work queued", "work not queued"])
def test_ctrl_c_as_the_close_queues_its_work_still_exits_what_was_entered_at_once(
    monkeypatch: pytest.MonkeyPatch, *, before: bool
) -> None:
    """A Ctrl-C inside the close's queueing of its own work: that work runs, and soon.

    Landing before the work was queued, the close waited its whole timeout for a start that
    never came, then left what `enter` entered open.
    """
    exited = threading.Event()

    @contextlib.asynccontextmanager
    async def held() -> AsyncIterator[str]:
        yield "held"
        exited.set()

    runner = SyncRunner()
    assert runner.enter(held()) == "held"

    def scenario() -> None:
        _signal_as_it_queues(monkeypatch, runner, _interrupt, before=before)
        started, timeout = time.monotonic(), WITHIN - 1
        with pytest.raises(KeyboardInterrupt):
            runner.close(timeout=timeout)
        assert time.monotonic() - started < timeout / 2, "the close waited out its timeout"
        assert runner.closed

    _ended_within(scenario)
    assert exited.is_set(), "the close left what enter entered"
