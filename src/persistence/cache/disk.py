"""Artifacts on disk by their content: compiled binaries, generated inputs and the like.

`open_artifact_cache(storage)` keeps them under the storage root, in the reserved folder
`.cache/`: each at `.cache/artifacts/<2 hex digits>/<SHA-256 of the content>`. It stands
on the file store's own stack (`persistence._files`):

- Every path is walked from a descriptor of the root, following no symlink: one in place
  of `.cache/`, `artifacts/`, `incoming/` or a shard folder is refused (OutsideRootError)
  by put and get, and passed over by eviction. Nothing outside the root is read, written
  or deleted.
- `put` writes the content to a partial file in `.cache/incoming/` and fsyncs it, then
  renames it into place under the entry's path lock and fsyncs the folder, so an entry
  appears whole or not at all. A process killed mid-put leaves a partial file, which a
  later eviction removes. An entry already there is kept if its content is right, and
  replaced if not: a put repairs a damaged entry.
- `get` and `open` check the SHA-256 of the content as they read it. An entry that does
  not match its key (a flipped byte, a truncated or empty file, a symlink or a special
  file in its place) is removed, under its lock, and counts as a miss.
- Reads mark an entry used (its modification time). Past the budget, eviction deletes the
  least recently used down to nine tenths of it, under a lock that holds across
  processes. Each process counts what it adds and scans again once that passes a tenth of
  the budget, so several processes pass the budget by at most about that much each.
- A reader never sees an entry change: entries are replaced by rename only, and one
  deleted while it is read stays readable until it is closed. `contains` does not read
  the content.

Hit and miss counts are this process's, in `stats()`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import re
import stat
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from persistence._files.content import Partial, hash_fd, read_fd, write_all
from persistence._files.locks import Change, try_lock
from persistence._files.paths import CACHE_DIR, Written, is_partial_name, storage_errors
from persistence._files.running import perform
from persistence._files.walk import (
    Spot,
    locate,
    lstat,
    must_be_regular,
    open_folder,
    open_regular,
    open_root,
    same_file,
)
from persistence._guards import argument, at_least, byte_string
from persistence.exceptions import NotAFileError, OutsideRootError, ValidationError
from persistence.storage import Storage

__all__ = [
    "DEFAULT_BUDGET",
    "ArtifactCache",
    "ArtifactStats",
    "open_artifact_cache",
]

DEFAULT_BUDGET: Final = 1024**3
"""Bytes the artifact cache keeps, by default: 1 GiB."""

_KEY: Final = re.compile(r"[0-9a-f]{64}")
_PARTIAL_AGE: Final = 3600.0  # seconds after which a partial file in incoming/ is an orphan
_LOW_WATER: Final = 0.9
_ENTRIES: Final = "artifacts"
_INCOMING: Final = "incoming"


@attrs.frozen
class ArtifactStats:
    """What this process's artifact cache has done since it opened."""

    hits: int = 0
    misses: int = 0
    puts: int = 0
    evicted: int = 0


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValidationError("ArtifactCache", "key", f"must be 64 lower-case hex digits: {key!r}")
    return key


def _entry(key: str) -> str:
    return f"{CACHE_DIR}/{_ENTRIES}/{key[:2]}/{key}"


def _locate(root: Path, path: str) -> Spot:
    return locate(root, path, reserved_ok=True, links=False)


# Reading: in a worker thread -------------------------------------------------------------


def _drop(spot: Spot, seen: os.stat_result) -> None:
    """Remove a bad entry if it is still the file `seen`; leave it to a put that holds its lock."""
    lock = try_lock(spot.root_fd, [spot.path])
    if lock is None:
        return
    try:
        now = lstat(spot.dir_fd, spot.require())
        if now is not None and not stat.S_ISDIR(now.st_mode) and same_file(now, seen):
            os.unlink(spot.require(), dir_fd=spot.dir_fd)
    finally:
        lock.release()


def _checked(spot: Spot, *, whole: bool) -> tuple[int, bytes] | None:
    """Open the entry at `spot`, checking its hash as it is read; remove it if bad.

    Gives its descriptor, rewound, and with `whole` its content; None when it is missing
    or bad.
    """
    if spot.missing or (seen := lstat(spot.dir_fd, spot.require())) is None:
        return None
    fd = None
    with suppress(NotAFileError, FileNotFoundError):  # a symlink or special file, or gone
        fd = open_regular(spot.dir_fd, spot.require(), spot.shown)
    if fd is not None:
        try:
            seen = os.fstat(fd)
            data = read_fd(fd) if whole else b""
            digest = hashlib.sha256(data).hexdigest() if whole else hash_fd(fd).sha256
            if digest == spot.require():
                os.utime(fd)  # used now: the least recently used go first
                os.lseek(fd, 0, os.SEEK_SET)
                return fd, data
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    _drop(spot, seen)
    return None


