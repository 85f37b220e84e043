"""transaction(): many calls, one commit; any error rolls all of them back."""

from __future__ import annotations

import asyncio

import pytest

from persistence import (
    ConflictError,
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    find_config,
    save_result,
    set_config,
    transaction,
)


def result() -> TestResult:
    """A plain passing unit test result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


class BoomError(Exception):
    """An error of the caller's own."""


async def test_commits_on_success(db: Database) -> None:
    """Calls inside a transaction are all stored when it ends."""
    async with transaction(db) as tx:
        assert tx.in_transaction
        await save_result(tx, result())
        await set_config(tx, "a", "b", 1)
    assert len(await all_results(db)) == 1
    assert await find_config(db, "a", "b") is not None


async def test_rolls_back_on_any_error(db: Database) -> None:
    """An error inside the block undoes every call in it, and propagates unchanged."""
    with pytest.raises(BoomError):
        async with transaction(db) as tx:
            await save_result(tx, result())
            await set_config(tx, "a", "b", 1)
            raise BoomError
    assert await all_results(db) == []
    assert await find_config(db, "a", "b") is None


async def test_rolls_back_on_database_error(db: Database) -> None:
    """A conflict inside the block undoes the calls before it."""
    first = await set_config(db, "s", "one", 1)
    await set_config(db, "s", "two", 2)
    with pytest.raises(ConflictError):
        async with transaction(db) as tx:
            await save_result(tx, result())
            await set_config(tx, "s", "three", 3)
            from persistence import ConfigEntry, ConfigType, save_config_entry  # noqa: PLC0415

            await save_config_entry(
                tx, ConfigEntry(id=first.id, section="s", key="two", value=1, type=ConfigType.INT)
            )
    assert await all_results(db) == []
    assert await find_config(db, "s", "three") is None


async def test_nested_block_fails_alone(db: Database) -> None:
    """A failing nested block rolls back to its savepoint; the outer one still commits."""
    async with transaction(db) as outer:
        await save_result(outer, result())
        with pytest.raises(BoomError):
            async with transaction(outer) as inner:
                await save_result(inner, result())
                raise BoomError
        await save_result(outer, result())
    assert len(await all_results(db)) == 2


async def test_other_tasks_do_not_join(db: Database) -> None:
    """A call made outside the block by another task is not rolled back with it."""
    started = asyncio.Event()

    async def outsider() -> None:
        await started.wait()
        await set_config(db, "outside", "key", 1)

    async def failing() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result())
            started.set()
            await asyncio.sleep(0.05)
            raise BoomError

    outcome = await asyncio.gather(outsider(), failing(), return_exceptions=True)
    assert isinstance(outcome[1], BoomError)
    assert outcome[0] is None
    assert await all_results(db) == []
    assert await find_config(db, "outside", "key") is not None


async def test_outer_database_inside_a_transaction_is_refused(sqlite_db: Database) -> None:
    """On SQLite, a call with the outer database inside transaction() fails fast, not forever."""
    with pytest.raises(DatabaseError, match="pass the database that transaction"):
        async with asyncio.timeout(5), transaction(sqlite_db) as tx:
            await save_result(tx, result())
            await save_result(sqlite_db, result())
    assert await all_results(sqlite_db) == []
