"""Opening and closing a database, and the public face of what a `Database` is used with.

Opening makes a `Database` (`_database_value.py`), a frozen value: the engine, the typed
queries and the backend that owns the connections. Its blocks (`transaction`, `read_snapshot`)
live in `_blocks.py`, its loans (`connection`) in `_loans.py`; they are given here as well.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, ParamSpec

from persistence._backend import Backend, Engine, ScriptStatement
from persistence._blocks import read_snapshot as read_snapshot  # noqa: PLC0414  # re-exported
from persistence._blocks import transaction
from persistence._database_value import (
    OPEN_LOANS,
    Database,
    entered_once,
    refuse_outer,
    require_database,
    watch_writes,
)
from persistence._guards import argument, at_least, seconds
from persistence._loans import connection
from persistence._loop import imported, imported_if_installed
from persistence._postgres import split_postgres
from persistence._sqlite import open_sqlite, split_sqlite
from persistence._tracing import OTEL_MODULES, Tracing, observer_for
from persistence._urls import (
    DEFAULT_DATABASE,
    PgBouncerMode,
    database_url,
    engine_of,
    pooled_target,
    redact_url,
)
from persistence.exceptions import DatabaseError, ValidationError

__all__ = [
    "DEFAULT_DATABASE",
    "Database",
    "Engine",
    "Tracing",
    "close_database",
    "connect",
    "connection",
    "create_database",
    "database_url",
    "engine_of",
    "open_database",
    "read_snapshot",
    "redact_url",
    "transaction",
    "watch_writes",
]

_P = ParamSpec("_P")

MAX_POOL_SIZE: Final = 10_000
"""The most connections a pool may hold: asyncpg makes a slot for each at the open, and
10**9 of them ran the process out of memory. PostgreSQL's own ceiling is 262,143."""

_CLOSE_IN_BLOCK: Final = (
    "close_database() was called inside a transaction() block of this database, and would wait "
    "for the block to end: close it after the block"
)
_CLOSE_IN_LOAN: Final = (
    "close_database() was called inside a connection() block of this database, and would wait "
    "for the block to end: close it after the block"
)


async def open_database(  # each limit is the caller's to set
    url: str | os.PathLike[str] | None = None,
    *,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    release_timeout: float = 1.0,
    busy_timeout: float = 5.0,
    pool_size: int = 10,
    create: bool = True,
    tracing: Tracing | None = None,
    slow_query: float | None = None,
    pgbouncer: PgBouncerMode | None = None,
    listen_url: str | None = None,
) -> Database:
    """Open a database by URL or path: `url`, else `$DATABASE_URL`, else `data/app.db`.

    SQLite gets WAL, foreign keys and a full sync on commit; a write waits `busy_timeout` at most
    for another process's lock; with `create=False` a missing file is an error and an existing
    one opens read-only. PostgreSQL gets a pool bounded by `connect_timeout`, `command_timeout`
    (each statement) and `release_timeout` (a connection handed back). Queries are OpenTelemetry
    spans with the `otel` extra and a tracer provider (global or `tracing`); one of `slow_query`
    seconds or more (else `$PERSISTENCE_SLOW_QUERY`) is logged at WARNING on `persistence.queries`.

    `pgbouncer="transaction"` (PgBouncer in transaction mode) and `listen_url` (PostgreSQL's own
    address, for the change feed) work as in the URL's query; given both ways they must agree,
    and SQLite refuses them: a `ValidationError` before anything opens.
    """
    engine, target = pooled_target(
        url, pgbouncer=pgbouncer, listen_url=listen_url, caller="open_database"
    )
    # Every limit is checked, whichever engine it serves, before anything opens.
    limits = _limits(
        "open_database",
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        release_timeout=release_timeout,
    )
    busy_timeout = seconds("open_database", "busy_timeout", busy_timeout, zero_ok=True)
    pool_size = at_least("open_database", "pool_size", pool_size, 1, MAX_POOL_SIZE)
    create = argument("open_database", "create", bool, create)
    shown = redact_url(target)
    await imported_if_installed(*OTEL_MODULES)  # the `otel` extra's API, if any: off the loop
    observer = observer_for(engine.value, target, tracing, slow_query)
    if engine is Engine.SQLITE:
        backend: Backend = await open_sqlite(
            target, busy_timeout=busy_timeout, create=create, observer=observer
        )
    else:
        await imported("persistence._postgres.opening")  # asyncpg, on first use: off the loop
        from persistence._postgres.opening import open_postgres  # noqa: PLC0415  # imported

        backend = await open_postgres(
            target, shown, **limits, pool_size=pool_size, observer=observer
        )
    return Database(url=shown, engine=engine, queries=backend.queries, backend=backend)


