"""A value that opens a block is entered once: a second `async with` is refused, naming it.

contextlib's blocks raised a bare AttributeError, and a `connection(db)` entered again while
entered lent a second connection in the first one's place: the first was never given back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from persistence import (
    Database,
    DatabaseError,
    connect,
    connection,
    list_runs,
    migrate,
    open_persistence,
    transaction,
)
from persistence.database import read_snapshot

Opener = Callable[[Database], contextlib.AbstractAsyncContextManager[object]]
BLOCKS: dict[str, Opener] = {
    "transaction": transaction,
    "read_snapshot": read_snapshot,
    "connection": connection,
}


@pytest.mark.parametrize("name", BLOCKS)
async def test_a_block_entered_again_is_refused_naming_it(db: Database, name: str) -> None:
    """Again after its end, or again inside itself: refused, and the database goes on."""
    block = BLOCKS[name](db)
    async with block:
        with pytest.raises(DatabaseError, match=rf"this {name}\(\.\.\.\) was entered already"):
            async with block:
                pass
    with pytest.raises(DatabaseError, match=rf"call {name}\(\.\.\.\) again"):
        async with block:
            pass
    async with BLOCKS[name](db):
        pass
    async with transaction(db) as tx, connection(tx) as conn:
        assert conn is not None


async def _loan_entered_twice_then_a_call(url: str) -> int:
    opened = connect(url, pool_size=1) if url.startswith("postgresql") else connect(url)
    async with opened as one:
        await migrate(one)
        loan = connection(one)
        async with loan:
            with pytest.raises(DatabaseError):
                async with loan:
                    pass
        return len((await list_runs(one)).items)  # on the pool's one connection


async def test_a_loan_entered_again_gives_back_its_connection(database_url: str) -> None:
    """With a pool of one connection, a call after the loan finds it given back."""
    assert await asyncio.wait_for(_loan_entered_twice_then_a_call(database_url), 10) == 0


@pytest.mark.parametrize("opener", ["connect", "open_persistence"])
async def test_an_opener_entered_again_is_refused_naming_it(tmp_path: Path, opener: str) -> None:
    """The database closed after the first block is not opened again by the same value."""
    path = tmp_path / "once.db"
    block = connect(path) if opener == "connect" else open_persistence(path)
    async with block:
        pass
    with pytest.raises(DatabaseError, match=rf"this {opener}\(\.\.\.\) was entered already"):
        async with block:
            pass
