"""The artifact cache on a hostile disk: damaged entries, symlinks out, folders put in its way."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import os
import shutil
import sys
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from _cache_disk_helpers import (
    CHILD_ENV,
    HERE,
    T,
    artifact_cache,  # noqa: F401  # the `artifacts` fixture, used by name
)
from persistence._files import content, tree
from persistence._files.paths import CHUNK_SIZE, Spot, storage_errors
from persistence.cache import ArtifactCache, disk, open_artifact_cache
from persistence.exceptions import (
    OutsideRootError,
    StorageError,
    StoragePermissionError,
    ValidationError,
)
from persistence.storage import open_storage

GOOD = b"good content " * 1000
"""An entry's content in the hostile tests: larger than anything else they store."""

DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "a flipped byte": lambda data: bytes([data[0] ^ 1]) + data[1:],
    "0 bytes": lambda _: b"",
    "truncated": lambda data: data[:-1],
}

LEVELS = (".cache", ".cache/artifacts", ".cache/incoming", "shard", "entry")


@pytest.mark.parametrize("damage", DAMAGE)
async def test_a_damaged_entry_is_removed_as_a_miss_and_a_put_repairs_it(
    artifacts: ArtifactCache, damage: str
) -> None:
    """Reads check the content's hash: a bad entry goes and is a miss; a put repairs it."""
    key = await artifacts.put(GOOD)
    entry = artifacts.path_of(key)
    for read in (artifacts.get, artifacts.open):
        entry.write_bytes(DAMAGE[damage](GOOD))
        misses = artifacts.stats().misses
        assert await read(key) is None
        assert artifacts.stats().misses == misses + 1
        assert not entry.exists()
        assert await artifacts.put(GOOD) == key
        assert await artifacts.get(key) == GOOD
    entry.write_bytes(DAMAGE[damage](GOOD))
    assert await artifacts.put(GOOD) == key
    assert entry.read_bytes() == GOOD


async def test_an_entry_hard_linked_from_outside_is_a_miss_and_the_outside_file_untouched(
    artifacts: ArtifactCache, tmp_path: Path
) -> None:
    """An entry of two links is bad: the cache's own are made of one, by a rename.

    Its content could change through the other name after its hash was checked, on an open
    file, and a `get` marking it used changed the outside file's time.
    """
    key = await artifacts.put(GOOD)
    entry = artifacts.path_of(key)
    outside = tmp_path / "outside"
    outside.write_bytes(GOOD)
    os.utime(outside, (1e9, 1e9))
    entry.unlink()
    os.link(outside, entry)
    for read in (artifacts.get, artifacts.open):
        assert await read(key) is None
        assert not entry.exists()
        assert (outside.read_bytes(), outside.stat().st_mtime) == (GOOD, 1e9)
        assert await artifacts.put(GOOD) == key
        assert entry.stat().st_nlink == 1
        entry.unlink()
        os.link(outside, entry)


