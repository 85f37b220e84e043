"""What the tests of connections lent by `connection()` share: the places a loan is taken."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

from _server import no_connection_left
from persistence import transaction
from persistence.database import Database, close_database, open_database, read_snapshot

Lender = Callable[[Database], AbstractAsyncContextManager[Database]]


@contextlib.asynccontextmanager
async def as_is(db: Database) -> AsyncIterator[Database]:
    """The database itself: a loan outside any block."""
    yield db


@contextlib.asynccontextmanager
async def nested(db: Database) -> AsyncIterator[Database]:
    """A savepoint's database: a block inside a block."""
    async with transaction(db) as tx, transaction(tx) as inner:
        yield inner


ALL_LENDERS: Final[dict[str, Lender]] = {
    "outside a block": as_is,
    "in transaction()": transaction,
    "in a savepoint": nested,
    "in read_snapshot()": read_snapshot,
}
"""Where the caller's loan is: the database itself, or a block's."""


@contextlib.asynccontextmanager
async def pooled(url: str, size: int) -> AsyncIterator[Database]:
    """A database of `size` pooled connections; closed after, leaving none on the server."""
    db = await open_database(url, pool_size=size)
    try:
        yield db
    finally:
        await close_database(db)
    await no_connection_left(url)


def lenders(*names: str) -> dict[str, Lender]:
    """The places of `ALL_LENDERS` named, in that order."""
    return {name: ALL_LENDERS[name] for name in names}
