"""The Redis cache against hostile arguments, entries and peers, beyond `test_cache_rules.py`."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable
from typing import Final

import pytest

from _cache_feed_helpers import HEARTBEAT
from _proxy import LOOPBACK, serving
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


_HELLO: Final = b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n"
"""A RESP3 server's answer to redis-py's handshake (`HELLO 3`): a map."""


def _peer(hello: bytes, getrange: bytes) -> Callable[[StreamReader, StreamWriter], Awaitable[None]]:
    """A peer that speaks Redis's protocol but answers `HELLO` and `GETRANGE` as told; +OK else."""

    async def answer(reader: StreamReader, writer: StreamWriter) -> None:
        try:
            while head := await reader.readline():  # *N, then N arguments: $length, bytes
                arguments = [
                    (await reader.readexactly(int((await reader.readline())[1:]) + 2))[:-2]
                    for _ in range(int(head[1:]))
                ]
                name = arguments[0].upper()
                writer.write(
                    hello if name == b"HELLO" else getrange if name == b"GETRANGE" else b"+OK\r\n"
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return answer


@pytest.mark.parametrize(
    ("hello", "getrange", "said"),
    [
        pytest.param(b"*2\r\n$5\r\nproto\r\n:2\r\n", b"", "AttributeError", id="hello-list"),
        pytest.param(b"+OK\r\n", b"", "", id="hello-ok"),
        pytest.param(_HELLO, b":5\r\n", "GETRANGE gave int", id="getrange-int"),
        pytest.param(_HELLO, b"*1\r\n:1\r\n", "GETRANGE gave list", id="getrange-list"),
    ],
)
async def test_a_peer_whose_replies_no_redis_gives_is_an_outage(
    db: Database,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
    *,
    hello: bytes,
    getrange: bytes,
    said: str,
) -> None:
    """A handshake answered by a list, or a read by an integer: each read raised redis-py's error.

    `AttributeError: 'list' object has no attribute 'get'` came from each read, never counted
    as a fault: a Redis fault reads from the database, with one warning.
    """
    await set_config(db, "runner", "a", 1)
    with serving(_peer(hello, getrange)) as port:
        url = f"redis://{LOOPBACK}:{port}/14"
        cache = await open_redis_cache(db, url, namespace=namespace, heartbeat=HEARTBEAT)
        try:
            with caplog.at_level(logging.WARNING, logger="persistence.cache"):
                for _ in range(3):
                    assert await cache.get_config_value("runner", "a", int) == 1
            assert cache.stats().faults == 1
            assert cache.stats().bypassed >= 1
            warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warned) == 1
            assert "gave a reply that no Redis gives" in warned[0]
            assert said in warned[0]
        finally:
            await cache.close()
