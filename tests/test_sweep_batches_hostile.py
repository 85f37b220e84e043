"""A batched sweep of counterexample files, attacked: links, FIFOs, folders, descriptors, races.

A sweep locks a batch of a shard's unnamed files at once, looks their links up under the
locks and removes the regular files among them in one hop through the shard folder. Nothing
outside the storage root may go, only regular files go, nothing hangs, no descriptor is
left open, and no named file is ever removed. Busy locks: tests/test_sweep_busy_files.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest

from _storage_helpers import limit_leaving
from _sweep_helpers import descriptors_under, keys_in, plant
from persistence import (
    CounterexampleStore,
    Database,
    TestResult,
    TestStatus,
    TestType,
    keep_counterexample,
)
from persistence._files import paths
from persistence._files.locks import stripe_of
from persistence.cache import disk
from persistence.cache.disk import HeldEntries, entry_at
from persistence.counterexample_store import FOLDER, SWEEP_BATCH
from persistence.exceptions import NotAFileError, OutsideRootError, StorageError

_SHARD: Final = "5d"


def _names(folder: Path) -> set[str]:
    return {entry.name for entry in os.scandir(folder)}


def _failing() -> TestResult:
    return TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id="sweep#hostile")


@pytest.mark.parametrize("linked", [".cache", FOLDER, f"{FOLDER}/{_SHARD}"])
async def test_a_folder_linked_outside_the_root_is_passed_over(
    db: Database, store: CounterexampleStore, tmp_path: Path, linked: str
) -> None:
    """`.cache`, its counterexamples folder or a shard folder a symlink to a folder outside.

    The folder outside holds files of the same names, where the link leads: all are kept.
    """
    outside = tmp_path / "outside"
    keys = keys_in(_SHARD, SWEEP_BATCH + 5)
    plant(outside / f"{FOLDER}/{_SHARD}".removeprefix(f"{linked}/").removeprefix(linked), keys)
    (store.root / linked).parent.mkdir(parents=True, exist_ok=True)
    if (store.root / linked).is_dir():  # the storage made it, empty
        (store.root / linked).rmdir()
    (store.root / linked).symlink_to(outside, target_is_directory=True)

    assert await store.sweep(db) == 0
    assert sorted(await store.keys()) == []
    assert {path.name for path in outside.rglob("*") if path.is_file()} == set(keys)


@pytest.mark.parametrize("replacement", ["symlink", "folder"])
async def test_a_shard_folder_moved_out_during_a_batch_loses_nothing_outside(
    db: Database,
    store: CounterexampleStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    replacement: str,
) -> None:
    """Once the batch is locked, its shard folder is moved outside the root and replaced.

    The files moved out are no longer the store's: none of them may go. A symlink to them
    in the shard's place is never followed; a real folder there is the shard now.
    """
    keys = keys_in(_SHARD, SWEEP_BATCH + 5)
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys)
    outside = tmp_path / "moved"
    real = disk.remove_entries

    def move_then_remove(held: HeldEntries, unnamed: list[str]) -> int:
        if not outside.exists():
            shard.rename(outside)
            if replacement == "symlink":
                shard.symlink_to(outside, target_is_directory=True)
            else:
                plant(shard, keys)
        return real(held, unnamed)

    monkeypatch.setattr(
        sys.modules["persistence.counterexample_store"], "remove_entries", move_then_remove
    )
    await store.sweep(db)

    assert _names(outside) == set(keys), "files outside the root were removed"
    if replacement == "folder":
        assert not _names(shard) & set(keys[:SWEEP_BATCH]), "the shard's own files stayed"


async def test_a_shard_folder_moved_out_in_the_removal_loses_no_more_files_there(
    db: Database, store: CounterexampleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shard folder is moved outside the root, a symlink in its place, while files go.

    The files already removed were in the root then; of those moved out, none goes.
    """
    keys = keys_in(_SHARD, 30)
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys)
    outside = tmp_path / "moved"
    real = paths.lstat

    def moving_lstat(dir_fd: int, name: str) -> os.stat_result | None:
        if name == keys[10] and not outside.exists():
            shard.rename(outside)
            shard.symlink_to(outside, target_is_directory=True)
        return real(dir_fd, name)

    monkeypatch.setattr(disk, "lstat", moving_lstat)
    assert await store.sweep(db) == 10
    monkeypatch.undo()
    assert _names(outside) == set(keys[10:]), "files outside the root were removed"


