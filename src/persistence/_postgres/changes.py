"""PostgreSQL's change watch: LISTEN, on a connection of its own, with a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Final

import asyncpg
import asyncpg.pool

__all__ = ["CHANGES_CHANNEL", "ChangeListener"]

CHANGES_CHANNEL: Final = "persistence_changes"
"""The channel on which migration 0003's triggers send the changed table's name at commit."""

_RECONNECT_WAITS: Final = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_LOG: Final = logging.getLogger("persistence.postgres")


class ChangeListener:
    """PostgreSQL's change watch: LISTEN on a connection of its own, outside the pool.

    Migration 0003's triggers send the changed table's name when a statement's transaction
    commits. A heartbeat (`SELECT 1`), sent every `heartbeat` seconds and answered within
    `heartbeat`, keeps the versions trusted: a notification committed before the heartbeat
    was sent arrives before its answer. A silent or lost connection makes `version` None
    within 2 x heartbeat; the connection is opened again, with backoff, and every version
    changes when it is, since notifications may have been missed meanwhile.
    """

    def __init__(self, dsn: str, *, heartbeat: float, connect_timeout: float) -> None:
        self._dsn = dsn
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._counts: dict[str, int] = {}
        self._epoch = 0
        self._fresh_until = 0.0
        self._lost = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def version(self, table: str) -> int | None:
        """Give a number that changes with each notification for `table`; None if untrusted."""
        if time.monotonic() >= self._fresh_until:
            return None
        return self._epoch + self._counts.get(table, 0)

    async def start(self) -> None:
        """Start listening; wait at most the connect timeout for the first heartbeat."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._connect_timeout + self._heartbeat):
                await self._listening.wait()

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        self._fresh_until = 0.0
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        table = str(payload)
        self._counts[table] = self._counts.get(table, 0) + 1

    async def _run(self) -> None:
        attempt = 0
        down = False  # said once per outage, as the Redis tier does
        while True:
            connection: asyncpg.Connection[asyncpg.Record] | None = None
            why = "the server closed the connection"
            try:
                async with asyncio.timeout(self._connect_timeout):
                    connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                    await connection.add_listener(CHANGES_CHANNEL, self._notified)
                connection.add_termination_listener(lambda _: self._lost.set())
                self._lost.clear()
                self._epoch += 1  # notifications may have been missed while not listening
                attempt = 0
                if down:
                    down = False
                    _LOG.info("PostgreSQL change notifications: listening again")
                await self._beat(connection)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            finally:
                self._fresh_until = 0.0
                if connection is not None:
                    connection.terminate()
            if not down:
                down = True
                _LOG.warning(
                    "PostgreSQL change notifications lost (%s); caches read the database "
                    "until they are back",
                    why,
                )
            await asyncio.sleep(_RECONNECT_WAITS[min(attempt, len(_RECONNECT_WAITS) - 1)])
            attempt += 1

    async def _beat(self, connection: asyncpg.Connection[asyncpg.Record]) -> None:
        """Send a heartbeat every `heartbeat` seconds until one fails or the connection ends."""
        while True:
            sent = time.monotonic()
            await connection.fetchval("SELECT 1", timeout=self._heartbeat)
            if self._lost.is_set():
                return
            self._fresh_until = sent + 2 * self._heartbeat
            self._listening.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._lost.wait()
            if self._lost.is_set():
                return
