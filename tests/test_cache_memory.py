"""The memory cache: hits after the first read, and never older than the last commit."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from _proxy import proxied
from _staleness import measure
from persistence import (
    ConfigEntry,
    Database,
    DatabaseError,
    Engine,
    FileRecord,
    NotFoundError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    connect,
    delete_config_entry,
    get_config_entry_by_key,
    migrate,
    open_database,
    results,
    save_file_record,
    save_result,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence._interface import JsonObject
from persistence.cache import MemoryCache, open_memory_cache
from persistence.database import close_database

HEARTBEAT = 0.2
OWN_CONNECTIONS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
"""The connections to this test's own database: other clients of the server are not counted."""
"""Seconds between the PostgreSQL listener's heartbeats here: short, as a caller may set."""

NOTIFY_BOUND = 1.0
"""Seconds within which a PostgreSQL change must show, with ample room for a loaded machine."""


@pytest.fixture(name="cache")
async def memory_cache(db: Database) -> AsyncIterator[MemoryCache]:
    """A memory cache of the fresh database of each engine."""
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        yield cache
    finally:
        await cache.close()


async def eventually(read: object, expected: object, bound: float = NOTIFY_BOUND) -> float:
    """Read until the value is `expected`; give the seconds it took, failing past `bound`."""
    assert callable(read)
    started = time.perf_counter()
    while (value := await read()) != expected:
        assert time.perf_counter() - started < bound, f"still {value!r}, not {expected!r}"
        await asyncio.sleep(0.001)
    return time.perf_counter() - started


async def test_a_second_read_comes_from_memory(db: Database, cache: MemoryCache) -> None:
    """The first read loads the setting; the next ones are hits."""
    await set_config(db, "runner", "workers", 4)
    await asyncio.sleep(0.1)  # PostgreSQL's notification of this write arrives meanwhile
    assert await cache.get_config_value("runner", "workers", int) == 4
    assert await cache.get_config_value("runner", "workers", int) == 4
    assert await cache.get_config_value("runner", "workers", int) == 4
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.bypassed) == (2, 1, 0)


async def test_a_write_through_the_package_shows_at_once(db: Database, cache: MemoryCache) -> None:
    """Every write function invalidates before it returns: the next read sees the write."""
    await set_config(db, "runner", "workers", 4)
    assert await cache.get_config_value("runner", "workers", int) == 4
    await set_config(db, "runner", "workers", 5)
    assert await cache.get_config_value("runner", "workers", int) == 5
    entry = await get_config_entry_by_key(db, "runner", "workers")
    assert entry.id is not None
    await delete_config_entry(db, entry.id)
    assert await cache.find_config_entry_by_key("runner", "workers") is None
    assert await cache.recent_results() == ()
    saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    assert await cache.recent_results() == (saved,)
    assert saved.id is not None
    assert await cache.find_result(saved.id) == saved


async def test_a_transaction_shows_when_it_commits(db: Database, cache: MemoryCache) -> None:
    """Writes in a block show once it commits; a block rolled back changes nothing."""
    await set_config(db, "runner", "workers", 4)
    assert await cache.get_config_value("runner", "workers", int) == 4
    with pytest.raises(RuntimeError):
        async with transaction(db) as tx:
            await set_config(tx, "runner", "workers", 6)
            raise RuntimeError
    assert await cache.get_config_value("runner", "workers", int) == 4
    async with transaction(db) as tx:
        await set_config(tx, "runner", "workers", 7)
    assert await cache.get_config_value("runner", "workers", int) == 7


async def test_another_connection_shows_on_sqlite_at_once_and_postgres_soon(
    db: Database, database_url: str, cache: MemoryCache
) -> None:
    """A write on another open database is seen by the next read (SQLite) or within the bound."""
    await set_config(db, "runner", "workers", 4)
    assert await cache.get_config_value("runner", "workers", int) == 4
    async with connect(database_url) as other:
        await set_config(other, "runner", "workers", 8)
    if db.engine.value == "sqlite":
        assert await cache.get_config_value("runner", "workers", int) == 8
    else:
        await eventually(lambda: cache.get_config_value("runner", "workers", int), 8)


