"""Opening a database, grouping calls in transactions, and translating driver errors.

A `Database` is a plain frozen value: the engine, the typed queries and a source of
connections. Repository functions take it as their first argument. Inside
`transaction(db)` they get a copy bound to one connection, so every call joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

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
    "redact_url",
    "transaction",
]

DEFAULT_DATABASE: Final = Path("data/app.db")
"""The embedded default, relative to the working directory."""

_QUERY_PASSWORD: Final = re.compile(r"(?P<key>[?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)
_SCHEME: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")
_MAX_PORT: Final = 65535


def redact_url(url: str | Path) -> str:
    """Return a URL fit to print: its password, in the user part or the query, becomes `***`.

    It never fails, so that it can describe a URL too broken to open.
    """
    text = str(url)
    start, end = _authority(text)
    user, at, hosts = text[start:end].rpartition("@")
    if at and ":" in user:
        text = f"{text[:start]}{user.partition(':')[0]}:***@{hosts}{text[end:]}"
    return _QUERY_PASSWORD.sub(r"\g<key>***", text)


def _authority(url: str) -> tuple[int, int]:
    """Where the `user:password@host:port` part of a URL starts and ends (empty without one)."""
    scheme_end = url.find("://")
    if scheme_end < 0:
        return 0, 0
    start = scheme_end + 3
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return start, min(ends, default=len(url))


def _check_postgres_url(url: str) -> None:
    """Refuse a PostgreSQL URL whose hosts or ports the driver could not read, saying why."""
    start, end = _authority(url)
    for host in url[start:end].rpartition("@")[2].split(","):
        port = ""
        if host.startswith("["):
            address, closed, after = host[1:].partition("]")
            if not closed or (after and not after.startswith(":")):
                raise _bad_url(url, f"write an IPv6 host as [address]:port, not {host!r}")
            try:
                ipaddress.IPv6Address(address)
            except ValueError:
                raise _bad_url(url, f"{address!r} is not an IPv6 address") from None
            port = after[1:]
        elif "[" in host or "]" in host or host.count(":") > 1:
            raise _bad_url(url, f"write an IPv6 host as [address]:port, not {host!r}")
        elif ":" in host:
            port = host.rpartition(":")[2]
        if port and not (port.isascii() and port.isdigit() and int(port) <= _MAX_PORT):
            raise _bad_url(url, f"the port must be a number from 0 to {_MAX_PORT}, got {port!r}")


def _bad_url(url: str, reason: str) -> DatabaseError:
    return DatabaseError(f"invalid database URL {redact_url(url)!r}: {reason}")


def _sqlite_read_only_uri(path: str) -> str:
    """Return the URI that opens an existing SQLite file read-only; a missing file is an error.

    Reading a WAL database needs a `-wal` file beside it. Where there is none and this process
    may not create one, the file is opened as immutable: only a writer could change it, and a
    writer would have made the `-wal` file.
    """
    file = Path(path)
    if not file.exists():
        raise DatabaseError(f"no SQLite database at {path!r}: the file does not exist")
    if not file.is_file():
        raise DatabaseError(f"no SQLite database at {path!r}: it is not a file")
    uri = f"file:{quote(str(file.resolve()))}?mode=ro"
    if not os.access(file.parent, os.W_OK) and not file.with_name(f"{file.name}-wal").exists():
        uri += "&immutable=1"
    return uri


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
    """Tell the engine from a URL or path, and return what its driver connects to.

    A URL this package cannot use is a `DatabaseError` that says why, with no password in it.
    """
    if url is None or url == "":
        return Engine.SQLITE, str(DEFAULT_DATABASE)
    text = str(url)
    match = _SCHEME.match(text)
    scheme = match["scheme"].lower() if match else ""
    if scheme == "file":
        raise _bad_url(text, "file: URIs are not supported; use sqlite:///path or a file path")
    if "://" not in text:
        if scheme in {"sqlite", "postgres", "postgresql"}:
            raise _bad_url(
                text,
                f"a {scheme} URL starts {scheme}://, as in "
                "sqlite:///relative/path, sqlite:////absolute/path or postgresql://host/db",
            )
        return Engine.SQLITE, text
    if scheme in {"postgres", "postgresql"}:
        _check_postgres_url(text)
        return Engine.POSTGRES, text
    if scheme == "sqlite":
        return Engine.SQLITE, _sqlite_path(text)
    raise _bad_url(
        text, f"unsupported scheme {scheme!r}: use postgresql://..., sqlite:///path or a file path"
    )


def _sqlite_path(url: str) -> str:
    """Return the file that a sqlite:// URL names."""
    rest = url[len("sqlite://") :]
    if "?" in rest or "#" in rest:
        raise _bad_url(url, "a sqlite URL takes no options; percent-encode '?' and '#'")
    path = unquote(rest)
    if path.startswith("/") and not path.startswith("//"):
        path = path[1:]  # sqlite:///relative/path
    elif path.startswith("//"):
        path = path[1:]  # sqlite:////absolute/path
    if not path:
        raise _bad_url(url, "it names no database file")
    return path


