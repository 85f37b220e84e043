"""asyncpg's cached statements across a connection that `connection(db)` lent, on PostgreSQL.

The caller's SQL may deallocate some of the statements asyncpg prepared on the lent
connection (`DEALLOCATE __asyncpg_stmt_...__`): the package's later calls on that connection
must still work. A loan leaves every other pooled connection's cache as it was: their
statements are not prepared again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Final

import pytest

from _lent_helpers import lenders, pooled
from _server import no_connection_left
from persistence import (
    FileRecord,
    FileRecordFilter,
    all_results,
    connection,
    list_file_records,
    save_file_record,
    transaction,
)
from persistence._loans import borrow
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg
from persistence.database import Database, close_database, open_database

PATHS: Final = ("a_b.txt", "axb.txt")

ASYNCPGS: Final = (
    "SELECT name FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql ORDER BY prepare_time"
)
"""The names of the statements asyncpg prepared on a connection, oldest first."""


LENDERS: Final = lenders("outside a block", "in transaction()", "in read_snapshot()")


@pytest.fixture
async def sole(migrated_postgres_url: str) -> AsyncIterator[Database]:
    """A database of one pooled connection (no lane), its file records saved."""
    async with pooled(migrated_postgres_url, 1) as db:
        for path in PATHS:
            await save_file_record(db, FileRecord(path=path))
        yield db


async def listed(db: Database) -> list[str]:
    """The paths the glob listing gives."""
    return [
        r.path for r in (await list_file_records(db, FileRecordFilter(path_glob="a?b.*"))).items
    ]


async def names(conn: PgConnection) -> list[str]:
    """The names of asyncpg's statements on `conn`, oldest first (this read's own among them)."""
    return [str(row[0]) for row in await conn.fetch(ASYNCPGS)]


PICKS: Final[dict[str, Callable[[list[str]], list[str]]]] = {
    "the oldest one": lambda held: held[:1],
    "all but the loan's own read": lambda held: held[:-1],
    "every other one": lambda held: held[::2],
}
"""Which of asyncpg's statements the caller deallocates, from the names oldest first."""


@pytest.mark.parametrize(("pick", "where"), [(p, w) for p in PICKS for w in LENDERS])
async def test_a_loan_that_deallocates_some_of_asyncpgs_statements_breaks_no_later_call(
    sole: Database, pick: str, where: str
) -> None:
    """PostgreSQL: the listing and a write, cached before the loan, work after it as before."""
    assert await listed(sole) == sorted(PATHS)  # its statements are prepared and cached now
    async with LENDERS[where](sole) as lender, connection(lender) as lent:
        conn = as_pg(lent)
        gone = PICKS[pick](await names(conn))
        assert gone
        for name in gone:
            await conn.execute(f'DEALLOCATE "{name}"')
    for _ in range(2):
        assert await listed(sole) == sorted(PATHS)
        saved = await save_file_record(sole, FileRecord(path="after.txt", metadata={"k": [1]}))
        assert saved.metadata == {"k": [1]}


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