async def test_a_write_by_plain_sql_shows_too(
    db: Database, database_url: str, cache: MemoryCache
) -> None:
    """A change made with the driver alone, outside this package, is seen all the same."""
    await set_config(db, "runner", "name", "old")
    assert await cache.get_config_value("runner", "name", str) == "old"
    sql = "UPDATE config_entries SET value = 'new' WHERE key = 'name'"
    if db.engine.value == "sqlite":
        connection = sqlite3.connect(database_url, isolation_level=None)
        connection.execute(sql)
        connection.close()
        assert await cache.get_config_value("runner", "name", str) == "new"
    else:
        raw = await asyncpg.connect(database_url)
        await raw.execute(sql)
        await raw.close()
        await eventually(lambda: cache.get_config_value("runner", "name", str), "new")


async def test_values_handed_out_are_private(db: Database, cache: MemoryCache) -> None:
    """Changing a list or dict that the cache returned changes nothing cached."""
    await set_config(db, "runner", "flags", ["a"])
    flags = await cache.get_config_value("runner", "flags", list)
    flags.append("b")
    entry = await cache.find_config_entry_by_key("runner", "flags")
    assert entry is not None
    assert isinstance(entry.value, list)
    entry.value.append("c")
    assert await cache.get_config_value("runner", "flags", list) == ["a"]


async def test_no_public_method_hands_out_a_held_entry(db: Database, cache: MemoryCache) -> None:
    """Every public method of a cache that gives config entries gives private copies.

    `load_config_entry` and `held_config_entry`, public, gave the entry held: a caller's
    `entry.value.append(...)` showed in every later read of the cache, never in the database.
    """
    await set_config(db, "runner", "flags", ["a"])
    names = [name for name in dir(cache) if "config_entr" in name and not name.startswith("_")]
    assert names
    for _ in range(2):  # a miss, then a hit
        for name in names:
            method = getattr(cache, name)
            arguments = ("runner", "flags")[: len(inspect.signature(method).parameters)]
            given = method(*arguments)
            given = await given if inspect.isawaitable(given) else given
            entries = given if isinstance(given, tuple | list) else [given]
            for entry in entries:
                if isinstance(entry, ConfigEntry) and isinstance(entry.value, list):
                    entry.value.append(name)
    assert await cache.get_config_value("runner", "flags", list) == ["a"]


@pytest.mark.parametrize("metadata", [{}, {"seed": [1]}], ids=["empty", "nested"])
async def test_results_and_file_records_handed_out_are_private(
    db: Database, cache: MemoryCache, metadata: JsonObject
) -> None:
    """Changing the metadata of a result or a file record from a hit changes nothing cached.

    Empty metadata was handed out as the cache's own dict: a caller's key stuck to every hit.
    """
    saved = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=metadata)
    )
    await save_file_record(db, FileRecord(path="bin/a", size=1, metadata=metadata))
    assert saved.id is not None
    for _ in range(2):  # a miss, then a hit
        found = await cache.find_result(saved.id)
        assert found is not None
        found.metadata["changed"] = True
        (await cache.recent_results(5))[0].metadata["changed"] = True
        record = await cache.find_file_record_by_path("bin/a")
        assert record is not None
        record.metadata["changed"] = True
    again = await cache.find_result(saved.id)
    assert again is not None
    assert again.metadata == metadata
    assert [r.metadata for r in await cache.recent_results(5)] == [metadata]
    record = await cache.find_file_record_by_path("bin/a")
    assert record is not None
    assert record.metadata == metadata


