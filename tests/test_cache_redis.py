"""The Redis cache against the real server: shared entries, entries keyed by the feed, faults.

Fault tests put a TCP proxy on 127.0.0.1 between the cache and Redis, or name a closed
port on 127.0.0.1. Every limit is short here, as a caller may set it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis

from _proxy import LOOPBACK, Proxy
from _staleness import measure
from persistence import (
    ConfigEntry,
    Database,
    TestResult,
    TestStatus,
    TestType,
    connect,
    save_result,
    set_config,
)
from persistence.cache import RedisCache, open_redis_cache

pytestmark = pytest.mark.usefixtures("redis_url")

TIMEOUT = 0.1
HEARTBEAT = 0.2
BOUND = 1.0
"""Seconds within which a faulty read must have ended: the limits, with room to spare."""


async def open_cache(db: Database, url: str, namespace: str, **limits: float) -> RedisCache:
    """A Redis cache with short limits."""
    settings: dict[str, float] = {"timeout": TIMEOUT, "heartbeat": HEARTBEAT, "retry_after": 0.2}
    settings.update(limits)
    return await open_redis_cache(
        db,
        url,
        namespace=namespace,
        timeout=settings["timeout"],
        heartbeat=settings["heartbeat"],
        retry_after=settings["retry_after"],
        local_size=int(settings.get("local_size", 100)),
    )


@pytest.fixture(name="workers")
async def two_workers(
    db: Database, redis_url: str, namespace: str
) -> AsyncIterator[tuple[RedisCache, RedisCache]]:
    """Two caches of one database sharing one namespace, as two workers would.

    Their limits leave room for a loaded machine: with the fault tests' 0.1 s and 0.2 s, a
    Redis reply or a heartbeat answer late under load sent a read to the database, a miss
    that these tests, which count hits, took for a fault of the cache.
    """
    first = await open_cache(db, redis_url, namespace, timeout=1.0, heartbeat=1.0)
    second = await open_cache(db, redis_url, namespace, timeout=1.0, heartbeat=1.0)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_worker_reads_what_another_loaded(
    db: Database, workers: tuple[RedisCache, RedisCache]
) -> None:
    """The second worker's first read is a Redis hit, read back as the same frozen model."""
    first, second = workers
    await set_config(db, "runner", "workers", 4)
    saved = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"k": [1]})
    )
    assert saved.id is not None
    entry = await first.find_config_entry_by_key("runner", "workers")
    assert await first.find_result(saved.id) == saved
    assert first.stats().misses == 2
    again = await second.find_config_entry_by_key("runner", "workers")
    assert isinstance(again, ConfigEntry)
    assert again == entry
    assert await second.find_result(saved.id) == saved
    assert await second.recent_results(5) == (saved,)
    assert (second.stats().hits, second.stats().misses) == (2, 1)


async def test_keys_are_namespaced_and_expire(db: Database, redis_url: str, namespace: str) -> None:
    """Every key starts with the namespace, and entries carry the TTL asked for."""
    cache = await open_redis_cache(db, redis_url, namespace=namespace, ttl=30, heartbeat=HEARTBEAT)
    await set_config(db, "runner", "workers", 4)
    await cache.get_config_value("runner", "workers", int)
    await cache.close()
    client = Redis.from_url(redis_url)
    keys = [key.decode() async for key in client.scan_iter(f"{namespace}:*")]
    entries = [key for key in keys if not key.startswith(f"{namespace}:gen:")]
    assert entries
    assert all(key.startswith(f"{namespace}:config_entries:") for key in entries)
    for key in entries:
        assert 0 < await client.pttl(key) <= 30_000
    await client.aclose()


async def test_a_write_reaches_every_worker(
    db: Database, workers: tuple[RedisCache, RedisCache]
) -> None:
    """A write through the package is seen by the other worker's next reads, from Redis at once."""
    first, second = workers
    await set_config(db, "runner", "workers", 4)
    assert await first.get_config_value("runner", "workers", int) == 4
    assert await second.get_config_value("runner", "workers", int) == 4
    await set_config(db, "runner", "workers", 5)
    assert await first.get_config_value("runner", "workers", int) == 5
    started = time.perf_counter()
    while await second.get_config_value("runner", "workers", int) != 5:
        assert time.perf_counter() - started < BOUND
        await asyncio.sleep(0.001)


