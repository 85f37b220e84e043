"""Notifications sent again by hand on PostgreSQL: the Redis tier never serves an older value.

Any role that can connect may send on the change channel. An earlier genuine payload sent
again (a table's `<table> <transaction id>`, or a listener's `* <token>`) named an earlier
stamp, under which Redis still held the value of then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from persistence import Database, connect, set_config
from persistence._postgres.changes import PAYLOADS_KEPT
from persistence.cache import RedisCache, open_redis_cache

pytestmark = pytest.mark.usefixtures("redis_url")

HEARTBEAT = 0.2
BOUND = 5.0
"""Seconds within which the caches must trust the feed again."""

Heard = asyncio.Queue[str]


async def heard_next(heard: Heard, prefix: str) -> str:
    """The next notification on the change channel that starts with `prefix`."""
    async with asyncio.timeout(BOUND):
        while not (payload := await heard.get()).startswith(prefix):
            pass
    return payload


async def open_cache(db: Database, url: str, namespace: str) -> RedisCache:
    """A Redis cache without a memory tier, so that every read asks Redis."""
    return await open_redis_cache(
        db, url, namespace=namespace, timeout=0.1, heartbeat=HEARTBEAT, local_size=0
    )


@pytest.fixture(name="setup")
async def postgres_with_a_listening_admin(
    migrated_postgres_url: str,
) -> AsyncIterator[tuple[Database, asyncpg.Connection[asyncpg.Record], Heard]]:
    """A PostgreSQL database, and a plain connection that hears the change channel."""
    admin: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    heard: Heard = asyncio.Queue()
    await admin.add_listener("persistence_changes", lambda *sent: heard.put_nowait(str(sent[3])))
    try:
        async with connect(migrated_postgres_url) as db:
            yield db, admin, heard
    finally:
        await admin.close()


async def reads_stay(
    cache: RedisCache, read: Callable[[], Awaitable[int | None]], expected: int
) -> None:
    """Every read gives `expected` until one is answered through Redis again."""
    deadline = time.monotonic() + BOUND
    while True:
        bypassed = cache.stats().bypassed
        assert await read() == expected
        if cache.stats().bypassed == bypassed:
            return
        assert time.monotonic() < deadline, "the feed was never trusted again"
        await asyncio.sleep(0.01)


async def read_from_redis(cache: RedisCache, expected: int) -> None:
    """Read until the value is a Redis hit (the listener may hear the last payload later)."""
    deadline = time.monotonic() + BOUND
    while True:
        hits = cache.stats().hits
        assert await cache.get_config_value("runner", "workers", int) == expected
        if cache.stats().hits > hits:
            return
        assert time.monotonic() < deadline, "the value was never read from Redis"
        await asyncio.sleep(0.01)


async def replay_then_read(
    cache: RedisCache,
    admin: asyncpg.Connection[asyncpg.Record],
    heard: Heard,
    payload: str,
) -> None:
    """Send `payload` again from plain SQL; reads give the value now stored, never the old one."""
    marker = f"persistence_changes_marker {time.monotonic_ns()}"

    async def read() -> int | None:
        return await cache.get_config_value("runner", "workers", int)

    await admin.execute("SELECT pg_notify('persistence_changes', $1)", payload)
    await admin.execute("SELECT pg_notify('persistence_changes', $1)", marker)
    await heard_next(heard, marker)  # both delivered; the cache's listener hears them alike
    for _ in range(20):  # whatever moment the listener takes them in, no read is the old value
        assert await read() == 5
        await asyncio.sleep(0.005)
    await reads_stay(cache, read, 5)


async def test_an_earlier_table_payload_sent_again_serves_no_older_value(
    setup: tuple[Database, asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """`config_entries <earlier id>` sent again does not bring back the entry stored under it."""
    db, admin, heard = setup
    cache = await open_cache(db, redis_url, namespace)
    try:
        await heard_next(heard, "* ")  # the cache's listener's token
        await set_config(db, "runner", "workers", 4)
        earlier = await heard_next(heard, "config_entries ")
        await read_from_redis(cache, 4)  # under the stamp of `earlier`
        await set_config(db, "runner", "workers", 5)
        await heard_next(heard, "config_entries ")
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 5)
        await replay_then_read(cache, admin, heard, earlier)
    finally:
        await cache.close()


async def test_an_earlier_token_sent_again_serves_no_older_value(
    setup: tuple[Database, asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """`* <earlier token>` sent again does not bring back the entries stored under the token."""
    db, admin, heard = setup
    await set_config(db, "runner", "workers", 4)
    await heard_next(heard, "config_entries ")
    cache = await open_cache(db, redis_url, namespace)
    try:
        token = await heard_next(heard, "* ")  # every table's stamp, config_entries' too
        await read_from_redis(cache, 4)  # under the token alone
        await set_config(db, "runner", "workers", 5)
        await heard_next(heard, "config_entries ")
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 5)
        await replay_then_read(cache, admin, heard, token)
    finally:
        await cache.close()


async def test_a_payload_sent_before_its_transaction_commits_serves_no_older_value(
    setup: tuple[Database, asyncpg.Connection[asyncpg.Record], Heard],
    migrated_postgres_url: str,
    redis_url: str,
    namespace: str,
) -> None:
    """`config_entries <id>` sent ahead of transaction <id>: its own commit is then a repeat.

    The value read after the early payload is stored under the stamp that the commit's
    notification names again, though the commit changed it.
    """
    db, admin, heard = setup
    await set_config(db, "runner", "workers", 5)
    five = await admin.fetchval("SELECT value FROM config_entries WHERE key = 'workers'")
    await set_config(db, "runner", "workers", 4)
    await heard_next(heard, "config_entries ")
    writer: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    cache = await open_cache(db, redis_url, namespace)
    try:
        await heard_next(heard, "* ")
        async with writer.transaction():
            ahead = f"config_entries {await writer.fetchval('SELECT pg_current_xact_id()::text')}"
            await admin.execute("SELECT pg_notify('persistence_changes', $1)", ahead)
            assert await heard_next(heard, "config_entries ") == ahead
            await read_from_redis(cache, 4)  # under the early payload's stamp, once heard
            await writer.execute("UPDATE config_entries SET value = $1 WHERE key = 'workers'", five)
        assert await heard_next(heard, "config_entries ") == ahead  # the commit's own
        deadline = time.monotonic() + BOUND  # until the listener hears it, 4 is what it knows
        while await cache.get_config_value("runner", "workers", int) != 5:
            assert time.monotonic() < deadline, "the value stored ahead of the commit is served"
            await asyncio.sleep(0.01)
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 5)
    finally:
        await cache.close()
        await writer.close()


async def test_a_token_shaped_as_an_earlier_stamp_serves_no_older_value(
    setup: tuple[Database, asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """`* <token>.<earlier id>` is no token: as every table's stamp it named an earlier one."""
    db, admin, heard = setup
    cache = await open_cache(db, redis_url, namespace)
    try:
        token = (await heard_next(heard, "* ")).removeprefix("* ")
        await set_config(db, "runner", "workers", 4)
        earlier = (await heard_next(heard, "config_entries ")).removeprefix("config_entries ")
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 4)
        await set_config(db, "runner", "workers", 5)
        await heard_next(heard, "config_entries ")
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 5)
        await replay_then_read(cache, admin, heard, f"* {token}.{earlier}")
    finally:
        await cache.close()


async def test_a_listener_starts_a_new_epoch_past_the_payloads_it_keeps(
    setup: tuple[Database, asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """Past PAYLOADS_KEPT payloads since the last token, the listener sends one of its own."""
    db, admin, heard = setup
    cache = await open_cache(db, redis_url, namespace)
    try:
        await heard_next(heard, "* ")
        await admin.execute(
            "SELECT pg_notify('persistence_changes', 'runs ' || n)"
            " FROM generate_series(1, $1::int) AS n",
            PAYLOADS_KEPT + 1,
        )
        await heard_next(heard, "* ")
        await set_config(db, "runner", "workers", 5)
        await reads_stay(cache, lambda: cache.get_config_value("runner", "workers", int), 5)
    finally:
        await cache.close()
