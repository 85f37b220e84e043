"""PostgreSQL through asyncpg: a pool, a fast lane, and a bound on every wait.

Every wait on the server has a limit, so a silent network never hangs a call:

- connecting, and taking a connection from the pool: `connect_timeout`;
- each statement, COPY included: `command_timeout` (asyncpg's own);
- handing a connection back, including a rollback: `release_timeout`. A connection
  that does not answer in time is terminated (its socket closed) and the pool opens
  a new one for the next call.

A connection whose state is unknown (a call cancelled halfway, or a lost network) is
never reused: it is rolled back within the limit or terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import asyncpg
import asyncpg.pool
from aiosql.adapters.asyncpg import AsyncPGAdapter

from persistence._backend import Engine
from persistence._changes import report_query
from persistence._loader import load_queries
from persistence._sqlite import encode_json
from persistence.exceptions import (
    ConflictError,
    DatabaseError,
    MigrationError,
    PersistenceError,
    QueryInterfaceError,
    ValidationError,
)
from persistence.queries import QUERY_SHAPES

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries

__all__ = [
    "CHANGES_CHANNEL",
    "ChangeListener",
    "PgConnection",
    "PostgresAdapter",
    "PostgresBackend",
    "open_postgres",
]

PgConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
Params = Mapping[str, Any]

_new = tuple.__new__
_MIGRATION_LOCK: Final = 0x70657273  # "pers": the advisory lock every migration takes

CHANGES_CHANNEL: Final = "persistence_changes"
"""The channel on which migration 0003's triggers send the changed table's name at commit."""

_RECONNECT_WAITS: Final = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

_IDENTITY: Final = (
    "SELECT 'postgres:' || (SELECT system_identifier FROM pg_control_system())::text"
    " || ':' || datname || ':' || oid::text FROM pg_database WHERE datname = current_database()"
)
"""The name of the database itself, whatever URL or environment reached it."""

_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>\w+)\s*\((?P<columns>[^)]*)\)\s*VALUES\s*\((?P<values>[^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


class PostgresAdapter(AsyncPGAdapter):
    """asyncpg, with row counts as ints and `*!` (sqlc's `:copyfrom`) as COPY."""

    def __init__(self, command_timeout: float | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # aiosql's adapters are untyped
        self._copy_targets: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}
        self._command_timeout = command_timeout
        self._rows: dict[str, tuple[type, tuple[str, ...]]] = {}
        self._many: set[str] = set()
        self._checked: set[str] = set()

    def process_sql(self, query_name: str, op_type: object, sql: str) -> str:
        """Rewrite the parameters as $1, $2...; note where a plain INSERT can use COPY."""
        shape = QUERY_SHAPES.get(query_name)
        if shape is not None and shape.row is not None:
            self._rows[query_name] = (shape.row, shape.columns)
        if shape is not None and shape.command == ":many":
            self._many.add(query_name)
        match = _INSERT.match(sql)
        if match:
            columns = tuple(c.strip() for c in match["columns"].split(","))
            values = tuple(v.strip() for v in match["values"].split(","))
            if len(columns) == len(values) and all(v.startswith(":") for v in values):
                params = tuple(v[1:] for v in values)
                self._copy_targets[query_name] = (match["table"], columns, params)
        processed: str = super().process_sql(query_name, op_type, sql)  # type: ignore[no-untyped-call]  # untyped base
        return processed

    # The calls below go straight to the connection: aiosql's own versions first look for
    # a pool with dir(conn) on every call, and this package always passes a connection.

    def _ordered(self, query_name: str, parameters: Params) -> list[object]:
        report_query(query_name)  # the report of a query's written tables: see _changes.py
        ordered: list[object] = self.maybe_order_params(query_name, parameters)  # type: ignore[no-untyped-call]  # untyped base
        return ordered

    async def select_one(
        self,
        conn: PgConnection,
        query_name: str,
        sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> object:
        """Return every row of a :many query as the generated row type, else the first or None."""
        arguments = self._ordered(query_name, parameters)
        decoded = self._rows.get(query_name)
        if query_name in self._many:
            records = await conn.fetch(sql, *arguments)
            if decoded is None or not records:
                return records
            row, columns = decoded
            if query_name not in self._checked:
                self._check(query_name, records[0], columns)
            return [_new(row, record) for record in records]
        record = await conn.fetchrow(sql, *arguments)
        if decoded is None or record is None:
            return record
        row, columns = decoded
        if query_name not in self._checked:
            self._check(query_name, record, columns)
        return _new(row, record)

    def _check(self, query_name: str, record: asyncpg.Record, columns: tuple[str, ...]) -> None:
        """Refuse to decode rows whose columns are not the generated row's, in order."""
        actual = tuple(record.keys())
        if actual != columns:
            raise QueryInterfaceError(
                f"query {query_name} returns columns {actual}, but the generated interface "
                f"expects {columns}: run 'make generate'"
            )
        self._checked.add(query_name)

    async def insert_returning(
        self, conn: PgConnection, query_name: str, sql: str, parameters: Params
    ) -> object:
        """Return the first column of the RETURNING row (the new id)."""
        return await conn.fetchval(sql, *self._ordered(query_name, parameters))

    async def insert_update_delete(
        self, conn: PgConnection, query_name: str, sql: str, parameters: Params
    ) -> int:
        """Run one statement and return how many rows it changed, parsed from its status."""
        status = await conn.execute(sql, *self._ordered(query_name, parameters))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def insert_update_delete_many(
        self, conn: PgConnection, query_name: str, sql: str, parameters: Sequence[Params]
    ) -> int:
        """Load every parameter set with COPY when the query is a plain INSERT ... VALUES."""
        target = self._copy_targets.get(query_name)
        report_query(query_name)  # the report of a query's written tables: see _changes.py
        if target is None:
            await conn.executemany(sql, [self._ordered(query_name, p) for p in parameters])
            return len(parameters)
        table, columns, params = target
        records = [tuple(row[name] for name in params) for row in parameters]
        try:
            # asyncpg bounds each message of a COPY, not a peer that stops reading.
            async with asyncio.timeout(self._command_timeout):
                status = await conn.copy_records_to_table(
                    table, records=records, columns=list(columns)
                )
        except TimeoutError:
            if conn.is_closed():
                msg = "the connection closed during COPY"
                raise asyncpg.ConnectionDoesNotExistError(msg) from None
            raise
        return int(status.rsplit(" ", 1)[-1])


def _json_encoder(prefix: bytes) -> Callable[[object], bytes]:
    def encode(value: object) -> bytes:
        return prefix + encode_json(value).encode()

    return encode


def _json_decoder(prefix: bytes) -> Callable[[bytes], object]:
    empty, start = prefix + b"{}", len(prefix)

    def decode(data: bytes) -> object:
        # json.loads spends about 1 us sniffing the encoding of bytes; the text is UTF-8.
        return {} if data == empty else json.loads(data[start:].decode())

    return decode


async def _init_connection(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Give every pooled connection the JSON codec, so jsonb reads and writes as dicts."""
    for type_name in ("jsonb", "json"):
        prefix = b"\x01" if type_name == "jsonb" else b""
        await connection.set_type_codec(
            type_name,
            schema="pg_catalog",
            encoder=_json_encoder(prefix),
            decoder=_json_decoder(prefix),
            format="binary",
        )


async def _reset(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """On release, roll back a transaction left open, and skip asyncpg's reset query.

    The reset query costs a round trip per call. This package sets no session state, and
    migrations take transaction-scoped advisory locks only.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def _usable(connection: PgConnection) -> bool:
    """Tell whether a pooled connection is still attached and open."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # detached from the pool after the server dropped it
        return False


def _pg(conn: Connection) -> PgConnection:
    """Narrow a connection of either engine to PostgreSQL's: engines never mix."""
    if isinstance(conn, asyncpg.pool.PoolConnectionProxy):
        return conn
    msg = f"a PostgreSQL backend was given {type(conn).__name__}"  # pragma: no cover
    raise TypeError(msg)  # pragma: no cover


def _terminate(connection: PgConnection) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


class PostgresBackend:
    """A pool of asyncpg connections, and one of them kept aside as a fast lane.

    A single statement takes the lane when no other task holds it, and the pool
    otherwise: acquiring from asyncpg's pool costs about as much again as a short query
    on loopback.
    """

    engine = Engine.POSTGRES

    def __init__(
        self,
        queries: Queries,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        connect_timeout: float,
        command_timeout: float,
        release_timeout: float,
        dsn: str = "",
    ) -> None:
        self._dsn = dsn
        self._queries = queries
        self._pool = pool
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.release_timeout = release_timeout
        self._lane: PgConnection | None = None
        self._lane_lock = asyncio.Lock()

    @property
    def queries(self) -> Queries:
        """The loaded queries."""
        return self._queries

    async def acquire(self) -> PgConnection:
        """Take a pool connection within the connect timeout."""
        try:
            return await self._pool.acquire(timeout=self.connect_timeout)
        except TimeoutError as error:
            raise DatabaseError(
                f"PostgreSQL: no connection within {self.connect_timeout:g}s "
                "(the server is unreachable or every pooled connection is busy)"
            ) from error

    async def give_back(self, connection: PgConnection, *, clean: bool) -> None:
        """Return a connection to the pool within the release timeout, or terminate it.

        A connection that is not known to be clean (a failed or cancelled call) is rolled
        back first; if it does not answer in time it is terminated.
        """
        if not clean and _usable(connection) and connection.is_in_transaction():
            try:
                async with asyncio.timeout(self.release_timeout):
                    await connection.execute("ROLLBACK")
            except (Exception, asyncio.CancelledError):  # noqa: BLE001  # whatever went wrong, it is not reused
                _terminate(connection)
        try:
            await self._pool.release(connection, timeout=self.release_timeout)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001  # asyncpg terminated it; a new one comes next time
            _terminate(connection)

    # Lending a connection for one statement.

    async def take_lane(self) -> PgConnection | None:
        """Hold the lane's connection, replacing it if the server dropped it; None if busy."""
        if self._lane_lock.locked():
            return None
        await self._lane_lock.acquire()
        try:
            if self._lane is not None and not _usable(self._lane):
                await self._drop_lane()
            if self._lane is None:
                self._lane = await self.acquire()
        except BaseException:
            self._lane_lock.release()
            raise
        return self._lane

    async def give_lane_back(self, *, failed: bool) -> None:
        """Free the lane; after a failure, hand its connection back to the pool."""
        try:
            if failed:
                await self._drop_lane()
        finally:
            self._lane_lock.release()

    async def _drop_lane(self) -> None:
        lane, self._lane = self._lane, None
        if lane is not None:
            await self.give_back(lane, clean=False)

    def lend(self) -> _Lent:
        """Lend the lane or a pooled connection for one statement."""
        return _Lent(self)

    # Transactions.

    def begin(self) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """Open a transaction on a pooled connection of its own."""
        return self._transaction_block(None)

    def migration(
        self, lock_timeout: float
    ) -> contextlib.AbstractAsyncContextManager[PgConnection]:
        """Open a transaction under the runners' advisory lock, waited on for `lock_timeout`.

        `lock_timeout` bounds every lock wait of the migration, not only the runners' one.
        """
        return self._transaction_block(lock_timeout)

    @contextlib.asynccontextmanager
    async def _transaction_block(self, lock_timeout: float | None) -> AsyncIterator[PgConnection]:
        connection = await self.acquire()
        clean = False
        try:
            await self._start(connection, lock_timeout)
            yield connection
            await connection.execute("COMMIT")
            clean = True
        finally:
            await self.give_back(connection, clean=clean)

    async def _start(self, connection: PgConnection, lock_timeout: float | None) -> None:
        await connection.execute("BEGIN")
        if lock_timeout is None:
            return
        await connection.execute(f"SET LOCAL lock_timeout = {max(1, int(lock_timeout * 1000))}")
        try:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        except asyncpg.LockNotAvailableError as error:
            raise DatabaseError(
                f"another migration runner held the lock for over {lock_timeout:g}s"
            ) from error

    async def savepoint(self, conn: Connection, name: str) -> None:
        """Open a savepoint in the running transaction."""
        await _pg(conn).execute(f'SAVEPOINT "{name}"')

    async def release(self, conn: Connection, name: str) -> None:
        """Keep what the savepoint's block did."""
        await _pg(conn).execute(f'RELEASE SAVEPOINT "{name}"')

    async def rollback_to(self, conn: Connection, name: str) -> None:
        """Undo what the savepoint's block did, and end it."""
        await _pg(conn).execute(f'ROLLBACK TO SAVEPOINT "{name}"')
        await _pg(conn).execute(f'RELEASE SAVEPOINT "{name}"')

    # Migrations.

    def statements(self, script: str) -> list[str]:
        """Split a script into statements, skipping strings, comments and dollar quotes."""
        return split_postgres(script)

    async def run_script(self, conn: Connection, statements: list[str]) -> None:
        """Run the statements in one round trip (the simple query protocol)."""
        if statements:  # asyncpg cannot send an empty script
            await _pg(conn).execute(";\n".join(statements))

    async def table_columns(self, table: str, conn: Connection | None = None) -> tuple[str, ...]:
        """Give the column names of `table` in order; none when there is no such table."""
        query = (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 "
            "ORDER BY ordinal_position"
        )
        if conn is not None:
            rows = await _pg(conn).fetch(query, table)
        else:
            async with self.lend() as lent:
                rows = await lent.fetch(query, table)
        return tuple(str(row[0]) for row in rows)

    # Errors.

    def translate(self, error: BaseException) -> PersistenceError | None:
        """Map an asyncpg error to this package's error."""
        return translate_postgres(error, self.command_timeout)

    # Commits by any connection, for caches.

    async def watch_changes(self, *, heartbeat: float) -> ChangeListener:
        """LISTEN for the tables' change notifications on a connection outside the pool."""
        listener = ChangeListener(
            self._dsn, heartbeat=heartbeat, connect_timeout=self.connect_timeout
        )
        await listener.start()
        return listener

    # Closing.

    async def close(self) -> None:
        """Give the lane back and close the pool, terminating what does not answer."""
        async with self._lane_lock:
            await self._drop_lane()
        try:
            async with asyncio.timeout(self.release_timeout + self.command_timeout):
                await self._pool.close()
        except TimeoutError:
            self._pool.terminate()


class ChangeListener:
    """PostgreSQL's change watch: LISTEN on a connection of its own, outside the pool.

    Migration 0004's triggers send `<table> <transaction id>` when a statement's
    transaction commits, and every listener takes the last one it received as the table's
    stamp. On each connect, the listener sends `* <random token>` itself, which gives every
    table a new stamp in every listener: from its arrival on, all agree. A heartbeat
    (`SELECT 1`), sent every `heartbeat` seconds (or at once, for `sync`) and answered within
    `heartbeat`, keeps the versions trusted: a notification committed before the heartbeat
    was sent arrives before its answer. A silent or lost connection makes `version` and
    `stamp` None within 2 x heartbeat; the connection is opened again, with backoff.
    """

    def __init__(self, dsn: str, *, heartbeat: float, connect_timeout: float) -> None:
        self._dsn = dsn
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._counts: dict[str, int] = {}
        self._stamps: dict[str, str] = {}
        self._every: str = ""
        """The stamp of the last `*` notification: every table's, until its own arrives."""
        self._epoch = 0
        self._fresh_until = 0.0
        self._answered = 0.0
        """When the last answered heartbeat was sent."""
        self._beaten = asyncio.Event()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._identity: str | None = None

    def version(self, table: str) -> int | None:
        """Give a number that changes with each notification for `table`; None if untrusted."""
        if time.monotonic() >= self._fresh_until:
            return None
        return self._epoch + self._counts.get(table, 0)

    def stamp(self, table: str) -> str | None:
        """Give the stamp of the last notification for `table`; None if unknown or untrusted."""
        if time.monotonic() >= self._fresh_until:
            return None
        return self._stamps.get(table, self._every) or None

    def identity(self) -> str | None:
        """Name the database by the server's system identifier, its name and OID."""
        return self._identity

    async def sync(self) -> bool:
        """Send a heartbeat now; True once one sent after this call is answered in time."""
        asked = time.monotonic()
        if asked >= self._fresh_until:
            return False  # lost or silent: the reader goes to the database instead of waiting
        deadline = asked + 2 * self._heartbeat
        self._wake.set()
        while self._answered < asked:
            left = deadline - time.monotonic()
            if left <= 0 or self._task is None:
                return False
            beaten = self._beaten
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await beaten.wait()
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

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        self._fresh_until = 0.0
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        table, _, stamp = str(payload).partition(" ")
        if table == "*":
            self._epoch += 1
            self._stamps.clear()
            self._every = stamp
        else:
            self._counts[table] = self._counts.get(table, 0) + 1
            self._stamps[table] = stamp  # "" (no stamp: a trigger older than 0004) is unknown

    async def _run(self) -> None:
        attempt = 0
        while True:
            connection: asyncpg.Connection[asyncpg.Record] | None = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                    self._epoch += 1  # notifications may have been missed while not listening
                    self._stamps.clear()
                    self._every = ""
                    await connection.add_listener(CHANGES_CHANNEL, self._notified)
                    try:
                        self._identity = await connection.fetchval(_IDENTITY)
                    except asyncpg.InsufficientPrivilegeError:  # pg_control_system() refused
                        self._identity = None  # the URL names the namespace instead
                    await connection.execute(
                        "SELECT pg_notify($1, $2)", CHANGES_CHANNEL, f"* {secrets.token_hex(12)}"
                    )
                connection.add_termination_listener(lambda _: self._ended())
                self._lost.clear()
                attempt = 0
                await self._beat(connection)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            finally:
                self._fresh_until = 0.0
                if connection is not None:
                    connection.terminate()
            await asyncio.sleep(_RECONNECT_WAITS[min(attempt, len(_RECONNECT_WAITS) - 1)])
            attempt += 1

    def _ended(self) -> None:
        self._lost.set()
        self._wake.set()

    async def _beat(self, connection: asyncpg.Connection[asyncpg.Record]) -> None:
        """Send a heartbeat every `heartbeat` seconds, or when woken, until one fails."""
        while True:
            sent = time.monotonic()
            self._wake.clear()
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
            if self._lost.is_set():
                return


class _Lent:
    """The context of `lend()`: a class, since it runs once per call."""

    __slots__ = ("_backend", "_lane", "_pooled")

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend
        self._lane = False
        self._pooled: PgConnection | None = None

    async def __aenter__(self) -> PgConnection:
        lane = await self._backend.take_lane()
        if lane is not None:
            self._lane = True
            return lane
        self._pooled = await self._backend.acquire()
        return self._pooled

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if self._lane:
            await self._backend.give_lane_back(failed=error is not None)
        elif self._pooled is not None:
            await self._backend.give_back(self._pooled, clean=error is None)


def translate_postgres(error: BaseException, command_timeout: float) -> PersistenceError | None:  # noqa: PLR0911  # one case a line
    """Map an asyncpg error to this package's error: None for errors that are not asyncpg's."""
    match error:
        case PersistenceError():
            return None
        case asyncpg.UniqueViolationError() | asyncpg.ForeignKeyViolationError():
            return ConflictError(_message(error), constraint=error.constraint_name)
        case asyncpg.CheckViolationError() | asyncpg.NotNullViolationError():
            table = error.table_name or "row"
            field = error.column_name or error.constraint_name or "constraint"
            return ValidationError(table, field, _message(error))
        case asyncpg.QueryCanceledError():
            return DatabaseError(f"PostgreSQL: the statement was cancelled: {_message(error)}")
        case TimeoutError():
            return DatabaseError(
                f"PostgreSQL: no answer within the command timeout ({command_timeout:g}s); "
                "the connection was closed"
            )
        case (
            asyncpg.ConnectionDoesNotExistError()
            | asyncpg.PostgresConnectionError()
            | asyncpg.InterfaceError()
            | asyncpg.InternalClientError()
            | ConnectionError()
        ):
            return DatabaseError(
                "PostgreSQL: the connection to the server was lost mid-call "
                f"(a transaction in progress was rolled back): {_lost(error)}"
            )
        case OSError():
            return DatabaseError(f"PostgreSQL: network error: {_detail(error)}")
        case asyncpg.PostgresError():
            return DatabaseError(f"PostgreSQL: {_message(error)}")
    return None


def _lost(error: BaseException) -> str:
    # asyncpg detaches a pooled proxy whose connection died, then blames the pool.
    if "released back to the pool" in str(error):
        return "the server or the network closed it"
    return _detail(error)


def _detail(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _message(error: asyncpg.PostgresError) -> str:
    detail = getattr(error, "detail", None)
    return f"{error}: {detail}" if detail else str(error)


_TOKEN = re.compile(
    r"""
      (?P<squote>[EeBbXxUu]?'(?:[^']|'')*')
    | (?P<dquote>"(?:[^"]|"")*")
    | (?P<line>--[^\n]*)
    | (?P<block>/\*)
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
    | (?P<semi>;)
    | (?P<other>[^'"\-/$;]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)


def split_postgres(script: str) -> list[str]:
    """Split a PostgreSQL script on the semicolons that end statements."""
    statements: list[str] = []
    current: list[str] = []
    position = 0
    while position < len(script):
        match = _TOKEN.match(script, position)
        if match is None:  # pragma: no cover  # `.` matches any character
            break
        position = match.end()
        kind = match.lastgroup
        if kind == "block":
            position = _end_of_block_comment(script, position)
            current.append(" ")
        elif kind == "dollar":
            end = script.find(match.group(), position)
            if end < 0:
                raise MigrationError(f"unterminated dollar quote {match.group()}")
            current.append(script[match.start() : end + len(match.group())])
            position = end + len(match.group())
        elif kind == "semi":
            _keep(statements, current)
            current = []
        elif kind != "line":
            current.append(match.group())
    _keep(statements, current)
    return statements


def _end_of_block_comment(script: str, position: int) -> int:
    depth = 1
    while depth:
        opening, closing = script.find("/*", position), script.find("*/", position)
        if closing < 0:
            raise MigrationError("unterminated /* comment")
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position


def _keep(statements: list[str], parts: list[str]) -> None:
    text = "".join(parts).strip()
    if text:
        statements.append(text)


async def open_postgres(
    dsn: str,
    shown: str,
    *,
    connect_timeout: float,
    command_timeout: float,
    release_timeout: float,
    pool_size: int,
) -> PostgresBackend:
    """Open a pool whose first connection must come within `connect_timeout`."""
    queries = load_queries(
        functools.partial(PostgresAdapter, command_timeout=command_timeout), engine="postgres"
    )
    try:
        async with asyncio.timeout(connect_timeout):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                command_timeout=command_timeout,
                init=_init_connection,
                reset=_reset,
            )
    except TimeoutError as error:
        raise DatabaseError(
            f"cannot connect to PostgreSQL at {shown}: no answer within {connect_timeout:g}s"
        ) from error
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as error:
        raise DatabaseError(f"cannot connect to PostgreSQL at {shown}: {_detail(error)}") from error
    return PostgresBackend(
        queries,
        pool,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        release_timeout=release_timeout,
        dsn=dsn,
    )