async def test_two_processes_staleness_through_redis(
    db: Database, database_url: str, redis_url: str, namespace: str
) -> None:
    """After each of 100 writes by a worker in another process, this one sees it within 0.5 s."""
    del namespace  # the child uses the database's default namespace
    cache = await open_redis_cache(db, redis_url, heartbeat=HEARTBEAT)
    try:
        await set_config(db, "cache", "value", 0)
        found = await measure(
            database_url,
            100,
            lambda: cache.get_config_value("cache", "value", int),
            redis=redis_url,
        )
        assert found.worst < 0.5, found.worst
    finally:
        await cache.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_closed_port_falls_through_and_logs_once(
    db: Database, redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With nothing listening, reads come from the database in time; one warning, no error."""
    caplog.set_level(logging.WARNING, "persistence.cache")
    await set_config(db, "runner", "workers", 4)
    started = time.monotonic()
    cache = await open_cache(db, _at_port(redis_url, closed_port()), namespace)
    try:
        for value in (4, 5, 6):
            await set_config(db, "runner", "workers", value)
            assert await cache.get_config_value("runner", "workers", int) == value
        await asyncio.sleep(0.3)  # past retry_after: Redis is tried, and fails, again
        assert await cache.get_config_value("runner", "workers", int) == 6
    finally:
        await cache.close()
    assert time.monotonic() - started < BOUND + TIMEOUT + HEARTBEAT
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert cache.stats().faults >= 1


@pytest.fixture(name="proxy")
async def redis_proxy(redis_url: str) -> AsyncIterator[Proxy]:
    """A proxy on 127.0.0.1 in front of the Redis server."""
    parts = urlsplit(redis_url)
    assert parts.hostname in {LOOPBACK, "localhost"}, "fault tests only target loopback"
    proxy = Proxy(parts.port or 6379)
    await proxy.start()
    yield proxy
    await proxy.close()


def _at_port(redis_url: str, port: int) -> str:
    """The test's Redis URL at another loopback port, its database index kept.

    Without the index the proxied tests wrote to index 0, the shared server's default, where
    the namespace's clean-up never looked.
    """
    return urlunsplit(urlsplit(redis_url)._replace(netloc=f"{LOOPBACK}:{port}"))


async def test_a_cut_connection_never_gives_an_old_value(
    db: Database, redis_url: str, namespace: str, proxy: Proxy
) -> None:
    """Redis cut mid-use: reads fall through in time, and none gives a value older than a write."""
    through = await open_cache(db, _at_port(redis_url, proxy.port), namespace)
    direct = await open_cache(db, redis_url, namespace)
    try:
        await set_config(db, "runner", "workers", 4)
        assert await through.get_config_value("runner", "workers", int) == 4
        assert await direct.get_config_value("runner", "workers", int) == 4
        proxy.silence()
        started = time.monotonic()
        await through.invalidate("test_results")  # a call in flight when the line goes silent
        read = asyncio.ensure_future(through.get_config_value("runner", "workers", int))
        await asyncio.sleep(TIMEOUT / 2)
        proxy.cut()
        assert await read == 4
        await set_config(db, "runner", "workers", 5)  # its invalidation cannot reach Redis
        assert await through.get_config_value("runner", "workers", int) == 5
        assert time.monotonic() - started < BOUND
        proxy.resume()
        deadline = time.monotonic() + 5
        while await through.get_config_value("runner", "workers", int) == 5:
            if through.stats().hits and time.monotonic() > deadline - 4:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert await direct.get_config_value("runner", "workers", int) == 5
    finally:
        proxy.cut()
        await through.close()
        await direct.close()


async def test_every_worker_cut_off_never_reads_an_old_value_after(
    db: Database, redis_url: str, namespace: str, proxy: Proxy
) -> None:
    """Both workers lose Redis while a write happens; once it is back, neither reads it old."""
    url = _at_port(redis_url, proxy.port)
    first = await open_cache(db, url, namespace)
    second = await open_cache(db, url, namespace, local_size=0)
    try:
        await set_config(db, "runner", "workers", 4)
        assert await first.get_config_value("runner", "workers", int) == 4
        assert await second.get_config_value("runner", "workers", int) == 4
        proxy.silence()
        proxy.cut()
        await set_config(db, "runner", "workers", 5)
        proxy.resume()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert await second.get_config_value("runner", "workers", int) == 5
            assert await first.get_config_value("runner", "workers", int) == 5
            if second.stats().hits > 1:
                break
            await asyncio.sleep(0.02)
        assert second.stats().hits > 1, "Redis was never used again"
    finally:
        proxy.cut()
        await first.close()
        await second.close()


async def test_after_an_outage_one_reader_at_a_time_tries_redis_again(
    db: Database, redis_url: str, namespace: str, proxy: Proxy
) -> None:
    """Past `retry_after`, one call tries Redis again; the readers meanwhile read the database.

    Every waiting reader tried at once, and each waited out the timeout on a silent Redis:
    32 readers, 224 faults and reads held 0.25 s in 10 s of outage, where one would do.
    """
    cache = await open_cache(db, _at_port(redis_url, proxy.port), namespace, local_size=0)
    try:
        for key in range(8):
            await set_config(db, "runner", f"k{key}", key)
        proxy.silence()
        proxy.cut()
        assert await cache.get_config_value("runner", "k0", int) == 0  # the outage begins
        faults = cache.stats().faults
        await asyncio.sleep(0.3)  # past retry_after: Redis may be tried again
        started = time.monotonic()
        reads = [cache.get_config_value("runner", f"k{key}", int) for key in range(8)]
        assert await asyncio.gather(*reads) == list(range(8))
        assert cache.stats().faults == faults + 1  # the one that tried, and timed out
        assert time.monotonic() - started < BOUND
    finally:
        proxy.cut()
        await cache.close()


def connections_to(port: int) -> int:
    """Count this process's open TCP connections to `port`, from /proc."""
    folder = Path("/proc/self/fd")
    inodes = set()
    for entry in folder.iterdir():
        try:
            target = entry.readlink().name
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    lines = Path("/proc/self/net/tcp").read_text(encoding="ascii").splitlines()[1:]
    return sum(
        1
        for line in lines
        if (fields := line.split())[9] in inodes and int(fields[2].split(":")[1], 16) == port
    )


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="counts sockets in /proc")
async def test_a_close_with_reads_under_way_leaves_no_redis_connection(
    db: Database, redis_url: str, namespace: str
) -> None:
    """Reads under way while the cache closes leave no Redis connection open after it.

    The client was closed first and the loads under way ended after: a read that reached
    Redis meanwhile opened a connection again, and nothing closed it.
    """
    port = urlsplit(redis_url).port or 6379
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    before = connections_to(port)
    for round_ in range(20):
        cache = await open_cache(db, redis_url, f"{namespace}-{round_}", timeout=1.0)
        reads = [asyncio.ensure_future(cache.recent_results(limit)) for limit in range(1, 41)]
        await asyncio.sleep(round_ % 5 / 1000)  # closed at each stage of the reads
        await cache.close()
        await asyncio.gather(*reads, return_exceptions=True)
    assert connections_to(port) == before


