"""Artifacts on disk by their content: compiled binaries, generated inputs and the like.

Each lives at `.cache/artifacts/<2 hex digits>/<SHA-256 of the content>` under the storage
root, within a byte budget, least recently used out first, on the file store's walk, locks
and atomic publish (`persistence._files`), following no symlink. Every read checks the
hash: a bad entry is removed and is a miss, and a put repairs it. docs/CACHE.md tells how.
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

from persistence._files.content import Partial, hash_fd, read_fd, write_hashed
from persistence._files.locks import Change, perform, settle, try_lock
from persistence._files.paths import (
    CACHE_DIR,
    Spot,
    Written,
    check_path,
    is_partial_name,
    locate,
    lstat,
    open_folders,
    open_regular,
    open_root,
    owned,
    same_file,
    storage_errors,
)
from persistence._files.tree import set_aside, unlink_if_old
from persistence._guards import at_least, byte_string
from persistence._loop import empty_in_pieces, sorted_in_pieces
from persistence.exceptions import (
    NotAFileError,
    OutsideRootError,
    StorageError,
    StoragePermissionError,
    ValidationError,
)
from persistence.storage import Storage, storage_root

__all__ = ["DEFAULT_BUDGET", "ArtifactCache", "ArtifactStats", "open_artifact_cache"]

DEFAULT_BUDGET: Final = 1024**3
"""Bytes the artifact cache keeps, by default: 1 GiB."""

_KEY: Final = re.compile(r"[0-9a-f]{64}")
_PARTIAL_AGE: Final = 3600.0  # seconds after which a partial file in incoming/ is an orphan
_LOW_WATER: Final = 0.9
_SET_ASIDE_TRIES: Final = 4  # publishes tried while folders keep appearing in an entry's place
_ENTRIES: Final = f"{CACHE_DIR}/artifacts"
_INCOMING: Final = f"{CACHE_DIR}/incoming"


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


def is_key(text: str) -> bool:
    """Tell whether `text` is a key: a SHA-256 in 64 lower-case hex digits."""
    return _KEY.fullmatch(text) is not None


def entry_at(key: str, folder: str = _ENTRIES) -> str:
    """Where the entry of a checked `key` in `folder` lives, relative to the root."""
    return f"{folder}/{key[:2]}/{key}"


_locate = functools.partial(locate, reserved_ok=True, links=False)  # no symlink in the cache


# In worker threads: reading ---------------------------------------------------------------


def _drop(spot: Spot, seen: os.stat_result) -> None:
    """Remove a bad entry if it is still the file `seen`; a put holding its lock replaces it.

    A folder there is moved aside into `.tmp/` and removed there.
    """
    lock = try_lock(spot.root_fd, [spot.path])
    if lock is None:
        return
    try:
        now = lstat(spot.dir_fd, spot.require())
        if now is None or not same_file(now, seen):
            return  # replaced meanwhile: not the bad entry any more
        if stat.S_ISDIR(now.st_mode):
            with suppress(OSError, StorageError):  # one it cannot move stays a miss; a put says why
                set_aside(spot.root_fd, spot.dir_fd, spot.require())
        else:
            os.unlink(spot.require(), dir_fd=spot.dir_fd)
    finally:
        lock.release()


def _checked(
    spot: Spot,
    stack: ExitStack,
    *,
    whole: bool = False,
    cached: bool = True,
    most: int | None = None,
) -> tuple[int, bytes] | None:
    """Open the entry at `spot`, closed with `stack`, checking its hash as it is read.

    Gives its descriptor, rewound, and with `whole` its content; None if missing or bad. A
    `cached` entry that is bad is removed, and a good one marked used. One of more than one
    link is bad there: its content may change through a name outside the cache, after the
    hash was checked, and a `get` marking it used would change that file's time. A kept file,
    not `cached`, is never removed or touched by a read: a result may name it, and its content,
    read `whole`, is checked as it was read.
    """
    if spot.missing or (seen := lstat(spot.dir_fd, spot.require())) is None:
        return None
    with suppress(NotAFileError, FileNotFoundError):  # a symlink, or gone
        fd = open_regular(spot.dir_fd, spot.require(), spot.shown)
        stack.callback(os.close, fd)
        seen = os.fstat(fd)
        # A publish makes a file of one link: a hard link came from outside. One larger than
        # `most` (the cache's budget, which no put passes) is bad too, found so unread: a file
        # planted at 1 TiB raised a bare MemoryError, and one of 3 GiB was read whole first.
        if (seen.st_nlink != 1 or (most is not None and seen.st_size > most)) and cached:
            _drop(spot, seen)
            return None
        data = read_fd(fd) if whole else b""
        if (hashlib.sha256(data).hexdigest() if whole else hash_fd(fd).sha256) == spot.require():
            if cached:
                os.utime(fd)  # used now: the least recently used go first
            os.lseek(fd, 0, os.SEEK_SET)
            return fd, data
    if cached:
        _drop(spot, seen)
    return None


def _good(spot: Spot, *, cached: bool = True) -> bool:
    """Tell whether the entry at `spot` is there and whole (`_checked`: a bad cached one goes)."""
    with ExitStack() as stack:
        return _checked(spot, stack, cached=cached) is not None


def read_entry(
    root: Path, folder: str, key: str, *, cached: bool = True, most: int | None = None
) -> bytes | None:
    """Give the content of `key` in `folder` once its hash is checked, or None (`_checked`)."""
    with _locate(root, entry_at(_check_key(key), folder)) as spot, ExitStack() as stack:
        stack.enter_context(storage_errors(spot.shown))
        found = _checked(spot, stack, whole=True, cached=cached, most=most)
        return None if found is None else found[1]


def _open(root: Path, key: str) -> BinaryIO | None:
    with _locate(root, entry_at(key)) as spot, storage_errors(spot.shown), ExitStack() as stack:
        found = _checked(spot, stack)
        if found is None:
            return None
        stack.pop_all()  # the caller closes it
        return os.fdopen(found[0], "rb")


def has_entry(root: Path, folder: str, key: str) -> bool:
    """Tell whether `key` is a regular file in `folder`, by the confined walk: no symlink."""
    with _locate(root, entry_at(key, folder)) as spot, storage_errors(spot.shown):
        info = None if spot.missing else lstat(spot.dir_fd, spot.require())
        return info is not None and stat.S_ISREG(info.st_mode)


# In worker threads: writing, staged and then published under the entry's lock ------------


def _stage_put(
    root: Path, fill: Callable[[int], Written], folder: str = _ENTRIES, *, hold: bool = False
) -> Change[tuple[str, int | None]]:
    """Fill a partial file in incoming/; applying moves it to `folder`: (key, bytes added).

    None is added when a right entry was there. With `hold`, it is locked all the same and
    looked at again under the lock: the caller's reference to the entry is recorded while
    no sweep can remove it. A held entry is a kept file, not a cache's: a look at it removes
    nothing (a hard link to it is no fault), and a damaged one is replaced by the rename.
    """
    with ExitStack() as stack:
        incoming = stack.enter_context(_locate(root, f"{_INCOMING}/new"))
        with storage_errors(incoming.shown):
            incoming.make_folders()
            partial = Partial.create(incoming.dir_fd, "artifact")
            stack.callback(partial.discard)
            written = fill(partial.fd)
        key = written.sha256
        spot = stack.enter_context(_locate(root, entry_at(key, folder)))
        with storage_errors(spot.shown):
            spot.make_folders()
            found = _good(spot, cached=not hold)
            if found and not hold:  # a right entry, marked used: nothing to publish
                return Change(spot.root_fd, [], lambda: (key, None), stack.pop_all(), key)
            if not found:
                os.fsync(partial.fd)

        def apply() -> tuple[str, int | None]:
            if found:  # held: is the entry still there, whole?
                if _good(spot, cached=False):
                    return key, None
                os.fsync(partial.fd)
            for _ in range(_SET_ASIDE_TRIES - 1):
                try:
                    partial.commit(spot.dir_fd, key)
                except IsADirectoryError:  # a folder, which no rename replaces, goes aside
                    set_aside(spot.root_fd, spot.dir_fd, key)
                else:
                    return key, written.size
            partial.commit(spot.dir_fd, key)  # a folder planted each time: NotAFileError
            return key, written.size

        return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), spot.shown)


def _fill_file(source: str, sink: int, *, budget: int) -> Written:
    """Copy the regular file `source` (a symlink is followed: the caller named it) to `sink`.

    One larger than `budget` is refused before it is copied, and one that grows past it while
    it is copied as soon as it has: the put's partial file is then removed. It was refused
    once copied whole, and a source growing without end filled the disk first.
    """
    with storage_errors(source):
        fd = open_regular(None, source, source, follow=True)
    with owned(fd):  # a failure to write (a full disk) is named by the put, as the cache's
        _within(budget, os.fstat(fd).st_size, "path")
        written = hash_fd(fd, sink, source=source, most=budget)
    _within(budget, written.size, "path")
    return written


def _within(budget: int, size: int, argument: str) -> None:
    """Refuse content larger than the whole budget: stored, it evicted every entry, then itself."""
    if size > budget:
        reason = f"holds {size:,} bytes, more than the cache's budget of {budget:,}"
        raise ValidationError("ArtifactCache", argument, reason)


def stage_held_puts(
    root: Path, folder: str, contents: list[bytes]
) -> Change[list[tuple[str, int | None]]]:
    """Stage putting each of `contents` into `folder` under one lock; applying gives each put's.

    The lock is held until the change is closed, so a reference recorded meanwhile is
    written before any sweep (`stage_hold_entries`) can look at the entries.
    """
    with ExitStack() as stack:
        changes = []
        for data in contents:
            change = _stage_put(root, functools.partial(write_hashed, data), folder, hold=True)
            stack.callback(change.close)
            changes.append(change)
        paths = [path for change in changes for path in change.paths]

        def apply() -> list[tuple[str, int | None]]:
            return [change.apply() for change in changes]

        return Change(changes[0].root_fd, paths, apply, stack.pop_all(), folder)


@attrs.frozen
class HeldEntries:
    """The entries of some keys in one shard folder, locked until the change giving them closes.

    Whoever holds them may remove them (`remove_entries`): no held put can publish or use one.
    """

    keys: frozenset[str]
    root_fd: int  # the storage root, open until the change giving them closes
    shown: str  # the shard folder, from the root


def stage_hold_entries(root: Path, folder: str, keys: list[str]) -> Change[HeldEntries]:
    """Stage taking the locks of the entries `keys` in `folder`, all or none; applying gives them.

    The keys are of one shard. `try_lock` takes their lock files in sorted order and never
    waits for one while it holds another, so two sweeps, or a sweep and a put, never deadlock.
    """
    keys = [_check_key(key) for key in keys]
    shard = keys[0][:2]
    if any(key[:2] != shard for key in keys):
        raise ValueError(f"the keys are not all of shard {shard}")
    shown = f"{folder}/{shard}"
    with ExitStack() as stack, storage_errors(shown):
        root_fd = stack.enter_context(open_root(root))
        held = HeldEntries(frozenset(keys), root_fd, shown)
        paths = [entry_at(key, folder) for key in keys]
        return Change(root_fd, paths, lambda: held, stack.pop_all(), shown)


def remove_entries(held: HeldEntries, keys: list[str]) -> int:
    """Remove the regular files of `keys`, held, that are there; give how many were removed.

    The shard folder is opened now, from the root, following no symlink: one moved out of
    the root since the locks were taken is not where the held paths lead any more. Before
    each unlink, every folder on the way is looked at again: once one has been moved (out
    of the root, perhaps), no more files go.
    """
    if not held.keys.issuperset(keys):
        raise ValueError("removes only the entries whose locks are held")
    removed = 0
    with ExitStack() as stack, storage_errors(held.shown):
        way: list[tuple[int, str, os.stat_result]] = []  # (parent, name, the folder opened)
        shard_fd = held.root_fd
        for name in held.shown.split("/"):
            opened = _real_folder(stack, shard_fd, name)
            if opened is None:  # no real shard folder: nothing there to remove
                return 0
            way.append((shard_fd, name, os.fstat(opened)))
            shard_fd = opened
        for key in keys:
            with suppress(FileNotFoundError, IsADirectoryError):  # a folder swapped in since
                info = lstat(shard_fd, key)
                if info is not None and stat.S_ISREG(info.st_mode):
                    if not _in_place(way):
                        break
                    os.unlink(key, dir_fd=shard_fd)
                    removed += 1
    return removed


def _in_place(way: list[tuple[int, str, os.stat_result]]) -> bool:
    """Tell whether each folder of `way` is still the one at its name in its parent."""
    for parent, name, opened in way:
        now = lstat(parent, name)
        if now is None or not same_file(now, opened):
            return False
    return True


def entry_keys(root: Path, folder: str) -> list[str]:
    """Give the keys of the entries in `folder`, sorted; symlinks are passed over."""
    found = _scan_folder(root, folder)
    keys = [key for _, _, _, key in found]
    empty_in_pieces(found)
    return sorted_in_pieces(keys)


_SHARD: Final = re.compile(r"[0-9a-f]{2}")


def shard_names(root: Path, folder: str) -> list[str]:
    """Give the names of the real shard folders in `folder` (two hex digits), sorted."""
    with ExitStack() as stack, storage_errors(folder):
        entries = _real_folder(stack, stack.enter_context(open_root(root)), *folder.split("/"))
        if entries is None:
            return []
        with os.scandir(entries) as found:
            names = [entry.name for entry in found if _SHARD.fullmatch(entry.name)]
        return sorted(names)


def shard_keys(root: Path, folder: str, shard: str) -> list[str]:
    """Give the keys of the entries in one shard of `folder`, sorted; symlinks are passed over.

    Only the keys that live there (`entry_at`): a file of another shard's key is no entry.
    """
    with ExitStack() as stack, storage_errors(f"{folder}/{shard}"):
        root_fd = stack.enter_context(open_root(root))
        fd = _real_folder(stack, root_fd, *folder.split("/"), shard)
        if fd is None:
            return []
        with os.scandir(fd) as found:
            keys = [
                entry.name
                for entry in found
                if entry.name.startswith(shard)
                and _KEY.fullmatch(entry.name)
                and entry.is_file(follow_symlinks=False)
            ]
        return sorted(keys)


# In worker threads: eviction, under the lock of .cache -----------------------------------


def _real_folder(stack: ExitStack, dir_fd: int, *names: str) -> int | None:
    """Open the real folders `names`, closed with `stack`; None if missing or not real."""
    with suppress(OutsideRootError, NotAFileError):  # a symlink or a file: passed over
        return open_folders(stack, dir_fd, list(names), create=False)
    return None


def _scan_folder(root: Path, folder: str) -> list[tuple[int, int, str, str]]:
    """Give `_scan` of `folder`, or nothing when it is missing or not a real folder."""
    with ExitStack() as stack, storage_errors(folder):
        entries = _real_folder(stack, stack.enter_context(open_root(root)), *folder.split("/"))
        return [] if entries is None else _scan(entries)


def _scan(entries: int) -> list[tuple[int, int, str, str]]:
    """Give (last use in ns, size, shard, key) of every entry; symlinks are passed over."""
    found = []
    with os.scandir(entries) as shards:
        for shard in shards:
            with ExitStack() as stack:
                # One that may not be read or searched (another user's, a chmod) is passed
                # over: every put failed on it, though its entry was stored, and nothing was
                # evicted again.
                try:
                    fd = _real_folder(stack, entries, shard.name)
                    listed = [] if fd is None else list(stack.enter_context(os.scandir(fd)))
                except (PermissionError, StoragePermissionError):
                    continue
                for entry in listed:
                    with suppress(FileNotFoundError, PermissionError):
                        info = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(info.st_mode) and _KEY.fullmatch(entry.name):
                            found.append((info.st_mtime_ns, info.st_size, shard.name, entry.name))
    return found


def _scanned_size(root: Path) -> int:
    """Give the bytes the entries under `root` take: summed in the scan's thread, not the loop's."""
    found = _scan_folder(root, _ENTRIES)
    total = sum(size for _, size, _, _ in found)
    empty_in_pieces(found)
    return total


def _evict(entries: int, budget: int, keep: str | None) -> tuple[int, int]:
    """Delete the least recently used entries past `budget`; give how many, and the bytes left.

    `keep` stays: a put's eviction keeps what it put, which was gone at once near the budget.
    """
    found = sorted_in_pieces(_scan(entries))  # in a thread: the loop's GIL shared
    total = sum(size for _, size, _, _ in found)
    evicted = 0
    for _, size, shard, name in found if total > budget else ():
        if total <= budget * _LOW_WATER:
            break
        if name == keep:
            continue
        try:
            with ExitStack() as stack, suppress(FileNotFoundError, IsADirectoryError):
                fd = _real_folder(stack, entries, shard)  # what is no file now is passed over
                info = None if fd is None else lstat(fd, name)
                if fd is not None and info is not None and stat.S_ISREG(info.st_mode):
                    os.unlink(name, dir_fd=fd)  # a folder swapped in since is EISDIR
                    evicted += 1
        except (PermissionError, StoragePermissionError):
            continue  # in a folder it may not write (another user's): the entry stays, counted
        total -= size
    empty_in_pieces(found)
    return evicted, total


def _stage_evict(root: Path, budget: int, keep: str | None) -> Change[tuple[int, int]]:
    """Open the cache's folders; applying evicts past `budget`, but `keep`, and removes orphans."""
    with ExitStack() as stack, storage_errors(CACHE_DIR):
        root_fd = stack.enter_context(open_root(root))
        entries = _real_folder(stack, root_fd, CACHE_DIR, "artifacts")
        incoming = _real_folder(stack, root_fd, CACHE_DIR, "incoming")

        def apply() -> tuple[int, int]:
            if incoming is not None:  # the partial files of puts killed long ago
                for name in filter(is_partial_name, os.listdir(incoming)):  # noqa: PTH208  # an fd
                    unlink_if_old(Path(), name, incoming, time.time() - _PARTIAL_AGE)
            return (0, 0) if entries is None else _evict(entries, budget, keep)

        return Change(root_fd, [CACHE_DIR], apply, stack.pop_all(), CACHE_DIR)