def _get(root: Path, key: str) -> bytes | None:
    with _locate(root, _entry(key)) as spot, storage_errors(spot.shown):
        found = _checked(spot, whole=True)
        if found is None:
            return None
        os.close(found[0])
        return found[1]


def _open(root: Path, key: str) -> BinaryIO | None:
    with _locate(root, _entry(key)) as spot, storage_errors(spot.shown):
        found = _checked(spot, whole=False)
        return None if found is None else os.fdopen(found[0], "rb")


def _contains(root: Path, key: str) -> bool:
    with _locate(root, _entry(key)) as spot, storage_errors(spot.shown):
        if spot.missing:
            return False
        info = lstat(spot.dir_fd, spot.require())
        return info is not None and stat.S_ISREG(info.st_mode)


# Writing: staged in a worker thread, published under the entry's lock -----------------


def _stage_put(root: Path, fill: Callable[[int], Written]) -> Change[tuple[str, int | None]]:
    """Fill a partial file in incoming/ with `fill`; applying renames it into place.

    Applying gives the key and the bytes added, or None when a right entry was already
    there: that one is only marked used.
    """
    with ExitStack() as stack:
        incoming = stack.enter_context(_locate(root, f"{CACHE_DIR}/{_INCOMING}/new"))
        with storage_errors(incoming.shown):
            incoming.make_folders()
            partial = Partial.create(incoming.dir_fd, "artifact")
            stack.callback(partial.discard)
            written = fill(partial.fd)
        key = written.sha256
        spot = stack.enter_context(_locate(root, _entry(key)))
        with storage_errors(spot.shown):
            spot.make_folders()
            found = _checked(spot, whole=False)
            if found is not None:
                os.close(found[0])
                return Change(spot.root_fd, [], lambda: (key, None), stack.pop_all(), spot.shown)
            os.fsync(partial.fd)

        def apply() -> tuple[str, int | None]:
            partial.commit(spot.dir_fd, key)
            return key, written.size

        return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), spot.shown)


def _fill_bytes(data: bytes, fd: int) -> Written:
    write_all(fd, memoryview(data))
    return Written(len(data), hashlib.sha256(data).hexdigest())


def _fill_file(source: str, fd: int) -> Written:
    """Copy the regular file `source` (followed if a symlink: it is the caller's) into `fd`."""
    with storage_errors(source):
        source_fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            must_be_regular(os.fstat(source_fd).st_mode, source)
            os.set_blocking(source_fd, True)
            return hash_fd(source_fd, fd)
        finally:
            os.close(source_fd)


# Eviction: under the lock of .cache, which holds across processes ------------------------


def _folder(dir_fd: int, name: str) -> int | None:
    """Open the real folder `name`; None when it is missing or not a real folder."""
    with suppress(FileNotFoundError, OutsideRootError):
        return open_folder(dir_fd, name, create=False)
    return None


def _scan(entries: int) -> list[tuple[int, int, str, str]]:
    """Give (last use in ns, size, shard, key) of every entry; symlinks are passed over."""
    found = []
    with os.scandir(entries) as shards:
        for shard in shards:
            fd = _folder(entries, shard.name)
            if fd is None:
                continue
            try:
                with os.scandir(fd) as listed:
                    for entry in listed:
                        with suppress(FileNotFoundError):
                            info = entry.stat(follow_symlinks=False)
                            if stat.S_ISREG(info.st_mode) and _KEY.fullmatch(entry.name):
                                found.append(
                                    (info.st_mtime_ns, info.st_size, shard.name, entry.name)
                                )
            finally:
                os.close(fd)
    return found


def _evict(entries: int, budget: int) -> tuple[int, int]:
    """Delete the least recently used entries past `budget`; give how many, and the bytes left."""
    found = sorted(_scan(entries))
    total = sum(size for _, size, _, _ in found)
    evicted = 0
    for _, size, shard, name in found if total > budget else ():
        if total <= budget * _LOW_WATER:
            break
        fd = _folder(entries, shard)
        if fd is not None:
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
                evicted += 1
            os.close(fd)
        total -= size
    return evicted, total