async def open_database(
    url: str | Path | None = None,
    *,
    connect_timeout: float = 10.0,
    busy_timeout: float = 5.0,
    pool_size: int = 10,
    create: bool = True,
) -> Database:
    """Open a database by URL or path; the default is `data/app.db`.

    SQLite gets WAL mode, a busy timeout (sqlite3's `timeout`), foreign keys and a full sync
    on commit. With `create=False`, a SQLite file must already exist, and is opened read-only.
    PostgreSQL gets a pool whose first connection must come within `connect_timeout`.
    """
    engine, target = engine_of(url)
    # Queries first: a drifted interface should fail before any connection is opened.
    if engine is Engine.SQLITE:
        queries = load_queries(SqliteAdapter, engine=engine.value)
        source: _SqliteSource | _PostgresSource = await _open_sqlite(
            target, busy_timeout, create=create
        )
    else:
        queries = load_queries(PostgresAdapter, engine=engine.value)
        source = await _open_postgres(target, connect_timeout, pool_size)
    return Database(url=str(url or DEFAULT_DATABASE), engine=engine, queries=queries, source=source)


def _make_folder_of(path: str) -> None:
    """Create the folders a new SQLite file goes in, or say which part of the path is in the way."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        reason = f"{str(blocking)!r} is a file, not a folder" if blocking else error.strerror
        raise DatabaseError(f"cannot create SQLite database {path!r}: {reason}") from error


async def _open_sqlite(path: str, busy_timeout: float, *, create: bool) -> _SqliteSource:
    register_sqlite_types()
    read_only = not create and path != ":memory:"
    target = _sqlite_read_only_uri(path) if read_only else path
    if not read_only and path != ":memory:":
        _make_folder_of(path)
    try:
        connection = await aiosqlite.connect(
            target,
            isolation_level=None,  # this package opens and ends every transaction itself
            detect_types=sqlite3.PARSE_DECLTYPES,
            timeout=busy_timeout,
            uri=read_only,
        )
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open SQLite database {path!r}: {error}") from error
    connection.row_factory = sqlite3.Row
    # A read-only connection keeps the file's journal mode: setting one would write.
    pragmas = ("PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")
    try:
        for pragma in pragmas if read_only else ("PRAGMA journal_mode = WAL", *pragmas):
            await connection.execute(pragma)
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
        where = redact_url(dsn)
        raise DatabaseError(f"cannot connect to PostgreSQL at {where}: {reason}") from error
    return _PostgresSource(pool)


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
    create: bool = True,
) -> AsyncIterator[Database]:
    """Open a database for the length of an `async with` block; see `open_database`."""
    db = await open_database(
        url,
        connect_timeout=connect_timeout,
        busy_timeout=busy_timeout,
        pool_size=pool_size,
        create=create,
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
