"""open_persistence on PostgreSQL whose change listener meets a server that never answers.

A listen_url whose server takes the connection and says nothing (a half-dead proxy, a
firewall that drops the replies) held the open back the whole connect timeout (10 s), though
the database itself answered. The open now waits a short bound for the first heartbeat and
goes on with the feed down: the caches read the database until the listener is up.

Timed: the open is measured against the wait it used to make. PERSISTENCE_TEST_OPEN_BOUND
sets the bound in seconds (4 by default: the open's own wait is 2 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from _cache_feed_helpers import BOUND, Read, shows
from _proxy import pipe
from persistence import connect, get_config_value, open_persistence, set_config
from persistence.cache import Cache
from test_descriptors import counts, settled_counts

HEARTBEAT = 0.5
OPEN_BOUND = float(os.environ.get("PERSISTENCE_TEST_OPEN_BOUND", "4"))
"""Seconds an open may take at most with a silent listener; it took the 10 s connect timeout."""


class SilentServer:
    """A server on 127.0.0.1 that takes connections and never writes, until told to forward.

    Once `forward` is called, the connections it holds are ended and every new one is passed
    on to the PostgreSQL server, both ways.
    """

    def __init__(self) -> None:
        self.port = 0
        self.accepted = 0
        self.ended = 0  # held connections whose client closed (or that `forward` ended)
        self._held: list[asyncio.StreamWriter] = []
        self._target: tuple[str, int] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def url(self, database_url: str) -> str:
        """The database URL with this server's address in place of PostgreSQL's."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{self.port}"))

    def forward(self, database_url: str) -> None:
        """End the connections held, and pass each new one on to the database's server."""
        parts = urlsplit(database_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        for writer in self._held:
            writer.transport.abort()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Hold a connection silent until its client closes it; or forward it."""
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self.accepted += 1
        try:
            if self._target is None:
                self._held.append(writer)
                while await reader.read(65536):  # what the client says, unanswered
                    pass
                self.ended += 1
                return
            to_reader, to_writer = await asyncio.open_connection(*self._target)
            try:
                async with asyncio.TaskGroup() as pipes:
                    pipes.create_task(pipe(reader, to_writer))
                    pipes.create_task(pipe(to_reader, writer))
            finally:
                to_writer.close()
        finally:
            writer.close()
            self._handlers.discard(handler)

    async def all_ended(self) -> None:
        """Wait, within the bound, until the client closed every connection held."""
        deadline = time.monotonic() + BOUND
        while self.ended < len(self._held):
            assert time.monotonic() < deadline, f"{len(self._held) - self.ended} still open"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """End what is still served."""
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


def workers(cache: Cache) -> Read:
    """The read of runner.workers through `cache`."""
    return lambda: cache.get_config_value("runner", "workers", int)


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[SilentServer]:
    """A `SilentServer` on a free port of 127.0.0.1 only."""
    silent = SilentServer()
    server = await asyncio.start_server(silent.serve, "127.0.0.1", 0)
    silent.port = server.sockets[0].getsockname()[1]
    try:
        yield silent
    finally:
        server.close()
        await silent.stop()
        await server.wait_closed()


async def test_a_silent_listener_does_not_hold_the_open_back(
    migrated_postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The open ends within the bound, the feed down; the reads are the database's.

    Closing ends the listener's connection still under way, and leaves no task or descriptor.
    """
    url = migrated_postgres_url
    async with silent_server() as silent:
        before = counts()
        started = time.monotonic()
        async with open_persistence(
            url, files=tmp_path / "f", listen_url=silent.url(url), heartbeat=HEARTBEAT
        ) as p:
            opened = time.monotonic() - started
            assert silent.accepted >= 1  # the listener's connect is held, not refused
            await set_config(p.db, "runner", "workers", 3)
            assert await p.cache.get_config_value("runner", "workers", int) == 3
            assert await get_config_value(p.db, "runner", "workers", int) == 3
            assert p.cache.stats().hits == 0  # the feed is down: every read is the database's
        assert opened < OPEN_BOUND, f"the open took {opened:.1f} s"
        assert "no first heartbeat" in caplog.text
        await silent.all_ended()
        after = await settled_counts(before.native_threads, before.descriptors)
        assert (after.descriptors, after.tasks) == (before.descriptors, before.tasks)


async def test_a_listener_up_late_serves_nothing_stale(
    migrated_postgres_url: str, tmp_path: Path
) -> None:
    """Changes made while the listener was silent show, and so do those made once it is up.

    Another process's writes (here a database of its own) are what only the feed tells of.
    """
    url = migrated_postgres_url
    async with (
        silent_server() as silent,
        connect(url) as other,
        open_persistence(
            url, files=tmp_path / "f", listen_url=silent.url(url), heartbeat=HEARTBEAT
        ) as p,
    ):
        read = workers(p.cache)
        await set_config(other, "runner", "workers", 3)
        assert await read() == 3
        await set_config(other, "runner", "workers", 4)
        assert await read() == 4  # the feed is down: read from the database
        silent.forward(url)
        deadline = time.monotonic() + BOUND
        while p.cache.stats().hits == 0:  # until the listener is up: a read from memory
            assert time.monotonic() < deadline, "the listener never came up"
            assert await read() == 4
            await asyncio.sleep(0.01)
        assert await read() == 4
        await set_config(other, "runner", "workers", 5)
        await shows(read, 5, at_once=False)


@pytest.mark.parametrize("listen", [False, True], ids=["own-url", "listen-url"])
async def test_a_listener_that_answers_is_up_once_the_open_returns(
    migrated_postgres_url: str, tmp_path: Path, *, listen: bool
) -> None:
    """The shorter wait still waits for a listener that answers: the first read is trusted."""
    url = migrated_postgres_url
    async with connect(url) as other:
        await set_config(other, "runner", "workers", 7)
    async with open_persistence(
        url, files=tmp_path / "f", listen_url=url if listen else None, heartbeat=HEARTBEAT
    ) as p:
        read = workers(p.cache)
        assert await read() == 7
        assert await read() == 7
        stats = p.cache.stats()
        assert (stats.hits, stats.misses, stats.bypassed) == (1, 1, 0)
