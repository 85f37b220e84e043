"""PostgreSQL's change watch: LISTEN, on a connection of its own, with a heartbeat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final

import asyncpg
import asyncpg.pool
import attrs

from persistence._cancelling import kept_if_cancelled
from persistence._changes import WRITTEN_TABLES
from persistence._postgres.identity import database_identity

CHANGES_CHANNEL: Final = "persistence_changes"
"""The channel on which migration 0004's triggers send `<table> <transaction id>` at commit."""

_RECONNECT_WAITS: Final = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
FIRST_HEARTBEAT_WAIT: Final = 2.0
"""Seconds `start` waits at most for the first heartbeat, if the connect timeout is longer.

Enough for a connect and four round trips to a distant server; past it the caches open with
the feed down and read the database until it is up. A server that takes the connection and
never answers would otherwise hold the open back the whole connect timeout.
"""
_TOKEN: Final = re.compile(r"[0-9a-f]{24}")
"""A listener's `*` token: 96 random bits in hex, as `_new_token` makes them."""
_ID: Final = re.compile(r"[0-9]{1,20}")
"""A transaction id as `pg_current_xact_id()` gives it: an xid8, at most 20 digits."""
_HEARTBEAT: Final = (
    "SELECT pg_catalog.pg_current_snapshot()::text,"
    " (SELECT pg_catalog.string_agg(c.oid::text || ':' || c.xmin::text, ' ' ORDER BY c.oid)"
    " FROM pg_catalog.unnest($1::text[]) AS t(name)"
    " JOIN pg_catalog.pg_class AS c ON c.oid = pg_catalog.to_regclass(t.name)),"
    " (SELECT pg_catalog.string_agg(t.name || ':' || t.why, ' ' ORDER BY t.name)"
    " FROM (SELECT t.name, CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g"
    " WHERE g.tgrelid = pg_catalog.to_regclass(t.name)"
    " AND g.tgname = t.name || '_notify_change' AND g.tgenabled = 'A') THEN 'trigger'"
    " WHEN EXISTS (SELECT FROM pg_catalog.pg_inherits AS i"
    " WHERE i.inhparent = pg_catalog.to_regclass(t.name)) THEN 'inherited' END AS why"
    " FROM pg_catalog.unnest($2::text[]) AS t(name)) AS t WHERE t.why IS NOT NULL)"
)
"""The heartbeat: the transactions that had ended when it ran, the tables' shapes, and the
tables whose writes may go unheard, each `<table>:trigger` or `<table>:inherited`.

A table's shape is its catalog row's OID and the transaction that last wrote that row: DDL
that changes a table's rows fires none of its triggers (`ALTER TABLE ... TYPE ... USING`
rewrites it, `DROP TABLE` and a table renamed into its place replace it), but it writes that
row, which a vacuum's or an analyze's figures, written in place, do not. Its names are
qualified: a schema before pg_catalog on the search path may hold its own.

A change trigger fires for every write only while ENABLE ALWAYS, as migration 0004 leaves it:
`DISABLE TRIGGER` silences it, and `pg_restore --disable-triggers` enables it again for
ordinary sessions alone, so a write under `session_replication_role = replica` goes unheard.
And a table that inherits from one of them (`CREATE TABLE ... INHERITS`, a partition) holds
rows that the package's reads return, but it has no change trigger, nor does attaching it or
taking it away write the parent's catalog row.
"""
_SNAPSHOT: Final = "SELECT pg_catalog.pg_current_snapshot()::text, NULL, NULL"
"""The heartbeat where the role may not read pg_class (a DBA revoked it): no shapes."""
NOTIFYING_TABLES: Final = ("config_entries", "file_records", "test_results")
"""The tables whose trigger `<table>_notify_change` (migrations 0003 and 0004) tells of writes."""
PAYLOADS_KEPT: Final = 16_384
"""Table payloads remembered in one `*` epoch; past them the listener starts a new epoch."""
TOKENS_KEPT: Final = 4_096
"""`*` tokens remembered since the last heartbeat; past them another's token is refused."""
_LOG: Final = logging.getLogger("persistence.postgres")


