"""Opening a database, grouping calls in transactions, and translating driver errors.

A `Database` is a plain frozen value: the engine, the typed queries and a source of
connections. Repository functions take it as their first argument. Inside
`transaction(db)` they get a copy bound to one connection, so every call joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

import aiosqlite
import asyncpg
import asyncpg.pool
import attrs

from persistence._adapters import PostgresAdapter, SqliteAdapter, encode_json, register_sqlite_types
from persistence._loader import load_queries
from persistence.exceptions import ConflictError, DatabaseError, PersistenceError, ValidationError

if TYPE_CHECKING:
    from persistence._queries import Queries
    from persistence._sqltypes import Connection

__all__ = [
    "DEFAULT_DATABASE",
    "Database",
    "Engine",
    "close_database",
    "connect",
    "open_database",
    "transaction",
]

DEFAULT_DATABASE: Final = Path("data/app.db")
"""The embedded default, relative to the working directory."""


class Engine(enum.Enum):
    """The database engines this package runs on, with the same SQL."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


@attrs.define
class _SqliteSource:
    """One aiosqlite connection, used by one task at a time."""

    connection: aiosqlite.Connection
    lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    in_transaction: asyncio.Task[object] | None = None
    """The task inside `transaction()`, if any: the one that must not wait for the lock."""

    async def acquire(self) -> None:
        """Take the connection, or say why waiting for it would never end."""
        if self.in_transaction is not None and self.in_transaction is asyncio.current_task():
            msg = (
                "this task is inside transaction(db) and called with db itself: pass the "
                "database that transaction() gave instead, or the call waits for itself forever"
            )
            raise DatabaseError(msg)
        await self.lock.acquire()


@attrs.frozen
class _PostgresSource:
    """A pool of asyncpg connections, and one of them kept aside as a fast lane.

    A single statement takes the lane when no other task holds it, and the pool otherwise:
    acquiring from asyncpg's pool costs about as much again as a short query on loopback.
    """

    pool: asyncpg.Pool[asyncpg.Record]
    lane: list[asyncpg.pool.PoolConnectionProxy[asyncpg.Record]] = attrs.field(factory=list)
    lane_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def take_lane(self) -> asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None:
        """Hold the lane's connection, replacing it if the server dropped it; None if busy."""
        if self.lane_lock.locked():
            return None
        await self.lane_lock.acquire()
        try:
            if self.lane and not _usable(self.lane[0]):
                await self._drop_lane()
            if not self.lane:
                async with translate_errors():
                    self.lane.append(await self.pool.acquire())
        except BaseException:
            self.lane_lock.release()
            raise
        return self.lane[0]

    async def give_lane_back(self, *, failed: bool) -> None:
        """Free the lane; after a failure, hand its connection back to the pool.

        The pool resets that connection, or replaces it if the server dropped it.
        """
        try:
            if failed and self.lane:
                await self._drop_lane()
        finally:
            self.lane_lock.release()

    async def _drop_lane(self) -> None:
        connection = self.lane.pop()
        # asyncpg detaches a proxy whose connection the server dropped: nothing to give back.
        with contextlib.suppress(asyncpg.InterfaceError):
            await self.pool.release(connection)

    async def close(self) -> None:
        """Give the lane back and close the pool."""
        async with self.lane_lock:
            while self.lane:
                await self.pool.release(self.lane.pop())
        await self.pool.close()


@attrs.frozen
class Database:
    """An open database: what every repository function needs, and nothing global."""

    url: str
    engine: Engine
    queries: Queries
    _source: _SqliteSource | _PostgresSource = attrs.field(repr=False, alias="source")
    _bound: Connection | None = attrs.field(default=None, repr=False, alias="bound")

    @property
    def in_transaction(self) -> bool:
        """Whether calls on this value join a transaction opened by `transaction()`."""
        return self._bound is not None


def engine_of(url: str | Path | None) -> tuple[Engine, str]:
    """Tell the engine from a URL or path, and return what its driver connects to."""
    if url is None or url == "":
        return Engine.SQLITE, str(DEFAULT_DATABASE)
    text = str(url)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in {"postgres", "postgresql"}:
        return Engine.POSTGRES, text
    if scheme == "sqlite":
        path = unquote(text.removeprefix("sqlite://"))
        if path.startswith("/") and not path.startswith("//"):
            path = path[1:]  # sqlite:///relative/path
        elif path.startswith("//"):
            path = path[1:]  # sqlite:////absolute/path
        if not path:
            raise DatabaseError(f"{text!r} names no database file")
        return Engine.SQLITE, path
    if scheme:
        raise DatabaseError(
            f"unsupported database URL scheme {scheme!r} in {text!r}: "
            "use postgresql://..., sqlite:///path or a file path"
        )
    return Engine.SQLITE, text


