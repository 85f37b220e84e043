"""Forged notifications on PostgreSQL cost the change listener bounded memory.

Any role that can connect may send on the change channel, any text up to 8,000 bytes. The
listener keeps what it heard per table and per payload: a sender must not grow that without
bound, by naming ever new tables or by sending ever new, or ever longer, payloads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import asyncpg
import attrs
import pytest

from _cache_feed_helpers import loaded, redis_cache, shows, workers
from _proxy import proxied
from persistence import connect, set_config
from persistence._backend import ChangeWatch
from persistence._changes import WRITTEN_TABLES
from persistence._database_value import backend_of
from persistence._postgres.changes import CHANGES_CHANNEL, PAYLOADS_KEPT, ChangeListener
from persistence.cache._core import TABLES

HEARTBEAT = 0.2
BOUND = 10.0
"""Seconds within which the listener must have heard what was sent."""
LAST = "config_entries 1"
"""Sent after the forged payloads: once the listener counts it, it has heard them all."""


@pytest.fixture(name="sent")
async def a_listener_and_a_sender(
    migrated_postgres_url: str,
) -> AsyncIterator[tuple[ChangeListener, asyncpg.Connection[asyncpg.Record]]]:
    """The change listener of a PostgreSQL database, and a plain connection to send with."""
    sender: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    async with connect(migrated_postgres_url) as db:
        watch: ChangeWatch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
        assert isinstance(watch, ChangeListener)
        try:
            yield watch, sender
        finally:
            await watch.close()
            await sender.close()


@attrs.frozen
class Kept:
    """What a listener keeps: entries per table and payloads, and the longest text among them."""

    counts: int
    stamps: int
    payloads: int
    longest: int
    awaiting: bool
    """Whether the listener awaits a token of its own: its stamps unknown until then."""


def kept(listener: ChangeListener) -> Kept:
    """Measure what `listener` keeps of what it heard."""
    counts, stamps = listener._counts, listener._stamps  # noqa: SLF001  # the state measured
    seen = listener._seen  # noqa: SLF001  # the state measured
    longest = max(map(len, [*seen, *stamps.values()]), default=0)
    awaiting = listener._awaited is not None  # noqa: SLF001  # the state measured
    return Kept(len(counts), len(stamps), len(seen), longest, awaiting)


def counted(listener: ChangeListener) -> int | None:
    """The version of config_entries: it changes with each payload naming it."""
    return listener.version("config_entries")


async def send_then_last(
    listener: ChangeListener, sender: asyncpg.Connection[asyncpg.Record], prefix: str, count: int
) -> None:
    """Send `count` payloads `<prefix><32 hex digits> 1`, then LAST; wait until both are heard."""
    before = counted(listener)
    await sender.execute(
        "SELECT pg_notify('persistence_changes', format('%s%s 1', $2::text, md5(n::text)))"
        " FROM generate_series(1, $1::int) AS n",
        count,
        prefix,
    )
    await sender.execute("SELECT pg_notify('persistence_changes', $1)", LAST)
    deadline = time.monotonic() + BOUND
    while counted(listener) in {before, None}:
        assert time.monotonic() < deadline, "the listener never heard the last payload"
        await asyncio.sleep(0.01)


def test_every_table_a_cache_serves_is_one_the_listener_follows() -> None:
    """The caches ask only about tables the package writes: the listener keeps no other."""
    assert set(TABLES) <= WRITTEN_TABLES


async def test_forged_table_names_grow_no_per_table_state(
    sent: tuple[ChangeListener, asyncpg.Connection[asyncpg.Record]],
) -> None:
    """20,000 payloads naming 20,000 tables no cache can ask about leave nothing behind."""
    listener, sender = sent
    await send_then_last(listener, sender, "forged_", 20_000)
    assert kept(listener).counts <= len(WRITTEN_TABLES), kept(listener)
    assert kept(listener).stamps <= len(WRITTEN_TABLES), kept(listener)


def heard(listener: ChangeListener, payloads: Iterable[str]) -> None:
    """Hand `payloads` to the listener as its connection does, after a token of its epoch."""
    for payload in ("* " + "ab" * 12, *payloads):
        listener._notified(None, 0, CHANGES_CHANNEL, payload)  # noqa: SLF001  # as asyncpg calls it


def test_payloads_past_the_kept_number_are_not_kept() -> None:
    """Past PAYLOADS_KEPT payloads the listener awaits a token of its own: it keeps no more.

    Every payload sent before that token arrives comes first, a million as well as one.
    """
    listener = ChangeListener("", heartbeat=HEARTBEAT, connect_timeout=1.0)
    heard(listener, (f"config_entries {n}" for n in range(PAYLOADS_KEPT + 4_000)))
    assert kept(listener).payloads <= PAYLOADS_KEPT, kept(listener)
    assert kept(listener).awaiting


def test_payloads_of_8000_bytes_are_not_kept() -> None:
    """An id far longer than a transaction id's 20 digits is no genuine payload: none is kept."""
    listener = ChangeListener("", heartbeat=HEARTBEAT, connect_timeout=1.0)
    heard(listener, (f"config_entries {'9' * 7980}{n}" for n in range(200)))
    assert kept(listener).longest <= len("config_entries ") + 24 + 1 + 20, kept(listener)
    assert kept(listener).awaiting


