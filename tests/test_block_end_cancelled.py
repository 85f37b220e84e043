"""A block cancelled as it ends, while a statement another task sent through it still runs.

The block's end waits for such a statement (a bulk insert, a long read in a worker thread)
before it commits, rolls back or closes its snapshot; cancelled during that wait, it waits
still, then ends and raises the cancellation: nothing of the block is kept, the loop is never
held by the end, and the connection is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from persistence import (
    Database,
    TestResult,
    all_results,
    close_database,
    open_database,
    save_result,
    save_results,
    transaction,
)
from persistence._backend import Params
from persistence._sqlite import reads, statements
from persistence._sqlite.statements import Mode, Plan
from persistence.database import connection, read_snapshot
from persistence.migrations import migrate
from test_lone_writes import Gate, gate_on, result, stored_outputs

_HELD_FOR = 0.5  # how long the statement is held: the loop must not be, for as long


async def _cancel_as_it_waits(
    block: asyncio.Task[None], gate: Gate, body_done: asyncio.Event
) -> float:
    """Cancel `block` once it waits at its end for the held statement; give the loop's worst gap.

    The block's body ends once `body_done` is set. The statement is let through after
    `_HELD_FOR` seconds, by a timer on the loop.
    """
    await gate.wait_entered()
    body_done.set()
    for _ in range(3):  # the block's task wakes, ends its body and waits for the statement
        await asyncio.sleep(0)
    assert not block.done()
    block.cancel()
    asyncio.get_running_loop().call_later(_HELD_FOR, gate.opened.set)
    worst, last = 0.0, time.monotonic()
    while not block.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    with pytest.raises(asyncio.CancelledError):
        await block
    return worst


async def test_a_transaction_cancelled_while_a_bulk_write_of_its_runs_keeps_none_of_it(
    tmp_path: Path,
) -> None:
    """Its ROLLBACK waits for the bulk insert another task sent through the block.

    Before, the ROLLBACK ran on the loop at once: it held the loop until the insert's
    statement ended, and between two of the insert's statements, which then ran outside any
    transaction and committed alone, 3,001 rows of a cancelled block were kept.
    """
    db = await open_database(tmp_path / "app.db")
    await migrate(db)
    gate = gate_on(db, "held")
    bulk: list[asyncio.Task[int]] = []

    async def block() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result("first"))
            rows = [result("held"), *(result() for _ in range(2500))]  # two statements
            bulk.append(asyncio.ensure_future(save_results(tx, rows)))
            await body_done.wait()

    body_done = asyncio.Event()
    worst = await _cancel_as_it_waits(asyncio.ensure_future(block()), gate, body_done)
    assert worst < _HELD_FOR / 2
    assert await bulk[0] == 2501  # it ran whole in the block, which was then rolled back
    assert stored_outputs(db) == []
    await save_result(db, result("after"))
    assert stored_outputs(db) == ["after"]
    await close_database(db)


async def test_a_snapshot_cancelled_while_a_read_of_its_runs_ends_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its reader is rolled back and closed once the read another task sent has ended.

    Before, the end ran on the loop at once, and waited there for the read to end.
    """
    db = await open_database(tmp_path / "app.db")
    await migrate(db)
    await save_result(db, result("one"))
    gate = Gate()
    execute = statements.execute

    def held(conn: sqlite3.Connection, plan: Plan, params: Params, mode: Mode) -> object:
        if threading.current_thread() is not threading.main_thread():  # the snapshot's reads
            gate()
        return execute(conn, plan, params, mode)

    monkeypatch.setattr(reads, "execute", held)
    reading: list[asyncio.Task[list[TestResult]]] = []

    async def block() -> None:
        async with read_snapshot(db) as snap:
            reading.append(asyncio.ensure_future(all_results(snap)))
            await body_done.wait()

    body_done = asyncio.Event()
    try:
        worst = await _cancel_as_it_waits(asyncio.ensure_future(block()), gate, body_done)
    finally:
        gate.opened.set()
    assert worst < _HELD_FOR / 2
    assert [r.output for r in await reading[0]] == ["one"]
    await close_database(db)


async def _hold_the_block(tx: Database, seconds: float) -> None:
    """Hold a block's connection on loan for `seconds`, as a task sending a statement does."""
    async with connection(tx):
        await asyncio.sleep(seconds)


async def test_a_nested_block_cut_by_a_timeout_at_its_end_keeps_none_of_its_writes(
    db: Database,
) -> None:
    """A savepoint whose end is cancelled while it waits for another task's loan is rolled back.

    Before, its end was skipped: the savepoint stayed open, the caller caught the timeout and
    went on, and the outer block's commit kept the writes of the nested block that had failed.
    """
    async with transaction(db) as tx:
        await save_result(tx, result("outer"))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1), transaction(tx) as inner:
                await save_result(inner, result("inner"))
                holding = asyncio.ensure_future(_hold_the_block(inner, 0.3))
                await asyncio.sleep(0)  # the loan holds the block's connection
        await holding
        async with transaction(tx) as again:  # a later nested block is one of its own
            await save_result(again, result("again"))
    assert sorted(r.output or "" for r in await all_results(db)) == ["again", "outer"]
