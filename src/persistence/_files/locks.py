"""Locks on paths that hold across processes, and the changes applied under them.

The file store's changes and the artifact cache's publishes are staged first, then
applied under a lock on their paths (`Change`, `try_lock`), from the event loop by `perform`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Final, Generic, TypeVar

import attrs

from persistence._cancelling import finish_then_cancel, refuse_cancel_from_outside
from persistence._files.paths import (
    DIR_FLAGS,
    LOCKS_DIR,
    kind_of,
    lstat,
    open_folder,
    open_regular,
    owned,
    same_file,
    storage_errors,
)
from persistence.exceptions import DatabaseError, NotAFileError, StorageError

T = TypeVar("T")

_LOCK_FLAGS: Final = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FIRST_WAIT: Final = 0.001
_LONGEST_WAIT: Final = 0.05  # seconds between two tries of a busy lock, at most

LOCK_STRIPES: Final = 4096  # lock files; two paths on one only wait for each other


class LockBusyError(StorageError):
    """A change's lock stayed taken by another operation for as long as it would wait."""


_HELD_GUARD = threading.Lock()  # replaced in a forked child: see `_forget_parents_locks`
_HELD: Final[set[tuple[int, int, int]]] = set()
_FDS_GUARD = threading.Lock()
"""Held while a lock file's descriptor is opened and noted, or let go of: a fork waits for it,
so that a child never copies a descriptor that its `PathLock` does not name."""


