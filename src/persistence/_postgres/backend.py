"""PostgreSQL through asyncpg: a pool, a fast lane, and a bound on every wait.

Connecting waits at most `connect_timeout`, each statement `command_timeout`, and handing a
connection back (a rollback included) `release_timeout`; a connection whose state is unknown
is rolled back within that bound or terminated, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import asyncpg
import asyncpg.pool
import attrs

from persistence._backend import Engine, ScriptError
from persistence._cancelling import finish_then_cancel, kept_if_cancelled
from persistence._postgres.adapter import BEGIN_READ_COMMITTED, PgConnection
from persistence._postgres.changes import ChangeListener
from persistence._postgres.connections import (
    as_pg,
    cancel_request,
    cancel_sent,
    check_block,
    left_broken,
    migration_lock,
    terminate,
    tidy,
    unanswered,
    usable,
)
from persistence._postgres.copying import CopySupport
from persistence._postgres.create import encoding_problem
from persistence._postgres.errors import (
    CLOSED,
    CONNECTION_FAILURES,
    cannot_connect,
    raised_by_asyncpg,
    time_past_python,
    translate_postgres,
)
from persistence._postgres.identity import database_identity
from persistence._postgres.pooling import NoFeed, Pooling
from persistence._postgres.scripts import (
    failed_statement,
    marked_script,
    marked_statement,
    table_columns,
)
from persistence.exceptions import DatabaseError, PersistenceError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries


_T = TypeVar("_T")
_ROLLED_BACK: Final = (
    "PostgreSQL: the block's transaction had failed at an earlier statement, whose error was "
    "caught inside it, so its COMMIT rolled it back: none of the block's writes were kept. Let "
    "such an error end the block, or catch it around a nested transaction() block, which "
    "undoes its own writes alone"
)
"""A block ended normally, its transaction failed: PostgreSQL answers its COMMIT with ROLLBACK."""
_GIVEN_UP: Final = "the close gave up waiting for it"
_CANCEL_WAIT: Final = 0.25
"""Seconds a caller given up at the command timeout waits for the cancel request to be made."""
_BEGIN_SNAPSHOT: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1"
"""Begin a snapshot, and fix the state it sees with a first query (simple protocol: one trip)."""


@attrs.define(eq=False)
class PostgresBackend(CopySupport):
    """A pool of asyncpg connections, and one of them kept aside as a fast lane.

    A single statement takes the lane when no other task holds it: acquiring from asyncpg's
    pool costs about as much again as a short query on loopback.
    """

    engine = Engine.POSTGRES
    closed_message = CLOSED

    queries: Queries
    _pool: asyncpg.Pool[asyncpg.Record]
    connect_timeout: float = attrs.field(kw_only=True)
    command_timeout: float = attrs.field(kw_only=True)
    release_timeout: float = attrs.field(kw_only=True)
    _dsn: str = attrs.field(kw_only=True)
    _shown: str = attrs.field(kw_only=True)
    _pooling: Pooling = attrs.field(kw_only=True)
    _loop: asyncio.AbstractEventLoop = attrs.field(init=False, factory=asyncio.get_running_loop)
    """The loop that opened the pool: its connections work on it alone."""
    _lane: PgConnection | None = attrs.field(init=False, default=None)
    """Once the close has begun, None unless a call holds it: that call hands it back."""
    _lane_busy: bool = attrs.field(init=False, default=False)
    """A call holds the lane: a flag, not a lock, since no call waits for the lane."""
    _in_flight: set[asyncio.Future[Any]] = attrs.field(init=False, factory=set)
    """Connects a cancelled caller left going, and hand-backs of what they gave: the close waits."""
    _snapshots: set[PgConnection] = attrs.field(init=False, factory=set)
    """The connections of the open snapshots: the close rolls them back and takes them at once."""
    _closed: bool = attrs.field(init=False, default=False)
    _out: set[PgConnection] = attrs.field(init=False, factory=set)
    """The connections taken from the pool and not yet handed back: the close waits for them."""
    _taking: int = attrs.field(init=False, default=0)
    """The takes under way: with `_out`, whether one must wait for a connection."""
    _all_back: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    _lent_to_caller: set[PgConnection] = attrs.field(init=False, factory=set)

    @property
    def closed(self) -> bool:
        """Whether the close has begun: no connection is lent after."""
        return self._closed

    def check_loop(self) -> None:
        """Refuse a call from an event loop other than the pool's: asyncpg would fail worse."""
        if asyncio.get_running_loop() is self._loop:
            return
        if self._closed:  # closed on its own loop: that is what the caller must hear
            raise DatabaseError(CLOSED)
        where = f"the PostgreSQL database {self._shown}" if self._shown else "this database"
        if self._loop.is_closed():
            why = f"{where} was opened on an event loop that has since closed"
        else:
            why = f"{where} was opened on another event loop, which is still open"
        raise DatabaseError(
            f"{why}, and asyncpg's connections work only on the loop that opened them: "
            "open and use the database in one event loop (one asyncio.run() for the whole "
            "program), or from synchronous code through persistence.sync.SyncRunner"
        )

    async def acquire(self) -> PgConnection:
        """Take a pool connection within the connect timeout.

        When the pool must connect, a caller cancelled meanwhile does not cut that connect
        short: cut just after its socket connected, asyncpg leaves a future failing with nobody
        to read it. The connect ends within its own timeout, and the connection goes back to
        the pool. With a live connection idle, the pool takes it without connecting.
        """
        if self._closed:  # a call that began before the close is served: `_take` is not asked
            raise DatabaseError(CLOSED)
        if self._pool.get_idle_size():
            return await self._take()
        return await kept_if_cancelled(self._tracked(self._take()), self._hand_back)

    def _short_of_connections(self) -> bool:
        """Tell whether a take under way must wait: more are out or taken than the pool holds."""
        return len(self._out) + self._taking > self._pool.get_max_size()

    def _lane_to_pool(self) -> None:
        """Hand the idle lane's connection back to the pool (the close waits for it)."""
        lane, self._lane = self._lane, None
        if lane is not None:
            self._tracked(self.give_back(lane, clean=False))

    async def _take(self) -> PgConnection:
        """Take a pool connection for a call begun before any close, which waits for it.

        A take that must wait for a connection gets the lane's, now if the lane is idle, else
        once it is freed: blocks at once got `pool_size - 1` connections, the lane keeping one
        idle for good.
        """
        self._taking += 1
        self._all_back.clear()
        try:
            if not self._lane_busy and self._short_of_connections():
                self._lane_to_pool()
            connection = await self._pool.acquire(timeout=self.connect_timeout)
        except TimeoutError as error:
            raise DatabaseError(
                f"PostgreSQL: no connection within {self.connect_timeout:g}s "
                "(the server is unreachable or every pooled connection is busy)"
            ) from error
        except asyncio.CancelledError as error:
            if error.args == (_GIVEN_UP,):
                raise DatabaseError(CLOSED) from None
            raise
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InternalClientError) as error:
            # A connect that failed (reset, or cut as it was made) sent nothing: the translation
            # of a lost connection told it as a call cut midway, a COMMIT maybe taken effect.
            if self.closed:
                raise DatabaseError(CLOSED) from error
            raise cannot_connect(error) from error
        finally:
            self._taking -= 1
            if not (self._taking or self._out):
                self._all_back.set()
        self._out.add(connection)  # one taken after the close began: its call began before
        self._all_back.clear()  # set in between, if the last other was given back
        return connection

    async def _cancelled_then_given_back(
        self, connection: PgConnection, cancel: Callable[[], Awaitable[None]]
    ) -> None:
        """Have the server cancel what a connection given up still runs, then close it.

        In this order, within the release timeout, as a PgBouncer in session mode forwards a
        cancel request only while the connection it names is open.
        """
        try:
            # At best: the connection goes whatever its request meets, and nothing awaits it.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.release_timeout):
                    await cancel()
        finally:
            terminate(connection)
            await self.give_back(connection, clean=False)

    def _hand_back(self, connection: PgConnection) -> None:
        """Give back, rolled back if need be, a connection whose taker was cancelled meanwhile."""
        self._tracked(self.give_back(connection, clean=False))

    def _tracked(self, work: Awaitable[_T]) -> asyncio.Future[_T]:
        """Run `work` as a task that the close waits for."""
        task = asyncio.ensure_future(work)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return task

    async def give_back(
        self,
        connection: PgConnection,
        *,
        clean: bool,
        broken: bool = False,
        unanswered: bool = False,
    ) -> None:
        """Return a connection to the pool within the release timeout, or terminate it.

        One not known to be clean is rolled back first. A `broken` one is never waited on:
        after a timeout, asyncpg would wait on a cancel request that a silent server never
        answers, and the error would come twice as late as it says; after a failure of the
        connection itself, it may still be marked busy, and would fail the next call lent it;
        nor one whose statement asyncpg cancelled (`cancel_sent`), closed at once. One given up
        (`unanswered`), if open, is closed once the server was asked to cancel its statement
        (`_cancelled_then_given_back`; the caller waits `_CANCEL_WAIT`), unless behind PgBouncer.
        """
        if broken or cancel_sent(connection):
            # Not behind PgBouncer: its 1.18 can crash on cancel requests under load
            # (pgbouncer/pgbouncer#822), there its own `query_timeout` is the bound.
            running = unanswered and not self._pooling.transaction and usable(connection)
            cancel = cancel_request(connection) if running else None
            if cancel is not None:  # the close waits for it
                sent = self._tracked(self._cancelled_then_given_back(connection, cancel))
                # The caller is told once the server has the request, a moment on a healthy
                # one: told at once, a lock freed next (the caller's own other transaction,
                # say) let the write run on and commit. A silent server delays it this long.
                # asyncio.wait: a caller cancelled as `sent` ends is cancelled still (wait_for
                # gave it the result, and its call went on), and `sent` goes on either way.
                await asyncio.wait({sent}, timeout=min(self.release_timeout, _CANCEL_WAIT))
                return
            terminate(connection)
        full = connection in self._lent_to_caller
        self._lent_to_caller.discard(connection)
        cancelled = False  # the caller's cancellation: the connection goes back, then it is raised
        if (full or not clean) and usable(connection) and (full or connection.is_in_transaction()):
            try:  # cut short, the reset would be half done: the connection is closed
                async with asyncio.timeout(self.release_timeout):
                    await tidy(connection, full=full, sessions=not self._pooling.transaction)
            except asyncio.CancelledError:
                terminate(connection)
                cancelled = True
            except Exception:  # noqa: BLE001  # whatever went wrong, it is not reused
                terminate(connection)
        try:
            await self._pool.release(connection, timeout=self.release_timeout)
        except asyncio.CancelledError:
            terminate(connection)
            cancelled = True
        except Exception:  # noqa: BLE001  # asyncpg terminated it; a new one comes next time
            terminate(connection)
        self._out.discard(connection)
        if not (self._out or self._taking):
            self._all_back.set()
        if cancelled:
            raise asyncio.CancelledError

    async def take_lane(self) -> PgConnection | None:
        """Hold the lane's connection, replacing it if the server dropped it; None if busy.

        A pool of one keeps no lane: a transaction would wait for its connection forever.
        """
        if self._lane_busy or self._closed or self._pool.get_max_size() < 2:  # noqa: PLR2004
            return None
        self._lane_busy = True
        try:
            if self._lane is not None and not usable(self._lane):
                await self._drop_lane()
            if self._lane is None:
                self._lane = await self.acquire()
        except BaseException:
            self._free_lane()
            raise
        return self._lane

    async def give_lane_back(
        self, *, failed: bool, broken: bool = False, unanswered: bool = False
    ) -> None:
        """Free the lane; after a failure, hand its connection back to the pool."""
        try:
            if failed or self._lane in self._lent_to_caller:  # reset as it goes back
                await self._drop_lane(broken=broken, unanswered=unanswered)
        finally:
            self._free_lane()

    def _free_lane(self) -> None:
        """Free the lane; its connection goes back once the close begins, or to a take waiting."""
        self._lane_busy = False
        if self._closed or self._short_of_connections():
            self._lane_to_pool()

    async def _drop_lane(self, *, broken: bool = False, unanswered: bool = False) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            await self.give_back(lane, clean=False, broken=broken, unanswered=unanswered)

    def lend(self) -> _Lent:
        """Lend the lane or a pooled connection for one statement."""
        return _Lent(self)

    def lent_to_caller(self, conn: Connection) -> None:
        """Have `conn` reset in full when it goes back: the caller's SQL may set its session."""
        self._lent_to_caller.add(as_pg(conn))

    check_block = staticmethod(check_block)

    def lend_at_once(self) -> PgConnection | None:
        """Hold the lane if it is free and open, waiting for nothing; else None: `lend()`.

        `end_loan` or `end_failed_loan` frees it. Most calls take this way: `lend()` costs a
        context and three coroutines more.
        """
        lane = self._lane
        if (
            lane is None
            or self._lane_busy
            or asyncio.get_running_loop() is not self._loop
            or not usable(lane)
        ):
            return None
        self._lane_busy = True
        return lane

    def end_loan(self) -> None:
        """Free the lane that `lend_at_once` gave, after its statement succeeded."""
        self._free_lane()

    async def end_failed_loan(self, error: BaseException) -> None:
        """Free the lane that `lend_at_once` gave; after `error`, its connection goes back."""
        broken, given_up = left_broken(error), unanswered(error)
        await self.give_lane_back(failed=True, broken=broken, unanswered=given_up)

    def begin(self) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """Open a transaction on a pooled connection of its own."""
        return self._transaction_block(None)

    def migration(
        self, lock_timeout: float
    ) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """Open a transaction under the runners' lock; `lock_timeout` bounds all its lock waits."""
        return self._transaction_block(lock_timeout)

    @contextlib.asynccontextmanager
    async def _transaction_block(
        self, lock_timeout: float | None, *, snapshot: bool = False
    ) -> AsyncIterator[PgConnection]:
        self.check_loop()
        connection = await self.acquire()
        # A migration's own SQL may set what lasts for the session (a plain SET, a temporary
        # table, a session lock): its connection goes back through a loan's full reset once
        # it committed; one that failed is closed, and one cut short once the server was asked
        # to cancel its statement (not behind PgBouncer).
        migrated = lock_timeout is not None
        if migrated:
            self._lent_to_caller.add(connection)
        try:
            await connection.execute(_BEGIN_SNAPSHOT if snapshot else BEGIN_READ_COMMITTED)
        except BaseException:
            # Cut short between BEGIN's send and its answer, the server may still open the
            # transaction while asyncpg says there is none: closed, never handed back as clean.
            await self.give_back(connection, clean=False, broken=True)
            raise
        if snapshot and self._closed:  # begun as the close ended the others: ends alike
            await self.give_back(connection, clean=False)
            raise DatabaseError(CLOSED)
        if snapshot:
            self._snapshots.add(connection)
        clean = broken = given_up = False
        try:
            if lock_timeout is not None:
                await migration_lock(connection, lock_timeout)
            yield connection
            if snapshot and connection not in self._snapshots:
                return  # the close ended the snapshot: nothing to commit or hand back
            # Cut short, a COMMIT could still commit after the caller had gone on: it ends first.
            ended = await finish_then_cancel(connection.execute("COMMIT"))
            clean = True
            _check_committed(ended, snapshot=snapshot)
        except BaseException as error:
            broken, given_up = left_broken(error), unanswered(error)
            raise
        finally:
            if not snapshot or connection in self._snapshots:
                self._snapshots.discard(connection)
                broken = broken or (migrated and not clean)
                await self.give_back(connection, clean=clean, broken=broken, unanswered=given_up)

    async def savepoint(self, conn: Connection, name: str) -> None:
        """Open a savepoint in the running transaction."""
        await as_pg(conn).execute(f'SAVEPOINT "{name}"')

    async def release(self, conn: Connection, name: str) -> None:
        """Keep what the savepoint's block did."""
        check_block(conn)  # not the server's bare error if the caller's SQL ended the transaction
        await as_pg(conn).execute(f'RELEASE SAVEPOINT "{name}"')

    async def rollback_to(self, conn: Connection, name: str) -> None:
        """Undo what the savepoint's block did, and end it."""
        check_block(conn)
        await as_pg(conn).execute(f'ROLLBACK TO SAVEPOINT "{name}"')
        await as_pg(conn).execute(f'RELEASE SAVEPOINT "{name}"')

    async def run_script(self, conn: Connection, statements: list[str]) -> None:
        """Run the statements in one round trip (the simple query protocol), each marked.

        A failing statement is the one holding the error's position, if the server gives one,
        else the last whose marker was heard (`_postgres/scripts.py`).
        """
        if not statements:  # asyncpg cannot send an empty script
            return
        script, run, starts = marked_script(statements)
        heard: list[int] = []

        def hear(_connection: object, message: asyncpg.PostgresLogMessage) -> None:
            if (index := marked_statement(str(message.message), run)) is not None:
                heard.append(index)

        pg = as_pg(conn)
        pg.add_log_listener(hear)
        try:
            await pg.execute(script)
            # In a transaction, what a pooled connection prepared fails on a column the script
            # retyped ("cached statement plan is invalid"): all are prepared anew.
            await pg.reload_schema_state()
        except asyncpg.PostgresError as error:
            position = getattr(error, "position", None)
            index = failed_statement(position, statements, starts, heard)
            if index is None or isinstance(error, CONNECTION_FAILURES):
                raise
            raise ScriptError(index) from error
        except TimeoutError as error:  # the running statement, by its marker; nothing committed
            index = failed_statement(None, statements, starts, heard)
            if index is None:
                raise
            said = DatabaseError(
                f"PostgreSQL: no answer within the command timeout ({self.command_timeout:g}s): "
                "the migration was rolled back, nothing of it applied. Raise the timeout "
                "(migrate --command-timeout) for a statement that runs longer"
            )
            said.__cause__ = error
            raise ScriptError(index) from said
        finally:
            pg.remove_log_listener(hear)

    async def migration_problem(self, conn: Connection) -> str | None:
        """Refuse a database whose encoding is not UTF8 (`encoding_problem`)."""
        return await encoding_problem(as_pg(conn))

    async def table_columns(self, table: str, conn: Connection | None = None) -> tuple[str, ...]:
        """Give the column names of `table` in order; none when there is no such table."""
        if conn is not None:
            return await table_columns(as_pg(conn), table)
        async with self.lend() as lent:
            return await table_columns(lent, table)

    def translate(self, error: BaseException) -> PersistenceError | None:
        """Map an asyncpg error to this package's error."""
        translated = translate_postgres(error, self.command_timeout, closed=self._closed)
        return translated or time_past_python(error)

    raised_by_driver = staticmethod(raised_by_asyncpg)

    def snapshot(self) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """Lend a REPEATABLE READ, READ ONLY transaction: every read sees one committed state.

        Its state is fixed by its first query, not by BEGIN: one runs with BEGIN, in the same
        round trip, so that the state is the one when the block began, as on SQLite.
        """
        return self._transaction_block(None, snapshot=True)

    async def backup_file(self, path: str) -> None:
        """Refuse: PostgreSQL has no file of its own; `persistence.backup` copies its rows."""
        msg = f"a PostgreSQL database has no file to copy to {path}: copy its rows instead"
        raise DatabaseError(msg)

    async def watch_changes(self, *, heartbeat: float) -> ChangeListener | NoFeed:
        """LISTEN for the tables' changes outside the pool; behind PgBouncer, at `listen_url`."""
        self.check_loop()
        pooling = self._pooling
        if pooling.transaction and pooling.listen_dsn is None:
            return NoFeed(self._shown)
        # At another URL, it must reach the very database the pool does, at each connect.
        same = None if pooling.listen_dsn is None else self._pool_identity
        dsn, wait = pooling.listen_dsn or self._dsn, self.connect_timeout
        listener = ChangeListener(dsn, heartbeat=heartbeat, connect_timeout=wait, expected=same)
        await listener.start()
        if (elsewhere := listener.elsewhere()) is not None:
            await listener.close()
            msg = f"listen_url {elsewhere}: it must name the database of {self._shown}"
            raise DatabaseError(msg)
        return listener

    async def _pool_identity(self) -> str | None:
        """Name the database the pool reaches, as `database_identity` does; None once closed."""
        if self._closed:  # a cache left open past its database: its listener goes on as it is
            return None
        async with self.lend() as lent:
            return await database_identity(lent)

    async def close(self) -> None:
        """End the open snapshots, give the lane back and close the pool when blocks have ended.

        A snapshot only reads: it is rolled back at once, even inside its own block, which then
        ends quietly. What does not answer within the bounds is terminated, and so is every
        connection when the close is cancelled: none is left open for a close that never comes.
        """
        if self._closed and asyncio.get_running_loop() is not self._loop:
            return  # closed on its own loop, as a second close there does nothing more
        self.check_loop()
        self._closed = True
        try:
            await self._close_gently()
        except BaseException:
            self._pool.terminate()
            raise

    async def _close_gently(self) -> None:
        snapshots, self._snapshots = self._snapshots, set()
        for connection in snapshots:  # a read under way on one fails: it is terminated
            self._tracked(self.give_back(connection, clean=False))
        if not self._lane_busy:  # else its holder hands it back: see `_free_lane`
            await self._drop_lane()
        try:
            # The calls begun before, and blocks of other tasks, end first, within a statement's
            # bounds (a connect that ends hands its connection back: wait for both); then each
            # idle connection says goodbye within the release timeout: a silent server never
            # answers. What is still waiting for a connection then is told the database closed.
            async with asyncio.timeout(self.release_timeout + self.command_timeout):
                while self._in_flight:
                    await asyncio.wait(tuple(self._in_flight))
                while self._out or self._taking:  # the calls waiting for one are under way
                    await self._all_back.wait()
            async with asyncio.timeout(self.release_timeout):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()
            for work in tuple(self._in_flight):
                work.cancel(_GIVEN_UP)


def _check_committed(ended: str, *, snapshot: bool) -> None:
    """Refuse a block whose COMMIT PostgreSQL answered with ROLLBACK; a snapshot lost nothing."""
    if ended != "COMMIT" and not snapshot:
        raise DatabaseError(_ROLLED_BACK)


class _Lent:
    """The context of `lend()`: a class, since it runs once per call."""

    __slots__ = ("_backend", "_pooled")

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._pooled: PgConnection | None = None  # stays None on the lane

    async def __aenter__(self) -> PgConnection:
        self._backend.check_loop()
        lane = await self._backend.take_lane()
        if lane is not None:
            return lane
        self._pooled = await self._backend.acquire()
        return self._pooled

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        failed, broken, given_up = error is not None, left_broken(error), unanswered(error)
        if self._pooled is None:  # on the lane (__aexit__ runs only once __aenter__ gave)
            await self._backend.give_lane_back(failed=failed, broken=broken, unanswered=given_up)
        else:
            await self._backend.give_back(
                self._pooled, clean=error is None, broken=broken, unanswered=given_up
            )
