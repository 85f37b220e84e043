"""The artifact cache: content-addressed, within its budget, safe across processes and kills."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest

from persistence import ValidationError
from persistence.cache import ArtifactCache, open_artifact_cache
from persistence.exceptions import OutsideRootError
from persistence.storage import list_files, open_storage, write_text

HERE = Path(__file__).parent
WORKER = str(HERE / "_artifact_worker.py")
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
    with pytest.raises(ValidationError, match="positive int"):
        await open_artifact_cache(await open_storage(tmp_path / "other"), budget=0)


async def test_a_damaged_entry_is_a_miss_when_verified(artifacts: ArtifactCache) -> None:
    """With verify=True, an entry whose content no longer matches its key is dropped."""
    key = await artifacts.put(b"good")
    artifacts.path_of(key).write_bytes(b"evil")
    assert await artifacts.get(key, verify=True) is None
    assert not await artifacts.contains(key)


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
