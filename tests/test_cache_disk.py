"""The artifact cache: content-addressed, within its budget, safe across processes and kills."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import pytest

from _cache_disk_helpers import (
    CHILD_ENV,
    HERE,
    artifact_cache,  # noqa: F401  # the `artifacts` fixture, used by name
    open_descriptors,
)
from persistence import ValidationError
from persistence.cache import ArtifactCache, disk, open_artifact_cache
from persistence.exceptions import InvalidPathError, OutsideRootError, StorageError
from persistence.storage import list_files, open_storage, write_text

WORKER = str(HERE / "_artifact_worker.py")


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


async def test_content_larger_than_the_budget_is_refused_and_evicts_nothing(
    artifacts: ArtifactCache, tmp_path: Path
) -> None:
    """Content over the whole budget is refused, naming its size; the entries there stay.

    Stored, it made the eviction delete every entry, then itself: the put gave a key that
    led nowhere.
    """
    kept = await artifacts.put(b"small")
    big = b"x" * (64 * 1024 + 1)
    over = r"holds 65,537 bytes, more than the cache's budget of 65,536"
    with pytest.raises(ValidationError, match=rf"ArtifactCache\.data: {over}"):
        await artifacts.put(big)
    source = tmp_path / "big.out"
    source.write_bytes(big)
    with pytest.raises(ValidationError, match=rf"ArtifactCache\.path: {over}"):
        await artifacts.put_file(source)
    assert await artifacts.get(kept) == b"small"
    assert not await artifacts.contains(hashlib.sha256(big).hexdigest())
    assert [p for p in artifacts.folder.rglob("*") if p.is_file() and ".artifact." in p.name] == []
    assert artifacts.stats().evicted == 0


@pytest.mark.parametrize("size", [60_000, 64 * 1024])
async def test_a_put_near_the_budget_keeps_what_it_put(artifacts: ArtifactCache, size: int) -> None:
    """The eviction a put sets off makes room by older entries, never by the one just put.

    Past 90 % of the budget, it was deleted last of all, at once: `get` of its key missed.
    """
    older = [await artifacts.put(bytes([index]) * 3000) for index in range(3)]
    key = await artifacts.put(b"n" * size)
    assert await artifacts.get(key) == b"n" * size
    assert not any([await artifacts.contains(old) for old in older])
    assert await artifacts.size() <= 64 * 1024


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


async def test_descriptors_stay_flat_over_puts_reads_and_evictions(tmp_path: Path) -> None:
    """Puts, reads, opens, evictions, damaged entries and refused symlinks keep no fd."""
    if open_descriptors() == 0:
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
    before = open_descriptors()
    for index in range(50):
        await cycle(index)
    assert open_descriptors() == before


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
    gc.collect()  # what an earlier step left to the collector is closed before the count
    descriptors = open_descriptors()
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
    assert open_descriptors() == descriptors
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
