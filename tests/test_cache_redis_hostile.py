"""The Redis cache against hostile arguments, entries and peers, beyond `test_cache_rules.py`."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

import pytest

from _cache_feed_helpers import HEARTBEAT
from persistence import Database, ValidationError, set_config
from persistence.cache import distributed, open_redis_cache
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


@pytest.mark.parametrize(
    ("place", "said"),
    [
        ("/99999", "ResponseError: DB index is out of range"),
        ("nosuchuser:wrong@", "AuthenticationError: invalid username-password pair"),
    ],
)
async def test_a_call_the_server_refuses_is_logged_as_refused(
    db: Database,
    redis_url: str,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    *,
    place: str,
    said: str,
) -> None:
    """A database index past the server's, or a user it does not know: the server's words.

    The reads go to the database meanwhile. The warning had said "no answer within 0.25s or a
    failed call", as for a server that is down or slow.
    """
    await set_config(db, "runner", "a", 1)
    parts = urllib.parse.urlsplit(redis_url)
    if place.startswith("/"):
        parts = parts._replace(path=place)
    else:
        parts = parts._replace(netloc=place + parts.netloc.rpartition("@")[2])
    cache = await open_redis_cache(db, parts.geturl(), namespace=namespace, heartbeat=HEARTBEAT)
    try:
        with caplog.at_level(logging.WARNING, logger="persistence.cache"):
            assert await cache.get_config_value("runner", "a", int) == 1
        assert cache.stats().faults == 1
        assert f": refused the call ({said}" in caplog.text
        assert "no answer" not in caplog.text
    finally:
        await cache.close()


async def test_an_entry_whose_texts_pass_the_bound_is_never_encoded(
    db: Database, redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value whose texts alone pass `max_entry_bytes` is kept in memory, never encoded.

    It was encoded whole, then dropped for its size: a 40 MB output held the GIL a quarter
    of a second on each fill of it. A value within the bound is written as before.
    """
    encoded: list[int] = []
    real = distributed._encoded  # noqa: SLF001  # watched

    def watched(entry: object, *, in_pieces: bool) -> bytes:
        data = real(entry, in_pieces=in_pieces)
        encoded.append(len(data))
        return data

    monkeypatch.setattr(distributed, "_encoded", watched)
    await set_config(db, "runner", "big", "x" * 5_000)
    await set_config(db, "runner", "small", "x" * 10)
    cache = await open_redis_cache(
        db, redis_url, namespace=namespace, heartbeat=HEARTBEAT, max_entry_bytes=4_096
    )
    try:
        assert await cache.get_config_value("runner", "big", str) == "x" * 5_000
        assert encoded == []
        assert await cache.get_config_value("runner", "small", str) == "x" * 10
        assert len(encoded) == 1
    finally:
        await cache.close()
