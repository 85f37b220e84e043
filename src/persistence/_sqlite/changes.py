"""SQLite's change watch: the WAL index header, which every commit by any process rewrites."""

from __future__ import annotations

import hashlib
import mmap
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs

from persistence._files.paths import open_regular
from persistence.exceptions import NotAFileError

_WAL_INDEX_HEADER: Final = 96  # at the start of the -shm file: the same 48 bytes twice


@attrs.define(eq=False)
class WalIndex:
    """A read-only mapping of one -shm file's header, shared by this process's backends."""

    fd: int
    header: mmap.mmap
    users: int = 1  # the backends that hold it


_WAL_INDEXES: Final[dict[tuple[int, int], WalIndex]] = {}  # by the file's device and inode
_WAL_INDEXES_GUARD = threading.Lock()


def map_wal_index(path: str) -> WalIndex | None:
    """Map the WAL index header of a WAL database read-only; None when there is none.

    Shared by this process's backends on the file, and held until the last has closed its
    connections: closing any descriptor of a file drops every POSIX lock the process holds
    on it, and SQLite keeps its shared-memory locks on this file while a connection is open.
    The -shm file is the one beside the real file, as SQLite names it: links followed.
    """
    shm = f"{os.path.realpath(path)}-shm"
    try:
        info = Path(shm).stat()
    except OSError:
        return None
    with _WAL_INDEXES_GUARD:
        found = _WAL_INDEXES.get((info.st_dev, info.st_ino))
        if found is not None:
            found.users += 1
            return found
        if not stat.S_ISREG(info.st_mode) or info.st_size < _WAL_INDEX_HEADER:
            return None
        try:  # what was looked at may be a FIFO now: `open_regular` never waits on one
            fd = open_regular(None, shm, shm)
        except (OSError, NotAFileError):
            return None
        try:
            opened = os.fstat(fd)
            header = mmap.mmap(fd, _WAL_INDEX_HEADER, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            os.close(fd)
            return None
        key = (opened.st_dev, opened.st_ino)
        assert key not in _WAL_INDEXES  # noqa: S101  # the path named the file just mapped
        index = _WAL_INDEXES[key] = WalIndex(fd, header)
        return index


_ABANDONED: Final[list[WalIndex]] = []
"""Holds of databases collected unclosed, given back by the next release: a finalizer runs
wherever the collector does, inside the guard too, so it takes no lock."""


def abandon_wal_indexes(indexes: list[WalIndex]) -> None:
    """Leave a collected backend's holds for the next release to give back; take no lock."""
    while indexes:
        _ABANDONED.append(indexes.pop())


def _new_guard() -> None:
    """Give a forked child a free guard: a thread of the parent's may have held it."""
    global _WAL_INDEXES_GUARD  # noqa: PLW0603  # replaced in the child alone
    _WAL_INDEXES_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_new_guard)


def release_wal_indexes(indexes: list[WalIndex]) -> None:
    """Give back a backend's holds on mappings, after it closed its connections; empty the list.

    Then close every mapping that no backend holds, unless this process still holds a lock on
    its file (a connection still open): such a one waits for a later release. A backend calls
    this after closing its connections even with no holds left, so a hold handed back while
    they were still open is not kept for good.
    """
    with _WAL_INDEXES_GUARD:
        while _ABANDONED:
            indexes.append(_ABANDONED.pop())
        while indexes:
            index = indexes.pop()
            assert index.users > 0  # noqa: S101  # each hold is released once
            index.users -= 1
        for key, unused in list(_WAL_INDEXES.items()):
            if unused.users == 0 and not _locked_here(key):
                del _WAL_INDEXES[key]
                unused.header.close()
                os.close(unused.fd)


def _locked_here(key: tuple[int, int]) -> bool:
    """Tell whether this process holds a POSIX lock on the file (Linux's /proc/locks)."""
    device, inode = key
    wanted = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    try:
        text = Path("/proc/locks").read_text(encoding="ascii")
    except OSError:  # no /proc: nothing to ask, so the mapping is closed
        return False
    pid = str(os.getpid())
    for line in text.splitlines():
        fields = line.replace("->", " ").split()
        if len(fields) > 5 and fields[4] == pid and fields[5] == wanted:  # noqa: PLR2004  # /proc/locks' columns
            return True
    return False


@attrs.define(eq=False)
class ChangeStamp:
    """SQLite's change watch: one version for every table, asked on each cached read.

    Comparing the mapped header's 96 bytes (https://www.sqlite.org/walformat.html) costs
    0.1 us where `PRAGMA data_version` costs 3.5 us; the pragma serves when there is no -shm
    file (an immutable database). A header mid-rewrite counts as a change.
    """

    _header: mmap.mmap | None
    _path: str = attrs.field(kw_only=True)
    _name: str | None = attrs.field(kw_only=True)  # the database's, by the file opened
    _data_version: Callable[[], int | None] = attrs.field(kw_only=True)
    _closed: Callable[[], bool] = attrs.field(kw_only=True)
    _last: bytes = attrs.field(default=b"", init=False)
    _count: int = attrs.field(default=0, init=False)

    def version(self, _table: str) -> int | None:
        """Give a number that changes with every commit to any table; None once closed."""
        header = self._header
        if header is None:
            return self._data_version()
        if self._closed():
            return None
        now = header[:_WAL_INDEX_HEADER]
        if now != self._last:
            self._count += 1
            half = _WAL_INDEX_HEADER // 2
            self._last = now if now[:half] == now[half:] else b""
        return self._count

    def stamp(self, _table: str) -> str | None:
        """Name the committed state of the file, alike in every process: see `wal_stamp`."""
        header = self._header
        if header is None or self._closed():
            return None
        return wal_stamp(header[:_WAL_INDEX_HEADER], self._path)

    def identity(self) -> str | None:
        """Name the file opened, as a copy does: see `persistence._sqlite.identity`."""
        return self._name

    async def sync(self) -> bool:
        """Nothing to wait for: every commit rewrites the header before it returns."""
        return not self._closed()

    async def close(self) -> None:
        """Nothing to close: the backend releases the mapping after its connections."""


_SALTS: Final = slice(32, 40)  # where the header keeps the WAL's salts, random for each new WAL


def wal_stamp(header: bytes, path: str) -> str | None:
    """Name a committed state of a WAL database by its WAL index header; None mid-rewrite.

    The header (the same bytes in every process) counts the transactions and holds the WAL's
    last frame, checksums and salts, random for each new WAL. Only a header rebuilt with no WAL
    file has no salts, and looks the same for any content: then the database file's size,
    modification time and inode tell the state instead.
    """
    half = len(header) // 2
    if header[:half] != header[half:] or not header[12]:  # being rewritten, or not set up
        return None
    extra = b""
    if not any(header[_SALTS]):
        try:
            info = Path(path).stat()
        except OSError:
            return None
        extra = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}".encode()
    return hashlib.blake2b(header[:half] + extra, digest_size=12).hexdigest()
