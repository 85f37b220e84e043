"""asyncpg's cached statements across a connection that `connection(db)` lent, on PostgreSQL.

A loan leaves every other pooled connection's cache as it was: their statements are not
prepared again.
"""

from __future__ import annotations

import asyncio
from typing import Final

import pytest

from _server import no_connection_left
from persistence import all_results, connection, transaction
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg
from persistence.database import borrow, close_database, open_database

ASYNCPGS: Final = (
    "SELECT name FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql ORDER BY prepare_time"
)
"""The names of the statements asyncpg prepared on a connection, oldest first."""


async def names(conn: PgConnection) -> list[str]:
    """The names of asyncpg's statements on `conn`, oldest first (this read's own among them)."""
    return [str(row[0]) for row in await conn.fetch(ASYNCPGS)]


LOANS: Final = {
    "no statement prepared": "SET search_path = elsewhere",  # the simple protocol: none
    "its statements deallocated": "DEALLOCATE ALL",
}
"""A loan's SQL that leaves asyncpg no statement on the server: its cache there is dropped."""


@pytest.mark.parametrize("loan", LOANS)
async def test_a_loan_keeps_the_other_connections_cached_statements(
    migrated_postgres_url: str, loan: str
) -> None:
    """PostgreSQL: the cache dropped after a loan is the lent connection's alone.

    A block holds one connection, its statements cached; a loan meanwhile takes a fresh one.
    The block's next call runs the very statements it had: none prepared again.
    """
    db = await open_database(migrated_postgres_url, pool_size=3)
    warm, lent_back = asyncio.Event(), asyncio.Event()
    seen: list[list[str]] = []

    async def block() -> None:
        async with transaction(db) as tx:
            for _ in range(2):
                await all_results(tx)
                async with borrow(tx) as own:  # the package's own loan: no reset
                    seen.append(await names(as_pg(own)))
                warm.set()
                await lent_back.wait()

    task = asyncio.ensure_future(block())
    try:
        async with asyncio.timeout(10):  # the block's error, if it fails first, comes after
            await warm.wait()
        async with connection(db) as lent:
            conn = as_pg(lent)
            if "DEALLOCATE" in LOANS[loan]:
                await conn.fetchval("SELECT 2")  # a statement asyncpg prepares and caches
            await conn.execute(LOANS[loan])
    finally:
        lent_back.set()
        try:
            await task
        finally:
            await close_database(db)
    await no_connection_left(migrated_postgres_url)
    assert seen[1] == seen[0]
