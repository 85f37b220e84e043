"""The artifact cache: content-addressed, within its budget, safe across processes and kills."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import itertools
import os
import shutil
import signal
import sys
import threading
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

import pytest

from persistence import ValidationError
from persistence._files import tree
from persistence._files.paths import Spot
from persistence.cache import ArtifactCache, disk, open_artifact_cache
from persistence.exceptions import InvalidPathError, OutsideRootError, StorageError
from persistence.storage import list_files, open_storage, write_text

HERE = Path(__file__).parent
WORKER = str(HERE / "_artifact_worker.py")
T = TypeVar("T")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


@pytest.fixture(name="artifacts")
async def artifact_cache(tmp_path: Path) -> ArtifactCache:
    """An artifact cache of 64 KiB under a fresh storage root."""
    return await open_artifact_cache(await open_storage(tmp_path / "files"), budget=64 * 1024)


async def test_put_returns_the_key_and_get_and_open_read_it(artifacts: ArtifactCache) -> None:
    """The key is the content's SHA-256; get and open give the content back, and count hits."""
    key = await artifacts.put(b"binary")
    assert key == hashlib.sha256(b"binary").hexdigest()
    assert await artifacts.put(b"binary") == key
    assert await artifacts.get(key) == b"binary"
    opened = await artifacts.open(key)
    assert opened is not None
    with opened:
        assert opened.read() == b"binary"
    assert await artifacts.get("0" * 64) is None
    assert await artifacts.open("0" * 64) is None
    stats = artifacts.stats()
    assert (stats.hits, stats.misses, stats.puts) == (2, 2, 1)
    assert artifacts.path_of(key).parent.parent.parent.name == ".cache"


async def test_put_file_streams_a_file(tmp_path: Path) -> None:
    """A file is stored under the SHA-256 of its content."""
    artifacts = await open_artifact_cache(await open_storage(tmp_path / "files"), budget=10**7)
    source = tmp_path / "a.out"
    source.write_bytes(b"x" * 3_000_000)
    key = await artifacts.put_file(source)
    assert key == hashlib.sha256(source.read_bytes()).hexdigest()
    assert await artifacts.contains(key)


async def test_the_least_recently_used_go_past_the_budget(artifacts: ArtifactCache) -> None:
    """Past the budget, the entries used longest ago are deleted first."""
    keys = []
    for index in range(6):
        keys.append(await artifacts.put(bytes([index]) * 10_000))
        os.utime(artifacts.path_of(keys[-1]), ns=(index * 10**9, index * 10**9))
    assert await artifacts.get(keys[0]) is not None  # used now: the most recent
    keys += [await artifacts.put(bytes([index]) * 10_000) for index in range(6, 9)]
    await artifacts.evict()
    assert await artifacts.size() <= 64 * 1024
    assert await artifacts.contains(keys[0])
    assert await artifacts.contains(keys[-1])
    assert not await artifacts.contains(keys[1])
    assert artifacts.stats().evicted >= 2


async def test_the_cache_folder_is_reserved(tmp_path: Path) -> None:
    """Storage operations cannot write into .cache/, and listings leave it out."""
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage)
    await artifacts.put(b"x")
    with pytest.raises(OutsideRootError, match="reserved folder"):
        await write_text(storage, ".cache/artifacts/x", "no")
    assert await list_files(storage, recursive=True) == []


async def test_bad_keys_and_budgets_are_refused(artifacts: ArtifactCache, tmp_path: Path) -> None:
    """A key that is not a SHA-256, or a budget that is not a positive int, is refused."""
    with pytest.raises(ValidationError, match="64 lower-case hex"):
        await artifacts.get("../../etc/passwd")
    storage = await open_storage(tmp_path / "other")
    with pytest.raises(ValidationError, match=r"budget: must be 1 or more, got 0"):
        await open_artifact_cache(storage, budget=0)
    for budget in (True, 1.5, "10"):
        with pytest.raises(ValidationError, match=r"budget: expected an int"):
            await open_artifact_cache(storage, budget=budget)  # type: ignore[arg-type]  # on purpose
    with pytest.raises(ValidationError, match=r"data: expected bytes, got str"):
        await artifacts.put("text")  # type: ignore[arg-type]  # on purpose
    with pytest.raises(InvalidPathError):
        await artifacts.put_file(3)  # type: ignore[arg-type]  # on purpose


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