def stripe_of(path: str) -> int:
    """Return the lock file number of `path`, ignoring case as some disks do."""
    digest = hashlib.sha256(path.casefold().encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % LOCK_STRIPES


@attrs.define(eq=False)  # one lock is itself: `_LOCKS` holds it by identity
class PathLock:
    """Exclusive locks on the lock files of some paths, held until `release`.

    flock(2) excludes other processes, and other open descriptors in this one. A table of
    the stripes held in this process excludes its own threads even where flock is
    emulated with per-process locks (NFS).
    """

    held: list[tuple[int, int, int]]
    fds: list[int] = attrs.field(factory=list)

    def release(self) -> None:
        """Unlock: closing a descriptor drops its flock. Safe to call twice."""
        with _FDS_GUARD:
            fds, self.fds = self.fds, []
            for fd in fds:
                os.close(fd)
        with _HELD_GUARD:
            _HELD.difference_update(self.held)
        self.held = []


def try_lock(root_fd: int, paths: Iterable[str]) -> PathLock | None:
    """Lock the lock files of `paths` under `.locks/`, all or none; None when one is busy.

    Never waits, so holding one lock while waiting for another cannot deadlock.
    """
    stripes = sorted({stripe_of(path) for path in paths})
    root = os.fstat(root_fd)
    wanted = [(root.st_dev, root.st_ino, stripe) for stripe in stripes]
    with _HELD_GUARD:
        if not _HELD.isdisjoint(wanted):
            return None
        _HELD.update(wanted)
    lock = PathLock(wanted)
    _LOCKS.add(lock)
    try:
        with (
            storage_errors(LOCKS_DIR),
            owned(open_folder(root_fd, LOCKS_DIR, create=True)) as folder,
        ):
            for stripe in stripes:
                with _FDS_GUARD:
                    fd = _open_lock_file(folder, f"{stripe:03x}")
                    lock.fds.append(fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    lock.release()
                    return None
    except BaseException:
        lock.release()
        raise
    return lock


_LOCKS: Final[weakref.WeakSet[PathLock]] = weakref.WeakSet()
"""Every path lock this process has taken and not let go: a forked child closes theirs."""


def _forget_parents_locks() -> None:
    """Give a forked child none of the path locks its parent held, nor their table.

    A child forked while a tracked write waited for its record (a `multiprocessing` worker)
    kept copies of the lock files' descriptors, and flock(2) holds while any copy is open:
    the parent's next change of that path waited 60 s and failed busy, and the child, whose
    table said the stripe was its own, failed busy too. Its copies are closed, never
    unlocked, which would let go of the parent's lock. A fork waits for a descriptor being
    opened or let go of (`_FDS_GUARD`), which a child copied unnamed. The guards are new: a
    thread of the parent's may have held the one, and the fork held the other.
    """
    global _HELD_GUARD, _FDS_GUARD  # replaced in the child alone
    _HELD_GUARD, _FDS_GUARD = threading.Lock(), threading.Lock()
    _HELD.clear()
    for lock in list(_LOCKS):
        fds, lock.fds, lock.held = lock.fds, [], []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


def _hold_descriptors() -> None:
    """Before a fork: wait for the descriptor being opened or let go of (the guard of now)."""
    _FDS_GUARD.acquire()


def _free_descriptors() -> None:
    """After a fork, in the parent: let the guard go."""
    _FDS_GUARD.release()


os.register_at_fork(
    before=_hold_descriptors,
    after_in_parent=_free_descriptors,
    after_in_child=_forget_parents_locks,
)


def _open_lock_file(folder: int, name: str) -> int:
    """Open (made if need be) the lock file `name` in `.locks/`, a regular file and nothing else.

    Anything else there is refused, named for what it is, and left alone: looked at before
    the open, so a device is never opened, and again on the open descriptor.
    """
    shown = f"{LOCKS_DIR}/{name}"

    def refuse(mode: int) -> NotAFileError:
        reason = f"{kind_of(mode)}, not a regular file: move it away, a lock file belongs there"
        return NotAFileError(shown, reason)

    found = lstat(folder, name)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise refuse(found.st_mode)
    try:
        fd = os.open(name, _LOCK_FLAGS, 0o666, dir_fd=folder)
    except OSError as error:  # planted since it was looked at
        found = lstat(folder, name)
        if found is None or stat.S_ISREG(found.st_mode):
            raise
        raise refuse(found.st_mode) from error
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise refuse(mode)
    return fd


@attrs.define
class Change(Generic[T]):
    """A file change staged outside the lock, applied under the lock of its paths.

    Staging does the slow part (resolving, writing a partial file); `try_apply` takes the
    lock without waiting and, if it gets it, makes the change visible (a rename, an unlink,
    a read). The lock is held until `close`, so the caller can record the change first.
    `resources` holds what staging left (partial file, descriptors) until then.
    """

    root_fd: int
    paths: list[str]
    apply: Callable[[], T]
    resources: ExitStack
    shown: str
    lock: PathLock | None = None
    done: list[T] = attrs.field(factory=list)  # what applying returned, once applied

    def try_apply(self) -> bool:
        """Apply the change if its lock is free; return whether it has been applied."""
        if self.done:
            return True
        if self.paths and self.lock is None:
            self.lock = try_lock(self.root_fd, self.paths)
            if self.lock is None:
                return False
        with storage_errors(self.shown):
            self.done.append(self.apply())
        return True

    def close(self) -> None:
        """Release the lock and what staging left: partial file, descriptors. Idempotent."""
        with self.resources:
            if self.lock is not None:
                self.lock.release()


Check = Callable[[str], object]  # called with the path a change will record, before the disk
LOCK_TIMEOUT = 60.0  # seconds an operation waits for the lock of its paths before it gives up


async def settle(future: asyncio.Future[T]) -> tuple[T, bool]:
    """Wait for `future` to end even if cancelled meanwhile; say whether we were cancelled.

    A hop may rename a file, and a record write may be under way: neither is abandoned
    half way, so a change and its record are made whole or not at all. A `future` that
    another task cancelled, this one not cancelling, is a DatabaseError.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                refuse_cancel_from_outside(future)
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
    waiting = _WAITING.setdefault(loop, set())
    waiting.add(waiter)
    try:
        await asyncio.wait([waiter], timeout=seconds)
    finally:
        waiting.discard(waiter)


async def _wait_for_lock(change: Change[T], lock_wait: float) -> bool:
    """Retry applying until the lock is free; return whether we were cancelled meanwhile.

    Never blocks a worker thread on the lock: each try is one short hop. Between tries it
    waits until an operation of this loop frees a lock, or for a time growing to
    _LONGEST_WAIT when the holder is another process.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lock_wait
    wait = _FIRST_WAIT
    while not change.done:
        if loop.time() >= deadline:
            raise LockBusyError(change.shown, f"busy: its lock stayed taken for {lock_wait:g} s")
        await _pause(wait)
        wait = min(wait * 2, _LONGEST_WAIT)
        _, cancelled = await settle(loop.run_in_executor(None, change.try_apply))
        if cancelled:
            return True
    return False


_RECORD_TRIES: Final = 3
"""Times a record that states what the disk holds is written, its task cancelled each time."""


async def _recorded(
    record: Callable[[T], Awaitable[object]],
    again: Callable[[T], Awaitable[object]] | None,
    done: T,
) -> bool:
    """Write the record of a change applied; say whether the caller was cancelled meanwhile.

    The record is written in a task of its own, which code cancelling every task reaches (the
    end of `asyncio.run`, a shutdown handler): the change was left without its record. Given
    `again`, a record of what the disk holds, which may be written twice, is written by it once
    more after such a cancel; without, the cancel is raised, as `settle` says.
    """
    write, cancelled = record, False
    tries_left = _RECORD_TRIES - 1 if again is not None else 0
    while True:
        work = asyncio.ensure_future(write(done))
        try:
            _, interrupted = await settle(work)
        except (asyncio.CancelledError, DatabaseError) as error:
            if not (tries_left and work.cancelled()):
                raise
            # settle raises CancelledError only when the caller is being cancelled too
            cancelled = cancelled or isinstance(error, asyncio.CancelledError)
            write, tries_left = again or record, tries_left - 1
            continue
        return cancelled or interrupted


async def perform(
    stage: Callable[[], Change[T]],
    record: Callable[[T], Awaitable[object]] | None = None,
    *,
    lock_wait: float | None = None,
    record_again: Callable[[T], Awaitable[object]] | None = None,
) -> T:
    """Stage a change in a worker thread, apply it under its lock, then `record` it.

    A lock still busy after `lock_wait` seconds (LOCK_TIMEOUT by default; 0 tries once) is a
    LockBusyError, a StorageError, and nothing is applied.

    The lock is held until the record is written, so the last change on disk and the last
    record of a path agree, across tasks and processes. Cancelling waits for a hop or a
    record write under way to end; a change applied is always recorded. Each hop to a thread
    is the executor's future, not a task: code cancelling other tasks (a shutdown handler)
    cannot reach it, and lose the change it staged, its lock held. The record's task it can
    reach: `record_again` writes it once more then (`_recorded`).
    """
    hop = asyncio.get_running_loop().run_in_executor(None, _staged, stage)
    change, cancelled = await settle(hop)
    try:
        if not cancelled:
            cancelled = await _wait_for_lock(
                change, LOCK_TIMEOUT if lock_wait is None else lock_wait
            )
        if change.done and record is not None:
            interrupted = await _recorded(record, record_again, change.done[0])
            cancelled = cancelled or interrupted
        if cancelled:
            raise asyncio.CancelledError
        return change.done[0]
    finally:
        change.close()
        for waiter in _WAITING.get(asyncio.get_running_loop(), ()):  # they may try again now
            if not waiter.done():
                waiter.set_result(None)


def hold(fd: int) -> bool:
    """Lock the working file or folder just made at `fd` for as long as `fd` stays open.

    Gives False when it was removed (by another process's `remove_unheld`) before the lock
    was taken: then make another. Where the disk has no locks, none can remove it either.
    """
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)
    return os.fstat(fd).st_nlink > 0


def locked_folder(parent: str, prefix: str, suffix: str) -> tuple[str, int]:
    """Make a new folder in `parent` for this process's work, locked while the descriptor is open.

    First remove every folder there of the same prefix and suffix that no process holds: what
    a process killed at its work left. A folder is locked as soon as it is made; one removed by
    another process in that moment is made again. Give the folder and the descriptor to close
    (after the folder is removed) with `remove_locked_folder`.
    """
    parent_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC  # the caller's, links followed
    with contextlib.suppress(OSError), owned(os.open(parent, parent_flags)) as parent_fd:
        made = re.escape(prefix) + _MKDTEMP_PART + re.escape(suffix)
        remove_unheld(parent_fd, made, folders=True)
    while True:
        folder = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent)
        fd = os.open(folder, DIR_FLAGS)
        try:
            if hold(fd):  # not removed before the lock was taken
                return folder, fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def remove_locked_folder(made: tuple[str, int]) -> None:
    """Remove a folder that `locked_folder` made, then let go of its lock."""
    folder, fd = made
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def working_folder(make: Callable[[], tuple[str, int]]) -> AsyncIterator[Path]:
    """Make a locked working folder in a worker thread; remove it before the block is left.

    Cancelled meanwhile, the making and the removal are waited for, then the cancel goes on:
    the caller hears of it only once nothing is left (a removal handed to a thread, or to a
    callback once the making ended, went on after the caller was told).
    """
    making = asyncio.get_running_loop().run_in_executor(None, make)  # the executor's future:
    try:  # code cancelling other tasks cannot reach it
        made = await finish_then_cancel(making)
    except asyncio.CancelledError:
        if making.done() and not making.cancelled() and making.exception() is None:
            await finish_then_cancel(asyncio.to_thread(remove_locked_folder, making.result()))
        raise
    try:
        yield Path(made[0])
    finally:
        await finish_then_cancel(asyncio.to_thread(remove_locked_folder, made))


