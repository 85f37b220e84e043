"""Closing what `open_persistence` opened releases it all: descriptors, mappings, threads, tasks.

Each cycle opens the database, the file store and the memory or Redis cache, then closes them.
After a few cycles to warm up, the process's descriptors, memory mappings, threads and tasks
stay where they were. The event loop's default executor starts its threads as it needs them,
up to its bound, and keeps them: they are counted apart, against that bound. The number of
cycles is configurable: PERSISTENCE_TEST_CYCLES (SQLite) and PERSISTENCE_TEST_PG_CYCLES; how
long a joined thread may take to leave /proc, by PERSISTENCE_TEST_THREAD_EXIT (seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sqlite3
import threading
import time
import types
import weakref
from pathlib import Path
from typing import Any

import attrs
import pytest

from _server import own_connections
from persistence import Database, connect, migrate, open_persistence
from persistence import _database_value as database_value
from persistence._backend import Engine
from persistence._database_value import _ANY_HANDLE, backend_of
from persistence._sqlite import backend as sqlite_backend
from persistence._sqlite.changes import _WAL_INDEXES, WalIndex, _locked_here, map_wal_index
from persistence._sqlite.reads import Readers
from persistence.cache import MemoryCache, RedisCache, open_memory_cache

WARM_UP = 20


@attrs.frozen
class Counts:
    """What the process holds at one moment."""

    descriptors: int
    mappings: int
    threads: int
    native_threads: int
    tasks: int


def executor_threads() -> int:
    """The threads of the event loop's default executor, which keeps them for the next call."""
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("asyncio_"))


def counts() -> Counts:
    """Count this process's open descriptors, mappings of files, threads and tasks."""
    maps = Path("/proc/self/maps").read_text(encoding="ascii", errors="replace").splitlines()
    return Counts(
        descriptors=len(list(Path("/proc/self/fd").iterdir())),
        mappings=sum(1 for line in maps if "-shm" in line or line.endswith(" (deleted)")),
        threads=threading.active_count() - executor_threads(),
        native_threads=len(list(Path("/proc/self/task").iterdir())) - executor_threads(),
        tasks=len(asyncio.all_tasks()),
    )


async def settled_counts(expected_native_threads: int, expected_descriptors: int = -1) -> Counts:
    """Count once the threads that closing joined have left the kernel's list too.

    `Thread.join` returns when the thread's Python state is gone, a moment before its native
    thread exits, so /proc may list it briefly after a close. Likewise an asyncio transport
    closes its socket on a later turn of the loop than the close: given `expected_descriptors`,
    wait for that too. Both within PERSISTENCE_TEST_THREAD_EXIT seconds: a thread or a
    descriptor that is really left stays counted.
    """
    deadline = time.monotonic() + float(os.environ.get("PERSISTENCE_TEST_THREAD_EXIT", "5"))
    found = counts()
    while (
        found.native_threads > expected_native_threads
        or found.descriptors > expected_descriptors >= 0
    ) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        found = counts()
    return found


def cycles(engine: str) -> int:
    """How many open/close cycles to run on an engine.

    A leak of every open shows after one (the one this guards, 2 descriptors an open, after
    each). More cycles give a leak of one open in many its chance, at a cost: 300 on SQLite
    took 17 s (memory) and 24 s (Redis) under `make test`, two of its slowest tests, so it
    runs 100, and 50 on PostgreSQL; PERSISTENCE_TEST_CYCLES=1000 runs the 1,000.
    """
    if engine == "sqlite":
        return int(os.environ.get("PERSISTENCE_TEST_CYCLES", "100"))
    return int(os.environ.get("PERSISTENCE_TEST_PG_CYCLES", "50"))


