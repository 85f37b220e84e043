"""PostgreSQL's change watch: LISTEN, on a connection of its own, with a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from typing import Final

import asyncpg
import asyncpg.pool

from persistence._changes import WRITTEN_TABLES
from persistence._postgres.identity import database_identity

CHANGES_CHANNEL: Final = "persistence_changes"
"""The channel on which migration 0004's triggers send `<table> <transaction id>` at commit."""

_RECONNECT_WAITS: Final = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_TOKEN: Final = re.compile(r"[0-9a-f]{24}")
"""A listener's `*` token: 96 random bits in hex, as `_new_token` makes them."""
_ID: Final = re.compile(r"[0-9]{1,20}")
"""A transaction id as `pg_current_xact_id()` gives it: an xid8, at most 20 digits."""
PAYLOADS_KEPT: Final = 16_384
"""Table payloads remembered in one `*` epoch; past them the listener starts a new epoch."""
TOKENS_KEPT: Final = 4_096
"""`*` tokens remembered, the oldest forgotten first."""
_LOG: Final = logging.getLogger("persistence.postgres")


class ChangeListener:
    """PostgreSQL's change watch: LISTEN on a connection of its own, outside the pool.

    On each connect the listener sends `* <random token>`, a new stamp for every table in
    every listener; then `<table> <transaction id>` makes the table's stamp the last token
    and the id. The id alone would repeat: after a failover to a lagging replica or a
    point-in-time restore, the server gives ids out again, for other data. A
    heartbeat answered within `heartbeat` keeps the versions trusted (a notification committed
    before it was sent arrives first); without one, `version` and `stamp` are None within
    2 x heartbeat, and the connection is opened again, with backoff.

    Any role that can connect can send on the channel, so a payload sent again by hand would
    set a stamp back to one under which older values were stored. PostgreSQL never sends one
    payload twice within a `*` epoch, nor one token twice: the listener remembers both, and
    answers a repeat (or a payload of no genuine form) with a new token of its own, a new
    stamp for every table. Until that token arrives, `stamp` is None. A payload naming a
    table that no query of the package writes (`WRITTEN_TABLES`) is ignored: no cache asks of
    it, and a sender naming ever new tables would grow the listener's memory.
    """

    def __init__(self, dsn: str, *, heartbeat: float, connect_timeout: float) -> None:
        self._dsn = dsn
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._counts: dict[str, int] = {}
        self._stamps: dict[str, str] = {}
        self._every: str = ""  # the last `*` stamp: every table's, until its own arrives
        self._seen: set[str] = set()  # the table payloads heard since that `*`
        self._tokens: dict[str, None] = {}  # the `*` tokens heard, oldest first
        self._awaited: str | None = None  # this listener's token, sent and not yet back
        self._unsent: str | None = None  # a token to send at the next heartbeat
        self._epoch = 0
        self._fresh_until = 0.0
        self._answered = 0.0  # when the last answered heartbeat was sent
        self._beaten = asyncio.Event()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._identity: str | None = None

    def version(self, table: str) -> int | None:
        """Give a number that changes with each notification for `table`; None if untrusted."""
        if time.monotonic() >= self._fresh_until:
            self._revive()
            return None
        return self._epoch + self._counts.get(table, 0)

    def stamp(self, table: str) -> str | None:
        """Give the stamp of the last notification for `table`; None if unknown or untrusted."""
        if time.monotonic() >= self._fresh_until:
            self._revive()
            return None
        if self._awaited is not None:
            return None
        return self._stamps.get(table, self._every) or None

    def identity(self) -> str | None:
        """Name the database as a copy does (`database_identity`), read again on each connect."""
        return self._identity

    async def sync(self) -> bool:
        """Send a heartbeat now; True once one sent after this call is answered in time."""
        asked = time.monotonic()
        if asked >= self._fresh_until:
            self._revive()
            return False  # lost or silent: the reader goes to the database instead of waiting
        deadline = asked + 2 * self._heartbeat
        self._wake.set()
        while self._answered < asked:
            left = deadline - time.monotonic()
            if left <= 0 or self._task is None:
                return False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._beaten.wait()
        return time.monotonic() < self._fresh_until

    async def start(self) -> None:
        """Start listening; wait at most the connect timeout for the first heartbeat."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._connect_timeout + self._heartbeat):
                    await self._listening.wait()
        except BaseException:  # cancelled while waiting: leave no listener behind
            await asyncio.shield(self.close())
            raise

    def _revive(self) -> None:
        """Listen again if other code ended the listener: a shutdown handler's cancel, say.

        Only `close` ends the feed; without it every cache reads the database on every call.
        A reader, not the listener, starts it again, so that the cancel of a loop's last tasks
        (as `asyncio.run` ends) still ends it.
        """
        task = self._task
        if task is None or not task.done():
            return
        why = "its task was cancelled by other code" if task.cancelled() else repr(task.exception())
        _LOG.warning("PostgreSQL change notifications ended (%s); listening again", why)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        self._fresh_until = 0.0
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the caller was cancelled too, not only the listener

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        table, _, stamp = text.partition(" ")
        if table == "*":
            self._epoch += 1
            if stamp in self._tokens or not _TOKEN.fullmatch(stamp):
                self._renew()  # sent again, or not a token: its stamps may name older values
                return
            self._tokens[stamp] = None
            while len(self._tokens) > TOKENS_KEPT:
                del self._tokens[next(iter(self._tokens))]
            if stamp == self._awaited:
                self._awaited = None
            self._stamps.clear()
            self._seen.clear()
            self._every = stamp
            return
        if table not in WRITTEN_TABLES:
            return  # no cache asks of it: nothing to keep per table, a forged name's memory
        self._counts[table] = self._counts.get(table, 0) + 1
        genuine = _ID.fullmatch(stamp) is not None
        # "" (no id: a trigger older than 0004; no token yet; no genuine id) is unknown
        self._stamps[table] = f"{self._every}.{stamp}" if genuine and self._every else ""
        if not stamp or self._awaited is not None:
            return  # the token awaited begins a new epoch: nothing heard before it is kept
        if text in self._seen or not genuine or len(self._seen) >= PAYLOADS_KEPT:
            self._renew()  # a repeat, no genuine payload, or one more than the epoch keeps
            return
        self._seen.add(text)

    def _renew(self) -> None:
        """Start a new epoch for every listener: send a new token; no stamps until it is back."""
        if self._awaited is None:
            self._awaited = self._unsent = _new_token()
            self._wake.set()

    async def _run(self) -> None:
        attempt = 0
        down = False  # said once per outage, as the Redis tier does
        while True:
            connection: asyncpg.Connection[asyncpg.Record] | None = None
            why = "the server closed the connection"
            try:
                async with asyncio.timeout(self._connect_timeout):
                    connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                    self._epoch += 1  # notifications may have been missed while not listening
                    self._stamps.clear()
                    self._seen.clear()
                    self._every = ""
                    self._awaited = token = _new_token()  # no stamps until it is back
                    self._unsent = None
                    await connection.add_listener(CHANGES_CHANNEL, self._notified)
                    self._identity = await database_identity(connection)
                    await _announce(connection, token)
                connection.add_termination_listener(lambda _: self._ended())
                self._lost.clear()
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

    def _ended(self) -> None:
        self._lost.set()
        self._wake.set()

    async def _beat(self, connection: asyncpg.Connection[asyncpg.Record]) -> None:
        """Send a heartbeat every `heartbeat` seconds, or when woken, until one fails."""
        while not self._lost.is_set():
            sent = time.monotonic()
            self._wake.clear()
            token, self._unsent = self._unsent, None
            if token is not None:
                await _announce(connection, token)
            await connection.fetchval("SELECT 1", timeout=self._heartbeat)
            if self._lost.is_set():
                return
            self._fresh_until = sent + 2 * self._heartbeat
            self._answered = sent
            beaten, self._beaten = self._beaten, asyncio.Event()
            beaten.set()
            self._listening.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()


def _new_token() -> str:
    """96 random bits in hex: a `*` token no listener has sent before."""
    return secrets.token_hex(12)


async def _announce(connection: asyncpg.Connection[asyncpg.Record], token: str) -> None:
    """Send `* <token>`: from its arrival on, every table's stamp in every listener."""
    await connection.execute("SELECT pg_notify($1, $2)", CHANGES_CHANNEL, f"* {token}")
