"""Synchronous programs: one event loop of their own, in a background thread, runs the calls.

A database works only on the loop that opened it, so a synchronous program keeps one
`SyncRunner` for its whole life and hands it every call. A thread, not the caller's own loop,
keeps the change feed and the caches current between calls; the README's "Synchronous
programs" tells why a runner and not a synchronous copy of each function.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import os
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final, Generic, ParamSpec, TypeVar, cast

import attrs

from persistence._guards import seconds
from persistence.exceptions import CloseTimeoutError, ValidationError

__all__ = ["CLOSE_TIMEOUT", "SyncRunner"]

CLOSE_TIMEOUT: Final = 30.0
"""Seconds `SyncRunner.close` waits, by default, for the exits and the cancelled calls to end."""

_STOP_GRACE: Final = 1.0
"""Seconds the loop's thread is given to stop once told to."""

_CLOSING: Final = "SyncRunner.close"

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _RefusedError(RuntimeError):
    """A call the runner cannot take or finish: it is closed, or would wait for itself.

    A call still running when `close` cancelled it gets one too, chained from the
    cancellation: sync code does not expect the bare CancelledError, a BaseException.
    """


class _OverdueError(Exception):
    """The close's own work did not end before its deadline."""


@attrs.define(eq=False)
class _Outcome(Generic[_T]):
    """What a call's task ended with, handed from the loop's thread to the caller's."""

    name: str
    """The task's name: what the call runs, as errors name it."""
    work: Coroutine[object, object, _T]
    """What the call runs, until it starts as `task`."""
    ended: threading.Event = attrs.field(factory=threading.Event)
    task: asyncio.Task[_T] | None = None
    """Set on the loop's thread when the call starts, before anything can cancel it."""

    def cancel(self) -> None:
        """Cancel the call, on the loop's thread (queued after its start, if it was queued).

        One whose start was never queued (its caller interrupted as it queued it) has ended,
        its work never begun.
        """
        if self.task is not None:
            self.task.cancel()
        else:
            self.work.close()
            self.ended.set()


@attrs.define(eq=False)
class _Held:
    """A context manager entered by `enter`: its task holds it open until `leave` is set."""

    task: asyncio.Task[None]
    leave: asyncio.Event


