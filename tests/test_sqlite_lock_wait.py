"""SQLite's write lock held by another connection: each caller waits `busy_timeout` at most.

The writes, bulk writes and `transaction()` blocks queued together in this process wait for
that lock together: each of them is refused once it has waited `busy_timeout`, not once those
queued before it have each waited theirs in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from persistence import (
    Database,
    DatabaseError,
    close_database,
    open_database,
    save_result,
    save_results,
    transaction,
)
from persistence._sqlite.writer import Writer
from persistence.migrations import migrate
from test_lone_writes import result, stored_outputs

if TYPE_CHECKING:
    from persistence._sqlite.identity import OpenedFile
    from persistence._sqlite.reads import InThread

_WAIT = 0.3  # the busy_timeout of the test's database


async def _in_a_block(db: Database, output: str) -> None:
    async with transaction(db) as tx:
        await save_result(tx, result(output))


async def test_writes_and_blocks_queued_behind_each_other_wait_the_timeout_once(
    tmp_path: Path,
) -> None:
    """Two writes, a block, a bulk write and a write, queued at once, are all refused in time.

    Before, the writes at the head of the queue waited `busy_timeout`, then the block waited
    its own, then the writes behind it theirs: the last caller was refused after three times
    `busy_timeout`, and behind n blocks after n + 1 times.
    """
    path = tmp_path / "app.db"
    db = await open_database(path, busy_timeout=_WAIT)
    await migrate(db)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # the write lock, held by plain SQL
        started = time.monotonic()
        calls = [
            save_result(db, result("a")),
            save_result(db, result("b")),
            _in_a_block(db, "block"),
            _in_a_block(db, "block 2"),
            save_results(db, [result("c")]),
            save_result(db, result("d")),
        ]
        outcome = await asyncio.gather(*calls, return_exceptions=True)
        took = time.monotonic() - started
        assert all(isinstance(o, DatabaseError) for o in outcome), outcome
        assert all("locked" in str(o) for o in outcome)
        assert _WAIT <= took < _WAIT * 1.8
        later = asyncio.ensure_future(save_result(db, result("later")))
        await asyncio.sleep(_WAIT / 2)  # still held: a write queued now waits its own time
        asyncio.get_running_loop().call_later(_WAIT / 4, other.execute, "COMMIT")
        assert (await later).output == "later"
    assert stored_outputs(db) == ["later"]
    await close_database(db)


class _HeldElsewhere:
    """A connection whose write lock another holds until `tries` tries: cheaper than SQLite's."""

    def __init__(self, tries: int) -> None:
        self.left = tries
        self.in_transaction = False
        self.busy = sqlite3.OperationalError("database is locked")
        self.busy.sqlite_errorcode = sqlite3.SQLITE_BUSY

    def execute(self, sql: str) -> None:
        assert sql == "BEGIN IMMEDIATE"
        self.left -= 1
        if self.left:
            raise self.busy
        self.in_transaction = True


async def _no_sleep(_: float) -> None:
    """A try each time, without the sleeps that would make a million tries take hours."""


async def test_a_long_wait_for_the_lock_ends_holding_it_however_many_tries_it_takes() -> None:
    """The writer tries for the lock until it has it or the wait is over, past a million tries.

    Before, it gave up after a million tries, about 14 hours of its longest sleep, and went on
    without the lock: the block's statements then committed one at a time.
    """
    held = _HeldElsewhere(tries=1_000_050)
    connection = cast("sqlite3.Connection", held)
    writer = Writer(connection, cast("InThread", None), 3600.0, cast("OpenedFile", None))
    await writer.begin_immediate(3600.0, time.monotonic(), sleep=_no_sleep)
    assert held.left == 0
    assert held.in_transaction  # it holds the write lock
