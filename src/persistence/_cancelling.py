"""Steps that must not be abandoned halfway when their caller is cancelled.

A cancelled caller is told at once or after the step ends, as each function says; what the
step opens or changes is never left to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from persistence.exceptions import DatabaseError

_T = TypeVar("_T")


async def kept_if_cancelled(work: Awaitable[_T], keep: Callable[[_T], object]) -> _T:
    """Await `work`; if the caller is cancelled first, let it end and hand what it gives to `keep`.

    For what a worker thread opens: it goes on after its caller, and nothing else would close it.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        refuse_cancel_from_outside(task)
        task.add_done_callback(functools.partial(_hand_over, keep))
        raise


def _hand_over(keep: Callable[[_T], object], done: asyncio.Future[_T]) -> None:
    if not done.cancelled() and done.exception() is None:
        keep(done.result())


async def finish_then_cancel(work: Awaitable[_T]) -> _T:
    """Await `work` to its end even if the caller is cancelled meanwhile, then re-raise.

    For the short critical steps of a transaction (BEGIN, COMMIT): abandoning them halfway
    would leave a connection in a state nobody tracks. Their own time limits bound the wait.
    """
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.cancelled()  # ours, not the work's own
        except BaseException:  # noqa: BLE001, S110  # the work's own error: read below
            pass
    if cancelled:
        if not task.cancelled():
            task.exception()  # read it, so that it is not reported as never retrieved
        raise asyncio.CancelledError
    refuse_cancel_from_outside(task)
    return task.result()


async def stopped_if_cancelled(work: Awaitable[_T], stop: Callable[[], object]) -> _T:
    """Await `work`; if the caller is cancelled first, `stop` it, wait for its end, then re-raise.

    For a statement in a worker thread on a connection used again after (a snapshot's reader,
    a migration's writer): it must not run on once its caller has gone, nor be left running.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop()
        with contextlib.suppress(Exception):  # stopped: the caller is told it was cancelled
            await finish_then_cancel(task)
        raise


async def once_free(lock: asyncio.Lock) -> None:
    """Wait until no one holds `lock`; cancelled meanwhile, wait still, then re-raise.

    For a block's end, which must come after a statement another task sent through it: that
    statement may run in a worker thread, on the block's connection.
    """

    async def free() -> None:
        async with lock:
            pass

    if lock.locked():
        await finish_then_cancel(free())


def refuse_cancel_from_outside(work: asyncio.Future[Any]) -> None:
    """Raise `DatabaseError` if another task cancelled `work`, the caller's task not cancelling.

    A `CancelledError` in a task nobody cancelled breaks its own cancellation (a shutdown
    handler cancelling every task but its own reaches a step that runs as a task of its own).
    """
    current = asyncio.current_task()
    if work.cancelled() and (current is None or not current.cancelling()):
        raise DatabaseError(
            "a step of this call that ran as a task of its own was cancelled by another task, "
            "though the call itself was not: it may or may not have taken effect"
        )


@contextlib.contextmanager
def noted_if_cancelled(given: list[str] | None = None) -> Iterator[list[str]]:
    """Give a list for what the work has made lasting; a cancellation then notes the last.

    A COMMIT and a rename run to their end before a cancellation goes on: a caller told only
    that it was cancelled could not tell what was kept (a copy's target full, a backup's file
    in place, a kept result), and a command's retry was refused. A note already there (an
    inner block's, sharing `given`) is not added again.
    """
    kept = [] if given is None else given
    try:
        yield kept
    except asyncio.CancelledError as error:
        if kept and kept[-1] not in getattr(error, "__notes__", ()):
            error.add_note(kept[-1])
        raise
