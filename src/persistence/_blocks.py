"""The blocks that group calls: `transaction()`, its savepoints when nested, and `read_snapshot()`.

A block gives a copy of the `Database` bound to its frame; the rules that keep a transaction
whole, alike on both engines, are kept here (docs/GUARANTEES.md lists them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import attrs

from persistence._cancelling import once_free
from persistence._database_value import (
    OPEN_BLOCKS,
    Block,
    Database,
    Frame,
    announce,
    check_usable,
    entered_once,
)
from persistence._driver_errors import translated, translated_apart_from_body
from persistence._paging import Page, every_item


@entered_once
@contextlib.asynccontextmanager
async def transaction(db: Database) -> AsyncIterator[Database]:
    """Group calls: commit when the block ends, roll back on any error.

    The write lock is taken at the start, so reading then writing never fails to upgrade it.
    Nested use makes a savepoint, so an inner block can fail alone.
    """
    check_usable(db, writes=True)  # a block ended or covered, a snapshot's, the outer database
    frame = db._frame  # noqa: SLF001
    if frame is not None:
        async with _savepoint(db, frame) as nested:
            yield nested
        return
    backend = db._backend  # noqa: SLF001
    block = Block(backend)
    top: Frame | None = None
    try:
        async with translated_apart_from_body(backend, db.url) as body, backend.begin() as conn:
            top = Frame(conn, asyncio.Lock())
            token = OPEN_BLOCKS.set((*OPEN_BLOCKS.get(), block))
            try:
                async with body:
                    yield attrs.evolve(db, frame=top)
            finally:
                block.open = top.open = False
                OPEN_BLOCKS.reset(token)
                await once_free(top.lock)  # after a statement another task sent through it
    finally:
        # Told after the commit or a rollback: a COMMIT whose caller was cancelled still commits.
        announce(db._watchers, top.written if top is not None else set())  # noqa: SLF001


@entered_once
@contextlib.asynccontextmanager
async def read_snapshot(db: Database) -> AsyncIterator[Database]:
    """Give a `db` whose reads in the block all see the state committed when it began.

    Writers go on meanwhile, and what they commit is not seen in the block. Inside
    `transaction()`, its `tx` is given as it is: its block sees its own writes; the outer `db` is
    refused there, as by every call. Only reads: a write raises `DatabaseError`, as does a call
    after the block.
    """
    check_usable(db)  # a block ended, or the outer database inside one: refused as every call
    if db._frame is not None:  # noqa: SLF001
        yield db
        return
    backend = db._backend  # noqa: SLF001
    async with translated_apart_from_body(backend, db.url) as body, backend.snapshot() as reading:
        frame = Frame(reading, asyncio.Lock(), snapshot=True)
        try:
            async with body:
                yield attrs.evolve(db, frame=frame)
        finally:
            frame.open = False
            await once_free(frame.lock)  # after a read another task sent, never under it


_Item = TypeVar("_Item")
_Cursor = TypeVar("_Cursor")


async def every_item_in_one_state(
    db: Database, page_after: Callable[[Database, _Cursor | None], Awaitable[Page[_Item, _Cursor]]]
) -> list[_Item]:
    """Read a whole listing of `db`: one page as it is; more, again, in one snapshot.

    Read page after page as writers commit, a row that a write moved past the cursor was read
    twice, and one moved back not at all. One page is one statement, which needs no snapshot
    (a snapshot costs SQLite some thread hops).
    """
    first = await page_after(db, None)
    if first.next_cursor is None:
        return list(first.items)
    async with read_snapshot(db) as seen:
        return await every_item(lambda after: page_after(seen, after))


@contextlib.asynccontextmanager
async def _savepoint(db: Database, frame: Frame) -> AsyncIterator[Database]:
    backend = db._backend  # noqa: SLF001
    frame.check()
    name = f"persistence_{frame.depth + 1}"
    async with frame.lock, translated(backend):
        frame.check()
        await backend.savepoint(frame.connection, name)
        child = Frame(
            frame.connection,
            frame.lock,
            frame.depth + 1,
            written=frame.written,
            ended_by_loan=frame.ended_by_loan,
        )
        frame.child = child
    end = backend.rollback_to  # unless the block completes
    try:
        yield attrs.evolve(db, frame=child)
        end = backend.release
    finally:
        child.open = False
        frame.child = None
        try:
            await once_free(frame.lock)  # after a statement another task sent through it
        except asyncio.CancelledError:
            end = backend.rollback_to  # cancelled at its end, it keeps nothing
            raise
        finally:
            async with frame.lock, translated(backend):
                await end(frame.connection, name)
