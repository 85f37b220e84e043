"""A `*` token sent again on PostgreSQL after the listeners that heard it have ended.

A listener remembers the tokens it heard; one started later knew none of them, and took an
earlier token sent again by hand for a new one: the Redis entries stored under it were served.
A token now carries the id of the transaction that sent it, which had ended when any later
listener connected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from _cache_feed_helpers import HEARTBEAT, redis_cache, shows, workers
from persistence import Database, connect, set_config
from persistence._database_value import backend_of
from persistence._postgres.changes import CHANGES_CHANNEL, TOKENS_KEPT, ChangeListener, horizon
from persistence.cache import RedisCache

pytestmark = pytest.mark.usefixtures("redis_url")

BOUND = 5.0
"""Seconds within which the listeners must have heard what was sent."""

Heard = asyncio.Queue[str]


async def heard_next(heard: Heard, prefix: str) -> str:
    """The next notification on the change channel that starts with `prefix`."""
    async with asyncio.timeout(BOUND):
        while not (payload := await heard.get()).startswith(prefix):
            pass
    return payload


@pytest.fixture(name="admin")
async def a_listening_admin(
    migrated_postgres_url: str,
) -> AsyncIterator[tuple[asyncpg.Connection[asyncpg.Record], Heard]]:
    """A plain connection that hears the change channel, and what it heard."""
    admin: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    heard: Heard = asyncio.Queue()
    await admin.add_listener(CHANGES_CHANNEL, lambda *sent: heard.put_nowait(str(sent[3])))
    try:
        yield admin, heard
    finally:
        await admin.close()


async def stored_in_redis(cache: RedisCache, expected: int) -> None:
    """Read until the value comes from Redis."""
    deadline = time.monotonic() + BOUND
    while True:
        hits = cache.stats().hits
        assert await workers(cache)() == expected
        if cache.stats().hits > hits:
            return
        assert time.monotonic() < deadline, "the value was never read from Redis"
        await asyncio.sleep(0.01)


async def test_a_token_sent_again_after_every_listener_restarted_serves_no_older_value(
    migrated_postgres_url: str,
    admin: tuple[asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """Two processes hear a token; both restart; the token sent again by hand is refused."""
    sender, heard = admin
    async with connect(migrated_postgres_url) as db_a, connect(migrated_postgres_url) as db_b:
        await set_config(db_a, "runner", "workers", 4)
        cache_a = await redis_cache(db_a, redis_url, namespace, local_size=0)
        cache_b = await redis_cache(db_b, redis_url, namespace, local_size=0)
        await heard_next(heard, "* ")
        token = await heard_next(heard, "* ")  # B's, heard by both: every table's stamp
        await stored_in_redis(cache_a, 4)  # under the token alone
        await set_config(db_a, "runner", "workers", 5)
        await shows(workers(cache_b), 5, at_once=False)
        await cache_a.close()
        await cache_b.close()
        caches = (
            await redis_cache(db_a, redis_url, namespace, local_size=0),
            await redis_cache(db_b, redis_url, namespace, local_size=0),
        )
        try:
            await replay_then_read(caches, sender, heard, token)
        finally:
            for cache in caches:
                await cache.close()


async def replay_then_read(
    caches: tuple[RedisCache, ...],
    sender: asyncpg.Connection[asyncpg.Record],
    heard: Heard,
    payload: str,
) -> None:
    """Send `payload` again; every read gives 5, and each cache reads through Redis again."""
    for cache in caches:
        await stored_in_redis(cache, 5)
    await sender.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, payload)
    await heard_next(heard, payload)
    for _ in range(40):  # whatever moment the listeners take it in, no read is the old value
        for cache in caches:
            assert await workers(cache)() == 5
        await asyncio.sleep(0.01)
    for cache in caches:
        await stored_in_redis(cache, 5)


async def test_a_token_sent_again_past_the_tokens_kept_serves_no_older_value(
    migrated_postgres_url: str,
    admin: tuple[asyncpg.Connection[asyncpg.Record], Heard],
    redis_url: str,
    namespace: str,
) -> None:
    """More than TOKENS_KEPT tokens sent, then an earlier one again: it is refused still."""
    sender, heard = admin
    async with connect(migrated_postgres_url) as db:
        await set_config(db, "runner", "workers", 4)
        cache = await redis_cache(db, redis_url, namespace, local_size=0)
        try:
            token = await heard_next(heard, "* ")
            await stored_in_redis(cache, 4)  # under the token alone
            await set_config(db, "runner", "workers", 5)
            await shows(workers(cache), 5, at_once=False)
            rest = token[len("* ") + 24 :]  # what follows the token, as this version sends it
            await sender.execute(
                "SELECT pg_notify($1, '* ' || left(md5(n::text), 24) || $2::text)"
                " FROM generate_series(1, $3::int) AS n",
                CHANGES_CHANNEL,
                rest,
                TOKENS_KEPT + 1,
            )
            await replay_then_read((cache,), sender, heard, token)
        finally:
            await cache.close()


@pytest.fixture(name="listener")
async def a_change_listener(migrated_postgres_url: str) -> AsyncIterator[ChangeListener]:
    """The change listener of a PostgreSQL database."""
    async with connect(migrated_postgres_url) as db:
        listener = await listener_of(db)
        try:
            yield listener
        finally:
            await listener.close()


async def listener_of(db: Database) -> ChangeListener:
    """A change listener of `db`, its own token back."""
    watch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
    assert isinstance(watch, ChangeListener)
    deadline = time.monotonic() + BOUND
    while watch.stamp("config_entries") is None:
        assert time.monotonic() < deadline, "the listener's token never came back"
        await asyncio.sleep(0.01)
    return watch


@pytest.mark.parametrize("still_open", [True, False], ids=["an open transaction", "no id yet"])
async def test_a_token_of_a_transaction_not_ended_is_answered_with_a_new_one(
    migrated_postgres_url: str,
    listener: ChangeListener,
    admin: tuple[asyncpg.Connection[asyncpg.Record], Heard],
    *,
    still_open: bool,
) -> None:
    """A token naming a transaction still open, or an id not given out, names no stamp.

    Sent again once that transaction has ended, it would be taken for a new one by a listener
    started meanwhile, and the entries stored under it be served.
    """
    sender, heard = admin
    holder: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    try:
        async with holder.transaction():
            xid = int(await holder.fetchval("SELECT pg_current_xact_id()::text"))
            forged = f"* {'ab' * 12} {xid if still_open else xid + 10**12}"
            await sender.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, forged)
            await heard_next(heard, forged)
            answer = await heard_next(heard, "* ")  # the listener's own, while it is open
            deadline = time.monotonic() + BOUND
            while (stamp := listener.stamp("config_entries")) is None:
                assert time.monotonic() < deadline, "the listener's token never came back"
                await asyncio.sleep(0.01)
            assert stamp == "-".join(answer.split()[1:])
    finally:
        await holder.close()


def test_tokens_kept_within_one_heartbeat_are_bounded() -> None:
    """Past TOKENS_KEPT tokens since the last heartbeat, another's token is refused, not kept."""
    listener = ChangeListener("", heartbeat=HEARTBEAT, connect_timeout=1.0)
    listener._answered_at(horizon("100:100:"), 0.0)  # noqa: SLF001  # a heartbeat's answer
    for n in range(TOKENS_KEPT + 1_000):
        payload = f"* {n:024x} {200 + n}"
        listener._notified(None, 0, CHANGES_CHANNEL, payload)  # noqa: SLF001  # as asyncpg does
    assert len(listener._tokens) <= TOKENS_KEPT  # noqa: SLF001  # the state measured
    assert listener._awaited is not None  # noqa: SLF001  # a token of its own: stamps unknown
