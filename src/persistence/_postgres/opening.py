"""Opening PostgreSQL: a pool whose server has answered once, or a clear refusal.

Apart from the backend it makes: how the pool is set up is not how its connections are lent.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Final

import asyncpg

from persistence._loader import load_queries
from persistence._postgres.adapter import PostgresAdapter
from persistence._postgres.backend import PostgresBackend
from persistence._postgres.connections import pool_hooks
from persistence._postgres.errors import connect_failures
from persistence._postgres.pooling import split_pooling
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._tracing import Observer

_STATEMENT_CACHE: Final = 100  # asyncpg's default size, kept unless PgBouncer pools by transaction


async def _first_answer(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    """Take a first connection and give it back; on any failure, terminate the pool.

    A caller cancelled meanwhile (or past its connect timeout) does not cut the connect short:
    cut just after its socket connected, asyncpg leaves a future failing with nobody to read
    it. The pool is terminated once the connect ends, within its own timeout.
    """

    async def take_and_give_back() -> None:
        await pool.release(await pool.acquire())

    first = asyncio.ensure_future(take_and_give_back())
    try:
        await asyncio.shield(first)
    except BaseException:
        first.add_done_callback(functools.partial(_terminated_after, pool))
        raise


def _terminated_after(pool: asyncpg.Pool[asyncpg.Record], done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # read: not reported as never retrieved
    pool.terminate()


async def open_postgres(
    dsn: str,
    shown: str,
    *,
    connect_timeout: float,
    command_timeout: float,
    release_timeout: float,
    pool_size: int,
    observer: Observer | None = None,
) -> PostgresBackend:
    """Open a pool whose first connection comes within `connect_timeout`, traced by `observer`."""
    try:
        dsn, pooling = split_pooling(dsn)
    except ValueError as error:
        raise DatabaseError(f"invalid database URL {shown!r}: {error}") from None
    queries = load_queries(
        functools.partial(PostgresAdapter, command_timeout=command_timeout, observer=observer),
        "postgres",
    )
    cannot = f"cannot connect to PostgreSQL at {shown}"
    began = asyncio.get_running_loop().time()
    with connect_failures(cannot):
        try:
            async with asyncio.timeout(connect_timeout):
                # No floor of connections (min_size=0): asyncpg would restore a floor in the
                # background, logging a traceback on each try while the server is away. A call
                # that needs a connection opens one and fails on its own.
                pool = await asyncpg.create_pool(
                    dsn,
                    min_size=0,
                    max_size=pool_size,
                    timeout=connect_timeout,
                    command_timeout=command_timeout,
                    **pool_hooks(sessions=not pooling.transaction),
                    # The SQL is written for the default since 9.1, where `'\'` is a backslash. A
                    # database or role set otherwise would misread it, or refuse it.
                    server_settings={"standard_conforming_strings": "on"},
                    # Behind PgBouncer's transaction pooling, asyncpg prepares each statement
                    # unnamed, again with the statement it runs: the next may reach another server.
                    statement_cache_size=0 if pooling.transaction else _STATEMENT_CACHE,
                )
                await _first_answer(pool)  # the server must answer at open
        except TimeoutError as error:
            if error.errno is not None:  # the network's own (a connect's ETIMEDOUT), in its words
                raise DatabaseError(f"{cannot}: {error.strerror or error}") from error
            if asyncio.get_running_loop().time() - began < connect_timeout:  # a statement's
                raise DatabaseError(
                    f"{cannot}: the server did not answer the session's first statements "
                    f"within the command timeout ({command_timeout:g}s)"
                ) from error
            raise DatabaseError(f"{cannot}: no answer within {connect_timeout:g}s") from error
        except ValueError as error:  # asyncpg's reading of the URL's options
            raise DatabaseError(f"{cannot}: {error}") from error
    return PostgresBackend(
        queries,
        pool,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        release_timeout=release_timeout,
        dsn=dsn,
        shown=shown,
        pooling=pooling,
    )
