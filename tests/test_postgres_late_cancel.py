"""A cancel request that reaches PostgreSQL late, on the connection the next call is lent.

A cancelled call's statement is cancelled by a request on a socket of its own, which the
server applies to whatever its server process runs when it arrives. Held back here by a proxy
that tells the client at once it was delivered (as one in between may), it arrives while the
next call on that pooled connection waits on a lock: that call (a generated query, a block's
COMMIT, the caller's SQL in a loan) must not fail with 'canceling statement due to user
request'. The cancelled call's connection is closed and replaced, not handed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import asyncpg
import pytest

from _lent_helpers import pooled
from _proxy import LOOPBACK, pipe, through
from persistence import (
    FileRecord,
    connection,
    list_file_records,
    save_file_record,
    transaction,
)
from persistence._postgres.connections import as_pg
from persistence.database import Database

if TYPE_CHECKING:
    Admin = asyncpg.Connection[asyncpg.Record]
else:  # generic in asyncpg's stubs alone
    Admin = asyncpg.Connection
_SSL_REQUEST: Final = 80877103
_CANCEL_REQUEST: Final = 80877102


class LateCancels:
    """A loopback proxy to PostgreSQL that holds cancel requests until `deliver()`.

    It closes a cancel request's socket as soon as the request is read: the client takes it
    as delivered. Every other connection is forwarded as it is (SSL refused: plain text).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.held: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def deliver(self) -> int:
        """Send the held requests on to the server, each once the server has taken it."""
        held, self.held = self.held, []
        for request in held:
            reader, writer = await asyncio.open_connection(LOOPBACK, self.target_port)
            writer.write(request)
            await writer.drain()
            await reader.read()  # the server closes it once it signalled the process
            writer.close()
        return len(held)

    async def close(self) -> None:
        """Stop listening and close everything."""
        for writer in self._writers:
            writer.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        head = await reader.readexactly(8)
        if struct.unpack("!ii", head) == (8, _SSL_REQUEST):
            writer.write(b"N")
            head = await reader.readexactly(8)
        if struct.unpack("!ii", head) == (16, _CANCEL_REQUEST):
            self.held.append(head + await reader.readexactly(8))
            writer.close()  # "delivered", as far as the client can tell
            return
        target_reader, target_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        self._writers.append(target_writer)
        target_writer.write(head)
        for source, sink in ((reader, target_writer), (target_reader, writer)):
            task = asyncio.create_task(pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


@contextlib.asynccontextmanager
async def late_cancels(url: str) -> AsyncIterator[tuple[LateCancels, str]]:
    """A `LateCancels` proxy in front of the server of `url`, and the URL through it."""
    parts = urlsplit(url)
    assert parts.hostname in {LOOPBACK, "localhost"}, "fault tests target loopback only"
    proxy = LateCancels(parts.port or 5432)
    await proxy.start()
    try:
        yield proxy, through(url, proxy.port)
    finally:
        await proxy.close()


_SETUP: Final = (
    "CREATE TABLE late_parent (id int PRIMARY KEY);"
    "CREATE TABLE late_child (parent int REFERENCES late_parent DEFERRABLE INITIALLY DEFERRED);"
    "INSERT INTO late_parent VALUES (1)"
)
_LOCKS: Final = (
    "BEGIN; LOCK TABLE file_records IN ACCESS EXCLUSIVE MODE;"
    "SELECT FROM late_parent WHERE id = 1 FOR UPDATE"
)
"""What the next call waits on: the table a generated query writes; the row a block's COMMIT
checks its deferred foreign key against."""


async def _cancelled_loan(db: Database, _admin: Admin) -> None:
    async with connection(db) as lent:
        await as_pg(lent).execute("SELECT pg_sleep(0.4)")


async def _cancelled_in_block(db: Database, _admin: Admin) -> None:
    async with transaction(db) as tx, connection(tx) as lent:
        await as_pg(lent).execute("SELECT pg_sleep(0.4)")


async def _cancelled_query(db: Database, admin: Admin) -> None:
    await admin.execute("BEGIN; LOCK TABLE file_records IN ACCESS EXCLUSIVE MODE")
    # Freed just after the cancel: the query ends on its own, its cancel request still held.
    asyncio.get_running_loop().call_later(0.3, asyncio.ensure_future, admin.execute("COMMIT"))
    await list_file_records(db)


CANCELLED: Final[dict[str, Callable[[Database, Admin], Awaitable[None]]]] = {
    "a loan's statement": _cancelled_loan,
    "a statement in a block": _cancelled_in_block,
    "a generated query": _cancelled_query,
}


async def _next_query(db: Database) -> None:
    await save_file_record(db, FileRecord(path="next.txt"))


async def _next_commit(db: Database) -> None:
    async with transaction(db) as tx, connection(tx) as lent:
        await as_pg(lent).execute("INSERT INTO late_child VALUES (1)")
    # The block's COMMIT checks the deferred foreign key: it waits on the parent's row.


async def _next_loan(db: Database) -> None:
    async with connection(db) as lent:
        await as_pg(lent).fetchval("SELECT count(*) FROM file_records")


NEXT: Final[dict[str, Callable[[Database], Awaitable[None]]]] = {
    "a generated query": _next_query,
    "a block's COMMIT": _next_commit,
    "a loan": _next_loan,
}


async def _waiting_on_a_lock(admin: Admin, call: asyncio.Future[None]) -> None:
    """Wait until `call` waits on a lock at the server, or has ended.

    The admin's transaction holds the locks, and would read one snapshot of the activity.
    """
    while not call.done():
        await admin.execute("SELECT pg_stat_clear_snapshot()")
        if await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ):
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("then", NEXT)
@pytest.mark.parametrize("cancelled", CANCELLED)
@pytest.mark.parametrize("size", [1, 2], ids=["a pool of one", "with the lane"])
async def test_a_late_cancel_request_cuts_no_later_call(
    migrated_postgres_url: str, size: int, cancelled: str, then: str
) -> None:
    """PostgreSQL: a call cut, its cancel request arrives as the next call waits on a lock.

    The pool's one connection, or the lane's (a pool of two), would be lent to the next call.
    """
    async with (
        late_cancels(migrated_postgres_url) as (proxy, url),
        pooled(url, size) as db,  # closed last: it counts the connections left
        _admin(migrated_postgres_url) as admin,
        asyncio.timeout(20),
    ):
        task = asyncio.ensure_future(CANCELLED[cancelled](db, admin))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert proxy.held, "asyncpg sent no cancel request"
        await _settled(admin)
        await admin.execute(_LOCKS)
        following = asyncio.ensure_future(NEXT[then](db))
        await _waiting_on_a_lock(admin, following)
        assert not following.done(), following.result()
        assert await proxy.deliver()
        await asyncio.sleep(0.2)  # the server process has taken the signal
        await admin.execute("ROLLBACK")
        await following  # not: QueryCanceledError, 'canceling statement due to user request'


@contextlib.asynccontextmanager
async def _admin(url: str) -> AsyncIterator[Admin]:
    """A connection of the test's own, straight to the server, the tables made."""
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(_SETUP)
        yield admin
    finally:
        await admin.close()


async def _settled(admin: Admin) -> None:
    """Wait until the cancelled statement has ended at the server, and the lock is free."""
    while admin.is_in_transaction():  # noqa: ASYNC110  # the lock a task frees
        await asyncio.sleep(0.01)
    while await admin.fetchval(  # noqa: ASYNC110  # asked of the server
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state = 'active'"
    ):
        await asyncio.sleep(0.01)
