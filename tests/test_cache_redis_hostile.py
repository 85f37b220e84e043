"""The Redis cache against hostile arguments, entries and peers, beyond `test_cache_rules.py`."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

import pytest

from _cache_feed_helpers import HEARTBEAT
from persistence import Database, ValidationError, set_config
from persistence.cache import open_redis_cache
from persistence.cache.distributed import MAX_ENTRY_BYTES


@pytest.mark.parametrize("bound", [MAX_ENTRY_BYTES + 1, 2**63, 2**64])
async def test_an_entry_bound_redis_cannot_take_is_refused_before_anything_opens(
    db: Database, redis_url: str, namespace: str, bound: int
) -> None:
    """A `max_entry_bytes` past Redis's largest string is a ValidationError naming it.

    It was taken: past 2**63 - 1 every read's GETRANGE was refused by Redis ("value is not an
    integer or out of range"), counted as an outage, and Redis was never used; past 512 MiB
    an entry Redis refuses to hold was written, an outage too.
    """
    tasks = len(asyncio.all_tasks())
    with pytest.raises(ValidationError, match="max_entry_bytes"):
        await open_redis_cache(db, redis_url, namespace=namespace, max_entry_bytes=bound)
    assert len(asyncio.all_tasks()) == tasks
    await set_config(db, "runner", "a", 1)
    cache = await open_redis_cache(
        db,
        redis_url,
        namespace=namespace,
        heartbeat=HEARTBEAT,
        local_size=0,
        max_entry_bytes=MAX_ENTRY_BYTES,
    )
    try:
        for _ in range(3):
            assert await cache.get_config_value("runner", "a", int) == 1
        assert (cache.stats().hits, cache.stats().faults) == (2, 0)
    finally:
        await cache.close()


async def test_a_database_index_past_the_servers_is_logged_as_refused(
    db: Database, redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An index the server has no database for is logged as the server's refusal, in its words.

    The reads go to the database meanwhile. The warning had said "no answer within 0.25s or a
    failed call", as for a server that is down or slow.
    """
    await set_config(db, "runner", "a", 1)
    past = urllib.parse.urlsplit(redis_url)._replace(path="/99999").geturl()
    cache = await open_redis_cache(db, past, namespace=namespace, heartbeat=HEARTBEAT)
    try:
        with caplog.at_level(logging.WARNING, logger="persistence.cache"):
            assert await cache.get_config_value("runner", "a", int) == 1
        assert cache.stats().faults == 1
        assert "/99999: refused the call (ResponseError: DB index is out of range)" in caplog.text
        assert "no answer" not in caplog.text
    finally:
        await cache.close()
