"""A hostile caller's SQL on a connection that `connection(db)` lent, on PostgreSQL.

The loan sets what the package's queries rely on (standard_conforming_strings, the statement
cache), or is cancelled at each of its awaits inside `transaction(db)`: the next package call
on that connection (a pool of one) still answers right, and no connection is left behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Final

import pytest

from _lent_helpers import lenders, pooled
from _server import own_connections
from persistence import (
    FileRecord,
    FileRecordFilter,
    connection,
    list_file_records,
    save_file_record,
    transaction,
)
from persistence._postgres.connections import as_pg
from persistence.database import Database

PATHS: Final = ("a_b.txt", "axb.txt", "a\\b.txt", "a%b.txt")
GLOBS: Final = {
    "a_b.*": ["a_b.txt"],
    "a\\b.*": ["a\\b.txt"],
    "a%b.*": ["a%b.txt"],
    "a?b.txt": ["a%b.txt", "a\\b.txt", "a_b.txt", "axb.txt"],
}
"""Globs whose `\\`, `%` and `_` the listing's SQL escapes with string literals, and matches."""


LENDERS: Final = lenders("outside a block", "in transaction()", "in read_snapshot()")


@pytest.fixture
async def sole(migrated_postgres_url: str) -> AsyncIterator[Database]:
    """A database of one pooled connection (no lane), its file records saved."""
    async with pooled(migrated_postgres_url, 1) as db:
        for path in PATHS:
            await save_file_record(db, FileRecord(path=path))
        yield db


async def globbed(db: Database) -> dict[str, list[str]]:
    """What each glob lists."""
    return {
        glob: [
            r.path for r in (await list_file_records(db, FileRecordFilter(path_glob=glob))).items
        ]
        for glob in GLOBS
    }


async def pid_of(db: Database) -> int:
    """The server process of the connection the next loan gets."""
    async with connection(db) as lent:
        return int(await as_pg(lent).fetchval("SELECT pg_backend_pid()"))


HOSTILE: Final = {
    "strings read as escapes": "SET standard_conforming_strings = off",
    "by set_config": "SELECT set_config('standard_conforming_strings', 'off', false)",
    "escapes and no warning": (
        "SET standard_conforming_strings = off; SET escape_string_warning = off"
    ),
    "the cache deallocated": "DEALLOCATE ALL",
    "everything discarded": "DISCARD ALL",
    "plans discarded": "DISCARD PLANS",
    "read only by default": "SET default_transaction_read_only = on",
}
"""SQL a caller's loan runs that the package's next query on that connection must outlive."""
OUTSIDE_A_BLOCK: Final = frozenset({"everything discarded"})  # DISCARD ALL: no transaction


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        (kind, where)
        for kind in HOSTILE
        for where in LENDERS
        if not (kind in OUTSIDE_A_BLOCK and where != "outside a block")
    ],
)
async def test_the_glob_listing_after_a_hostile_loan_answers_as_before(
    sole: Database, kind: str, where: str
) -> None:
    """PostgreSQL: the listing, its statement cached before the loan, lists the same paths."""
    assert await globbed(sole) == GLOBS  # its statement is prepared and cached now
    pid = await pid_of(sole)
    async with LENDERS[where](sole) as lender, connection(lender) as lent:
        await as_pg(lent).execute(HOSTILE[kind])
    assert await globbed(sole) == GLOBS
    after = await save_file_record(sole, FileRecord(path="after.txt", metadata={"k": [1]}))
    assert after.metadata == {"k": [1]}  # writes, too, jsonb through the package's codec
    assert await pid_of(sole) == pid  # on the very connection the loan had


STEPS: Final = 400
"""How many loop turns the cancelled loan is given, at most, one more at each attempt."""


async def test_a_loan_in_a_transaction_cancelled_at_each_await_leaves_no_half_reset(
    sole: Database, migrated_postgres_url: str
) -> None:
    """PostgreSQL: cut at any await, in its SQL or in the reset after, the next call works.

    The pool's one connection is reset in full, or closed and replaced: never handed on with
    the loan's settings, or busy with a reset nobody awaits.
    """
    connections = await own_connections(migrated_postgres_url)

    async def loan() -> None:
        async with transaction(sole) as tx, connection(tx) as lent:
            conn = as_pg(lent)
            await conn.execute("SET standard_conforming_strings = off")
            await conn.execute("SET search_path = elsewhere")
            await conn.execute("CREATE TEMP TABLE file_records (id int)")
            await conn.execute("SELECT pg_advisory_lock(7)")
            await conn.execute("PREPARE leftover AS SELECT 1")
            await conn.execute("SET statement_timeout = 1")  # last: it would cut the others

    cut = finished = 0
    for steps in range(STEPS):
        task = asyncio.ensure_future(loan())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
            finished += 1
        except asyncio.CancelledError:
            cut += 1
        async with asyncio.timeout(10):
            assert await globbed(sole) == GLOBS, steps
            async with connection(sole) as lent:
                conn = as_pg(lent)
                state = await conn.fetchrow(
                    "SELECT current_setting('search_path') AS path,"
                    " current_setting('statement_timeout') AS timeout,"
                    " current_setting('standard_conforming_strings') AS strings,"
                    " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    "  AND pid = pg_backend_pid()) AS locks,"
                    " (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared"
                )
        assert state is not None
        assert dict(state) == {
            "path": '"$user", public',
            "timeout": "0",
            "strings": "on",
            "locks": 0,
            "prepared": 0,
        }, steps
        if finished >= 3:  # the loan ends before the cancel: later steps cut nothing more
            break
    assert cut > 10, (cut, finished)
    assert await own_connections(migrated_postgres_url) <= max(connections, 1)