@attrs.frozen
class Horizon:
    """The transactions that had ended (committed or rolled back) when a snapshot was taken."""

    xmin: int
    xmax: int
    running: frozenset[int]

    def ended(self, xid: int) -> bool:
        """Whether transaction `xid` had ended when the snapshot was taken."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.running)


def horizon(snapshot: str) -> Horizon:
    """Read `pg_current_snapshot()` as text: `xmin:xmax:running,running,...`."""
    xmin, xmax, running = snapshot.split(":")
    return Horizon(int(xmin), int(xmax), frozenset(int(xid) for xid in running.split(",") if xid))


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
    stamp for every table. Until that token arrives, `stamp` is None. A token carries the id of
    the transaction that sent it, part of the stamp: a token whose transaction had ended when
    the listener connected, or at its last heartbeat, is a repeat even if no listener that
    heard it runs any more; one whose transaction has not ended by the next heartbeat (still
    open, or an id not yet given out) is no genuine one. Until that heartbeat, `stamp` is None.
    A payload naming a table that no query of the package writes (`WRITTEN_TABLES`) is
    ignored: no cache asks of it, and a sender naming ever new tables would grow the
    listener's memory.
    """

    def __init__(
        self,
        dsn: str,
        *,
        heartbeat: float,
        connect_timeout: float,
        expected: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self._dsn = dsn
        # Where another URL listens: reads the identity of the database the pool reaches, at
        # each connect (a server restart names it anew, for both alike).
        self._expected = expected
        self._elsewhere: str | None = None  # said when the listener reached another database
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._counts: dict[str, int] = {}
        self._stamps: dict[str, str] = {}
        self._every: str = ""  # the last `*` stamp: every table's, until its own arrives
        self._seen: set[str] = set()  # the table payloads heard since that `*`
        self._shapes: str | None = None  # the tables' shapes at the last heartbeat
        self._silent: str | None = None  # the tables whose writes may go unheard, if any
        self._asks_shapes = True  # until the role is refused pg_class: asked again at connect
        self._tokens: dict[str, float] = {}  # the `*` tokens heard since a heartbeat: when
        self._awaited: str | None = None  # this listener's token, sent and not yet back
        self._horizon: Horizon | None = None  # the transactions ended at the last heartbeat
        self._unconfirmed: tuple[int, float] | None = None  # another's token: its id, when heard
        self._unsent: str | None = None  # a token to send at the next heartbeat
        self._epoch = 0
        self._fresh_until = 0.0
        self._answered = 0.0  # when the last answered heartbeat was sent
        self._beaten = asyncio.Event()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._first_try = asyncio.Event()  # set when a heartbeat is answered or a connect fails
        self._task: asyncio.Task[None] | None = None
        # The connect under way: a close waits for it, which a cancel would cut unsafely.
        self._connecting: asyncio.Future[asyncpg.Connection[asyncpg.Record]] | None = None
        self._identity: str | None = None
        self._late = False  # `start` went on without a first heartbeat, and said so

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
        if self._awaited is not None or self._unconfirmed is not None:
            return None
        return self._stamps.get(table, self._every) or None

    def elsewhere(self) -> str | None:
        """Say so if the listener, connected at another URL, reached another database."""
        return self._elsewhere

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
        """Start listening; wait at most `FIRST_HEARTBEAT_WAIT` for the first heartbeat.

        (Or the connect timeout and a heartbeat, if shorter.) A first connect that fails ends
        the wait at once. Either way the caches read the database until the listener is up,
        as after any outage, rather than wait on a server that takes the connection and never
        answers; the listener goes on trying meanwhile.
        """
        self._task = asyncio.get_running_loop().create_task(self._run())
        wait = min(FIRST_HEARTBEAT_WAIT, self._connect_timeout + self._heartbeat)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._first_try.wait()
        except BaseException:  # cancelled while waiting: leave no listener behind
            await asyncio.shield(self.close())
            raise
        if not self._first_try.is_set():
            self._late = True
            _LOG.warning(
                "PostgreSQL change notifications: no first heartbeat within %gs; caches read "
                "the database until the listener is up",
                wait,
            )

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
            except Exception:  # noqa: BLE001  # a failure the task ended on, logged: the close goes on
                _LOG.exception("PostgreSQL change notifications had ended on an error")
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            await asyncio.wait([connecting])  # within its connect timeout; then terminated

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        table, _, stamp = text.partition(" ")
        if table == "*":
            self._epoch += 1
            token, _, xid = stamp.partition(" ")
            if not self._fresh(token, xid):
                self._renew()  # sent again, or not a token: its stamps may name older values
                return
            heard = self._tokens[token] = time.monotonic()
            if token == self._awaited:
                self._awaited = self._unconfirmed = None
            else:  # its transaction must have ended by the next heartbeat
                self._unconfirmed = int(xid), heard
                self._wake.set()
            self._stamps.clear()
            self._seen.clear()
            self._every = f"{token}-{xid}"
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

    def _fresh(self, token: str, xid: str) -> bool:
        """Whether `* <token> <xid>` may begin an epoch: not heard since the last heartbeat.

        Its transaction must not have ended when this listener last asked (at connect, then at
        each heartbeat): a token sent before was sent in a transaction that has ended, so sent
        again it is refused by every listener, however long ago, whether or not one that heard
        it runs still. The next heartbeat checks that the transaction has ended since.
        """
        if not _TOKEN.fullmatch(token) or not _ID.fullmatch(xid) or token in self._tokens:
            return False
        if token == self._awaited:
            return True  # this listener's own: sent again later, it is in `_tokens`
        known = self._horizon
        return known is not None and not known.ended(int(xid)) and len(self._tokens) < TOKENS_KEPT

    def _answered_at(self, known: Horizon, sent: float) -> None:
        """Take the horizon of a heartbeat sent at `sent`: check the token heard before it.

        A genuine token heard before it was sent in a transaction ended by then: sent again, the
        horizon refuses it, so `_tokens` forgets it. One whose transaction had not ended never
        named a stamp here; sent again, it awaits a heartbeat again.
        """
        unconfirmed = self._unconfirmed
        if unconfirmed is not None and unconfirmed[1] <= sent:
            self._unconfirmed = None
            if not known.ended(unconfirmed[0]):
                self._renew()  # its transaction is still open, or yet to come: no genuine token
        self._horizon = known
        self._tokens = {token: heard for token, heard in self._tokens.items() if heard > sent}

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
                    # Cut short just after its socket connected (a close, the timeout),
                    # asyncpg left a future failing with nobody to read it: it ends on its own.
                    self._connecting = asyncio.ensure_future(
                        asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                    )
                    connection = await kept_if_cancelled(self._connecting, _terminate)
                    self._connecting = None  # made: the close ends it as a connection
                    self._epoch += 1  # notifications may have been missed while not listening
                    self._stamps.clear()
                    self._seen.clear()
                    self._every = ""
                    self._awaited = token = _new_token()  # no stamps until it is back
                    self._unsent = self._horizon = self._unconfirmed = None
                    await connection.add_listener(CHANGES_CHANNEL, self._notified)
                    self._identity = await self._same_database(await database_identity(connection))
                    self._horizon, self._shapes, _, self._asks_shapes = await _heartbeat(
                        connection, None, shapes=True
                    )
                    await _announce(connection, token)
                connection.add_termination_listener(lambda _: self._ended())
                self._lost.clear()
                attempt = 0
                if down or self._late:
                    down = self._late = False
                    _LOG.info("PostgreSQL change notifications: listening again")
                await self._beat(connection)
            # Any failure, asyncpg's own included (`InternalClientError` when the server ends
            # the connection mid-heartbeat, an `AttributeError` for a reply it cannot read):
            # the task ended on them, and each read started it again, with no pause.
            except Exception as error:  # noqa: BLE001  # the listener outlives every failure
                why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            finally:
                self._fresh_until = 0.0
                if connection is not None:
                    connection.terminate()
            self._first_try.set()
            if not down:
                down = True
                _LOG.warning(
                    "PostgreSQL change notifications lost (%s); caches read the database "
                    "until they are back",
                    why,
                )
            await asyncio.sleep(_RECONNECT_WAITS[min(attempt, len(_RECONNECT_WAITS) - 1)])
            attempt += 1

    async def _same_database(self, identity: str | None) -> str | None:
        """Give `identity`, the listener's database's, once it is the pool's, where known.

        A listener at another URL that reached another database heard its notifications:
        trusted, they hid every change of this one from the caches.
        """
        if identity is not None and self._expected is not None:
            expected = await self._expected()
            if expected is not None and identity != expected:
                elsewhere = f"reaches {identity}, where the pool reaches {expected}"
                if elsewhere != self._elsewhere:  # said once, whatever outage it comes in
                    _LOG.warning("PostgreSQL change notifications: listen_url %s", elsewhere)
                self._elsewhere = elsewhere
                raise _Elsewhere(elsewhere)
        self._elsewhere = None
        return identity

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
                # Bounded by the feed's trust, two heartbeats: a silent peer held it for good.
                async with asyncio.timeout(2 * self._heartbeat):
                    await _announce(connection, token)
            known, shapes, silent, self._asks_shapes = await _heartbeat(
                connection, self._heartbeat, shapes=self._asks_shapes
            )
            if self._lost.is_set():
                return
            if shapes != self._shapes:  # DDL changed a table, its triggers silent
                self._shapes = shapes
                self._renew()
            if silent != self._silent:  # writes may have gone unheard since the last beat
                self._silenced(silent)
                self._renew()
            self._answered_at(known, sent)
            if silent is None:
                self._fresh_until = sent + 2 * self._heartbeat
            self._answered = sent
            beaten, self._beaten = self._beaten, asyncio.Event()
            beaten.set()
            self._first_try.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._heartbeat):
                    await self._wake.wait()

    def _silenced(self, silent: str | None) -> None:
        """Say that the caches read the database while a table's writes may go unheard."""
        self._silent = silent
        if silent is None:
            _LOG.info("PostgreSQL change notifications: every table's writes are heard again")
            return
        told = []
        for table, _, why in (item.partition(":") for item in silent.split()):
            if why == "trigger":
                told.append(
                    f"the change trigger of {table} is not ENABLE ALWAYS (DISABLE TRIGGER, or"
                    " pg_restore --disable-triggers, leaves it so): run `ALTER TABLE"
                    f" {table} ENABLE ALWAYS TRIGGER {table}_notify_change`"
                )
            else:
                told.append(
                    f"a table inherits from {table} (INHERITS, or a partition), whose rows the"
                    " reads return and whose writes no trigger tells of"
                )
        _LOG.warning(
            "PostgreSQL change notifications: writes may go unheard, so caches read the"
            " database while %s",
            "; and while ".join(told),
        )


