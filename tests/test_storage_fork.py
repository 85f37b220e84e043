"""A process forked while this one holds a path lock holds none of it.

A tracked write holds its path's lock until its record is written: a `multiprocessing`
worker forked meanwhile kept copies of the lock files' descriptors, and flock(2) holds
while any copy is open. The parent's next change of that path waited 60 s and failed busy,
as long as the idle worker lived; the worker, whose table of held stripes it had copied too,
failed busy on the path itself once the parent had let go.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from multiprocessing.synchronize import Event
from typing import TYPE_CHECKING

import pytest

from persistence._files import locks
from persistence.storage import Storage, read_bytes, write_bytes

if TYPE_CHECKING:
    from multiprocessing.queues import Queue

WAIT = 10.0
"""The longest a step of the other process is waited for, in seconds."""

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="forks a process"
)


def _locked(root: str) -> bool:
    """Tell whether this process takes the lock of `a.txt` now, and let go of it at once."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lock = locks.try_lock(root_fd, ["a.txt"])
        if lock is not None:
            lock.release()
        return lock is not None
    finally:
        os.close(root_fd)


def _worker(root: str, released: Event, done: Event, said: Queue[object]) -> None:
    """A forked worker: say whether it locks `a.txt` while its parent holds it, then after."""
    said.put(("while held", _locked(root)))
    released.wait(WAIT)
    said.put(("once let go", _locked(root)))
    done.wait(WAIT)  # alive, idle, while the parent writes


async def test_a_forked_worker_keeps_none_of_its_parents_path_locks(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker finds the lock busy while the parent holds it, then free; so does the parent."""
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 1.0)  # the fault waited 60 s
    fork = multiprocessing.get_context("fork")
    released, done, said = fork.Event(), fork.Event(), fork.Queue()
    root_fd = os.open(storage.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        lock = locks.try_lock(root_fd, ["a.txt"])
        assert lock is not None
        worker = fork.Process(target=_worker, args=(str(storage.root), released, done, said))
        worker.start()
        try:
            assert await asyncio.to_thread(said.get, timeout=WAIT) == ("while held", False)
            lock.release()
            released.set()
            assert await asyncio.to_thread(said.get, timeout=WAIT) == ("once let go", True)
            await write_bytes(storage, "a.txt", b"the parent's")  # the worker still alive
            assert await read_bytes(storage, "a.txt") == b"the parent's"
        finally:
            released.set()
            done.set()
            await asyncio.to_thread(worker.join, WAIT)
        assert worker.exitcode == 0
    finally:
        os.close(root_fd)