async def test_missing_settings_and_wrong_types(db: Database, cache: MemoryCache) -> None:
    """A missing setting gives the default or NotFoundError; a wrong kind, ValidationError."""
    assert await cache.get_config_value("runner", "workers", int, 2) == 2
    with pytest.raises(NotFoundError):
        await cache.get_config_value("runner", "workers", int)
    await set_config(db, "runner", "workers", 4)
    with pytest.raises(ValidationError, match="declared int, not str"):
        await cache.get_config_value("runner", "workers", str)
    with pytest.raises(ValidationError, match="must be one of"):
        await cache.invalidate("no_such_table")
    for empty_key in (
        lambda: cache.get_config_value("runner", "", int, 2),
        lambda: cache.find_config_entry_by_key("", "workers"),
        lambda: cache.find_file_record_by_path(""),
    ):
        with pytest.raises(ValidationError, match="must not be empty"):
            await empty_key()


async def test_invalidate_and_close(db: Database, cache: MemoryCache) -> None:
    """`invalidate` makes the next read a miss; after `close`, reads go to the database."""
    await set_config(db, "runner", "workers", 4)
    await cache.all_config_entries()
    await cache.invalidate("config_entries")
    await cache.all_config_entries()
    await cache.invalidate()
    assert [e.key for e in await cache.all_config_entries()] == ["workers"]
    assert cache.stats().misses == 3
    await cache.close()
    await cache.get_config_value("runner", "workers", int)
    await cache.get_config_value("runner", "workers", int)
    assert cache.stats().bypassed == 2


async def test_a_cache_of_a_transaction_is_refused(db: Database) -> None:
    """A cache opened on a transaction() block would outlive it: it is refused."""
    async with transaction(db) as tx:
        with pytest.raises(ValidationError, match="not on a transaction"):
            await open_memory_cache(tx)


async def test_two_processes_staleness(db: Database, database_url: str, cache: MemoryCache) -> None:
    """After each of 200 writes in another process, the next read sees it on SQLite.

    On PostgreSQL each write shows within the notification's delay, well under 50 ms on
    loopback (`bench/cache.py` measures it over 1,000 writes; the bound here has room for
    a loaded machine).
    """
    await set_config(db, "cache", "value", 0)
    found = await measure(database_url, 200, lambda: cache.get_config_value("cache", "value", int))
    if db.engine.value == "sqlite":
        assert set(found.stale_reads) == {0}
    else:
        assert found.worst < 0.5, found.worst
    assert await cache.get_config_value("cache", "value", int) == 200
    assert (
        await eventually(lambda: _hit_count_grows(cache, "cache", "value"), expected=True)
        < NOTIFY_BOUND
    )


@pytest.mark.usefixtures("postgres_admin")
async def test_a_lost_listener_bypasses_the_cache_until_it_is_back(postgres_url: str) -> None:
    """With its LISTEN connection killed, the cache reads the database, then caches again."""
    async with connect(postgres_url) as db:
        await migrate(db)
        await set_config(db, "runner", "workers", 4)
        admin = await asyncpg.connect(postgres_url)
        before = {row[0] for row in await admin.fetch(OWN_CONNECTIONS)}
        cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
        try:
            listener = {row[0] for row in await admin.fetch(OWN_CONNECTIONS)} - before
            assert len(listener) == 1
            await cache.get_config_value("runner", "workers", int)
            await admin.execute("SELECT pg_terminate_backend($1)", listener.pop())
            # The listener learns of its end when the server's close reaches it; a change
            # committed before then is within the staleness bound, not what this tests.
            await asyncio.sleep(0.2)
            await admin.execute("UPDATE config_entries SET value = '9'")
            # Until the listener is back, no read may give the old 4.
            assert await cache.get_config_value("runner", "workers", int) == 9
            await eventually(lambda: _hit_count_grows(cache), expected=True, bound=5.0)
        finally:
            await admin.close()
            await cache.close()


async def _hit_count_grows(
    cache: MemoryCache, section: str = "runner", key: str = "workers"
) -> bool:
    hits = cache.stats().hits
    await cache.get_config_value(section, key, int)
    return cache.stats().hits > hits


