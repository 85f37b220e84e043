"""What a caller sets through asyncpg's own API on a connection that `connection(db)` lent.

The caller gets asyncpg's connection, whose Python side holds state of its own beyond the
server's session: the codecs that turn values into Python objects and back, the query loggers
and termination listeners. None that the caller sets there may outlive the loan: a codec must
not decode the package's later calls on it, a hook must not hear them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import pytest

from _lent_helpers import lenders, pooled
from _server import no_connection_left
from persistence import (
    FileRecord,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connection,
    get_file_record_by_path,
    save_file_record,
    save_result,
)
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg
from persistence.database import Database, close_database, open_database

LENDERS: Final = lenders("outside a block", "in transaction()")


def _upper(text: str) -> str:
    return text.upper()


CODECS: Final[dict[str, Callable[[PgConnection], Awaitable[None]]]] = {
    "timestamptz as text": lambda conn: conn.set_type_codec(
        "timestamptz", schema="pg_catalog", encoder=str, decoder=str, format="text"
    ),
    "text upper-cased": lambda conn: conn.set_type_codec(
        "text", schema="pg_catalog", encoder=str, decoder=_upper, format="text"
    ),
    "jsonb as text": lambda conn: conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=str, decoder=str, format="text"
    ),
    "jsonb back to asyncpg's": lambda conn: conn.reset_type_codec("jsonb", schema="pg_catalog"),
    "float8 as text": lambda conn: conn.set_builtin_type_codec(
        "float8", schema="pg_catalog", codec_name="text"
    ),
}
"""A codec the caller's loan changes on its connection, through asyncpg."""

WHEN: Final = dt.datetime(2020, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


@pytest.fixture
async def sole(migrated_postgres_url: str) -> AsyncIterator[Database]:
    """A database of one pooled connection (no lane)."""
    async with pooled(migrated_postgres_url, 1) as db:
        yield db


@pytest.mark.parametrize(("codec", "where"), [(c, w) for c in CODECS for w in LENDERS])
async def test_a_codec_set_in_a_loan_decodes_no_later_call(
    sole: Database, codec: str, where: str
) -> None:
    """PostgreSQL: results and file records read back as they were saved, after the loan."""
    saved = await save_result(
        sole,
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            execution_time=0.25,
            output="héllo",
            created_at=WHEN,
            metadata={"k": [1, "ü"]},
        ),
    )
    record = await save_file_record(sole, FileRecord(path="a.txt", metadata={"k": 1}))
    assert await all_results(sole) == [saved]  # the statements are prepared and cached now
    async with LENDERS[where](sole) as lender, connection(lender) as lent:
        await CODECS[codec](as_pg(lent))
    for _ in range(2):
        assert await all_results(sole) == [saved]
        assert await get_file_record_by_path(sole, "a.txt") == record
        again = await save_file_record(sole, FileRecord(path="b.txt", metadata={"k": 2}))
        assert again.metadata == {"k": 2}
        assert isinstance(again.created_at, dt.datetime)


HOOKS: Final = ("query logger", "termination listener")


@pytest.mark.parametrize(("hook", "where"), [(h, w) for h in HOOKS for w in LENDERS])
async def test_a_hook_added_in_a_loan_hears_nothing_after_it(
    migrated_postgres_url: str, hook: str, where: str
) -> None:
    """PostgreSQL: a query logger or termination listener the loan added ends with the loan.

    Left on the pooled connection, a logger was handed every later query of the package there,
    with its arguments; a listener was called when the pool closed that connection, long after.
    """
    db = await open_database(migrated_postgres_url, pool_size=1)
    heard: list[object] = []
    try:
        async with LENDERS[where](db) as lender, connection(lender) as lent:
            conn = as_pg(lent)
            if hook == "query logger":
                conn.add_query_logger(heard.append)
            else:
                conn.add_termination_listener(heard.append)
        await asyncio.sleep(0.01)  # asyncpg calls a termination listener soon after, not at once
        at_the_end = len(heard)
        await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        assert len(await all_results(db)) == 1
    finally:
        await close_database(db)
    await no_connection_left(migrated_postgres_url)
    assert len(heard) == at_the_end
