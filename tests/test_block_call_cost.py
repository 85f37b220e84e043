"""What a call inside a block pays: the check of a block's transaction runs as a loan ends only.

A COMMIT or ROLLBACK can reach a block's connection only through `connection(tx)`, so only
that loan's end asks the backend whether the transaction is still open; the package's own
calls in the block (`run_query`, `borrow`), which never end it, do not ask at all.
(`test_lent_block_end.py` holds what the check refuses.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from persistence import (
    TestResult,
    TestStatus,
    TestType,
    connection,
    get_result,
    save_result,
    transaction,
)
from persistence._database_value import backend_of

if TYPE_CHECKING:
    import pytest

    from persistence import Database
    from persistence._interface import Connection


def _counted_checks(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[Connection]:
    """The connections the backend of `db` is asked about, one entry a check."""
    backend = backend_of(db)
    real = backend.check_block
    asked: list[Connection] = []

    def check_block(conn: Connection) -> None:
        asked.append(conn)
        real(conn)

    # On the class: a backend may keep no attributes of its own (slots).
    monkeypatch.setattr(type(backend), "check_block", staticmethod(check_block))
    return asked


async def test_the_packages_own_calls_in_a_block_ask_nothing(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes and reads in `transaction()` and in a savepoint never ask the backend."""
    asked = _counted_checks(db, monkeypatch)
    async with transaction(db) as tx:
        saved = await save_result(tx, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        assert saved.id is not None
        assert await get_result(tx, saved.id) == saved
        async with transaction(tx) as inner:
            assert await get_result(inner, saved.id) == saved
    assert asked == []


async def test_a_loan_of_connection_in_a_block_asks_once_as_it_ends(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's loan is checked once, at its end; none outside a block."""
    asked = _counted_checks(db, monkeypatch)
    async with connection(db):
        pass
    assert asked == []
    async with transaction(db) as tx, connection(tx) as lent:
        assert asked == []
    assert asked == [lent]
