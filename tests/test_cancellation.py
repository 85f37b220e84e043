"""Cancelling a task at any await, on the way into, through or out of a transaction."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    migrate,
    save_result,
    save_results,
    transaction,
)

ROUNDS = 300


def tagged(tag: int) -> TestResult:
    """A result that says which attempt wrote it."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"tag": tag})


async def _two_in_a_block(db: Database, tag: int) -> None:
    async with transaction(db) as tx:
        await save_result(tx, tagged(tag))
        await save_result(tx, tagged(tag))


async def _stored_tags(url: str) -> Counter[int]:
    async with connect(url) as db:
        return Counter(int(r.metadata["tag"]) for r in await all_results(db))  # type: ignore[arg-type]


async def test_cancelled_transactions_lose_no_later_write(database_url: str) -> None:
    """Transactions cancelled at random moments leave all or nothing, and every later write stays.

    Each attempt writes two rows in one block, under a timeout of 0 to 2 ms. Afterwards
    the connection must be usable as if nothing happened: acknowledged single writes
    and a final transaction survive closing and reopening the database.
    """
    rng = random.Random(9)  # noqa: S311  # picks moments to cancel, not secrets
    async with connect(database_url) as db:
        await migrate(db)
        cancelled = 0
        for tag in range(ROUNDS):
            try:
                await asyncio.wait_for(_two_in_a_block(db, tag), timeout=rng.uniform(0, 0.002))
            except TimeoutError:
                cancelled += 1
        acknowledged = [await save_result(db, tagged(-1)) for _ in range(20)]
        await _two_in_a_block(db, -2)
        await save_results(db, [tagged(-3)] * 5)
    assert cancelled > ROUNDS // 10, "the timeouts never cut a transaction short"
    tags = await _stored_tags(database_url)
    assert tags[-1] == len(acknowledged) == 20
    assert tags[-2] == 2
    assert tags[-3] == 5
    torn = {tag: count for tag, count in tags.items() if tag >= 0 and count != 2}
    assert torn == {}, "a cancelled transaction kept half its writes"


async def test_cancelled_single_calls_leave_the_database_usable(database_url: str) -> None:
    """Single calls cancelled while they wait for their commit leave nothing broken behind."""
    rng = random.Random(10)  # noqa: S311  # picks moments to cancel, not secrets
    async with connect(database_url) as db:
        await migrate(db)
        calls = [
            asyncio.wait_for(save_result(db, tagged(n)), timeout=rng.uniform(0, 0.003))
            for n in range(200)
        ]
        outcome = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, TestResult | TimeoutError) for o in outcome), outcome
        saved = [o for o in outcome if isinstance(o, TestResult)]
        async with asyncio.timeout(10):
            await _two_in_a_block(db, -2)
            last = await save_result(db, tagged(-1))
    tags = await _stored_tags(database_url)
    assert all(tags[r.metadata["tag"]] == 1 for r in saved)  # type: ignore[index]
    assert tags[-2] == 2
    assert last.id is not None
    assert tags[-1] == 1


@pytest.mark.parametrize("where", ["before", "inside", "after"])
async def test_cancel_at_each_step_of_a_block(database_url: str, where: str) -> None:
    """A block cancelled before, inside or after its body keeps all or nothing, then works."""
    async with connect(database_url) as db:
        await migrate(db)
        gate = asyncio.Event()

        async def block() -> None:
            if where == "before":
                await gate.wait()
            async with transaction(db) as tx:
                await save_result(tx, tagged(1))
                if where == "inside":
                    await gate.wait()
                await save_result(tx, tagged(1))
            if where == "after":
                await gate.wait()

        task = asyncio.create_task(block())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _two_in_a_block(db, 2)
    tags = await _stored_tags(database_url)
    assert tags[1] == {"before": 0, "inside": 0, "after": 2}[where]
    assert tags[2] == 2
