"""Artifacts on disk by their content: compiled binaries, generated inputs and the like.

`open_artifact_cache(storage)` keeps them under the storage root, in the reserved folder
`.cache/`: each at `.cache/artifacts/<2 hex digits>/<SHA-256 of the content>`.

- `put` writes the content to `.cache/incoming/`, fsyncs it and renames it into place, so
  an entry appears whole or not at all: a process killed mid-put leaves a partial file in
  `incoming/` (removed later) and never a torn entry. It returns the key, the SHA-256.
- `get` and `open` read by key, and mark the entry used (its modification time).
- The cache keeps to a size budget: when its entries pass it, the least recently used go,
  down to nine tenths of the budget. Eviction scans the folder under a lock that holds
  across processes. Each process counts what it adds and scans again once that passes a
  tenth of the budget, so several processes together pass the budget by at most about
  that much each between scans.
- Readers never see an entry change: a content-addressed entry is never rewritten, and
  one deleted while it is read stays readable until it is closed.

Hit and miss counts are this process's, in `stats()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Final

import attrs

from persistence._files.paths import CACHE_DIR, CHUNK_SIZE, storage_errors
from persistence.exceptions import ValidationError
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


class ArtifactCache:
    """Content-addressed files under a storage root, within a size budget; see the module."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder
        self.budget = budget
        self._entries = folder / "artifacts"
        self._incoming = folder / "incoming"
        self._lock_file = folder / "evict.lock"
        self._added = 0
        self._estimate = 0
        self._hits = self._misses = self._puts = self._evicted = 0

    def path_of(self, key: str) -> Path:
        """Where the entry of `key` lives."""
        key = _check_key(key)
        return self._entries / key[:2] / key

    # Writing.

    async def put(self, data: bytes) -> str:
        """Store `data` and return its key; storing the same content twice keeps one entry."""
        given: object = data
        if not isinstance(given, bytes | bytearray | memoryview):
            raise ValidationError("ArtifactCache", "data", f"expected bytes, got {type(data)}")
        key = await asyncio.to_thread(self._put, bytes(data))
        await self._keep_to_budget()
        return key

    async def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content, streamed in chunks, and return its key."""
        key = await asyncio.to_thread(self._put_file, Path(path))
        await self._keep_to_budget()
        return key

    def _put(self, data: bytes) -> str:
        key = hashlib.sha256(data).hexdigest()

        def write(fd: int) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        self._publish(key, len(data), write)
        return key

    def _put_file(self, source: Path) -> str:
        with storage_errors(str(source)), source.open("rb") as reader:
            digest = hashlib.sha256()
            partial = self._new_partial()
            size = 0
            try:
                with partial.open("wb") as writer:
                    while chunk := reader.read(CHUNK_SIZE):
                        digest.update(chunk)
                        writer.write(chunk)
                        size += len(chunk)
                    writer.flush()
                    os.fsync(writer.fileno())
                key = digest.hexdigest()
                self._move_in(partial, key, size)
            finally:
                partial.unlink(missing_ok=True)
        return key

    def _new_partial(self) -> Path:
        self._incoming.mkdir(parents=True, exist_ok=True)
        return self._incoming / f"{secrets.token_hex(8)}.partial"

    def _publish(self, key: str, size: int, write: object) -> None:
        target = self.path_of(key)
        with storage_errors(str(target)):
            if _touch(target):
                return
            partial = self._new_partial()
            try:
                fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                try:
                    assert callable(write)  # noqa: S101  # the writer of _put
                    write(fd)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._move_in(partial, key, size)
            finally:
                partial.unlink(missing_ok=True)

    def _move_in(self, partial: Path, key: str, size: int) -> None:
        """Rename a whole, fsynced partial file into place: the atomic publish."""
        target = self.path_of(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.replace(target)
        _fsync_folder(target.parent)
        self._puts += 1
        self._added += size
        self._estimate += size

    # Reading.

    async def get(self, key: str, *, verify: bool = False) -> bytes | None:
        """Return the content of `key`, or None; with `verify`, a damaged entry is a miss."""
        return await asyncio.to_thread(self._get, self.path_of(key), key, verify)

    def _get(self, path: Path, key: str, verify: bool) -> bytes | None:  # noqa: FBT001  # through to_thread, positionally
        with storage_errors(str(path)):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                self._misses += 1
                return None
            with os.fdopen(fd, "rb") as reader:
                data = reader.read()
            if verify and hashlib.sha256(data).hexdigest() != key:
                path.unlink(missing_ok=True)
                self._misses += 1
                return None
            _touch(path)
            self._hits += 1
            return data

    async def open(self, key: str) -> BinaryIO | None:
        """Open the entry of `key` for reading, or give None; the caller closes it."""
        return await asyncio.to_thread(self._open, self.path_of(key))

    def _open(self, path: Path) -> BinaryIO | None:
        with storage_errors(str(path)):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                self._misses += 1
                return None
            _touch(path)
            self._hits += 1
            return os.fdopen(fd, "rb")

    async def contains(self, key: str) -> bool:
        """Tell whether `key` is stored, without counting a hit or a miss."""
        return await asyncio.to_thread(self.path_of(key).is_file)

    # The budget.

    async def _keep_to_budget(self) -> None:
        if self._estimate > self.budget or self._added > self.budget // 10:
            await self.evict()

    async def evict(self) -> int:
        """Scan the entries now; delete the least recently used past the budget; give how many."""
        evicted, total = await asyncio.to_thread(self._evict)
        self._evicted += evicted
        self._estimate, self._added = total, 0
        return evicted

    def _evict(self) -> tuple[int, int]:
        with storage_errors(str(self._lock_file)), _locked(self._lock_file):
            entries = sorted(_scan(self._entries))
            total = sum(size for _, size, _ in entries)
            evicted = 0
            if total > self.budget:
                for _, size, path in entries:
                    if total <= self.budget * _LOW_WATER:
                        break
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        evicted += 1
                    total -= size
            _remove_orphans(self._incoming)
        return evicted, total

    async def size(self) -> int:
        """Give the bytes the entries take now, by a scan."""
        return sum(
            size for _, size, _ in await asyncio.to_thread(lambda: list(_scan(self._entries)))
        )

    def stats(self) -> ArtifactStats:
        """Return this process's hit, miss, put and eviction counts."""
        return ArtifactStats(self._hits, self._misses, self._puts, self._evicted)


