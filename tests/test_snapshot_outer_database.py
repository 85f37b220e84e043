"""`read_snapshot()` given the outer database inside a `transaction()` block refuses it.

Every other call refuses the outer `db` inside a block at once: its reads would not see the
block's own writes, and its calls would escape the block.
"""

from __future__ import annotations

import pytest

from persistence import Database, DatabaseError, FileRecord, all_file_records, save_file_record
from persistence.database import read_snapshot, transaction


async def test_a_snapshot_of_the_outer_database_inside_a_block_is_refused(db: Database) -> None:
    """Inside `transaction(db)`, `read_snapshot(db)` opened a reader that missed the block."""
    async with transaction(db) as tx:
        await save_file_record(tx, FileRecord(path="mine"))
        with pytest.raises(DatabaseError, match=r"inside transaction\(db\)"):
            async with read_snapshot(db) as seen:
                await all_file_records(seen)
        assert [record.path for record in await all_file_records(tx)] == ["mine"]


async def test_a_snapshot_of_a_block_that_ended_is_refused(db: Database) -> None:
    """A block's `tx` after the block is refused by `read_snapshot` as by every call."""
    async with transaction(db) as tx:
        pass
    with pytest.raises(DatabaseError):
        async with read_snapshot(tx):
            pass