def _open_descriptors() -> int:
    """How many descriptors this process has open; 0 without /proc."""
    folder = Path("/proc/self/fd")
    return len(list(folder.iterdir())) if folder.is_dir() else 0


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


async def test_descriptors_stay_flat_over_puts_reads_and_evictions(tmp_path: Path) -> None:
    """Puts, reads, opens, evictions, damaged entries and refused symlinks keep no fd."""
    if _open_descriptors() == 0:
        pytest.skip("counts descriptors in /proc")
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage, budget=64 * 1024)
    planted = hashlib.sha256(b"never stored").hexdigest()
    (tmp_path / "outside").mkdir()
    shard = storage.root / ".cache" / "artifacts" / planted[:2]
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.symlink_to(tmp_path / "outside")

    async def cycle(index: int) -> None:
        key = await artifacts.put(index.to_bytes(4, "big") * 2500)
        assert await artifacts.get(key) is not None
        opened = await artifacts.open(key)
        assert opened is not None
        opened.close()
        artifacts.path_of(key).write_bytes(b"damaged")
        assert await artifacts.get(key) is None
        with pytest.raises(StorageError):
            await artifacts.get(planted)
        await artifacts.evict()

    await cycle(-1 % 2**31)
    before = _open_descriptors()
    for index in range(50):
        await cycle(index)
    assert _open_descriptors() == before


async def test_a_cancelled_open_leaves_no_file_open(tmp_path: Path) -> None:
    """An open cancelled while its thread checks the entry closes what the thread opened.

    The file was dropped to its finalizer, which closed it with an "unclosed file"
    ResourceWarning: an open descriptor until garbage collection where there is no refcount.
    """
    artifacts = await open_artifact_cache(await open_storage(tmp_path / "files"), budget=10**8)
    key = await artifacts.put(os.urandom(4 * 1024 * 1024))  # hashed for some milliseconds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for delay in (0, 0.0005, 0.001, 0.002, 0.004):
            call = asyncio.ensure_future(artifacts.open(key))
            await asyncio.sleep(delay)
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                opened = await call
                if opened is not None:
                    opened.close()
        await asyncio.sleep(0.1)  # any thread still hashing is done
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert artifacts.stats().hits + artifacts.stats().misses <= 5