class SyncRunner(contextlib.AbstractContextManager["SyncRunner", None]):
    """An event loop in a background thread that runs async calls for synchronous code.

    Calls may come from several threads; each is a task of its own, in a copy of the caller's
    context variables. A call interrupted while it waits (Ctrl-C) is cancelled on the loop,
    and the caller waits for it to end before the interrupt goes on.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._held: list[_Held] = []
        # Reentrant: a signal handler may close the runner while its thread queues a call.
        self._guard = threading.RLock()
        self._closed = False
        self._finished = threading.Event()
        """Set once the first close has ended: a close from another thread waits for it."""
        self._stopping = False
        """Set by the close as it stops the loop: a loop stopped before that goes on."""
        self._pid = os.getpid()
        """The process whose thread runs the loop: a forked child has the loop but no thread."""
        self._waiting: set[_Outcome[Any]] = set()
        """The calls whose callers wait: woken by a close that stops the loop under them."""
        self._cut: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        """The tasks the close cancelled, added on the loop's thread before each of them ends."""
        self._calls: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        """The tasks of the calls (and enters), added on the loop's thread as each starts."""
        self._thread = threading.Thread(target=self._serve, name="persistence-sync", daemon=True)
        self._thread.start()
        _OPEN.add(self)

    def _serve(self) -> None:
        """Run the loop until `close` stops it, then close it here (this thread may end late).

        A call may stop the loop itself (`loop.stop()`, as code written for `asyncio.run` may):
        the loop goes on, or the calls waiting on it would wait for good.
        """
        try:
            while True:
                try:
                    self._loop.run_forever()
                    if self._stopping:
                        break
                except (KeyboardInterrupt, SystemExit):  # raised by a call
                    if self._stopping:  # the close's stop, in the same turn, is dropped
                        break
                    # Its task holds it for its caller; the loop goes on.
        finally:
            for task in asyncio.all_tasks(self._loop):  # left by a close that gave up on them
                work = task.get_coro()
                if (
                    inspect.iscoroutine(work)
                    and inspect.getcoroutinestate(work) == inspect.CORO_CREATED
                ):
                    work.close()  # never started: no "never awaited" warning
            self._loop.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether `close` has begun: no call is taken any more."""
        return self._closed

    def run(self, work: Awaitable[_T]) -> _T:
        """Run `work` on the runner's loop; return its result or raise its error."""
        if not inspect.isawaitable(work):
            raise _refused_argument("work", "an awaitable, such as a coroutine", work)
        try:
            return self._wait(_awaited(work), _name_of(work))
        except _RefusedError:
            if inspect.iscoroutine(work):
                work.close()  # never awaited, on purpose: no warning about it
            raise

    def call(
        self, function: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Call the async `function` with the arguments on the runner's loop; give its result."""
        if not callable(function):
            raise _refused_argument("function", "an async function", function)
        return self._wait(_called(function, *args, **kwargs), _name_of(function))

    def enter(self, manager: AbstractAsyncContextManager[_T]) -> _T:
        """Enter an async context manager on the loop; it is exited when the runner closes.

        Racing `close` from another thread, it gives the value of a manager held until that
        close exits it, or raises that the runner is closed: a close that began while the
        manager was being entered has ended it (it cancels what runs), so its value is not given.
        """
        if not isinstance(manager, AbstractAsyncContextManager):
            raise _refused_argument("manager", "an async context manager", manager)
        name = f"enter({_name_of(manager)})"
        held, value = self._wait(self._hold(manager, name), name)
        with self._guard:
            if self._closed:
                msg = "this SyncRunner is closed: it was closed while the manager was entered"
                raise _RefusedError(msg)
            self._held.append(held)
        return value

    def close(self, *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Cancel the calls still running, exit what `enter` entered, newest first, and stop.

        The calls go first: one inside a transaction or a loan of a database that `enter`
        entered holds up that database's exit until it ends. Each one's caller gets a
        RuntimeError saying it was cancelled, chained from the cancellation; the first error of
        an exit is raised once all is closed. Such a call may have written before it was cut
        short: what it had committed stays, what it had not is rolled back, and the error
        cannot tell which, so look before running it again. What has not ended `timeout`
        seconds after the close began (an exit that hangs, a call that ignores its
        cancellation) is left: the loop is stopped anyway and `CloseTimeoutError` names it. A
        thread blocked in synchronous code cannot be stopped: the error says so, and the thread
        ends, closing the loop, when that code returns. Closing again does nothing; a close
        from another thread while one is under way waits (up to its own `timeout`) for that
        one to end.
        """
        limit = seconds("SyncRunner", "timeout", timeout)
        if os.getpid() != self._pid:  # a forked child: the loop and what it holds are the parent's
            self._closed = True
            self._finished.set()
            return
        if threading.current_thread() is self._thread:  # not its id: ids are reused
            msg = "a SyncRunner cannot be closed from a call it runs: it would wait for itself"
            raise _RefusedError(msg)
        with self._guard:
            first = not self._closed
            if first:
                self._closed = True  # from here on, only the close's own work starts
                held, self._held = self._held, []
        if not first:
            if not self._finished.wait(min(limit, threading.TIMEOUT_MAX)):
                msg = (
                    f"SyncRunner.close gave up after {limit:g} s waiting for the close under way "
                    "in another thread"
                )
                raise CloseTimeoutError(msg, running=(), thread_alive=self._thread.is_alive())
            return
        try:
            self._close(held, limit)
        finally:
            self._finished.set()

    def _close(self, held: list[_Held], limit: float) -> None:
        """Do the close: exit `held` newest first, end the rest and stop, within `limit` s."""
        running: tuple[str, ...] | None = None
        try:
            work = _close_all(held[::-1], self._calls, self._cut, limit / 2)
            self._wait(work, _CLOSING, deadline=time.monotonic() + limit)
        except _OverdueError:
            running = tuple(
                task.get_name()
                for task in asyncio.all_tasks(self._loop)
                if task.get_name() != _CLOSING
            )
        finally:
            self._stop()
        if running is not None:
            raise _overdue(limit, running, thread_alive=self._thread.is_alive())

    def _stop(self) -> None:
        """Stop the loop, let its thread end, and wake the callers whose calls never will."""
        self._stopping = True
        with contextlib.suppress(RuntimeError):  # its thread has closed it already
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STOP_GRACE)
        with self._guard:
            waiting = list(self._waiting)
        for outcome in waiting:
            outcome.ended.set()

    def _wait(
        self,
        work: Coroutine[object, object, _T],
        name: str,
        *,
        deadline: float | None = None,
    ) -> _T:
        """Start `work` as a task on the loop and block until it ends.

        With a `deadline` (the close's own work, which a closed runner still takes), raise
        `_OverdueError` once it has passed. That work is not cancelled by an interrupt of its
        caller: it is waited for, within its deadline, and the interrupt raised after, so that
        a Ctrl-C during a close still exits what `enter` entered.
        """
        self._check_caller(work)
        outcome: _Outcome[_T] = _Outcome(name, work)
        loop = self._loop

        def start() -> None:
            if outcome.task is not None:  # queued again by an interrupted close: it runs once
                return
            if outcome.ended.is_set():  # cancelled before it started: see `_Outcome.cancel`
                work.close()
                return
            outcome.task = loop.create_task(work, name=name)
            self._calls.add(outcome.task)  # the close's own, too: it passes itself over
            outcome.task.add_done_callback(lambda _: outcome.ended.set())  # wake the caller

        try:
            self._queue(outcome, start, closing=deadline is not None)
            # A thread's wait takes at most TIMEOUT_MAX (about 292 years): no later deadline.
            left = None if deadline is None else deadline - time.monotonic()
            ended = outcome.ended.wait(None if left is None else min(left, threading.TIMEOUT_MAX))
        except BaseException:
            if outcome not in self._waiting:  # not queued: nothing to cancel or wait for
                raise
            if deadline is None:
                self._interrupted(outcome)
            else:  # the close's work runs all the same, queued again: the interrupt may have
                # come before its start was, and the close waited out its timeout for it
                try:
                    loop.call_soon_threadsafe(start)
                except RuntimeError:  # the loop is closed: nothing is left to run
                    pass
                else:
                    outcome.ended.wait(max(0.0, deadline - time.monotonic()))
            raise
        finally:
            with self._guard:
                self._waiting.discard(outcome)
        if not ended:
            raise _OverdueError
        return self._result(outcome)

    def _queue(self, outcome: _Outcome[Any], start: Callable[[], None], *, closing: bool) -> None:
        """Queue a call's start on the loop, or refuse it once closed (but the close's own)."""
        with self._guard:  # a call starts before the close's own work, or not at all
            if self._closed and not closing:
                raise _closed_refusal(outcome.work)
            self._waiting.add(outcome)  # before its start is queued: see `_interrupted`
            try:
                # call_soon_threadsafe runs `start` in a copy of this thread's context variables.
                self._loop.call_soon_threadsafe(start)
            except RuntimeError:  # a close in a signal handler, in this thread, closed the loop
                raise _closed_refusal(outcome.work) from None
            if self._stopping:  # a close in a signal handler, in this thread, meanwhile
                outcome.ended.set()

    def _result(self, outcome: _Outcome[_T]) -> _T:
        """Give what the call's task returned, or raise what it raised, named as it was cut."""
        task = outcome.task
        if task is None or not task.done():  # woken by a close that stopped the loop
            raise _overdue(None, (outcome.name,), thread_alive=self._thread.is_alive())
        cut = task in self._cut
        self._cut.discard(task)
        try:
            return task.result()
        except asyncio.CancelledError as error:
            if not cut:  # the call's own, or its caller's: not the close's to translate
                raise
            raise _cut_short(outcome.name) from error

    def _check_caller(self, work: Coroutine[object, object, object]) -> None:
        """Refuse a wait from the loop's own thread, or in a child forked from this process."""
        if threading.current_thread() is self._thread:  # not its id: ids are reused
            work.close()
            msg = (
                "a SyncRunner's call cannot wait for another call of the same runner: it "
                "would wait for itself; await the function instead"
            )
            raise _RefusedError(msg)
        if os.getpid() != self._pid:
            work.close()
            msg = (
                f"this SyncRunner was made in process {self._pid}, and its loop's thread does not "
                "exist in this one, forked from it: make a SyncRunner in this process"
            )
            raise _RefusedError(msg)

    def _interrupted(self, outcome: _Outcome[Any]) -> None:
        """Cancel a call whose caller was interrupted (Ctrl-C), and wait for it to end.

        A second interrupt meanwhile goes on at once, as asyncio.run's does: the call is left to
        end on the loop, and `close` waits for it.
        """
        try:
            try:
                self._loop.call_soon_threadsafe(outcome.cancel)
            except RuntimeError:  # the loop is closed: a close gave up on it, or it never began
                return
            outcome.ended.wait()
        except BaseException as again:
            again.add_note(
                f"{outcome.name} was cancelled and is still ending on the SyncRunner's loop; "
                "close() waits for it"
            )
            raise

    async def _hold(self, manager: AbstractAsyncContextManager[_T], name: str) -> tuple[_Held, _T]:
        """Enter `manager` in a task of its own that stays inside it until told to leave."""
        entered: asyncio.Future[_T] = self._loop.create_future()
        leave = asyncio.Event()

        async def hold() -> None:
            async with manager as value:
                entered.set_result(value)
                await leave.wait()

        task = asyncio.create_task(hold(), name=name)
        try:
            await asyncio.wait((entered, task), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise
        if not entered.done():
            await task  # the manager failed to enter: raise its error
            msg = "the context manager ended without being entered"  # pragma: no cover
            raise RuntimeError(msg)  # pragma: no cover
        return _Held(task, leave), entered.result()


_OPEN: Final[weakref.WeakSet[SyncRunner]] = weakref.WeakSet()
"""The runners made in this process: each is kept alive by its loop's thread until closed."""


@atexit.register
def _warn_of_open_runners() -> None:
    """Name each runner still open as the interpreter exits, in a ResourceWarning.

    It cannot be closed here: `atexit` runs after the thread pools have stopped taking work,
    which closing a SQLite database needs. So what it entered is never exited, as a file left
    open is never flushed: the warning says how to close it, as Python's own do.
    """
    for runner in list(_OPEN):
        if not runner.closed and runner._pid == os.getpid():  # noqa: SLF001  # the module's own
            warnings.warn(
                "a SyncRunner was still open as the interpreter exited, so what it entered "
                "(databases, bundles) was never exited: call its close(), or use it as "
                "`with SyncRunner() as runner:`",
                ResourceWarning,
                source=runner,
                stacklevel=1,
            )


def _name_of(thing: object) -> str:
    """Name a function, coroutine or object for the tasks and errors: its qualified name.

    A context manager is named by the function that made it (`connect`, `open_persistence`),
    not by its class: every block of this package's is one class, and contextlib's another.
    """
    for named in (thing, getattr(thing, "made_by", None), getattr(thing, "func", None)):
        name = getattr(named, "__qualname__", None)
        if isinstance(name, str):
            return name
    return type(thing).__qualname__


def _overdue(
    limit: float | None, running: tuple[str, ...], *, thread_alive: bool
) -> CloseTimeoutError:
    """Make the error of a close that gave up: for the close (`limit` given) or a call it left."""
    what = ", ".join(running) or "nothing that has a task"
    if limit is None:
        message = (
            f"the SyncRunner was closed while {what} still ran: the call did not end within "
            "the close's timeout after its cancellation"
        )
    else:
        message = f"SyncRunner.close gave up after {limit:g} s with {what} still running"
    if thread_alive:
        message += (
            "; the loop's thread is blocked in a synchronous call and cannot be stopped: it "
            "ends, and closes the loop, when that call returns"
        )
    else:
        message += "; the loop was stopped, and what it still ran was left unfinished"
    return CloseTimeoutError(message, running=running, thread_alive=thread_alive)


def _cut_short(name: str) -> _RefusedError:
    """Make the error of a call that `close` cancelled while it ran."""
    msg = (
        f"{name} was cancelled because the SyncRunner was closed while it ran: what it had "
        "committed stays and what it had not is rolled back, so look before running it again"
    )
    return _RefusedError(msg)


async def _awaited(work: Awaitable[_T]) -> _T:
    return await work


async def _called(function: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    work: object = function(*args, **kwargs)  # typed, but a plain function passes at run time
    if not inspect.isawaitable(work):  # only what it gave tells
        what = f"{_name_of(function)}, which gave {type(work).__name__}"
        raise ValidationError("SyncRunner", "function", f"expected an async function, got {what}")
    return await cast("Awaitable[_T]", work)


def _refused_argument(field: str, expected: str, value: object) -> ValidationError:
    """Refuse an argument that the runner cannot await or enter, by name, before it runs."""
    return ValidationError("SyncRunner", field, f"expected {expected}, got {type(value).__name__}")


async def _close_all(
    held: list[_Held],
    calls: weakref.WeakSet[asyncio.Task[Any]],
    cut: weakref.WeakSet[asyncio.Task[Any]],
    calls_wait: float,
) -> None:
    """End the running `calls`, exit the entered managers in the order given, end the rest.

    Each task the close cancels is added to `cut`. The calls are waited for `calls_wait`
    seconds at most: one that ignores its cancellation does not keep the managers unexited.

    The first error of an exit is raised once all that is done.
    """
    await _end_tasks(list(calls), cut, calls_wait)
    first: BaseException | None = None
    for item in held:
        item.leave.set()
        try:
            await item.task
        except BaseException as error:  # noqa: BLE001  # the others still exit
            first = first or error
    await _end_the_rest(cut)
    if first is not None:
        raise first


async def _end_the_rest(cut: weakref.WeakSet[asyncio.Task[Any]]) -> None:
    """Cancel what is left on the loop (calls from other threads) and wait for it to end.

    Each task cancelled is added to `cut`, for its caller to be told why. A call already
    cancelled (its caller was interrupted) is not cancelled again, which would cut its
    clean-up short: it is only waited for.
    """
    await _end_tasks(asyncio.all_tasks(), cut)
    await asyncio.get_running_loop().shutdown_asyncgens()
    await asyncio.get_running_loop().shutdown_default_executor()


async def _end_tasks(
    tasks: Iterable[asyncio.Task[Any]],
    cut: weakref.WeakSet[asyncio.Task[Any]],
    at_most: float | None = None,
) -> None:
    """Cancel `tasks` (but the close's own) and wait for them to end, adding each to `cut`.

    A task already cancelled (its caller was interrupted) is not cancelled again, which would
    cut its clean-up short: it is only waited for, `at_most` seconds if given.
    """
    current = asyncio.current_task()
    ending = [task for task in tasks if task is not current and not task.done()]
    for task in ending:
        if not task.cancelling() and task.cancel():
            cut.add(task)
    if ending and at_most is not None:
        await asyncio.wait(ending, timeout=at_most)  # each caller reads its own outcome
    else:
        await asyncio.gather(*ending, return_exceptions=True)


def _closed_refusal(work: Coroutine[object, object, object]) -> _RefusedError:
    """Close the call's work, never begun, and say why: the runner is closed."""
    work.close()
    return _RefusedError("this SyncRunner is closed")
