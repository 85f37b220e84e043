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

from persistence import (
    Database,
    DatabaseError,
    close_database,
    open_database,
    save_result,
    save_results,
    transaction,
)
from persistence.migrations import migrate
from test_lone_writes import result, stored_outputs

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