async def check_cycles(database_url: str, files: Path, redis: str | None) -> None:
    """Open and close everything many times; the process holds the same afterwards."""
    engine = "sqlite" if "://" not in database_url else "postgres"
    total = cycles(engine)

    async def cycle() -> None:
        async with open_persistence(database_url, files=files, redis=redis) as opened:
            assert isinstance(opened.cache, MemoryCache if redis is None else RedisCache)

    for _ in range(WARM_UP):
        await cycle()
    # Garbage of earlier tests (a socket in a reference cycle) may hold descriptors that a
    # collection during the cycles frees: the count would go down. Collected first, only this
    # test's own holdings are counted; one not collected after stays counted.
    gc.collect()
    before = await settled_counts(counts().threads)  # each native thread a Python one
    for _ in range(total):
        await cycle()
    after = await settled_counts(before.native_threads, before.descriptors)
    shown = "memory" if redis is None else "redis"
    assert after == before, f"after {total} cycles on {engine} with {shown}: {before} -> {after}"
    assert executor_threads() <= min(32, (os.cpu_count() or 1) + 4)  # the executor's bound


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_open_and_close_leave_the_process_as_it_was(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open and close everything many times, with the memory cache: nothing accumulates."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    await check_cycles(database_url, tmp_path / "files", None)


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_open_and_close_with_redis_leave_the_process_as_it_was(
    database_url: str, tmp_path: Path, redis_url: str
) -> None:
    """The same with the Redis cache: its client, listener and tasks are all let go."""
    await check_cycles(database_url, tmp_path / "files", redis_url)


async def test_a_connection_opened_outside_keeps_its_locks(tmp_path: Path) -> None:
    """A mapping outlives the last backend while an outside connection holds the file's locks.

    Closing any descriptor of the -shm file would drop the locks of a sqlite3 connection
    opened outside the package; a later close, once that connection is gone, frees it.
    """
    path = tmp_path / "shared.db"
    async with connect(path) as db:
        await migrate(db)
        await backend_of(db).watch_changes(heartbeat=1.0)
        outside = sqlite3.connect(path)
        outside.execute("SELECT count(*) FROM test_results").fetchall()
        shm = (path.parent / f"{path.name}-shm").stat()
        key = (shm.st_dev, shm.st_ino)
    assert _locked_here(key)  # the outside connection's own locks are still held
    assert key in _WAL_INDEXES
    outside.close()
    async with connect(path) as db:
        await backend_of(db).watch_changes(heartbeat=1.0)
    assert key not in _WAL_INDEXES
    assert not _WAL_INDEXES


def slow_to_map(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make a watch's thread take 50 ms to map the -shm file; the event tells it has begun."""
    mapping = threading.Event()

    def slow_map(path: str) -> WalIndex | None:
        mapping.set()
        time.sleep(0.05)
        return map_wal_index(path)

    monkeypatch.setattr(sqlite_backend, "map_wal_index", slow_map)
    return mapping


async def cancel_while_mapping(db: Database, mapping: threading.Event) -> tuple[int, int]:
    """Open a memory cache, cancel it while its thread maps; give the -shm file's identity."""
    opening = asyncio.ensure_future(open_memory_cache(db))
    assert await asyncio.to_thread(mapping.wait, 5)
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    shm = await asyncio.to_thread(os.stat, f"{db.url}-shm")
    return shm.st_dev, shm.st_ino


async def test_a_watch_cancelled_while_it_maps_the_wal_index_lets_it_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache open cancelled while its thread maps the -shm file leaves no hold on the mapping.

    The thread finishes its mapping after the caller has gone; the hold it took used to be lost
    with its result, so the mapping outlived every backend of the file.
    """
    mapping = slow_to_map(monkeypatch)
    async with connect(tmp_path / "watched.db") as db:
        await migrate(db)
        shm = await cancel_while_mapping(db, mapping)
        await asyncio.sleep(0.2)  # the thread's mapping is done
    assert shm not in _WAL_INDEXES


async def test_a_watch_handed_over_while_the_database_closes_lets_it_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mapping handed over after the close began, but before its connections closed, is freed.

    The cancelled watch's thread finishes mapping while the close waits for that thread; the
    hand-over then ran while the connections still held the file's locks, so the mapping was
    kept for a later release that this backend never made (seen as 2 descriptors and a mapping
    left by a cancelled `open_persistence`).
    """
    handed_over = threading.Event()
    keep = sqlite_backend.SqliteBackend._keep_wal_index  # noqa: SLF001  # the hand-over to time

    def keep_and_tell(backend: sqlite_backend.SqliteBackend, index: WalIndex | None) -> None:
        keep(backend, index)
        handed_over.set()

    close_readers = Readers.close

    def close_after_hand_over(readers: Readers) -> None:
        assert handed_over.wait(5)  # the loop has run the hand-over meanwhile
        close_readers(readers)

    path = tmp_path / "closing.db"
    async with connect(path) as db:
        await migrate(db)
    before = counts()
    mapping = slow_to_map(monkeypatch)
    monkeypatch.setattr(sqlite_backend.SqliteBackend, "_keep_wal_index", keep_and_tell)
    monkeypatch.setattr(Readers, "close", close_after_hand_over)
    async with connect(path) as db:
        shm = await cancel_while_mapping(db, mapping)
    assert handed_over.is_set()
    assert shm not in _WAL_INDEXES
    after = counts()
    assert (after.descriptors, after.mappings) == (before.descriptors, before.mappings)


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.parametrize("with_redis", [False, True], ids=["memory", "redis"])
async def test_an_open_cancelled_at_any_point_leaves_nothing(
    database_url: str, tmp_path: Path, redis_url: str, *, with_redis: bool
) -> None:
    """open_persistence cancelled at any await, or its block cancelled, leaves nothing behind.

    Tasks, descriptors and mappings are as before, and on PostgreSQL no connection to the
    test's database is left (the pool and the change listener are closed).
    """
    files = tmp_path / "files"
    redis = redis_url if with_redis else None
    async with open_persistence(database_url, files=files, redis=redis):
        pass  # migrated once: each try below opens an up-to-date database
    postgres = "://" in database_url
    before = await settled_counts(counts().threads)
    for step in range(40):

        async def use() -> None:
            async with open_persistence(database_url, files=files, redis=redis, heartbeat=0.2):
                await asyncio.sleep(10)

        opening = asyncio.ensure_future(use())
        await asyncio.sleep(step * 0.003)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        after = await settled_counts(before.native_threads, before.descriptors)
        assert after == before, f"cancelled after {step * 3} ms: {before} -> {after}"
        if postgres:
            deadline = time.monotonic() + 2
            while (left := await own_connections(database_url)) != 0:
                assert time.monotonic() < deadline, f"{left} connections left at step {step}"
                await asyncio.sleep(0.05)


async def test_databases_opened_in_turn_leave_no_entry_per_url(tmp_path: Path) -> None:
    """The process's map of write watchers by URL keeps no entry once its databases are gone.

    Each database opened at a new URL added an entry, kept for good: a process that opened
    a database per test run, or per tenant, held one for each it ever opened.
    """
    gc.collect()
    before = len(_ANY_HANDLE)
    for number in range(20):
        async with connect(tmp_path / f"{number}.db") as db:
            await migrate(db)
    del db  # the last one, still named here
    gc.collect()
    assert len(_ANY_HANDLE) == before
    async with connect(tmp_path / "0.db") as first, connect(tmp_path / "0.db") as second:
        assert backend_of(first) is not backend_of(second)
        assert first._watchers.any_handle is second._watchers.any_handle  # noqa: SLF001
        assert len(_ANY_HANDLE) == before + 1


def test_threads_opening_one_url_at_once_share_its_write_watchers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two threads (two runners) opening one URL at once get one list of its watchers.

    The map's look and its new entry were two steps: threads each made a list, and the writes
    through one database went unheard by the caches that watched through the other. Here each
    look waits (0.5 s at most) for the other thread's, as a switch between the steps would.
    """
    looks = threading.Barrier(2)

    class LookTogether(weakref.WeakValueDictionary[tuple[Engine, str], Any]):
        def get(self, key: tuple[Engine, str], default: Any = None) -> Any:  # noqa: ANN401  # as the map's
            found = super().get(key, default)
            with contextlib.suppress(threading.BrokenBarrierError):
                looks.wait(timeout=0.5)  # the other thread looks too, before either makes one
            return found

    monkeypatch.setattr(database_value, "_ANY_HANDLE", LookTogether())
    opened = types.SimpleNamespace(engine=Engine.POSTGRES, url="postgresql://h/db")
    lists: list[object] = []

    def open_one() -> None:
        lists.append(database_value._watchers_of(opened).any_handle)  # type: ignore[arg-type]  # noqa: SLF001  # a stand-in

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lists) == 2
    assert lists[0] is lists[1]
