"""Closing a SQLite database while other tasks go on writing or opening blocks.

A close waits for the writes queued and the blocks begun before it, and refuses those that
begin after it: a task writing in a loop cannot keep it waiting for good.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from persistence import (
    Database,
    DatabaseError,
    close_database,
    open_database,
    save_result,
    transaction,
)
from persistence.migrations import migrate
from test_lone_writes import result, stored_outputs


async def _keep_writing(db: Database, *, in_blocks: bool) -> tuple[int, BaseException]:
    """Write until refused: give how many writes went through, and the refusal."""
    written = 0
    while True:
        try:
            if in_blocks:
                async with transaction(db) as tx:
                    await save_result(tx, result())
            else:
                await save_result(db, result())
        except DatabaseError as error:
            return written, error
        written += 1


@pytest.mark.parametrize("in_blocks", [False, True], ids=["single calls", "blocks"])
async def test_a_task_writing_in_a_loop_cannot_keep_a_close_waiting(
    tmp_path: Path, *, in_blocks: bool
) -> None:
    """A close refuses the writes and blocks that begin after it, and ends.

    A task that queued its next write (or opened its next block) as each one committed kept
    the writer's queue from ever emptying: the close waited for good.
    """
    db = await open_database(tmp_path / "app.db")
    await migrate(db)
    writing = asyncio.ensure_future(_keep_writing(db, in_blocks=in_blocks))
    await asyncio.sleep(0.02)
    async with asyncio.timeout(2):
        await close_database(db)
        written, refusal = await writing
    assert "closed" in str(refusal)
    assert written > 0
    assert len(stored_outputs(db)) == written  # every write answered as written was
