"""A `transaction()` block whose whole transaction SQLite rolled back under it, on SQLite.

A statement can make SQLite roll back the whole transaction, not only itself: a trigger's
`RAISE(ROLLBACK)`, and at SQLite's choice a full disk or an I/O error. The statement fails
with its own error; every later call of the block, a nested block's end included, is then a
`DatabaseError` saying so, and nothing is written outside the transaction.
"""

from __future__ import annotations

import pytest

from persistence import (
    Database,
    DatabaseError,
    ValidationError,
    save_result,
    transaction,
)
from test_lone_writes import result, stored_outputs, writer_of

_GONE = "rolled back"


@pytest.fixture
def doomed(sqlite_db: Database) -> Database:
    """The database, where saving a result with output 'doom' rolls back the transaction."""
    writer_of(sqlite_db).execute(
        "CREATE TEMP TRIGGER doom BEFORE INSERT ON main.test_results"
        " WHEN NEW.output = 'doom' BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END"
    )
    return sqlite_db


async def test_a_call_after_sqlite_rolled_the_block_back_says_so(doomed: Database) -> None:
    """The block's next call and its end are `DatabaseError`s; nothing of it is stored.

    Before, the next call failed with a bare `AssertionError`; under `python -O` it ran
    outside any transaction and was committed alone, kept though the block failed.
    """
    with pytest.raises(DatabaseError, match=_GONE):
        async with transaction(doomed) as tx:
            await save_result(tx, result("first"))
            with pytest.raises(ValidationError, match="doomed"):
                await save_result(tx, result("doom"))
            with pytest.raises(DatabaseError, match=_GONE):
                await save_result(tx, result("second"))
    assert stored_outputs(doomed) == []
    assert (await save_result(doomed, result("after"))).id is not None


async def test_a_nested_block_rolled_back_with_its_transaction_fails_with_its_error(
    doomed: Database,
) -> None:
    """The nested block raises its statement's error, and the outer block's calls say why.

    Before, the nested block's end raised a bare `AssertionError` in place of its error.
    """
    with pytest.raises(DatabaseError, match=_GONE):
        async with transaction(doomed) as tx:
            await save_result(tx, result("first"))
            with pytest.raises(ValidationError, match="doomed"):
                async with transaction(tx) as inner:
                    await save_result(inner, result("doom"))
    assert stored_outputs(doomed) == []