async def open_database(
    url: str | Path | None = None,
    *,
    connect_timeout: float = 10.0,
    busy_timeout: float = 5.0,
    pool_size: int = 10,
) -> Database:
    """Open a database by URL or path; the default is `data/app.db`.

    SQLite gets WAL mode, a busy timeout (sqlite3's `timeout`), foreign keys and a full sync
    on commit.
    PostgreSQL gets a pool whose first connection must come within `connect_timeout`.
    """
    engine, target = engine_of(url)
    # Queries first: a drifted interface should fail before any connection is opened.
    if engine is Engine.SQLITE:
        queries = load_queries(SqliteAdapter, engine=engine.value)
        source: _SqliteSource | _PostgresSource = await _open_sqlite(target, busy_timeout)
    else:
        queries = load_queries(PostgresAdapter, engine=engine.value)
        source = await _open_postgres(target, connect_timeout, pool_size)
    return Database(url=str(url or DEFAULT_DATABASE), engine=engine, queries=queries, source=source)


async def _open_sqlite(path: str, busy_timeout: float) -> _SqliteSource:
    register_sqlite_types()
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = await aiosqlite.connect(
            path,
            isolation_level=None,  # this package opens and ends every transaction itself
            detect_types=sqlite3.PARSE_DECLTYPES,
            timeout=busy_timeout,
        )
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open SQLite database {path!r}: {error}") from error
    connection.row_factory = sqlite3.Row
    try:
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as error:
        await connection.close()
        raise DatabaseError(f"cannot set up SQLite database {path!r}: {error}") from error
    return _SqliteSource(connection)


async def _init_postgres_connection(connection: asyncpg.Connection[asyncpg.Record]) -> None:
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


def _usable(connection: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> bool:
    """Tell whether a pooled connection is still attached and open."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # detached from the pool after the server dropped it
        return False


async def _keep_session(_connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Skip asyncpg's reset query on release: one round trip less per call.

    asyncpg still rolls back an open transaction. This package sets no session state, and
    the migration runner releases its advisory lock itself.
    """


async def _open_postgres(dsn: str, connect_timeout: float, pool_size: int) -> _PostgresSource:
    try:
        async with asyncio.timeout(connect_timeout):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=pool_size,
                timeout=connect_timeout,
                init=_init_postgres_connection,
                reset=_keep_session,
            )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        reason = str(error) or type(error).__name__
        raise DatabaseError(f"cannot connect to PostgreSQL at {_redact(dsn)}: {reason}") from error
    return _PostgresSource(pool)


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return dsn


async def close_database(db: Database) -> None:
    """Close the connection or pool behind `db`."""
    source = db._source  # noqa: SLF001  # the module that made it closes it
    if isinstance(source, _SqliteSource):
        await source.connection.close()
    else:
        await source.close()


@contextlib.asynccontextmanager
async def connect(
    url: str | Path | None = None,
    *,
    connect_timeout: float = 10.0,
    busy_timeout: float = 5.0,
    pool_size: int = 10,
) -> AsyncIterator[Database]:
    """Open a database for the length of an `async with` block; see `open_database`."""
    db = await open_database(
        url, connect_timeout=connect_timeout, busy_timeout=busy_timeout, pool_size=pool_size
    )
    try:
        yield db
    finally:
        await close_database(db)


@contextlib.asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Database]:
    """Group calls: commit when the block ends, roll back on any error.

    Nested use makes a savepoint, so an inner block can fail alone.
    """
    async with _transaction_connection(db) as connection:
        yield attrs.evolve(db, bound=connection)


@contextlib.asynccontextmanager
async def _transaction_connection(db: Database) -> AsyncIterator[Connection]:
    bound = db._bound  # noqa: SLF001
    source = db._source  # noqa: SLF001
    if isinstance(source, _SqliteSource):
        if bound is not None:
            async with _sqlite_block(source.connection, "SAVEPOINT nested", "RELEASE nested",
                                     ("ROLLBACK TO nested", "RELEASE nested")):  # fmt: skip
                yield bound
            return
        await source.acquire()
        source.in_transaction = asyncio.current_task()
        try:
            async with _sqlite_block(source.connection, "BEGIN", "COMMIT", ("ROLLBACK",)):
                yield source.connection
        finally:
            source.in_transaction = None
            source.lock.release()
        return
    if bound is not None:
        assert not isinstance(bound, aiosqlite.Connection)  # noqa: S101  # engines never mix
        async with _postgres_block(bound):  # a savepoint: asyncpg nests transactions so
            yield bound
        return
    async with translate_errors():
        pooled = await source.pool.acquire()
    try:
        async with _postgres_block(pooled):
            yield pooled
    finally:
        await source.pool.release(pooled)