async def test_entries_that_are_no_regular_file_are_left_and_nothing_hangs(
    db: Database, store: CounterexampleStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the listing and the removal, entries become a symlink, a FIFO and a folder.

    Only the regular files go; the symlink's target outside stays; the FIFO is never opened.
    """
    keys = keys_in(_SHARD, 20)
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys)
    target = tmp_path / "target"
    target.write_bytes(b"outside\n")
    real = disk.remove_entries

    def swap_then_remove(held: HeldEntries, unnamed: list[str]) -> int:
        for key in keys[:3]:
            (shard / key).unlink()
        (shard / keys[0]).symlink_to(target)
        os.mkfifo(shard / keys[1])
        (shard / keys[2]).mkdir()
        return real(held, unnamed)

    monkeypatch.setattr(
        sys.modules["persistence.counterexample_store"], "remove_entries", swap_then_remove
    )
    assert await asyncio.wait_for(store.sweep(db), 20) == len(keys) - 3
    assert _names(shard) == set(keys[:3])
    assert target.read_bytes() == b"outside\n"


@pytest.mark.parametrize("planted", ["symlink", "folder"])
async def test_an_entry_swapped_between_its_look_and_its_unlink(
    db: Database,
    store: CounterexampleStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    planted: str,
) -> None:
    """Right after the removal looked at an entry, it becomes a symlink or a folder.

    A folder is not unlinked (the unlink fails): it stays, and the other files still go. A
    symlink's unlink removes the link alone; its target outside stays.
    """
    keys = keys_in(_SHARD, 10)
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys)
    target = tmp_path / "target"
    target.write_bytes(b"outside\n")
    victim = keys[4]
    real = paths.lstat

    def swapping_lstat(dir_fd: int, name: str) -> os.stat_result | None:
        found = real(dir_fd, name)
        if name == victim and found is not None:
            os.unlink(name, dir_fd=dir_fd)
            if planted == "symlink":
                os.symlink(target, name, dir_fd=dir_fd)
            else:
                os.mkdir(name, dir_fd=dir_fd)
        return found

    monkeypatch.setattr(disk, "lstat", swapping_lstat)
    await store.sweep(db)
    monkeypatch.undo()

    assert target.read_bytes() == b"outside\n"
    assert _names(shard) <= {victim}
    if planted == "folder":
        assert (shard / victim).is_dir()


@pytest.mark.parametrize("planted", ["locks-symlink", "locks-fifo", "lock-fifo", "lock-symlink"])
async def test_a_planted_locks_folder_or_lock_file_is_refused_and_nothing_goes(
    db: Database, store: CounterexampleStore, tmp_path: Path, planted: str
) -> None:
    """`.locks` or one lock file of the batch replaced: a clear error, no wait, nothing removed."""
    keys = keys_in(_SHARD, 10)
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys)
    outside = tmp_path / "outside"
    outside.mkdir()
    lock_folder = store.root / ".locks"
    if lock_folder.is_dir():  # the storage made it, empty
        lock_folder.rmdir()
    if planted == "locks-symlink":
        lock_folder.symlink_to(outside, target_is_directory=True)
        error: type[StorageError] = OutsideRootError
    elif planted == "locks-fifo":
        os.mkfifo(lock_folder)
        error = NotAFileError
    else:
        lock_folder.mkdir()
        lock_file = lock_folder / f"{stripe_of(entry_at(keys[3], FOLDER)):03x}"
        if planted == "lock-fifo":
            os.mkfifo(lock_file)
        else:
            lock_file.symlink_to(outside / "lock")
        error = NotAFileError

    with pytest.raises(error, match=r"\.locks"):
        await asyncio.wait_for(store.sweep(db), 20)
    assert _names(shard) == set(keys)
    assert not list(outside.iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
async def test_a_sweep_of_several_batches_and_a_cancelled_one_leave_no_descriptor(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a sweep of several batches, and one cancelled in a batch, as many descriptors."""
    await keep_counterexample(db, store, _failing(), input=b"named\n")
    await store.sweep(db)  # the connections a sweep borrows are open from now on
    shard = store.root / FOLDER / _SHARD
    plant(shard, keys_in(_SHARD, 3 * SWEEP_BATCH + 7))
    before = descriptors_under(store.root)
    assert await store.sweep(db) == 3 * SWEEP_BATCH + 7
    assert descriptors_under(store.root) == before

    plant(shard, keys_in(_SHARD, 2 * SWEEP_BATCH, salt="cancel"))
    reached = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = disk.remove_entries

    def slow_removal(held: HeldEntries, keys: list[str]) -> int:
        loop.call_soon_threadsafe(reached.set)
        time.sleep(0.05)
        return real(held, keys)

    monkeypatch.setattr(
        sys.modules["persistence.counterexample_store"], "remove_entries", slow_removal
    )
    task = asyncio.ensure_future(store.sweep(db))
    await reached.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert descriptors_under(store.root) == before


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
async def test_a_batch_past_the_descriptor_limit_goes_in_smaller_parts(
    db: Database, store: CounterexampleStore
) -> None:
    """With fewer descriptors left than a batch takes lock files, the sweep still ends.

    One file at a time it needed a few; a batch of 64 failed with "Too many open files".
    """
    plant(store.root / FOLDER / "0a", keys_in("0a", 1))
    assert await store.sweep(db) == 1  # the connections a sweep borrows are open from now on
    keys = keys_in(_SHARD, SWEEP_BATCH)
    plant(store.root / FOLDER / _SHARD, keys)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit_leaving(SWEEP_BATCH // 2), hard))
    try:
        removed = await store.sweep(db)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert removed == SWEEP_BATCH
    assert await store.keys() == []


_SWEEPER: Final = """
import asyncio, sys
from pathlib import Path
from persistence import connect, open_counterexample_store
from persistence.storage import open_storage

async def main(url, root, stop):
    store = await open_counterexample_store(await open_storage(root))
    sweeps = removed = 0
    async with connect(url) as db:
        print("ready", flush=True)
        while not Path(stop).exists():
            removed += await store.sweep(db)
            sweeps += 1
    print(sweeps, removed, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_two_sweeping_processes_and_a_keeper_lose_no_named_file(
    database_url: str, db: Database, store: CounterexampleStore, tmp_path: Path
) -> None:
    """Two processes sweep in a loop while this one keeps inputs and plants unnamed files.

    The unnamed files share the kept ones' shards, so batches hold the keeps' files: no named
    file goes, both sweeps end, and no lock is waited on for good.
    """
    stop = tmp_path / "stop"
    sweepers = [
        subprocess.Popen(  # noqa: ASYNC220  # other processes, on purpose
            [sys.executable, "-c", _SWEEPER, database_url, str(store.root), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    kept: set[str] = set()
    try:
        for sweeper in sweepers:
            assert sweeper.stdout is not None
            assert await asyncio.to_thread(sweeper.stdout.readline) == "ready\n"
        deadline = time.monotonic() + 1.0  # the sweepers spin meanwhile: a second of it
        number = 0
        while time.monotonic() < deadline:
            data = b"kept %d\n" % number
            key = hashlib.sha256(data).hexdigest()
            await asyncio.to_thread(
                plant, store.root / FOLDER / key[:2], keys_in(key[:2], 70, salt=str(number))
            )
            await asyncio.wait_for(keep_counterexample(db, store, _failing(), input=data), 30)
            kept.add(key)
            assert set(await store.keys()) >= kept, number
            number += 1
    finally:
        stop.touch()
        ends = [await asyncio.to_thread(s.communicate, timeout=60) for s in sweepers]
    for sweeper, (out, err) in zip(sweepers, ends, strict=True):
        assert sweeper.returncode == 0, err
        assert int(out.split()[0]) > 0
    assert sum(int(out.split()[1]) for out, _ in ends) > 0
    assert set(await store.keys()) >= kept
    assert await store.sweep(db) >= 0
    assert set(await store.keys()) == kept
