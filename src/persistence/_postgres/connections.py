"""A pooled asyncpg connection: its JSON codec, its reset, and whether it may be lent again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol, TypedDict, cast

import asyncpg
import asyncpg.pool
from asyncpg import connect_utils

from persistence._codecs import encode_json
from persistence._postgres.adapter import JsonDeferral, PgConnection
from persistence._postgres.errors import CONNECTION_FAILURES
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._interface import Connection


if TYPE_CHECKING:
    _Connection = asyncpg.Connection[asyncpg.Record]
else:  # generic in asyncpg's stubs alone
    _Connection = asyncpg.Connection


class PooledConnection(_Connection):
    """asyncpg's connection, which notes a codec changed after `init_connection` gave its own.

    asyncpg keeps a connection's codecs for its life, and has no way to put them back: one
    that the caller's loan changed is closed when the loan ends (`tidy`), not lent again.
    """

    codecs_changed = False
    json_deferral: JsonDeferral | None = None
    """Set by `init_connection`: how its JSON codec defers large values for the adapter."""
    cancel_sent = False
    """asyncpg asked the server to cancel a statement of it: never lent again (`cancel_sent`)."""

    def _cancel_current_command(self, *waiters: asyncio.Future[None]) -> None:
        """Note the request: asyncpg sends it for a statement cancelled or timed out."""
        self.cancel_sent = True
        super()._cancel_current_command(*waiters)  # type: ignore[misc]  # not in the stubs

    async def set_type_codec(
        self,
        typename: str,
        *,
        schema: str = "public",
        encoder: Callable[[Any], Any],
        decoder: Callable[[Any], Any],
        format: str = "text",  # noqa: A002  # asyncpg's name
    ) -> None:
        self.codecs_changed = True
        await super().set_type_codec(
            typename, schema=schema, encoder=encoder, decoder=decoder, format=format
        )

    async def reset_type_codec(self, typename: str, *, schema: str = "public") -> None:
        self.codecs_changed = True
        await super().reset_type_codec(typename, schema=schema)

    async def set_builtin_type_codec(
        self,
        typename: str,
        *,
        schema: str = "public",
        codec_name: str,
        format: str | None = None,  # noqa: A002  # asyncpg's name
    ) -> None:
        self.codecs_changed = True
        await super().set_builtin_type_codec(
            typename, schema=schema, codec_name=codec_name, format=format
        )


ISOLATION: Final = "SET default_transaction_isolation = 'read committed';\n"
"""The isolation each call runs at, whatever the database's or role's default says.

The SQL is written for READ COMMITTED: under a default of REPEATABLE READ or SERIALIZABLE,
two migrations at once took their snapshot before the runners' lock and applied a migration
twice, and upserts of one key at once failed with serialization errors. Set at connect, and
again after the full reset's RESET ALL; a block begins with it too (`BEGIN_READ_COMMITTED`),
which is all that holds behind PgBouncer's transaction pooling.
"""


async def init_connection(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Give every pooled connection the isolation the package's SQL is written for, and codecs.

    The JSON codec, so jsonb reads and writes as dicts.
    """
    await connection.execute(ISOLATION)
    await init_codecs(connection)


