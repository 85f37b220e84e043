"""What the change-feed tests share: a Redis namespace and cache, and reads that must show."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from persistence import Database, set_config
from persistence.cache import MemoryCache, RedisCache, open_redis_cache

HEARTBEAT = 0.2
BOUND = float(os.environ.get("TEST_FEED_BOUND", "2.0"))
"""Seconds within which a committed change must show on PostgreSQL, with room for load."""

Read = Callable[[], Awaitable[int]]


async def redis_cache(db: Database, url: str, namespace: str, local_size: int) -> RedisCache:
    """A Redis cache with short limits; `local_size=0` makes every read ask Redis."""
    return await open_redis_cache(
        db,
        url,
        namespace=namespace,
        timeout=0.5,
        retry_after=0.2,
        heartbeat=HEARTBEAT,
        local_size=local_size,
    )


def workers(cache: MemoryCache | RedisCache) -> Read:
    """The read of runner.workers through `cache`."""
    return lambda: cache.get_config_value("runner", "workers", int)


async def shows(read: Read, expected: int, *, at_once: bool) -> None:
    """The read gives `expected`: at once (SQLite), or within the bound; and keeps giving it."""
    started = time.monotonic()
    while (value := await read()) != expected:
        assert not at_once, f"still {value}, not {expected}"
        assert time.monotonic() - started < BOUND, f"still {value}, not {expected}"
        await asyncio.sleep(0.005)
    for _ in range(5):
        assert await read() == expected


async def loaded(db: Database, caches: tuple[MemoryCache | RedisCache, ...], value: int) -> None:
    """Set runner.workers and have every cache hold it (in memory and in Redis)."""
    await set_config(db, "runner", "workers", value)
    for cache in caches:
        await shows(workers(cache), value, at_once=False)