_MKDTEMP_PART: Final = "[a-z0-9_]{8}"
"""What `tempfile.mkdtemp` puts between a prefix and a suffix: 8 of its characters."""


def remove_unheld(parent_fd: int, made: str, *, folders: bool) -> None:
    """Remove the working folders (or files) in `parent_fd` that no process holds.

    What a process killed at its work left: its folder or file was locked (`hold`) while it
    worked. Only names that the regular expression `made` matches whole, the exact shape the
    package gives them, are looked at, and only real folders (or regular files of this user
    with one link): a folder or file of the user's named like one is left alone.
    """
    try:
        found = os.listdir(parent_fd)  # a descriptor, not a path
    except OSError:
        return
    shape = re.compile(made, re.DOTALL)
    for name in found:
        if not shape.fullmatch(name):  # a folder or file of the user's, however like one of ours
            continue
        seen = lstat(parent_fd, name)
        if seen is None or not (stat.S_ISDIR if folders else stat.S_ISREG)(seen.st_mode):
            continue  # never opened: a device, a FIFO, a link
        try:  # a file opened as every regular file is: a FIFO put there since is never waited on
            fd = (
                os.open(name, DIR_FLAGS, dir_fd=parent_fd)
                if folders
                else open_regular(parent_fd, name, name)
            )
        except (OSError, NotAFileError):  # gone, a link, not a folder, or not ours to open
            continue
        with owned(fd):
            info = os.fstat(fd)
            if not (folders or _ours(info)):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a process at work
                continue
            if folders:
                shutil.rmtree(name, dir_fd=parent_fd, ignore_errors=True)
                continue
            now = lstat(parent_fd, name)
            if now is not None and (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=parent_fd)


def unlink_unheld(dir_fd: int, name: str) -> bool:
    """Unlink the working file `name` unless a process holds it (`hold`); tell whether it went.

    The lock is kept through the unlink, and the name checked to be the file locked: a look
    that let the lock go first lost a write that took its own in between, whose rename then
    found its partial file gone. A file that cannot be opened as one is held by none.
    """
    try:
        fd = open_regular(dir_fd, name, name)
    except (OSError, NotAFileError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return True
    with owned(fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # a disk without locks: none can hold it either
            pass
        now = lstat(dir_fd, name)
        if now is None or not same_file(now, os.fstat(fd)):
            return False  # replaced meanwhile: the new one is another's, looked at anew later
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dir_fd)
        return True


def _ours(info: os.stat_result) -> bool:
    """Tell whether a file could be a working file this process's user made and left."""
    return stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and info.st_uid == os.geteuid()