def _remove_orphans(incoming: int) -> None:
    """Delete the partial files that puts killed long ago left."""
    cutoff = time.time() - _PARTIAL_AGE
    with os.scandir(incoming) as listed:
        for entry in listed:
            with suppress(FileNotFoundError):
                if (
                    is_partial_name(entry.name)
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff
                ):
                    os.unlink(entry.name, dir_fd=incoming)


def _stage_evict(root: Path, budget: int | None) -> Change[tuple[int, int]]:
    """Open the cache's folders; applying evicts past `budget` (None: only counts)."""
    with ExitStack() as stack, storage_errors(CACHE_DIR):
        root_fd = stack.enter_context(open_root(root))
        cache = _folder(root_fd, CACHE_DIR)
        folders = {} if cache is None else {n: _folder(cache, n) for n in (_ENTRIES, _INCOMING)}
        for fd in (cache, *folders.values()):
            if fd is not None:
                stack.callback(os.close, fd)

        def apply() -> tuple[int, int]:
            entries, incoming = folders.get(_ENTRIES), folders.get(_INCOMING)
            if incoming is not None and budget is not None:
                _remove_orphans(incoming)
            if entries is None:
                return 0, 0
            if budget is None:
                return 0, sum(size for _, size, _, _ in _scan(entries))
            return _evict(entries, budget)

        paths = [] if budget is None else [CACHE_DIR]
        return Change(root_fd, paths, apply, stack.pop_all(), CACHE_DIR)


class ArtifactCache:
    """Content-addressed files under a storage root, within a size budget; see the module."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder
        self.budget = budget
        self._root = folder.parent
        self._added = 0
        self._estimate = 0
        self._hits = self._misses = self._puts = self._evicted = 0

    def path_of(self, key: str) -> Path:
        """Where the entry of `key` lives."""
        return self._root / _entry(_check_key(key))

    async def put(self, data: bytes) -> str:
        """Store `data` and return its key; storing the same content twice keeps one entry."""
        data = byte_string("ArtifactCache", "data", data)
        return await self._put(functools.partial(_fill_bytes, data))

    async def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content, streamed in chunks, and return its key."""
        return await self._put(functools.partial(_fill_file, os.fspath(path)))

    async def _put(self, fill: Callable[[int], Written]) -> str:
        key, added = await perform(functools.partial(_stage_put, self._root, fill))
        if added is not None:
            self._puts += 1
            self._added += added
            self._estimate += added
        if self._estimate > self.budget or self._added > self.budget // 10:
            await self.evict()
        return key

    async def get(self, key: str) -> bytes | None:
        """Return the content of `key`, or None; an entry that fails its hash is a miss."""
        data = await asyncio.to_thread(_get, self._root, _check_key(key))
        self._count(data is not None)
        return data

    async def open(self, key: str) -> BinaryIO | None:
        """Open the entry of `key` for reading once its hash is checked, or give None.

        The caller closes it.
        """
        opened = await asyncio.to_thread(_open, self._root, _check_key(key))
        self._count(opened is not None)
        return opened

    def _count(self, hit: bool) -> None:  # noqa: FBT001  # a plain flag
        if hit:
            self._hits += 1
        else:
            self._misses += 1

    async def contains(self, key: str) -> bool:
        """Tell whether `key` is stored, without counting a hit or a miss."""
        return await asyncio.to_thread(_contains, self._root, _check_key(key))

    async def evict(self) -> int:
        """Scan the entries now; delete the least recently used past the budget; give how many."""
        evicted, total = await perform(functools.partial(_stage_evict, self._root, self.budget))
        self._evicted += evicted
        self._estimate, self._added = total, 0
        return evicted

    async def size(self) -> int:
        """Give the bytes the entries take now, by a scan."""
        _, total = await perform(functools.partial(_stage_evict, self._root, None))
        return total

    def stats(self) -> ArtifactStats:
        """Return this process's hit, miss, put and eviction counts."""
        return ArtifactStats(self._hits, self._misses, self._puts, self._evicted)


async def open_artifact_cache(storage: Storage, *, budget: int = DEFAULT_BUDGET) -> ArtifactCache:
    """Open the artifact cache under `storage`'s root, keeping at most about `budget` bytes."""
    budget = at_least("ArtifactCache", "budget", budget, 1)
    storage = argument(
        "ArtifactCache", "storage", Storage, storage, "a Storage from open_storage()"
    )
    cache = ArtifactCache(storage.root / CACHE_DIR, budget)
    await cache.evict()
    return cache