OWN_CONNECTIONS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"


async def heard_next(heard: asyncio.Queue[str], prefix: str) -> str:
    """The next notification on the change channel that starts with `prefix`."""
    async with asyncio.timeout(BOUND * 5):
        while not (payload := await heard.get()).startswith(prefix):
            pass
    return payload


async def test_a_transaction_id_given_again_names_no_old_entry(
    migrated_postgres_url: str, redis_url: str, namespace: str
) -> None:
    """After the feed reconnects, a transaction id seen before names a stamp of its own.

    A failover to a lagging replica, or a point-in-time restore, gives transaction ids out
    again, for other data, on a server of the same identity, and the stamp was the id alone:
    the entry stored under it before was served. Here the id comes again by hand, as a
    notification of the reconnected server.
    """
    admin = await asyncpg.connect(migrated_postgres_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await admin.add_listener("persistence_changes", lambda *sent: heard.put_nowait(str(sent[3])))
    async with connect(migrated_postgres_url) as db:
        await set_config(db, "runner", "workers", 4)
        await heard_next(heard, "config_entries ")  # the notification of that write
        before = {row[0] for row in await admin.fetch(OWN_CONNECTIONS)}
        cache = await open_cache(db, redis_url, namespace, local_size=0)
        try:
            (listener,) = {row[0] for row in await admin.fetch(OWN_CONNECTIONS)} - before
            await set_config(db, "runner", "workers", 5)
            written = await heard_next(heard, "config_entries ")
            assert await cache.get_config_value("runner", "workers", int) == 5
            hits = cache.stats().hits
            assert await cache.get_config_value("runner", "workers", int) == 5
            assert cache.stats().hits == hits + 1  # the entry, in Redis under the write's stamp
            await admin.execute("SELECT pg_terminate_backend($1)", listener)
            await heard_next(heard, "* ")  # the listener is back, on the "new primary"
            await set_config(db, "runner", "workers", 4)  # the data as it was before the write
            await admin.execute("SELECT pg_notify('persistence_changes', $1)", written)
            deadline = time.monotonic() + BOUND * 5
            while True:  # until a read asks Redis: the feed trusted again
                bypassed = cache.stats().bypassed
                assert await cache.get_config_value("runner", "workers", int) == 4
                if cache.stats().bypassed == bypassed:
                    break
                assert time.monotonic() < deadline, "the feed was never trusted again"
                await asyncio.sleep(0.01)
        finally:
            await cache.close()
            await admin.close()
