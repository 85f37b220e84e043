"""A caller's SQL that ends the transaction of the block whose connection `connection()` lent.

Inside `transaction(db)` (or a savepoint, or `read_snapshot(db)`) on PostgreSQL, the loan is
the block's own connection, and the caller's `COMMIT` or `ROLLBACK` ends the block's
transaction under it. The loan's end says so with `DatabaseError`: before, the block went on
with each later write committed alone, kept when the block then failed, and a block whose
writes the caller's ROLLBACK had undone ended as if it had committed them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Final

import pytest

from _lent_helpers import nested, pooled
from persistence import (
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connection,
    save_result,
    transaction,
)
from persistence._postgres.connections import as_pg
from persistence.database import Database, read_snapshot

BLOCKS: Final = {"transaction()": transaction, "a savepoint": nested}
ENDINGS: Final = ("ROLLBACK", "COMMIT", "ABORT", "END", "COMMIT AND NO CHAIN")


def result() -> TestResult:
    """A small result to save."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


@pytest.fixture
async def db(migrated_postgres_url: str) -> AsyncIterator[Database]:
    """A PostgreSQL database of two pooled connections."""
    async with pooled(migrated_postgres_url, 2) as opened:
        yield opened


@pytest.mark.parametrize(("ending", "block"), [(e, b) for e in ENDINGS for b in BLOCKS])
async def test_sql_that_ends_the_blocks_transaction_is_refused_at_the_loans_end(
    db: Database, ending: str, block: str
) -> None:
    """PostgreSQL: the loan raises; the block's write after it is never made, or kept."""
    with pytest.raises(DatabaseError, match="ended the transaction"):
        async with BLOCKS[block](db) as tx:
            first = await save_result(tx, result())
            async with connection(tx) as lent:
                await as_pg(lent).execute(ending)
            await save_result(tx, result())  # each alone, kept by a failing block
    committed = ending.startswith(("COMMIT", "END"))
    assert await all_results(db) == ([first] if committed else [])


async def test_a_snapshot_whose_transaction_the_loan_ended_says_so(db: Database) -> None:
    """PostgreSQL: in read_snapshot(), the loan's COMMIT ends the snapshot: the loan raises."""
    with pytest.raises(DatabaseError, match="ended the transaction"):
        async with read_snapshot(db) as snapshot:
            async with connection(snapshot) as lent:
                await as_pg(lent).execute("COMMIT")
            await all_results(snapshot)  # would see later commits: no snapshot any more


async def test_sql_that_keeps_the_transaction_is_not_refused(db: Database) -> None:
    """PostgreSQL: a loan whose SQL leaves the block's transaction open (a savepoint) goes on."""
    async with transaction(db) as tx:
        saved = await save_result(tx, result())
        async with connection(tx) as lent:
            await as_pg(lent).execute("SAVEPOINT mine; SELECT 1; RELEASE SAVEPOINT mine")
    assert await all_results(db) == [saved]


@pytest.mark.parametrize("block", list(BLOCKS))
async def test_a_block_whose_transaction_a_loan_ended_refuses_every_later_call(
    db: Database, block: str
) -> None:
    """PostgreSQL: a caller who catches the loan's error and writes on is refused each time.

    Only the loan's end raised: a write after it committed alone, and was kept when the
    block then failed.
    """
    with pytest.raises((RuntimeError, DatabaseError)):
        async with BLOCKS[block](db) as tx:
            with contextlib.suppress(DatabaseError):
                async with connection(tx) as lent:
                    await as_pg(lent).execute("ROLLBACK")
            for _ in range(2):
                with pytest.raises(DatabaseError, match="ended the transaction"):
                    await save_result(tx, result())
            raise RuntimeError("the block fails")
    assert await all_results(db) == []