async def test_an_open_while_other_tasks_are_cancelled_gives_its_file(
    artifacts: ArtifactCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry opened in a worker thread, every task but the opener's cancelled meanwhile.

    The hop ran as a task of its own: code that cancels every task but its own (a shutdown
    handler) cancelled it, the opener, which nobody had cancelled, failed, and the file the
    thread then opened was left to the garbage collector. The opener now gets its file.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    key = await artifacts.put(b"binary")
    opening, go_on = threading.Event(), threading.Event()
    real = disk._open  # noqa: SLF001  # the hop of an open

    def held(root: Path, key: str) -> BinaryIO | None:
        opening.set()
        go_on.wait(5)
        return real(root, key)

    monkeypatch.setattr(disk, "_open", held)
    descriptors = _open_descriptors()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call = asyncio.ensure_future(artifacts.open(key))
        assert await asyncio.to_thread(opening.wait, 5)
        cancel_all_tasks_but(call)
        await asyncio.sleep(0.01)
        go_on.set()
        async with asyncio.timeout(5):
            opened = await call
        assert opened is not None
        with opened:
            assert opened.read() == b"binary"
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert _open_descriptors() == descriptors
    monkeypatch.undo()
    again = await artifacts.open(key)
    assert again is not None
    again.close()


async def test_eviction_removes_only_old_partial_files(artifacts: ArtifactCache) -> None:
    """Partial files a killed put left an hour ago go; newer ones and other files stay."""
    incoming = artifacts.folder / "incoming"
    incoming.mkdir(exist_ok=True)
    old, new, other = (
        incoming / ".artifact.0123456789abcdef.storage-partial",
        incoming / ".artifact.fedcba9876543210.storage-partial",
        incoming / "notes.txt",
    )
    for path in (old, new, other):
        path.write_bytes(b"x")
    for path in (old, other):
        os.utime(path, (0, 0))
    await artifacts.evict()
    assert sorted(path.name for path in incoming.iterdir()) == sorted([new.name, other.name])


async def _spawn(
    root: Path, budget: int, count: int, size: int, *file: str
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        str(root),
        str(budget),
        str(count),
        str(size),
        *file,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )


async def _check_every_entry(root: Path) -> None:
    storage = await open_storage(root)
    artifacts = await open_artifact_cache(storage, budget=10**9)
    for path in (root / ".cache" / "artifacts").rglob("*"):
        if path.is_file():
            data = await artifacts.get(path.name)
            assert data is not None
            assert hashlib.sha256(data).hexdigest() == path.name, "a torn entry"


async def test_three_processes_put_read_and_evict_at_once(tmp_path: Path) -> None:
    """Three processes putting past a small budget read back only whole, right content."""
    root = tmp_path / "files"
    children = [await _spawn(root, 256 * 1024, 60, 20_000) for _ in range(3)]
    outputs = await asyncio.wait_for(asyncio.gather(*(c.communicate() for c in children)), 120)
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr.decode()[-2000:]
    await _check_every_entry(root)
    artifacts = await open_artifact_cache(await open_storage(root), budget=256 * 1024)
    assert await artifacts.size() <= 256 * 1024


async def test_two_processes_putting_and_evicting_one_content_end_with_one_good_entry(
    tmp_path: Path,
) -> None:
    """Two processes put, evict and read the same content at once: no error, one whole entry."""
    root = tmp_path / "files"
    size = 20_000
    children = [await _spawn(root, 3 * size, 150, size, "--same") for _ in range(2)]
    outputs = await asyncio.wait_for(asyncio.gather(*(c.communicate() for c in children)), 120)
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr.decode()[-2000:]
    await _check_every_entry(root)
    artifacts = await open_artifact_cache(await open_storage(root), budget=10**9)
    key = hashlib.sha256(b"s" * size).hexdigest()
    assert await artifacts.get(key) == b"s" * size
    assert artifacts.path_of(key).is_file()
    assert list((root / ".cache" / "incoming").iterdir()) == []  # no partial file left
    assert list((root / ".tmp").iterdir()) == []


async def test_a_kill_mid_put_never_leaves_a_torn_entry(tmp_path: Path) -> None:
    """A process killed with SIGKILL while putting 1 MiB blobs leaves only whole entries."""
    root = tmp_path / "files"
    incoming = root / ".cache" / "incoming"
    # Blobs put whole, then a big file whose streamed put a kill lands inside, for sure.
    blobs = await _spawn(root, 10**9, 5, 1024 * 1024)
    assert blobs.stdout is not None
    await asyncio.wait_for(blobs.communicate(), 60)
    for _ in range(3):
        child = await _spawn(root, 10**9, 1000, 64 * 1024 * 1024, str(tmp_path / "big.bin"))
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"putting\n"
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"putting\n"
        await asyncio.sleep(0.02)  # inside the second put, copying 64 MiB
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert any(incoming.iterdir()), "no put was cut short: the test proves nothing"
    await _check_every_entry(root)


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

    def good_then_plant(spot: Spot) -> bool:
        found = real_good(spot)
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