async def create_database(
    url: str | os.PathLike[str] | None = None,
    *,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    dry_run: bool = False,
) -> bool:
    """Create the PostgreSQL database `url` names if missing: say whether it was (or would be).

    SQLite needs no such step (False). A role that may not create databases gets a DatabaseError.
    """
    engine, target = engine_of(url)
    limits = _limits(
        "create_database", connect_timeout=connect_timeout, command_timeout=command_timeout
    )
    dry_run = argument("create_database", "dry_run", bool, dry_run)
    if engine is Engine.SQLITE:
        return False
    await imported("persistence._postgres.create")
    from persistence._postgres.create import create_postgres_database  # noqa: PLC0415  # as above

    return await create_postgres_database(target, redact_url(target), **limits, dry_run=dry_run)


def _limits(caller: str, **given: float) -> dict[str, float]:
    """Check each time limit given by name: a finite number of seconds, more than 0."""
    return {name: seconds(caller, name, value) for name, value in given.items()}


def split_script(engine: Engine, script: str) -> list[ScriptStatement]:
    """Split a migration script as `engine` reads it, with no database open.

    What the engine cannot run in a migration is refused with a `MigrationError`.
    """
    return split_sqlite(script) if engine is Engine.SQLITE else split_postgres(script)


async def close_database(db: Database) -> None:
    """Close the connections behind `db`, after the writes already queued.

    A `transaction()` or `connection()` block open in another task ends first; one open in
    this task (or a task it started), which the close would wait for, is refused. A
    `read_snapshot()` block, which only reads, ends at once: its later calls raise
    `DatabaseError`.
    """
    backend = require_database(db)._backend  # noqa: SLF001  # the module that made it closes it
    refuse_outer(backend, _CLOSE_IN_BLOCK)
    if any(loan.open and loan.backend is backend for loan in OPEN_LOANS.get()):
        raise DatabaseError(_CLOSE_IN_LOAN)
    await backend.close()


def _for_a_block(
    open_: Callable[_P, Awaitable[Database]],
) -> Callable[_P, contextlib.AbstractAsyncContextManager[Database]]:
    """Make `connect` of `open_database`: the same arguments, checked alike by type checkers."""

    @entered_once
    @contextlib.asynccontextmanager
    async def connect(*args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[Database]:
        """Open a database for the length of an `async with` block; see `open_database`."""
        db = await open_(*args, **kwargs)
        try:
            yield db
        finally:
            await close_database(db)

    # help() and inspect.signature() follow __wrapped__: they show open_database's arguments.
    connect.__wrapped__ = open_  # type: ignore[attr-defined]  # set on the made function
    connect.__qualname__ = "connect"  # as the package names it, not `_for_a_block.<locals>...`
    return connect


connect = _for_a_block(open_database)


async def _open_file_as_is(path: str | os.PathLike[str]) -> Database:
    """Open an existing SQLite file to read it only, adding no file beside it: for a restore.

    A file open elsewhere (its `-wal` or `-shm` beside it) is read through SQLite's locks.
    """
    engine, target = engine_of(path)
    if engine is not Engine.SQLITE:
        raise ValidationError("restore", "path", f"must be a SQLite file: {redact_url(target)!r}")
    await imported_if_installed(*OTEL_MODULES)
    observer = observer_for(engine.value, target, None, None)
    backend = await open_sqlite(
        target, busy_timeout=5.0, create=False, observer=observer, as_is=True
    )
    return Database(url=redact_url(target), engine=engine, queries=backend.queries, backend=backend)


read_file_as_is = _for_a_block(_open_file_as_is)