class ArtifactCache:
    """Content-addressed files under a storage root, within a size budget; see the module."""

    def __init__(self, folder: Path, budget: int) -> None:
        self.folder = folder
        self.budget = budget
        self._root = folder.parent
        self._added = self._estimate = 0
        self._hits = self._misses = self._puts = self._evicted = 0

    def path_of(self, key: str) -> Path:
        """Where the entry of `key` lives."""
        return self._root / entry_at(_check_key(key))

    async def put(self, data: bytes) -> str:
        """Store `data` and return its key; storing the same content twice keeps one entry."""
        data = byte_string("ArtifactCache", "data", data)
        _within(self.budget, len(data), "data")
        return await self._put(functools.partial(write_hashed, data))

    async def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a file's content, streamed in chunks, and return its key."""
        return await self._put(functools.partial(_fill_file, check_path(path), budget=self.budget))

    async def _put(self, fill: Callable[[int], Written]) -> str:
        key, added = await perform(functools.partial(_stage_put, self._root, fill))
        if added is not None:
            self._puts += 1
            self._added += added
            self._estimate += added
        if self._estimate > self.budget or self._added > self.budget // 10:
            await self._evict(key)
        return key

    async def get(self, key: str) -> bytes | None:
        """Return the content of `key`, or None; an entry that fails its hash is a miss."""
        data = await asyncio.to_thread(read_entry, self._root, _ENTRIES, key, most=self.budget)
        self._hits += data is not None
        self._misses += data is None
        return data

    async def open(self, key: str) -> BinaryIO | None:
        """Open the entry of `key` once its hash is checked (the caller closes it), or None."""
        # The executor's future, not a task: code cancelling other tasks cannot reach it.
        hop = asyncio.get_running_loop().run_in_executor(None, _open, self._root, _check_key(key))
        opened, cancelled = await settle(hop)  # a file opened for a cancelled caller is closed
        if cancelled:
            if opened is not None:
                opened.close()
            raise asyncio.CancelledError
        self._hits += opened is not None
        self._misses += opened is None
        return opened

    async def contains(self, key: str) -> bool:
        """Tell whether `key` is stored, without reading it or counting a hit or a miss."""
        return await asyncio.to_thread(has_entry, self._root, _ENTRIES, _check_key(key))

    async def evict(self) -> int:
        """Scan the entries now; delete the least recently used past the budget; give how many."""
        return await self._evict(None)

    async def _evict(self, keep: str | None) -> int:
        staged = functools.partial(_stage_evict, self._root, self.budget, keep)
        evicted, total = await perform(staged)
        self._evicted += evicted
        self._estimate, self._added = total, 0
        return evicted

    async def size(self) -> int:
        """Give the bytes the entries take now, by a scan."""
        return await asyncio.to_thread(_scanned_size, self._root)

    def stats(self) -> ArtifactStats:
        """Return this process's hit, miss, put and eviction counts."""
        return ArtifactStats(self._hits, self._misses, self._puts, self._evicted)


async def open_artifact_cache(storage: Storage, *, budget: int = DEFAULT_BUDGET) -> ArtifactCache:
    """Open the artifact cache under `storage`'s root, keeping at most about `budget` bytes."""
    budget = at_least("ArtifactCache", "budget", budget, 1)
    cache = ArtifactCache(storage_root("ArtifactCache", storage) / CACHE_DIR, budget)
    await cache.evict()
    return cache