@contextlib.asynccontextmanager
async def _postgres_block(
    connection: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
    | asyncpg.Connection[asyncpg.Record],
) -> AsyncIterator[None]:
    """Run the block in a transaction; translate only the database's errors, not the block's."""
    block = connection.transaction()
    async with translate_errors():
        await block.start()
    try:
        yield
    except BaseException:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await block.rollback()
        raise
    async with translate_errors():
        await block.commit()


@contextlib.asynccontextmanager
async def _sqlite_block(
    connection: aiosqlite.Connection, begin: str, commit: str, rollback: tuple[str, ...]
) -> AsyncIterator[None]:
    async with translate_errors():
        await connection.execute(begin)
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            for statement in rollback:
                await connection.execute(statement)
        raise
    async with translate_errors():
        try:
            await connection.execute(commit)
        except sqlite3.Error:
            for statement in rollback:
                await connection.execute(statement)
            raise


class _Lent:
    """The context of `connection()`: a class, since it runs once per call."""

    __slots__ = ("_db", "_lane", "_lock", "_pool", "_pooled")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock: asyncio.Lock | None = None
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._pooled: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = None
        self._lane: _PostgresSource | None = None

    async def __aenter__(self) -> Connection:
        bound = self._db._bound  # noqa: SLF001
        if bound is not None:
            return bound
        source = self._db._source  # noqa: SLF001
        if isinstance(source, _SqliteSource):
            await source.acquire()
            self._lock = source.lock
            return source.connection
        lane = await source.take_lane()
        if lane is not None:
            self._lane = source
            return lane
        async with translate_errors():
            self._pooled = await source.pool.acquire()
        self._pool = source.pool
        return self._pooled

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        try:
            if self._lock is not None:
                self._lock.release()
            elif self._lane is not None:
                await self._lane.give_lane_back(failed=error is not None)
            elif self._pool is not None and self._pooled is not None:
                await self._pool.release(self._pooled)
        finally:
            if error is not None:
                _raise_translated(error)


def connection(db: Database) -> _Lent:
    """Lend one connection for a single statement, which is atomic on its own.

    Inside `transaction()` it is the transaction's connection. Driver errors raised in
    the block come out translated.
    """
    return _Lent(db)


@contextlib.asynccontextmanager
async def atomic(db: Database) -> AsyncIterator[Connection]:
    """Lend one connection inside a transaction, for a call made of several statements."""
    async with _transaction_connection(db) as connection:
        yield connection


class translate_errors:  # noqa: N801  # used like a function: `async with translate_errors():`
    """Turn driver errors raised in the block into this package's errors, chained."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if error is not None:
            _raise_translated(error)


def _raise_translated(error: BaseException) -> None:
    """Raise the package's error for a driver error, from it; other errors pass untouched."""
    translated = translate(error)
    if translated is not None:
        raise translated from error


def translate(error: BaseException) -> PersistenceError | None:  # noqa: PLR0911  # one case a line
    """Map a driver error to this package's error: the one place that does it.

    Errors that are not the drivers' (the caller's own, and bugs) give None: they are
    never re-labelled.
    """
    match error:
        case PersistenceError():
            return None
        case sqlite3.IntegrityError():
            return _sqlite_integrity(error)
        case sqlite3.DatabaseError():
            return DatabaseError(f"SQLite: {error}")
        case asyncpg.UniqueViolationError() | asyncpg.ForeignKeyViolationError():
            return ConflictError(_pg_message(error), constraint=error.constraint_name)
        case asyncpg.CheckViolationError() | asyncpg.NotNullViolationError():
            table = error.table_name or "row"
            field = error.column_name or error.constraint_name or "constraint"
            return ValidationError(table, field, _pg_message(error))
        case (
            asyncpg.PostgresConnectionError()
            | asyncpg.InterfaceError()
            | asyncpg.InternalClientError()  # a connection the server dropped mid-call
            | OSError()
        ):
            return DatabaseError(f"PostgreSQL connection: {error}")
        case asyncpg.PostgresError():
            return DatabaseError(f"PostgreSQL: {_pg_message(error)}")
    return None


def _pg_message(error: asyncpg.PostgresError) -> str:
    detail = getattr(error, "detail", None)
    return f"{error}: {detail}" if detail else str(error)


def _sqlite_integrity(error: sqlite3.IntegrityError) -> PersistenceError:
    message = str(error)
    if message.startswith("UNIQUE constraint failed:") or "PRIMARY KEY" in message:
        return ConflictError(f"SQLite: {message}", constraint=message.partition(": ")[2])
    if message.startswith("FOREIGN KEY"):
        return ConflictError(f"SQLite: {message}")
    detail = message.partition(": ")[2]
    table, _, field = detail.partition(".")
    if not field:
        table, field = "row", detail or "constraint"
    return ValidationError(table, field, f"SQLite: {message}")