async def init_codecs(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Give every pooled connection the JSON codec, so jsonb reads and writes as dicts.

    Alone behind PgBouncer's transaction pooling, where a session setting would be left on a
    server connection that other clients of PgBouncer take next.
    """
    deferral = JsonDeferral()
    for type_name, prefix in (("jsonb", b"\x01"), ("json", b"")):
        encode, decode = _json_codec(prefix, deferral)
        await connection.set_type_codec(
            type_name, schema="pg_catalog", encoder=encode, decoder=decode, format="binary"
        )
    if isinstance(connection, PooledConnection):
        connection.codecs_changed = False  # these are the package's own
        connection.json_deferral = deferral


def _json_codec(
    prefix: bytes, deferral: JsonDeferral
) -> tuple[Callable[[object], bytes], Callable[[bytes], object]]:
    empty, start = prefix + b"{}", len(prefix)
    decoded = deferral.decoded

    def encode(value: object) -> bytes:
        return prefix + encode_json(value).encode()

    def decode(data: bytes) -> object:
        # json.loads spends about 1 us sniffing the encoding of bytes; the text is UTF-8.
        return {} if data == empty else decoded(data, start)

    return encode, decode


async def reset(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """On release, roll back a transaction left open; skip asyncpg's reset query (no state).

    It costs a round trip per call; the package's own calls set no session state and take no
    session lock. A connection lent to the caller's own SQL is reset in full before: `tidy`.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


class PoolHooks(TypedDict):
    """What asyncpg's pool calls its connections with: `create_pool`'s arguments."""

    init: Callable[[asyncpg.Connection[asyncpg.Record]], Coroutine[Any, Any, None]]
    reset: Callable[[asyncpg.Connection[asyncpg.Record]], Coroutine[Any, Any, None]]
    connection_class: type[asyncpg.Connection[asyncpg.Record]]


def pool_hooks(*, sessions: bool) -> PoolHooks:
    """Give the pool's hooks: the isolation and JSON codec at connect, the cheap reset after.

    The codec alone without `sessions` (behind PgBouncer's transaction pooling); the codecs
    that a caller changes after are noted.
    """
    init = init_connection if sessions else init_codecs
    return PoolHooks(init=init, reset=reset, connection_class=PooledConnection)


_CALLERS_STATE: Final = (
    "RESET statement_timeout;\nSET SESSION AUTHORIZATION DEFAULT;\nDISCARD TEMP;\n"
    "DISCARD SEQUENCES;\n"
    "DO $$DECLARE n text; BEGIN FOR n IN SELECT name FROM pg_catalog.pg_prepared_statements "
    "WHERE from_sql LOOP EXECUTE pg_catalog.format('DEALLOCATE %I', n); END LOOP; END$$;\n"
)
"""What asyncpg's reset query leaves: the session's user, temporary tables, the sequences'
`currval` and `lastval`, and the statements that SQL's PREPARE made (not asyncpg's own, which
its statement cache holds). A library that `LOAD` loaded, and a custom setting's name
(`SET myapp.x`), stay: no statement undoes them. Its catalog names are qualified: the
caller's search_path may put a schema of its own before pg_catalog. The
caller's statement timeout goes first: each statement after runs under it, and dropping many
temporary tables outlasted a timeout of 1 ms, which failed the reset and closed the connection.
`release_timeout` bounds the reset."""


async def tidy(connection: PgConnection, *, full: bool, sessions: bool = True) -> None:
    """Roll back a transaction left open; if `full`, reset what the caller's SQL set on it.

    The full reset is one round trip: asyncpg's reset query (RESET ALL, UNLISTEN *, CLOSE ALL,
    pg_advisory_unlock_all), `_CALLERS_STATE`, and a count of the statements asyncpg has
    cached that the server still holds: `_kept`. RESET ALL goes back to the settings sent at
    connect (standard_conforming_strings = on), not to the database's, and `ISOLATION` is set
    again, but behind PgBouncer's transaction pooling (`sessions` false). A connection whose
    codecs the caller changed (`PooledConnection`), or that holds a query logger or
    termination listener of the caller's, is closed instead: asyncpg's pool keeps those.
    """
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")
    if not full:
        return
    driver = cast("_Driver", connection)  # the pool's proxy hands these names on to asyncpg's
    if driver.codecs_changed or driver._query_loggers or driver._termination_listeners:  # noqa: SLF001
        terminate(connection)
        return
    statements = driver._stmt_cache.iter_statements()  # noqa: SLF001
    cached = [s.name for s in statements if s.name and not s.closed]
    reset_all = _CALLERS_STATE + connection.get_reset_query() + (ISOLATION if sessions else "")
    status = await connection.execute(reset_all + _kept(cached))
    if cached and status != f"SELECT {len(cached)}":
        driver._drop_local_statement_cache()  # noqa: SLF001


def _kept(names: list[str]) -> str:
    """Count the statements of `names` the server still holds as asyncpg's, in the status.

    The caller's DEALLOCATE of one (by its name, `DEALLOCATE ALL`, `DISCARD ALL`) leaves
    asyncpg's cache naming it, and its query would fail on that connection, for ever, with
    'prepared statement "__asyncpg_stmt_1__" does not exist': that connection's cache is
    dropped, and its queries are prepared again.
    """
    if not names:
        return ""
    listed = ", ".join("'" + name.replace("'", "''") + "'" for name in names)
    return f"\n{_ASYNCPGS} AND name IN ({listed});"


_ASYNCPGS: Final = "SELECT FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql"


class _Prepared(Protocol):
    name: str
    closed: bool


class _Cache(Protocol):
    def iter_statements(self) -> Iterator[_Prepared]: ...


class _Driver(Protocol):
    """What the pool's proxy hands on to its asyncpg Connection, beyond the stubs' names.

    asyncpg's public `reload_schema_state()` drops the statement and type caches of every
    connection in the pool: the others' statements would all be prepared again.
    """

    _stmt_cache: _Cache
    _query_loggers: Collection[object]
    _termination_listeners: Collection[object]
    codecs_changed: bool

    def _drop_local_statement_cache(self) -> None: ...


def check_block(conn: Connection) -> None:
    """Refuse a block's connection that the caller's SQL took out of the block's transaction.

    A COMMIT or ROLLBACK sent through `connection()` ends it under the block: its later writes
    would each commit alone, kept if it fails, and its end would commit nothing.
    """
    try:
        ended = not as_pg(conn).is_in_transaction()
    except asyncpg.InterfaceError:  # released: a close ended the block's snapshot already
        return
    if ended:
        raise DatabaseError(
            "PostgreSQL: the SQL run through connection() ended the transaction of its "
            "transaction() or read_snapshot() block (a COMMIT or ROLLBACK): the block's writes "
            "before it were committed or undone by it, and its later calls would each commit "
            "alone; end the block instead, not its transaction"
        )


def usable(connection: PgConnection) -> bool:
    """Tell whether a pooled connection is still attached and open."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # detached from the pool after the server dropped it
        return False


_BROKEN: Final = (OSError, *CONNECTION_FAILURES)  # TimeoutError: it outlived the command timeout
"""What a call fails with when its connection is in a state nobody knows: never lent again."""


def left_broken(error: BaseException | None) -> bool:
    """Tell whether a call left its connection unfit to reuse (in a block, by its error's cause).

    asyncpg can leave such a connection marked busy with an operation nobody awaits: COPY
    refused on a connection whose server process has gone stays its pending operation.
    Handed back as idle, it failed every later call lent it: "another operation is in progress".
    """
    if isinstance(error, DatabaseError):
        error = error.__cause__
    # asyncpg's refusals of an argument before sending it (its DataError, a ValueError and
    # an InterfaceError) leave the connection as it was: no reconnect for each bad value.
    return isinstance(error, _BROKEN) and not isinstance(error, ValueError)


def cancel_sent(connection: PgConnection) -> bool:
    """Tell whether asyncpg asked the server to cancel a statement of the connection, ever.

    The request goes on a socket of its own, and the server cancels whatever the connection's
    server process runs when it arrives. asyncpg waits until that socket is closed, but one
    that something in between closes before the server has the request (a proxy) lets the
    request come late: handed back to the pool, the connection's next call failed with
    'canceling statement due to user request' (a later block's COMMIT). It is closed instead.
    """
    return bool(getattr(getattr(connection, "_con", None), "cancel_sent", False))


def unanswered(error: BaseException | None) -> bool:
    """Tell whether a call was given up waiting on the server: its statement may run on there.

    Its time limit passed, or its caller was cancelled (Ctrl-C during a migration's statement,
    which then ran on at the server after the process had gone).
    """
    if isinstance(error, DatabaseError):
        error = error.__cause__
    return isinstance(error, TimeoutError | asyncio.CancelledError)


def quoted_identifier(name: str) -> str:
    """Quote `name` as an identifier, for the statements that take no bound name."""
    return '"' + name.replace('"', '""') + '"'


def as_pg(conn: Connection) -> PgConnection:
    """Narrow a connection of either engine to PostgreSQL's: engines never mix."""
    if isinstance(conn, asyncpg.pool.PoolConnectionProxy):
        return conn
    raise TypeError(f"a PostgreSQL backend was given {type(conn).__name__}")  # pragma: no cover


def cancel_request(connection: PgConnection) -> Callable[[], Awaitable[None]] | None:
    """Give what asks the server to cancel the connection's statement, on a socket of its own.

    A connection given up mid-statement (its command timeout passed) was closed at once, and
    a server waiting on a lock does not see a close: the statement ran on, and a write whose
    caller had been told it failed committed once the lock was freed. asyncpg's own request,
    begun at its timeout, was cut by that close. This is PostgreSQL's cancel request, by the
    connection's key; PgBouncer forwards it while the connection is open. None if asyncpg no
    longer keeps the key where it did (its version is pinned for such internals).
    """
    request: Callable[..., Awaitable[None]] | None = getattr(connect_utils, "_cancel", None)
    raw = getattr(connection, "_con", None)
    protocol = getattr(raw, "_protocol", None)
    pid, secret = getattr(protocol, "backend_pid", None), getattr(protocol, "backend_secret", None)
    address, params = getattr(raw, "_addr", None), getattr(raw, "_params", None)
    if request is None or None in (pid, secret, address, params):
        return None

    async def cancel() -> None:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            await request(
                loop=asyncio.get_running_loop(),
                addr=address,
                params=params,
                backend_pid=pid,
                backend_secret=secret,
            )

    return cancel


def terminate(connection: PgConnection) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


_LONGEST_LOCK_TIMEOUT: Final = 2**31 - 1  # milliseconds: PostgreSQL's lock_timeout is an int
_MIGRATION_LOCK: Final = 0x70657273  # "pers": the advisory lock every migration takes


async def migration_lock(connection: PgConnection, lock_timeout: float) -> None:
    """Take the runners' lock, every lock wait of the transaction bounded by `lock_timeout`."""
    # In milliseconds, within what the setting holds: a longer bound waits as long.
    timeout = int(min(max(1.0, lock_timeout * 1000), _LONGEST_LOCK_TIMEOUT))
    await connection.execute(f"SET LOCAL lock_timeout = {timeout}")
    try:
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
    except asyncpg.LockNotAvailableError as error:
        raise DatabaseError(
            f"another migration runner held the lock for over {lock_timeout:g}s"
        ) from error
