"""Synchronous programs: one event loop of their own, in a background thread, runs the calls.

A database works only on the loop that opened it, so a synchronous program keeps one
`SyncRunner` for its whole life and hands it every call. A thread, not the caller's own loop,
keeps the change feed and the caches current between calls; the README's "Synchronous
programs" tells why a runner and not a synchronous copy of each function.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Generic, ParamSpec, TypeVar

import attrs

__all__ = ["SyncRunner"]

_T = TypeVar("_T")
_P = ParamSpec("_P")


class _RefusedError(RuntimeError):
    """A call the runner cannot take: it is closed, or the call would wait for itself."""


@attrs.define(eq=False)
class _Outcome(Generic[_T]):
    """What a call's task ended with, handed from the loop's thread to the caller's."""

    ended: threading.Event = attrs.field(factory=threading.Event)
    task: asyncio.Task[_T] | None = None
    """Set on the loop's thread when the call starts, before anything can cancel it."""

    def cancel(self) -> None:
        """Cancel the call, on the loop's thread (queued after its start)."""
        if self.task is not None:
            self.task.cancel()


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
        self._guard = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="persistence-sync", daemon=True
        )
        self._thread.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether `close` has begun: no call is taken any more."""
        return self._closed

    def run(self, work: Awaitable[_T]) -> _T:
        """Run `work` on the runner's loop; return its result or raise its error."""
        try:
            return self._wait(_awaited(work))
        except _RefusedError:
            if inspect.iscoroutine(work):
                work.close()  # never awaited, on purpose: no warning about it
            raise

    def call(
        self, function: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Call the async `function` with the arguments on the runner's loop; give its result."""
        return self._wait(_called(function, *args, **kwargs))

    def enter(self, manager: AbstractAsyncContextManager[_T]) -> _T:
        """Enter an async context manager on the loop; it is exited when the runner closes."""
        held, value = self._wait(self._hold(manager))
        with self._guard:
            self._held.append(held)
        return value

    def close(self) -> None:
        """Exit what `enter` entered, newest first, then stop the loop and its thread.

        The first error of an exit is raised once all is closed; calls still running are
        cancelled. Closing twice does nothing.
        """
        if threading.get_ident() == self._thread.ident:
            msg = "a SyncRunner cannot be closed from a call it runs: it would wait for itself"
            raise _RefusedError(msg)
        with self._guard:
            if self._closed:
                return
            self._closed = True  # from here on, only the close's own work starts
            held, self._held = self._held, []
        try:
            self._wait(_leave_all(held[::-1]), closing=True)
        finally:
            self._wait(_end_the_rest(), closing=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def _wait(self, work: Coroutine[object, object, _T], *, closing: bool = False) -> _T:
        """Start `work` as a task on the loop and block until it ends."""
        if threading.get_ident() == self._thread.ident:
            work.close()
            msg = (
                "a SyncRunner's call cannot wait for another call of the same runner: it "
                "would wait for itself; await the function instead"
            )
            raise _RefusedError(msg)
        outcome: _Outcome[_T] = _Outcome()
        loop = self._loop

        def start() -> None:
            outcome.task = loop.create_task(work)
            outcome.task.add_done_callback(lambda _: outcome.ended.set())  # wake the caller

        with self._guard:  # a call starts before the close's own work, or not at all
            if self._closed and not closing:
                work.close()
                msg = "this SyncRunner is closed"
                raise _RefusedError(msg)
            # call_soon_threadsafe runs `start` in a copy of this thread's context variables.
            loop.call_soon_threadsafe(start)
        try:
            outcome.ended.wait()
        except BaseException:
            # Interrupted while waiting: cancel the call, and let it end before going on.
            loop.call_soon_threadsafe(outcome.cancel)
            outcome.ended.wait()
            raise
        task = outcome.task
        assert task is not None  # noqa: S101  # set before `ended`
        return task.result()

    async def _hold(self, manager: AbstractAsyncContextManager[_T]) -> tuple[_Held, _T]:
        """Enter `manager` in a task of its own that stays inside it until told to leave."""
        entered: asyncio.Future[_T] = self._loop.create_future()
        leave = asyncio.Event()

        async def hold() -> None:
            async with manager as value:
                entered.set_result(value)
                await leave.wait()

        task = asyncio.create_task(hold())
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


async def _awaited(work: Awaitable[_T]) -> _T:
    return await work


async def _called(function: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    return await function(*args, **kwargs)


async def _leave_all(held: list[_Held]) -> None:
    """Exit the entered managers in the order given; raise the first error after all."""
    first: BaseException | None = None
    for item in held:
        item.leave.set()
        try:
            await item.task
        except BaseException as error:  # noqa: BLE001  # the others still exit
            first = first or error
    if first is not None:
        raise first


async def _end_the_rest() -> None:
    """Cancel what is left on the loop (calls from other threads) and wait for it to end."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
    await asyncio.get_running_loop().shutdown_default_executor()