ODD_PAYLOADS = (
    "config_entries " + "9" * 7984,
    "* " + "ab" * 3998,
    "config_entries " + "\u0661\u0662\u0663",  # digits, but not a transaction id's
    "config_entries \u00e9" + "\u00e9" * 3990,
    "config_entries  1",
    "\u00e9" * 3999,
    " " * 7999,
)
"""Payloads of up to 8,000 bytes, of text no genuine payload holds."""


async def test_odd_payloads_serve_the_value_now_stored(
    migrated_postgres_url: str, redis_url: str, namespace: str
) -> None:
    """Payloads of 8,000 bytes or of odd text cost misses, never an error or an older value."""
    sender: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    async with connect(migrated_postgres_url) as db:
        cache = await redis_cache(db, redis_url, namespace, local_size=0)
        try:
            await loaded(db, (cache,), 4)
            for payload in ODD_PAYLOADS:
                await sender.execute("SELECT pg_notify('persistence_changes', $1)", payload)
            await set_config(db, "runner", "workers", 5)
            await shows(workers(cache), 5, at_once=False)
            hits = cache.stats().hits
            await shows(workers(cache), 5, at_once=False)
            deadline = time.monotonic() + BOUND
            while cache.stats().hits == hits:  # trusted again: read through Redis
                assert time.monotonic() < deadline, "the feed was never trusted again"
                assert await workers(cache)() == 5
                await asyncio.sleep(0.01)
        finally:
            await cache.close()
            await sender.close()


async def test_a_listener_whose_requests_stop_reaching_the_server_listens_again(
    migrated_postgres_url: str,
) -> None:
    """A half-dead path at the moment the listener sends a token of its own: it listens again.

    An odd payload (any role may send one) makes the listener send a new token. That send
    had no bound: on a path that took requests and never delivered them, it waited for good,
    and the caches read the database until the close.
    """
    sender: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
    async with (
        proxied(migrated_postgres_url) as (proxy, listen_url),
        connect(migrated_postgres_url, pgbouncer="transaction", listen_url=listen_url) as db,
    ):
        watch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
        assert isinstance(watch, ChangeListener)
        try:
            await listening(watch, after=-1)
            epoch = watch._epoch  # noqa: SLF001  # one more for each connection it makes
            proxy.mute_requests()
            await sender.execute("SELECT pg_notify($1, 'config_entries odd')", CHANGES_CHANNEL)
            await listening(watch, after=epoch)
        finally:
            await watch.close()
            await sender.close()


async def listening(listener: ChangeListener, *, after: int) -> None:
    """Wait, within the bound, for `listener` to be trusted on a connection made after `after`."""
    deadline = time.monotonic() + BOUND
    while listener._epoch <= after or counted(listener) is None:  # noqa: SLF001
        assert time.monotonic() < deadline, "the listener never listened again"
        await asyncio.sleep(0.01)
