"""A burst of concurrent Redis-tier reads: a bounded pool, and a wait that is no outage.

redis-py's pool held up to 100 connections and raised MaxConnectionsError on the 101st
concurrent call; the cache took that for Redis failing, logged "no answer within 0.25s or a
failed call" and read every key from the database for `retry_after`. Each burst (every key
misses at once after a commit in a busy process) opened up to 100 connections, and so many
opened at once ran out of the timeout against a healthy local Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from _cache_feed_helpers import BOUND
from persistence import Database, TestResult, TestStatus, TestType, list_results, save_results
from persistence.cache import RedisCache, open_redis_cache
from persistence.cache.distributed import DEFAULT_MAX_CONNECTIONS

BURST = 300
"""Concurrent reads of distinct keys: three times redis-py's default bound of 100."""


async def stored_ids(db: Database) -> list[int]:
    """Save BURST results and give their ids."""
    results = [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED) for _ in range(BURST)]
    await save_results(db, results)
    ids = [result.id for result in (await list_results(db, limit=BURST)).items]
    assert len(ids) == BURST
    return [i for i in ids if i is not None]


async def burst_cache(db: Database, url: str, namespace: str, wait: float = 1.0) -> RedisCache:
    """A cache with its memory tier off, so that every read asks Redis.

    Its `retry_after` of a minute would show an outage in every read after it; its timeout
    leaves a loaded machine room for each GET, so that only the burst could fail it. Its
    heartbeat of 2 s trusts the change feed 4 s after each answer: with the feed's 0.2 s, 82
    of 300 reads of a burst on a loaded machine went to the database (`bypassed`), most likely
    after an answer came later than 0.4 s; these tests do not ask about the feed.
    """
    return await open_redis_cache(
        db,
        url,
        namespace=namespace,
        timeout=wait,
        retry_after=60,
        heartbeat=2.0,
        local_size=0,
    )


async def warmed(cache: RedisCache, ids: list[int]) -> None:
    """Read each id one at a time until a whole pass is Redis hits (each entry stored)."""
    started = time.monotonic()
    while True:
        hits = cache.stats().hits
        for i in ids:
            assert (await cache.find_result(i)) is not None
        if cache.stats().hits - hits == len(ids):
            return
        assert time.monotonic() - started < BOUND + 5, cache.stats()
        await asyncio.sleep(0.05)


async def burst(cache: RedisCache, ids: list[int]) -> None:
    """Read every id at once."""
    found = await asyncio.gather(*(cache.find_result(i) for i in ids))
    assert [result.id for result in found if result is not None] == ids


def named(url: str, name: str, **options: int) -> str:
    """`url` with a client name (CLIENT LIST shows it) and the given query options."""
    query = "&".join([f"client_name={name}", *(f"{k}={v}" for k, v in options.items())])
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def connections(admin: Redis, name: str) -> int:
    """The connections to Redis named `name`."""
    return sum(1 for client in await admin.client_list() if client.get("name") == name)


async def test_a_burst_of_reads_keeps_redis_up(
    db: Database, redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """300 concurrent reads of stored entries: no outage, no warning, Redis read after."""
    caplog.set_level(logging.INFO, "persistence.cache")
    ids = await stored_ids(db)
    cache = await burst_cache(db, redis_url, namespace)
    try:
        await warmed(cache, ids)
        before = cache.stats()
        await burst(cache, ids)
        after = cache.stats()
        assert after.faults == before.faults, after
        hits = after.hits
        for i in ids[:50]:  # Redis was not taken for down: each one a Redis hit
            await cache.find_result(i)
        assert (cache.stats().hits, cache.stats().misses) == (hits + 50, after.misses)
    finally:
        await cache.close()
    said = [record.getMessage() for record in caplog.records]
    assert said == [], said


@pytest.mark.parametrize("bound", [None, 4])
async def test_a_burst_opens_no_more_connections_than_the_bound(
    db: Database, redis_url: str, namespace: str, bound: int | None
) -> None:
    """Bursts open at most the pool's bound (DEFAULT_MAX_CONNECTIONS, or the URL's), kept.

    Each burst opened up to 100 connections. A URL's `?max_connections=` is kept to, and a
    read waiting for a connection is a Redis hit all the same. Closing closes all of them.
    """
    name = f"persistence-test-{uuid.uuid4().hex[:12]}"
    options = {} if bound is None else {"max_connections": bound}
    most = DEFAULT_MAX_CONNECTIONS if bound is None else bound
    ids = await stored_ids(db)
    admin = Redis.from_url(redis_url)
    # 300 reads through 4 connections wait their turns: a second's timeout was too short for
    # the last of them on a loaded machine (the bound, not the wait, is what this test checks).
    cache = await burst_cache(db, named(redis_url, name, **options), namespace, wait=10.0)
    try:
        await warmed(cache, ids)
        peak = 0
        for _ in range(3):
            hits = cache.stats().hits
            reading = asyncio.ensure_future(burst(cache, ids))
            while not reading.done():
                peak = max(peak, await connections(admin, name))
            await reading
            peak = max(peak, await connections(admin, name))
            assert 0 < peak <= most, f"{peak} connections, bound {most}"
            assert cache.stats().hits == hits + len(ids), cache.stats()
        await cache.close()
        for _ in range(500):  # the server sees each close within a few turns of its loop
            if not (left := await connections(admin, name)):
                break
            await asyncio.sleep(0.01)
        assert left == 0, f"{left} connections left after close"
    finally:
        await cache.close()
        await admin.aclose()


def sockets(port: int) -> int:
    """This process's open sockets to `port` (Redis's), read from /proc.

    Only those: the database's own pool opens connections of its own as the burst's misses
    read it, and a SQLite watch keeps its -shm open while the database is.
    """
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    found = 0
    for descriptor in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed since
            found += str(descriptor.readlink()) in {f"socket:[{inode}]" for inode in inodes}
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_close_after_a_burst_leaves_no_socket(
    db: Database, redis_url: str, namespace: str
) -> None:
    """After bursts, closing the cache closes every connection it opened: no socket is left."""
    ids = await stored_ids(db)
    port = Redis.from_url(redis_url).connection_pool.connection_kwargs.get("port", 6379)
    before = sockets(port)
    cache = await burst_cache(db, redis_url, namespace)
    try:
        await warmed(cache, ids)
        for _ in range(3):
            await burst(cache, ids)
    finally:
        await cache.close()
    for _ in range(500):  # a transport closes its socket on a later turn of the loop
        if sockets(port) <= before:
            break
        await asyncio.sleep(0.01)
    assert sockets(port) == before, f"{sockets(port) - before} sockets left after close"
