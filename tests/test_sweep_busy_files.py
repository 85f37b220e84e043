"""A sweep beside a kept file whose lock another operation holds: the file waits, the sweep not.

A file in use is no fault of retention. The sweep waited LOCK_TIMEOUT (60 s) for each busy
file at its end, then failed with "busy", though every other file was gone. It now removes
what it can, leaves a busy file for the next sweep and says so on its logger. Leaving one is
safe: a file goes only while its lock is held, after its links were looked up again under it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import pytest

from _sweep_helpers import (
    descriptors_under,
    held_elsewhere,
    keys_in,
    lock_file_of,
    locks_free,
    plant,
)
from persistence import (
    CounterexampleStore,
    Database,
    TestResult,
    TestStatus,
    TestType,
    delete_results_before,
    keep_counterexample,
    transaction,
)
from persistence._files import locks
from persistence._files.locks import Change
from persistence.cache.disk import HeldEntries, stage_hold_entries
from persistence.counterexample_store import FOLDER, SWEEP_BATCH

_TIMEOUT: Final = 3.0
"""LOCK_TIMEOUT in these tests: what the sweep waited for each busy file, then failed."""

_MODULE: Final = sys.modules["persistence.counterexample_store"]


def _failing() -> TestResult:
    return TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id="sweep#busy")


async def _warm(db: Database, store: CounterexampleStore) -> None:
    """Sweep once, so that the connections a sweep borrows are open from now on."""
    plant(store.root / FOLDER / "0a", keys_in("0a", 1))
    assert await store.sweep(db) == 1


def _planted(store: CounterexampleStore) -> tuple[list[str], list[str]]:
    """Plant two batches in one shard and a few files in another; give them and two busy ones.

    No free file shares a lock file with a busy one: it would be busy too.
    """
    keys = keys_in("5d", 2 * SWEEP_BATCH) + keys_in("e4", 5)
    for key in keys:
        plant(store.root / FOLDER / key[:2], [key])
    busy = [keys[17], keys[-2]]
    stripes = {lock_file_of(store.root, key) for key in busy}
    assert not {lock_file_of(store.root, key) for key in keys if key not in busy} & stripes
    return keys, busy


@pytest.mark.parametrize("via", ["sweep", "retention"])
async def test_busy_files_are_left_for_the_next_sweep_without_a_wait_or_a_failure(
    db: Database,
    store: CounterexampleStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    via: str,
) -> None:
    """Another process holds the locks of two kept files, in two shards, all through a sweep.

    The sweep waited the lock timeout (3 s here) for each, then failed with "busy". Now it
    returns before one timeout is over, every free file gone, the busy ones there, and says
    so in one line; once the locks are free, the next sweep removes them and says nothing.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    caplog.set_level(logging.INFO, "persistence.counterexamples")
    await _warm(db, store)
    keys, busy = _planted(store)
    async with held_elsewhere(store.root, busy):
        before = descriptors_under(store.root)
        started = time.monotonic()
        if via == "sweep":
            assert await store.sweep(db) == len(keys) - len(busy)
        else:
            assert await delete_results_before(db, dt.datetime.now(dt.UTC), artifacts=store) == 0
        took = time.monotonic() - started
        assert await store.keys() == sorted(busy)
        assert descriptors_under(store.root) == before
    assert took < _TIMEOUT, f"the sweep waited {took:.2f} s for busy files"
    said = [record for record in caplog.records if record.name == "persistence.counterexamples"]
    assert [record.levelno for record in said] == [logging.INFO]
    assert said[0].__dict__["left"] == sorted(busy)
    assert "2 kept files" in said[0].getMessage()

    caplog.clear()
    assert await store.sweep(db) == len(busy)
    assert await store.keys() == []
    assert not [record for record in caplog.records if record.name.startswith("persistence")]


def _before_the_last_try(
    monkeypatch: pytest.MonkeyPatch, key: str, act: Callable[[], None]
) -> None:
    """Call `act` in the sweep's worker thread just before it tries `key` alone a second time.

    The first try alone is in the halving of its batch; the second, its last, at the end of
    the sweep, after the other files have gone. Its lock is taken after `act` returns.
    """
    tries: list[str] = []

    def staged(root: Path, folder: str, keys: list[str]) -> Change[HeldEntries]:
        if keys == [key]:
            tries.append(key)
            if len(tries) == 2:
                act()
        return stage_hold_entries(root, folder, keys)

    monkeypatch.setattr(_MODULE, "stage_hold_entries", staged)


