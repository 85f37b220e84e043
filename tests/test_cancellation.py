"""Cancelling a task at any await, on the way into, through or out of a transaction."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

import pytest

from _budget import arm_past
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
from persistence._sqlite.reads import Readers
from persistence.database import backend_of

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


async def test_a_read_cancelled_while_its_thread_reader_opens_leaves_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a read cancelled while its thread opens a reader leaves no connection open.

    The reader that the thread goes on to open is kept for the next read, and closed with the
    database, not left open until the garbage collector finds it (2 descriptors and a
    mapping, which `test_descriptors.py` saw once under load).
    """
    async with connect(tmp_path / "test.db") as db:
        await migrate(db)
        readers = backend_of(db)._readers  # type: ignore[attr-defined]  # noqa: SLF001  # held
        budget = readers._budget  # noqa: SLF001

        monkeypatch.setattr(type(budget), "arm", arm_past)
        entered, release = threading.Event(), threading.Event()
        opened: list[sqlite3.Connection] = []
        open_reader = readers._open_reader  # noqa: SLF001

        def slow_open() -> sqlite3.Connection:
            entered.set()
            release.wait(5)
            opened.append(open_reader())
            return opened[-1]

        monkeypatch.setattr(readers, "_open_reader", slow_open)
        reading = asyncio.ensure_future(all_results(db))
        assert await asyncio.to_thread(entered.wait, 5)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        release.set()
        for _ in range(500):  # the opened reader, kept once the thread is done
            if readers._idle:  # noqa: SLF001
                break
            await asyncio.sleep(0.01)
        assert readers._idle == opened  # noqa: SLF001
        assert await all_results(db) == []  # read in a thread, on the kept reader
        assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_reader_handed_back_while_the_readers_close_is_closed(tmp_path: Path) -> None:
    """SQLite: a reader handed back while another thread closes the readers is closed too.

    The hand-back runs on the loop, the close in a worker thread. The close used to look at
    the idle readers and clear them while the hand-back, having found them open, was adding
    its reader: that reader stayed open in a list nobody closed.
    """
    path = tmp_path / "readers.db"
    appending = threading.Event()

    class SlowToAppend(list[sqlite3.Connection]):
        def append(self, reader: sqlite3.Connection) -> None:
            appending.set()
            time.sleep(0.1)  # the close runs meanwhile, unless it must wait for the hand-back
            super().append(reader)

    def never_called(*_args: object) -> Awaitable[object]:
        raise AssertionError

    def open_reader() -> sqlite3.Connection:
        return sqlite3.connect(path, check_same_thread=False)

    readers = Readers(open_reader(), open_reader, never_called)
    readers._idle = SlowToAppend()  # noqa: SLF001  # the step to slow down
    reader = open_reader()

    def close_once_appending() -> None:
        appending.wait(5)
        readers.close()

    closing = threading.Thread(target=close_once_appending)
    closing.start()
    readers._keep(reader)  # noqa: SLF001  # the hand-back, as the loop runs it
    closing.join(5)
    assert appending.is_set()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reader.execute("SELECT 1")