def _same_shard(key: str) -> bytes:
    """Content whose key is stored in the same shard folder as `key`."""
    for index in itertools.count():
        data = b"other %d" % index
        if hashlib.sha256(data).hexdigest()[:2] == key[:2]:
            return data
    raise AssertionError  # pragma: no cover  # itertools.count never ends


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder`: its content and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def _plant(cache_dir: Path, outside: Path, key: str, level: str) -> None:
    """Replace one level of the cache's tree by a symlink to `outside`, which holds `key`.

    Below the link, `outside` holds what the cache would look for there: a good entry of
    `key`, or (for `incoming/`) a partial file. Everything outside is dated long ago, so
    eviction and orphan clean-up would pick it first.
    """
    where = {
        ".cache": cache_dir,
        ".cache/artifacts": cache_dir / "artifacts",
        ".cache/incoming": cache_dir / "incoming",
        "shard": cache_dir / "artifacts" / key[:2],
        "entry": cache_dir / "artifacts" / key[:2] / key,
    }[level]
    below = {
        ".cache": f"artifacts/{key[:2]}/{key}",
        ".cache/artifacts": f"{key[:2]}/{key}",
        ".cache/incoming": ".x.0123456789abcdef.storage-partial",
        "shard": key,
        "entry": key,
    }[level]
    (outside / below).parent.mkdir(parents=True, exist_ok=True)
    (outside / below).write_bytes(GOOD)
    for path in outside.rglob("*"):
        os.utime(path, (0, 0))
    if where.is_dir():
        shutil.rmtree(where)
    else:
        where.unlink(missing_ok=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(outside / below if level == "entry" else outside)


@pytest.mark.parametrize("level", LEVELS)
async def test_a_symlink_in_the_cache_never_leads_outside(tmp_path: Path, level: str) -> None:
    """A symlink out at any level of the cache's tree never leads a call outside.

    get, open, contains and size read nothing there, puts write nothing there and
    eviction deletes nothing there. Each may refuse instead.
    """
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=10**9)
    key = hashlib.sha256(GOOD).hexdigest()
    await artifacts.put(_same_shard(key))
    outside = tmp_path / "outside"
    _plant(storage.root / ".cache", outside, key, level)
    before = _snapshot(outside)
    source = tmp_path / "source.bin"
    source.write_bytes(b"streamed")

    async def attempt(call: Awaitable[T]) -> T | None:
        try:
            return await call
        except StorageError:
            return None

    assert await attempt(artifacts.get(key)) is None
    opened = await attempt(artifacts.open(key))
    assert opened is None
    assert not await attempt(artifacts.contains(key))
    assert (await attempt(artifacts.size()) or 0) < len(GOOD)
    for put in (artifacts.put(GOOD), artifacts.put(_same_shard(key) + b"!"), artifacts.put(b"new")):
        await attempt(put)
    await attempt(artifacts.put_file(source))
    await attempt(open_artifact_cache(storage, budget=1))  # opening evicts past the budget
    assert _snapshot(outside) == before


SWAP_SECONDS = float(os.environ.get("PERSISTENCE_SWAP_SECONDS", "1.5"))
"""How long the symlink swapper runs in the race test."""


async def test_folders_swapped_for_symlinks_mid_call_never_lead_outside(tmp_path: Path) -> None:
    """While another process swaps the cache's folders for symlinks, nothing outside is touched.

    Nothing outside is read, written or deleted, whatever the call.
    """
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=64 * 1024)
    key = hashlib.sha256(GOOD).hexdigest()
    await artifacts.put(_same_shard(key))
    outside = tmp_path / "outside"
    for below in (f"artifacts/{key[:2]}/{key}", f"{key[:2]}/{key}", key, "x.storage-partial"):
        (outside / below).parent.mkdir(parents=True, exist_ok=True)
        (outside / below).write_bytes(GOOD)
    for path in outside.rglob("*"):
        os.utime(path, (0, 0))
    before = _snapshot(outside)
    cache = storage.root / ".cache"
    swapper = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_symlink_swapper.py"),
        str(cache),
        str(SWAP_SECONDS),
        f"artifacts/{key[:2]}={outside}",
        f"incoming={outside}",
        f"artifacts={outside}",
        stdout=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )
    assert swapper.stdout is not None
    rounds = 0
    try:
        assert await swapper.stdout.readline() == b"ready\n"
        while swapper.returncode is None:
            for call in (
                artifacts.put(_same_shard(key) + bytes([rounds % 256])),
                artifacts.evict(),
                artifacts.size(),
            ):
                with contextlib.suppress(StorageError):
                    await call
            for read in (artifacts.get(key), artifacts.open(key), artifacts.contains(key)):
                with contextlib.suppress(StorageError):
                    assert not await read
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(swapper.wait(), 0.001)
        swaps = int(await swapper.stdout.readline())
    finally:
        if swapper.returncode is None:
            swapper.kill()
        await swapper.communicate()
    assert swaps > 50
    assert rounds > 10
    assert _snapshot(outside) == before


def _plant_foreign(entry: Path, kind: str, outside: Path) -> None:
    """Put something that is no regular file where `entry` belongs."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    if kind == "a folder":
        entry.mkdir()
    elif kind == "a folder tree":
        (entry / "deep" / "er").mkdir(parents=True)
        (entry / "deep" / "file").write_bytes(b"planted")
        (entry / "deep" / "er" / "link").symlink_to(outside)
    elif kind == "a FIFO":
        os.mkfifo(entry)
    else:
        entry.symlink_to(outside)


FOREIGN = ("a folder", "a folder tree", "a FIFO", "a symlink out")


@pytest.mark.parametrize("kind", FOREIGN)
async def test_a_put_repairs_an_entry_that_is_no_regular_file(tmp_path: Path, kind: str) -> None:
    """A folder, tree, FIFO or symlink in an entry's place is removed as a miss; a put replaces it.

    A folder there stayed, and made every put of that content fail with NotAFileError, for
    good. It is moved aside into .tmp/ and removed there; nothing outside the root is touched.
    """
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=10**6)
    key = hashlib.sha256(GOOD).hexdigest()
    entry = artifacts.path_of(key)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(GOOD)
    os.utime(outside, (0, 0))
    _plant_foreign(entry, kind, outside)
    assert not await artifacts.contains(key)
    assert await artifacts.get(key) is None
    assert not entry.is_symlink()  # a bad entry: removed by the read
    assert not entry.exists()
    _plant_foreign(entry, kind, outside)  # again, for the put to repair
    assert await artifacts.put(GOOD) == key
    assert entry.is_file()
    assert not entry.is_symlink()
    assert entry.read_bytes() == GOOD
    assert await artifacts.get(key) == GOOD
    assert outside.read_bytes() == GOOD
    assert outside.stat().st_mtime_ns == 0
    assert list((storage.root / ".tmp").iterdir()) == []


async def test_a_folder_planted_again_while_it_is_set_aside_is_set_aside_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder planted after a put's check, and again as each went aside, goes aside too.

    The publish checked once, then renamed: a folder planted in between failed the put
    with NotAFileError.
    """
    artifacts = await open_artifact_cache(await open_storage(tmp_path / "files"), budget=10**6)
    key = hashlib.sha256(GOOD).hexdigest()
    entry = artifacts.path_of(key)
    real_good, real_set_aside = disk._good, tree.set_aside  # noqa: SLF001  # the steps raced
    planted = 0

    def good_then_plant(spot: Spot, *, cached: bool = True) -> bool:
        found = real_good(spot, cached=cached)
        plant()
        return found

    def set_aside_then_plant(root_fd: int, dir_fd: int, name: str) -> None:
        real_set_aside(root_fd, dir_fd, name)
        plant()

    def plant() -> None:
        nonlocal planted
        if planted < 2:
            (entry / "sub").mkdir(parents=True)
            planted += 1

    monkeypatch.setattr(disk, "_good", good_then_plant)
    monkeypatch.setattr(disk, "set_aside", set_aside_then_plant)
    assert await artifacts.put(GOOD) == key
    assert planted == 2
    assert entry.read_bytes() == GOOD


async def test_a_folder_in_an_entry_place_with_tmp_a_symlink_out_is_a_miss(tmp_path: Path) -> None:
    """With .tmp/ a symlink out, a folder in an entry's place is left: a read misses, a put refuses.

    Nothing is moved out of the root through the link.
    """
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=10**6)
    key = hashlib.sha256(GOOD).hexdigest()
    (artifacts.path_of(key) / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (storage.root / ".tmp").rmdir()
    (storage.root / ".tmp").symlink_to(tmp_path / "outside")
    assert await artifacts.get(key) is None
    with pytest.raises(OutsideRootError):
        await artifacts.put(GOOD)
    assert (artifacts.path_of(key) / "sub").is_dir()
    assert list((tmp_path / "outside").iterdir()) == []


async def test_eviction_passes_over_an_entry_swapped_for_a_folder(
    artifacts: ArtifactCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry swapped for a folder between eviction's scan and its unlink is passed over.

    evict (and the put that set it off) raised NotAFileError.
    """
    keys = [await artifacts.put(bytes([index]) * 10_000) for index in range(3)]
    real_scan = disk._scan  # noqa: SLF001  # the scan the swap follows

    def scan_then_swap(entries: int) -> list[tuple[int, int, str, str]]:
        found = real_scan(entries)
        for key in keys:
            entry = artifacts.path_of(key)
            if entry.is_file():
                entry.unlink()
                (entry / "sub").mkdir(parents=True)
        return [(0, 10**6, shard, name) for _, _, shard, name in found if name in keys]

    monkeypatch.setattr(disk, "_scan", scan_then_swap)
    assert await artifacts.evict() == 0
    new = await artifacts.put(b"new" * 5000)  # past a tenth of the budget: it evicts too
    assert await artifacts.get(new) == b"new" * 5000
    monkeypatch.undo()
    assert await artifacts.put(bytes([0]) * 10_000) == keys[0]
    assert await artifacts.get(keys[0]) == bytes([0]) * 10_000


async def test_an_entry_past_the_budget_is_a_miss_without_being_read(
    artifacts: ArtifactCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry grown past the cache's budget (sparse, planted) is bad from its size alone.

    A `get` read it whole before its hash was checked: 3 GiB read at a 1 MiB budget, about
    6 GB of memory, and at 1 TiB a bare MemoryError.
    """
    key = await artifacts.put(GOOD)
    entry = artifacts.path_of(key)
    os.truncate(entry, artifacts.budget + 1)  # a hole: no byte written
    read: list[int] = []
    real = content.read_fd  # as disk.py imports it

    def counted(fd: int) -> bytes:
        read.append(fd)
        return real(fd)

    monkeypatch.setattr(disk, "read_fd", counted)
    assert await artifacts.get(key) is None
    assert read == []
    assert not entry.exists()
    assert await artifacts.put(GOOD) == key
    assert await artifacts.get(key) == GOOD


def test_a_file_too_large_for_memory_is_a_storage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole read that runs out of memory names the file, as any storage error does.

    A file planted at 1 TiB (sparse) made `read_bytes`, `CounterexampleStore.read` and the
    cache's `get` raise a bare MemoryError.
    """

    class NoRoom(io.FileIO):
        def readall(self) -> bytes:
            raise MemoryError

    big = tmp_path / "big"
    big.write_bytes(b"x")
    monkeypatch.setattr(content, "io", types.SimpleNamespace(FileIO=NoRoom))
    refused = pytest.raises(StorageError, match=r"^big: too large to read into memory \(1 bytes\)")
    with refused, storage_errors("big"), big.open("rb") as file:
        content.read_fd(file.fileno())


async def test_a_source_that_grows_as_it_is_put_is_read_no_further_than_the_budget(
    artifacts: ArtifactCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file within the budget as it is opened, past it as it is read, stops at the budget.

    It was read and copied to its end before its size was refused: one growing without end
    (a log still written) filled the disk. Here it is 64 MiB by the time it is read (a hole,
    no byte of it written), and was within the budget at the look before the copy.
    """
    source = tmp_path / "growing.log"
    source.write_bytes(b"")
    os.truncate(source, 64 * 1024 * 1024)
    looks: list[int] = []
    real_within = disk._within  # noqa: SLF001  # the size check, told the size once small

    def small_at_first(budget: int, size: int, argument: str) -> None:
        looks.append(size)
        real_within(budget, 0 if len(looks) == 1 else size, argument)

    copied: list[int] = []
    real_write = content.write_all

    def counted(fd: int, data: memoryview) -> None:
        copied.append(len(data))
        real_write(fd, data)

    monkeypatch.setattr(disk, "_within", small_at_first)
    monkeypatch.setattr(content, "write_all", counted)
    with pytest.raises(ValidationError, match="more than the cache's budget"):
        await artifacts.put_file(source)
    assert sum(copied) <= artifacts.budget + CHUNK_SIZE
    incoming = artifacts.path_of("0" * 64).parents[2] / "incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []  # the partial file went


@pytest.mark.parametrize("refused", ["open", "unlink"])
async def test_a_shard_that_may_not_be_read_is_passed_over_by_eviction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: str
) -> None:
    """One shard folder the process may not read or write (another user's, a chmod).

    Every put that evicted failed with a permission error, though its entry was stored, so
    nothing was evicted again, and `open_artifact_cache` failed. (As root, permissions do not
    hold: the refusal is made here, as the kernel makes it for another user: the folder's
    open, or, in a folder of another's that it may read, the unlink of an entry.)
    """
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=10_000)
    locked_key = await artifacts.put(b"z" * 100)
    locked = locked_key[:2]
    real, real_unlink = disk._real_folder, os.unlink  # noqa: SLF001  # refused for one shard

    def refused_for_one(stack: contextlib.ExitStack, dir_fd: int, *names: str) -> int | None:
        if names == (locked,):
            raise StoragePermissionError(locked, "permission denied")
        return real(stack, dir_fd, *names)

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:  # noqa: ANN401  # as os.unlink's
        if os.fsdecode(path) == locked_key:
            raise PermissionError(13, "Permission denied")
        real_unlink(path, dir_fd=dir_fd)

    if refused == "open":
        monkeypatch.setattr(disk, "_real_folder", refused_for_one)
    else:
        monkeypatch.setattr(os, "unlink", unlink)
    for value in range(8):
        data = bytes([value]) * 1500
        key = await artifacts.put(data)
        assert await artifacts.get(key) == data  # a put keeps what it put
    assert await artifacts.size() <= 10_000 + 100  # and the shard's own, not counted
    await open_artifact_cache(storage, budget=10_000)
