"""A database that was never migrated: its errors name it and say how to mend it."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest

from persistence import (
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    connect,
    find_result,
    migrate,
    save_result,
    set_config,
    transaction,
)

MEND = "run `persistence migrate --database URL` on it, or call migrate(db)"


async def test_a_database_never_migrated_is_named_with_the_command_that_mends_it(
    database_url: str,
) -> None:
    """Reads, writes and transactions on a bare database name it, the table, and the fix."""
    async with connect(database_url) as db:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "read": lambda: find_result(db, 1),
            "write": lambda: save_result(
                db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
            ),
        }
        for name, call in calls.items():
            with pytest.raises(DatabaseError) as raised:
                await call()
            message = str(raised.value)
            assert f"the database {db.url} has no table test_results" in message, name
            assert MEND in message, name
        with pytest.raises(DatabaseError, match=re.escape(MEND)):
            async with transaction(db) as tx:
                await set_config(tx, "runner", "workers", 4)
        await migrate(db)
        assert await find_result(db, 1) is None  # migrated, the same calls work


async def test_a_password_stays_hidden_in_that_error(postgres_url: str) -> None:
    """The database is named by its redacted URL."""
    url = postgres_url.replace("postgres@", "postgres:secret@", 1)
    async with connect(url) as db:
        with pytest.raises(DatabaseError) as raised:
            await find_result(db, 1)
    assert "secret" not in str(raised.value)
    assert "postgres:***@" in str(raised.value)