@pytest.mark.usefixtures("postgres_admin")
async def test_a_silent_listener_is_distrusted_within_two_heartbeats(postgres_url: str) -> None:
    """When the network goes silent, the listener's version is None within 2 x heartbeat."""
    async with connect(postgres_url) as db:
        await migrate(db)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(url, connect_timeout=1.0, command_timeout=0.5)
        watch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
        try:
            assert watch.version("config_entries") is not None
            proxy.silence()
            started = time.monotonic()
            while watch.version("config_entries") is not None:
                assert time.monotonic() - started < 2 * HEARTBEAT + 0.5
                await asyncio.sleep(0.01)
        finally:
            await watch.close()
            proxy.cut()
            async with asyncio.timeout(5):
                await close_database(db)


async def test_a_closed_sqlite_database_is_never_read_through_the_cache(
    database_url: str,
) -> None:
    """Once the database closes, the change watch says nothing can be trusted."""
    db = await open_database(database_url)
    await migrate(db)
    watch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
    await close_database(db)
    if db.engine.value == "sqlite":
        assert watch.version("config_entries") is None
        with pytest.raises(DatabaseError, match="closed"):
            await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
    await watch.close()


def hold_result_loads(monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Make each load of a result wait for `gate` (the second event); the first says one began."""
    loading, gate = asyncio.Event(), asyncio.Event()
    real = results.find_result

    async def held(db: Database, result_id: int) -> TestResult | None:
        loading.set()
        await gate.wait()
        return await real(db, result_id)

    monkeypatch.setattr(results, "find_result", held)
    return loading, gate


async def test_a_shared_load_cancelled_by_another_task_is_a_database_error(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers of one missing key share one load, in a task of its own, cancelled from outside.

    Code that cancels every task but its own (a shutdown handler) cancelled that load, and
    every reader waiting for it, which nobody had cancelled, got `CancelledError`. They now
    get `DatabaseError`; nothing is left loading or connected, and the next read loads the key.
    """
    from _server import no_connection_left  # noqa: PLC0415
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415

    async with connect(database_url) as db:
        await migrate(db)
        saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        assert saved.id is not None
        cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
        try:
            assert await cache.find_result(saved.id + 1) is None  # the save seen: loads shared
            loading, gate = hold_result_loads(monkeypatch)
            readers = [asyncio.ensure_future(cache.find_result(saved.id)) for _ in range(3)]
            async with asyncio.timeout(2):
                await loading.wait()
            cancel_all_tasks_but(*readers)
            await asyncio.sleep(0.01)
            gate.set()
            async with asyncio.timeout(2):
                outcome = await asyncio.gather(*readers, return_exceptions=True)
            assert [type(o) for o in outcome] == [DatabaseError] * 3, outcome
            assert cache._loading == {}  # noqa: SLF001  # the loads the cache holds in flight
            monkeypatch.undo()
            assert await cache.find_result(saved.id) == saved
        finally:
            await cache.close()
    if db.engine is Engine.POSTGRES:
        await no_connection_left(database_url)


async def test_a_read_whose_shared_load_the_close_cancels_reads_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader waiting on a load when the cache closes gets its value, as later reads do.

    The close cancels the loads under way; their readers, which nobody had cancelled, got
    `CancelledError`, then `DatabaseError` saying another task had cancelled them.
    """
    async with connect(database_url) as db:
        await migrate(db)
        saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        assert saved.id is not None
        cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
        assert await cache.find_result(saved.id + 1) is None  # the save seen: loads shared
        loading, gate = hold_result_loads(monkeypatch)
        readers = [asyncio.ensure_future(cache.find_result(saved.id)) for _ in range(2)]
        async with asyncio.timeout(2):
            await loading.wait()
        await cache.close()
        gate.set()
        async with asyncio.timeout(2):
            outcome = await asyncio.gather(*readers, return_exceptions=True)
        assert outcome == [saved, saved]
