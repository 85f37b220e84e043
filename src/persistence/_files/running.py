"""Applying a staged change from the event loop: in worker threads, never blocking on a lock.

`perform` stages a change in one worker-thread hop and applies it there if its lock is
free, the common case. Otherwise it tries again in short hops, woken when an operation of
this loop frees a lock, and gives up after LOCK_TIMEOUT. Cancelling waits for a hop or a
record write under way: a change is made and recorded whole, or not made.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from persistence._files.locks import Change
from persistence.exceptions import StorageError

T = TypeVar("T")

LOCK_TIMEOUT = 60.0
"""Seconds an operation waits for the lock of its paths before it gives up."""

_FIRST_WAIT: Final = 0.001
_LONGEST_WAIT: Final = 0.05  # seconds between two tries of a busy lock, at most


async def _settle(future: asyncio.Future[T]) -> tuple[T, bool]:
    """Wait for `future` to end even if cancelled meanwhile; say whether we were cancelled.

    A hop may rename a file, and a record write may be under way: neither is abandoned
    half way, so a change and its record are made whole or not at all.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                raise
            cancelled = True
    return future.result(), cancelled


def _staged(stage: Callable[[], Change[T]]) -> Change[T]:
    """Stage a change and apply it at once if its lock is free: the common case, one hop."""
    change = stage()
    try:
        change.try_apply()
    except BaseException:
        change.close()
        raise
    return change


_WAITING: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = (
    weakref.WeakKeyDictionary()
)
"""Per event loop, the operations waiting for a lock: woken when one is released here."""


async def _pause(seconds: float) -> None:
    """Sleep up to `seconds`, waking early when an operation of this loop frees its lock."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(seconds, _wake_one, waiter)
    waiting = _WAITING.setdefault(loop, set())
    waiting.add(waiter)
    try:
        await waiter
    finally:
        timer.cancel()
        waiting.discard(waiter)


def _wake_one(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _wake_all() -> None:
    """Tell the operations of this loop waiting for a lock to try again now."""
    for waiter in _WAITING.get(asyncio.get_running_loop(), ()):
        _wake_one(waiter)


async def _wait_for_lock(change: Change[T]) -> bool:
    """Retry applying until the lock is free; return whether we were cancelled meanwhile.

    Never blocks a worker thread on the lock: each try is one short hop. Between tries it
    waits until an operation of this loop frees a lock, or for a time growing to
    _LONGEST_WAIT when the holder is another process.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LOCK_TIMEOUT
    wait = _FIRST_WAIT
    while not change.applied:
        if loop.time() >= deadline:
            reason = f"busy: its lock stayed taken for {LOCK_TIMEOUT:g} s"
            raise StorageError(change.shown, reason)
        await _pause(wait)
        wait = min(wait * 2, _LONGEST_WAIT)
        _, cancelled = await _settle(asyncio.ensure_future(asyncio.to_thread(change.try_apply)))
        if cancelled:
            return True
    return False


async def perform(
    stage: Callable[[], Change[T]],
    record: Callable[[T], Awaitable[object]] | None = None,
) -> T:
    """Stage a change in a worker thread, apply it under its lock, then `record` it.

    The lock is held until the record is written, so the last change on disk and the last
    record of a path agree, across tasks and processes. Cancelling waits for a hop or a
    record write under way to end; a change applied is always recorded.
    """
    hop = asyncio.ensure_future(asyncio.to_thread(_staged, stage))
    change, cancelled = await _settle(hop)
    try:
        if not cancelled:
            cancelled = await _wait_for_lock(change)
        if change.applied and record is not None:
            _, interrupted = await _settle(asyncio.ensure_future(record(change.result)))
            cancelled = cancelled or interrupted
        if cancelled:
            raise asyncio.CancelledError
        return change.result
    finally:
        change.close()
        _wake_all()