_NAMED: Final = ["before-its-last-try", "after-the-sweep"]
"""When the keep names the busy file: then its last try finds it named, or still busy."""


@pytest.mark.parametrize("named", _NAMED)
async def test_a_busy_file_that_its_keeper_then_names_stays(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """A keep has published its input, under the file's lock, and not yet linked it: a sweep.

    The sweep removes the file's unnamed neighbours of the same batch, finding the file busy.
    The keep then links it and lets go, before the sweep's last try of it (which looks its
    links up again under its lock and keeps it), or after the sweep (which left it). No
    sweep removes it.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    data = b"named while busy\n"
    key = hashlib.sha256(data).hexdigest()
    neighbours = [k for k in keys_in(key[:2], 20, salt="beside") if k != key]
    plant(store.root / FOLDER / key[:2], neighbours)
    reached, gate, kept = asyncio.Event(), asyncio.Event(), threading.Event()
    loop = asyncio.get_running_loop()

    @asynccontextmanager
    async def gated(keeping: Database) -> AsyncIterator[Database]:
        reached.set()  # the file is published and its lock held; its link is not written yet
        await gate.wait()
        async with transaction(keeping) as tx:
            yield tx

    def keep_ends() -> None:
        loop.call_soon_threadsafe(gate.set)
        assert kept.wait(10), "the keep did not end"

    monkeypatch.setattr(_MODULE, "transaction", gated)
    if named == "before-its-last-try":
        _before_the_last_try(monkeypatch, key, keep_ends)
    keep = asyncio.ensure_future(keep_counterexample(db, store, _failing(), input=data))
    keep.add_done_callback(lambda _: kept.set())
    try:
        await asyncio.wait_for(reached.wait(), 10)
        assert await store.contains(key)
        assert await store.sweep(db) == len(neighbours)
        assert await store.keys() == [key]
        assert keep.done() == (named == "before-its-last-try")
    finally:
        gate.set()
        saved = await keep
    assert saved.id is not None
    assert await store.sweep(db) == 0
    assert await store.read(key) == data


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("attempt", [1, 2], ids=["halving", "last-try"])
async def test_a_sweep_cancelled_at_a_busy_file_holds_no_lock_and_no_descriptor(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch, attempt: int
) -> None:
    """Cancelled as it tries the busy file alone, in the batch's halving or once more at the end.

    The sweep ends cancelled; no descriptor of the store stays open, no lock of a planted
    file is held by this process, and once the other process lets go, a sweep removes it.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    await _warm(db, store)
    keys, busy = _planted(store)
    loop = asyncio.get_running_loop()
    reached = asyncio.Event()
    tries: list[list[str]] = []

    def counted(root: Path, folder: str, keys: list[str]) -> Change[HeldEntries]:
        if keys == busy[:1]:
            tries.append(keys)
            if len(tries) == attempt:
                loop.call_soon_threadsafe(reached.set)
        return stage_hold_entries(root, folder, keys)

    monkeypatch.setattr(_MODULE, "stage_hold_entries", counted)
    async with held_elsewhere(store.root, busy):
        before = descriptors_under(store.root)
        task = asyncio.ensure_future(store.sweep(db))
        await asyncio.wait_for(reached.wait(), 10)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()
        assert descriptors_under(store.root) == before
        assert locks_free(store.root, [key for key in keys if key not in busy])
    assert locks_free(store.root, keys)
    monkeypatch.undo()
    assert await store.sweep(db) >= len(busy)
    assert await store.keys() == []


async def test_two_sweeps_at_once_beside_a_busy_file_both_end_and_share_the_rest(
    db: Database,
    store: CounterexampleStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two sweeps of this process at once, while another process holds two files' locks.

    Each finds the other's batches busy as well as the held files: both end, without
    failing, every free file removed once between them, the held ones left, and each
    says it left those.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    caplog.set_level(logging.INFO, "persistence.counterexamples")
    await _warm(db, store)
    keys, busy = _planted(store)
    async with held_elsewhere(store.root, busy):
        removed = await asyncio.wait_for(asyncio.gather(store.sweep(db), store.sweep(db)), 30)
        assert sum(removed) == len(keys) - len(busy)
        assert await store.keys() == sorted(busy)
    said = [record for record in caplog.records if record.name == "persistence.counterexamples"]
    assert len(said) == 2
    assert all(set(busy) <= set(record.__dict__["left"]) for record in said)
    assert await store.sweep(db) == len(busy)


async def test_the_last_try_of_many_busy_files_locks_a_batch_at_most_at_once(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the locks of three batches of one shard through a sweep.

    Each try takes at most SWEEP_BATCH lock files, a descriptor each, in the end-of-sweep try
    of the busy files as in the batches: so a sweep beside others leaves them descriptors.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    await _warm(db, store)
    keys = keys_in("5d", 3 * SWEEP_BATCH)
    plant(store.root / FOLDER / "5d", keys)
    widest: list[int] = []
    real = locks.try_lock

    def counted(root_fd: int, paths: Iterable[str]) -> locks.PathLock | None:
        paths = list(paths)
        widest.append(len(paths))
        return real(root_fd, paths)

    monkeypatch.setattr(locks, "try_lock", counted)
    async with held_elsewhere(store.root, keys):
        assert await store.sweep(db) == 0
        assert max(widest) <= SWEEP_BATCH, f"{max(widest)} lock files at once"
    widest.clear()
    assert await store.sweep(db) == len(keys)
    assert max(widest) <= SWEEP_BATCH


_KEEPER: Final = """
import asyncio, sys
from contextlib import asynccontextmanager
from persistence import (
    TestResult, TestStatus, TestType, connect, keep_counterexample, open_counterexample_store,
    transaction,
)
from persistence.storage import open_storage

@asynccontextmanager
async def gated(db):
    print("published", flush=True)  # its lock held, its link not written yet
    await asyncio.to_thread(sys.stdin.readline)
    async with transaction(db) as tx:
        yield tx

sys.modules["persistence.counterexample_store"].transaction = gated

async def main(url, root, data):
    store = await open_counterexample_store(await open_storage(root))
    result = TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id="sweep#busy")
    async with connect(url) as db:
        saved = await keep_counterexample(db, store, result, input=data.encode())
    print(saved.id, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.parametrize("named", _NAMED)
async def test_a_busy_file_that_another_process_then_names_stays(
    database_url: str,
    db: Database,
    store: CounterexampleStore,
    monkeypatch: pytest.MonkeyPatch,
    named: str,
) -> None:
    """Another process's keep has published its input and holds its lock, unlinked: a sweep.

    The sweep removes the file's unnamed neighbours, finding the file busy; the keep then
    commits its link and ends, before the sweep's last try of the file or after the sweep.
    No sweep removes the file, whose content is the keep's.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", _TIMEOUT)
    data = "named elsewhere while busy\n"
    key = hashlib.sha256(data.encode()).hexdigest()
    neighbours = [k for k in keys_in(key[:2], 20, salt="beside") if k != key]
    plant(store.root / FOLDER / key[:2], neighbours)
    keeper = subprocess.Popen(  # noqa: ASYNC220  # another process keeps the file
        [sys.executable, "-c", _KEEPER, database_url, str(store.root), data],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    to_keeper, from_keeper = keeper.stdin, keeper.stdout
    assert to_keeper is not None
    assert from_keeper is not None
    said: list[str] = []

    def keep_ends() -> None:
        to_keeper.write("go\n")
        to_keeper.flush()
        said.append(from_keeper.readline())  # the saved result's id: the keep has ended

    try:
        assert await asyncio.to_thread(from_keeper.readline) == "published\n"
        if named == "before-its-last-try":
            _before_the_last_try(monkeypatch, key, keep_ends)
        assert await store.sweep(db) == len(neighbours)
        assert await store.keys() == [key]
        assert len(said) == (named == "before-its-last-try")
    finally:
        out, err = await asyncio.to_thread(keeper.communicate, "go\n", 60)
    assert keeper.returncode == 0, err
    assert int("".join(said) + out) > 0
    assert await store.sweep(db) == 0
    assert await store.read(key) == data.encode()