async def _heartbeat(
    connection: asyncpg.Connection[asyncpg.Record], wait: float | None, *, shapes: bool
) -> tuple[Horizon, str | None, str | None, bool]:
    """Ask the transactions that have ended and, if `shapes`, the tables' shapes and triggers.

    The triggers: the tables whose change trigger may not fire, if any. Give whether to ask
    the shapes again: not once refused, or each beat would fail first.
    """
    if shapes:
        try:
            rows = await connection.fetch(
                _HEARTBEAT, sorted(WRITTEN_TABLES), NOTIFYING_TABLES, timeout=wait
            )
        except asyncpg.InsufficientPrivilegeError:  # the feed goes on; DDL is then not seen
            shapes = False
    if not shapes:
        rows = await connection.fetch(_SNAPSHOT, timeout=wait)
    [(snapshot, found, silent)] = rows
    shape = None if found is None else str(found)
    return horizon(str(snapshot)), shape, None if silent is None else str(silent), shapes


class _Elsewhere(Exception):  # noqa: N818  # a reason the listener gives up a connection
    """The listener's URL reaches another database than the pool's."""


def _terminate(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    connection.terminate()


def _new_token() -> str:
    """96 random bits in hex: a `*` token no listener has sent before."""
    return secrets.token_hex(12)


async def _announce(connection: asyncpg.Connection[asyncpg.Record], token: str) -> None:
    """Send `* <token> <transaction id>`: from its arrival on, every table's stamp everywhere."""
    await connection.execute(
        "SELECT pg_notify($1, $2 || ' ' || pg_current_xact_id()::text)",
        CHANGES_CHANNEL,
        f"* {token}",
    )
