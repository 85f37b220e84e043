"""Locks on paths that hold across processes, and the changes applied under them.

Changes that the file store records (writes, copies, moves, deletes, tracked reads) and
the artifact cache's publishes are staged first, then applied under a lock on their
paths (`Change`, `try_lock`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Final, Generic, TypeVar

import attrs

from persistence._files.paths import LOCKS_DIR, storage_errors
from persistence._files.walk import open_folder
from persistence.exceptions import StorageError

T = TypeVar("T")

_LOCK_FLAGS: Final = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

LOCK_STRIPES: Final = 4096
"""Paths hash onto this many lock files: two paths on one file only wait for each other."""

_HELD_GUARD: Final = threading.Lock()
_HELD: Final[set[tuple[int, int, int]]] = set()


def stripe_of(path: str) -> int:
    """Return the lock file number of `path`, ignoring case as some disks do."""
    digest = hashlib.sha256(path.casefold().encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % LOCK_STRIPES


@attrs.define
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
    try:
        with storage_errors(LOCKS_DIR):
            folder = open_folder(root_fd, LOCKS_DIR, create=True)
            try:
                for stripe in stripes:
                    fd = os.open(f"{stripe:03x}", _LOCK_FLAGS, 0o666, dir_fd=folder)
                    lock.fds.append(fd)
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        reason = "a lock file is not a regular file"
                        raise StorageError(f"{LOCKS_DIR}/{stripe:03x}", reason)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        lock.release()
                        return None
            finally:
                os.close(folder)
    except BaseException:
        lock.release()
        raise
    return lock


class Change(Generic[T]):
    """A file change staged outside the lock, applied under the lock of its paths.

    Staging does the slow part (resolving, writing a partial file); `try_apply` takes the
    lock without waiting and, if it gets it, makes the change visible (a rename, an unlink,
    a read). The lock is held until `close`, so the caller can record the change first.
    """

    def __init__(
        self,
        root_fd: int,
        paths: list[str],
        apply: Callable[[], T],
        resources: ExitStack,
        shown: str,
    ) -> None:
        self.shown = shown
        self._root_fd = root_fd
        self._paths = paths
        self._apply = apply
        self._resources = resources
        self._lock: PathLock | None = None
        self._done: list[T] = []

    @property
    def applied(self) -> bool:
        """Whether the change has been made."""
        return bool(self._done)

    @property
    def result(self) -> T:
        """What applying the change returned."""
        return self._done[0]

    def try_apply(self) -> bool:
        """Apply the change if its lock is free; return whether it has been applied."""
        if self._done:
            return True
        if self._paths and self._lock is None:
            self._lock = try_lock(self._root_fd, self._paths)
            if self._lock is None:
                return False
        with storage_errors(self.shown):
            self._done.append(self._apply())
        return True

    def close(self) -> None:
        """Release the lock and what staging left: partial file, descriptors. Idempotent."""
        try:
            if self._lock is not None:
                self._lock.release()
        finally:
            self._resources.close()


Check = Callable[[str], object]
"""Called with the path a change will record, before anything on disk changes."""
