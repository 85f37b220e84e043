"""A process forked while this one holds a path lock holds none of it.

A tracked write holds its path's lock until its record is written: a `multiprocessing`
worker forked meanwhile kept copies of the lock files' descriptors, and flock(2) holds
while any copy is open. The parent's next change of that path waited 60 s and failed busy,
as long as the idle worker lived; the worker, whose table of held stripes it had copied too,
failed busy on the path itself once the parent had let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from multiprocessing.synchronize import Event
from pathlib import Path
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


def _children_holding_locks(root: Path, forks: int, stop: threading.Event) -> list[bool]:
    """Fork `forks` children one after the other: whether each found a lock file open."""
    lock_file = str(root / ".locks") + "/"  # a file in it: the folder's own is no lock
    held: list[bool] = []
    for _ in range(forks):
        if stop.is_set():
            break
        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # the child: look at its descriptors, say, and leave at once
            os.close(reader)
            found = False
            for descriptor in Path("/proc/self/fd").iterdir():
                with contextlib.suppress(OSError):
                    found = found or str(descriptor.readlink()).startswith(lock_file)
            os.write(writer, b"1" if found else b"0")
            os._exit(0)
        os.close(writer)
        with os.fdopen(reader, "rb") as said:
            held.append(said.read() == b"1")
        os.waitpid(child, 0)
    return held


async def test_no_fork_meets_a_lock_file_half_opened(storage: Storage) -> None:
    """A fork between a lock file's open and its note in the lock copied a descriptor unnamed.

    One thread forks while writes take and let go of their paths' locks: about 4 forks in 100
    left their child holding a lock file, and the parent's next change of that path waited for
    the child to exit.
    """
    stop = threading.Event()
    forking = asyncio.create_task(
        asyncio.to_thread(_children_holding_locks, storage.root, 300, stop)
    )
    try:
        while not forking.done():
            await write_bytes(storage, "a.txt", b"x")
    finally:
        stop.set()
        held = await forking
    assert len(held) == 300
    assert not any(held), f"{sum(held)} of {len(held)} children held a lock file"