def _touch(path: Path) -> bool:
    """Mark an entry used now; False when it does not exist."""
    try:
        os.utime(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _scan(entries: Path) -> Iterator[tuple[int, int, Path]]:
    """Give (last use in ns, size, path) of every entry."""
    if not entries.is_dir():
        return
    for shard in os.scandir(entries):
        if not shard.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(shard.path):
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode) and _KEY.fullmatch(entry.name):
                yield info.st_mtime_ns, info.st_size, Path(entry.path)


def _remove_orphans(incoming: Path) -> None:
    """Delete partial files that a killed put left long ago."""
    if not incoming.is_dir():
        return
    cutoff = time.time() - _PARTIAL_AGE
    for entry in os.scandir(incoming):
        with contextlib.suppress(FileNotFoundError):
            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                Path(entry.path).unlink()


async def open_artifact_cache(storage: Storage, *, budget: int = DEFAULT_BUDGET) -> ArtifactCache:
    """Open the artifact cache under `storage`'s root, keeping at most about `budget` bytes."""
    given: object = budget
    if isinstance(given, bool) or not isinstance(given, int) or budget < 1:
        raise ValidationError("ArtifactCache", "budget", f"must be a positive int, got {budget!r}")
    if not isinstance(storage, Storage):
        raise ValidationError("ArtifactCache", "storage", "expected a Storage from open_storage()")
    cache = ArtifactCache(storage.root / CACHE_DIR, budget)
    await cache.evict()
    return cache
