"""A write alone in SQLite's queue: one self-committing statement in the writer's own thread.

Cancelled at each await, closed under, raced by another process's lock and by a batch, failing
on a constraint, a trigger or a full disk: the row is written whole or not at all, the caller
is told as the batch path tells it, and the next write goes through at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from pathlib import Path

import attrs
import pytest

from persistence import (
    ConflictError,
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    close_database,
    connect,
    open_database,
    save_config_entry,
    save_result,
    set_config,
)
from persistence._database_value import backend_of
from persistence.migrations import migrate

_THREAD = "persistence-sqlite-writer"


def result(output: str | None = None) -> TestResult:
    """A plain passing unit test result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output=output)


def writer_of(db: Database) -> sqlite3.Connection:
    """The writer connection, for temporary triggers and functions of the test's own."""
    connection: sqlite3.Connection = backend_of(db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # the test's own trigger
    return connection


@attrs.define(eq=False)
class Gate:
    """Holds an insert into test_results inside its statement, in whatever thread runs it."""

    entered: threading.Event = attrs.field(factory=threading.Event)
    opened: threading.Event = attrs.field(factory=threading.Event)
    threads: list[str] = attrs.field(factory=list)

    def __call__(self) -> int:
        """Note the thread, say so, and wait to be let through."""
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        self.opened.wait(5)
        return 0

    async def wait_entered(self) -> None:
        """Wait, on the loop, until a statement is held in the gate."""
        assert await asyncio.to_thread(self.entered.wait, 2)


def gate_on(db: Database, output: str = "held") -> Gate:
    """Hold each insert of a result with `output` in its statement until the gate opens."""
    gate = Gate()
    writer = writer_of(db)
    writer.create_function("hold", 0, gate)
    writer.execute(
        "CREATE TEMP TRIGGER held AFTER INSERT ON main.test_results"
        f" WHEN NEW.output = '{output}' BEGIN SELECT hold(); END"
    )
    return gate


def stored_outputs(db: Database) -> list[str | None]:
    """The outputs stored, read by a connection of the test's own: what is committed."""
    with contextlib.closing(sqlite3.connect(db.url)) as other:
        return [row[0] for row in other.execute("SELECT output FROM test_results ORDER BY id")]


def committed(db: Database, outputs: list[str | None]) -> None:
    """Wait, holding the caller's thread (the loop, if it has one), until `outputs` are stored."""
    deadline = time.monotonic() + 2
    while stored_outputs(db) != outputs:
        assert time.monotonic() < deadline
        time.sleep(0.001)


async def goes_through(db: Database) -> None:
    """The next write is neither lost nor stuck: it commits promptly."""
    async with asyncio.timeout(2):
        assert (await save_result(db, result("next"))).id is not None


def writer_threads() -> list[threading.Thread]:
    """The writer threads alive in this process."""
    return [t for t in threading.enumerate() if t.name == _THREAD]


async def test_cancelled_before_it_runs_it_is_not_written(sqlite_db: Database) -> None:
    """Cancelled while queued, before the writer's task has looked: never written."""
    task = asyncio.create_task(save_result(sqlite_db, result("cancelled")))
    await asyncio.sleep(0)  # queued, the writer's task not yet run
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await goes_through(sqlite_db)
    assert stored_outputs(sqlite_db) == ["next"]


async def test_cancelled_while_its_statement_runs_it_commits_as_in_a_batch(
    sqlite_db: Database,
) -> None:
    """Cancelled while the writer's thread runs it: written, as a batch's cancelled write is."""
    gate = gate_on(sqlite_db)
    task = asyncio.create_task(save_result(sqlite_db, result("held")))
    await gate.wait_entered()
    assert gate.threads == [_THREAD]
    task.cancel()
    gate.opened.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await goes_through(sqlite_db)
    assert stored_outputs(sqlite_db) == ["held", "next"]


async def test_cancelled_after_its_commit_before_its_value_arrives(sqlite_db: Database) -> None:
    """Committed, its value on its way to the loop, then cancelled: written, caller cancelled."""
    gate = gate_on(sqlite_db)
    task = asyncio.create_task(save_result(sqlite_db, result("held")))
    await gate.wait_entered()
    gate.opened.set()
    committed(sqlite_db, ["held"])  # the loop held meanwhile: the value cannot arrive
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await goes_through(sqlite_db)
    assert stored_outputs(sqlite_db) == ["held", "next"]


async def test_writes_queued_behind_a_running_one_commit_in_the_next_batch(
    sqlite_db: Database,
) -> None:
    """Two lone writes and a batch racing: each commits once, in order of its queue."""
    gate = gate_on(sqlite_db)
    first = asyncio.create_task(save_result(sqlite_db, result("held")))
    await gate.wait_entered()
    behind = [asyncio.create_task(save_result(sqlite_db, result(f"b{n}"))) for n in range(5)]
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in (first, *behind))
    behind[2].cancel()  # queued, never run
    gate.opened.set()
    async with asyncio.timeout(2):
        outcome = await asyncio.gather(first, *behind, return_exceptions=True)
    assert isinstance(outcome[3], asyncio.CancelledError)
    saved = [o for o in outcome if isinstance(o, TestResult)]
    assert [s.output for s in saved] == ["held", "b0", "b1", "b3", "b4"]
    assert stored_outputs(sqlite_db) == ["held", "b0", "b1", "b3", "b4"]
    await goes_through(sqlite_db)


async def test_a_constraint_broken_alone_fails_as_in_a_batch(sqlite_db: Database) -> None:
    """A lone write that breaks a constraint raises the batch path's error; the writer goes on."""
    await set_config(sqlite_db, "s", "taken", 1)
    other = await set_config(sqlite_db, "s", "other", 2)
    clash = attrs.evolve(other, key="taken")
    with pytest.raises(ConflictError) as alone:
        await save_config_entry(sqlite_db, clash)  # alone: the self-committing statement
    in_batch = await asyncio.gather(
        save_result(sqlite_db, result("before")),
        save_config_entry(sqlite_db, clash),
        save_result(sqlite_db, result("after")),
        return_exceptions=True,
    )
    assert isinstance(in_batch[1], ConflictError)
    assert str(in_batch[1]) == str(alone.value)
    assert in_batch[1].constraint == alone.value.constraint
    assert not writer_of(sqlite_db).in_transaction
    await goes_through(sqlite_db)
    assert stored_outputs(sqlite_db) == ["before", "after", "next"]


async def test_a_trigger_failing_mid_statement_leaves_nothing(sqlite_db: Database) -> None:
    """A trigger failing after the row and its search entry went in: neither stays."""
    writer = writer_of(sqlite_db)

    def boom() -> int:
        raise ValueError("boom")

    writer.create_function("boom", 0, boom)
    writer.execute(
        "CREATE TEMP TRIGGER boom AFTER INSERT ON main.test_results"
        " WHEN NEW.output = 'boom' BEGIN SELECT boom(); END"
    )
    await save_result(sqlite_db, result("kept"))
    with pytest.raises((DatabaseError, ValidationError)):
        await save_result(sqlite_db, result("boom"))
    assert not writer.in_transaction
    assert stored_outputs(sqlite_db) == ["kept"]
    with contextlib.closing(sqlite3.connect(sqlite_db.url)) as other:
        tables = [
            row[0]
            for row in other.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND sql LIKE '%fts5%'"
            )
        ]
        for table in tables:  # the index holds the one row kept, not the failed one
            (count,) = other.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608  # the schema's own names
            assert count <= 1, table
    await goes_through(sqlite_db)


async def test_a_full_disk_mid_statement_leaves_nothing(sqlite_db: Database) -> None:
    """SQLITE_FULL while a lone write inserts a large row: nothing of it stays; then it fits."""
    writer = writer_of(sqlite_db)
    await save_result(sqlite_db, result("kept"))
    (pages,) = writer.execute("PRAGMA page_count").fetchone()
    writer.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = result("x " * 200_000)
    with pytest.raises(DatabaseError, match="full"):
        await save_result(sqlite_db, big)
    assert not writer.in_transaction
    assert stored_outputs(sqlite_db) == ["kept"]
    writer.execute("PRAGMA max_page_count = 1073741823")
    await goes_through(sqlite_db)
    assert stored_outputs(sqlite_db) == ["kept", "next"]


async def test_another_process_lock_while_a_lone_write_starts(tmp_path: Path) -> None:
    """Another connection's BEGIN IMMEDIATE: the lone write waits (busy_timeout), then commits.

    Two more writes arriving meanwhile share its batch; none is lost, none written twice.
    """
    async with connect(tmp_path / "locked.db", busy_timeout=2) as db:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(db.url, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            first = asyncio.create_task(save_result(db, result("first")))
            await asyncio.sleep(0.05)
            more = [asyncio.create_task(save_result(db, result(f"m{n}"))) for n in range(2)]
            await asyncio.sleep(0.05)
            assert not any(t.done() for t in (first, *more))
            other.execute("COMMIT")
            async with asyncio.timeout(2):
                saved = await asyncio.gather(first, *more)
        assert [s.output for s in saved] == ["first", "m0", "m1"]
        assert stored_outputs(db) == ["first", "m0", "m1"]
        await goes_through(db)


async def test_closing_while_a_lone_write_runs_waits_for_it_and_ends_the_thread(
    tmp_path: Path,
) -> None:
    """close_database during a lone write: the write commits, then the thread ends."""
    before = len(writer_threads())
    db = await open_database(tmp_path / "close.db")
    await migrate(db)
    gate = gate_on(db)
    task = asyncio.create_task(save_result(db, result("held")))
    await gate.wait_entered()
    closing = asyncio.create_task(close_database(db))
    await asyncio.sleep(0.01)
    assert not closing.done()
    gate.opened.set()
    async with asyncio.timeout(2):
        saved = await task
        await closing
    assert saved.output == "held"
    assert stored_outputs(db) == ["held"]
    assert len(writer_threads()) == before


async def test_closing_right_after_a_lone_write_is_queued(tmp_path: Path) -> None:
    """close_database just after a write is queued: the write commits first, the thread ends."""
    before = len(writer_threads())
    db = await open_database(tmp_path / "close.db")
    await migrate(db)
    task = asyncio.create_task(save_result(db, result("queued")))
    await asyncio.sleep(0)
    async with asyncio.timeout(2):
        await close_database(db)
        saved = await task
    assert saved.output == "queued"
    assert stored_outputs(db) == ["queued"]
    assert len(writer_threads()) == before
    with pytest.raises(DatabaseError, match="closed"):
        await save_result(db, result())


def test_asyncio_run_ending_waits_for_a_lone_write_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    """`asyncio.run` ended with a lone write in the writer's thread: it waits for it to commit.

    Its shutdown cancelled the writer's task, which left the statement running: the next
    loop's calls then failed as "unfinished" until it ended.
    """
    path = tmp_path / "loops.db"

    async def start() -> Database:
        db = await open_database(path)
        await migrate(db)
        gate = gate_on(db)
        asyncio.get_running_loop().create_task(save_result(db, result("held")))
        await gate.wait_entered()
        threading.Timer(0.05, gate.opened.set).start()
        return db  # the loop ends with the write still in the thread

    db = asyncio.run(start())
    assert stored_outputs(db) == ["held"]  # committed before asyncio.run returned

    async def go_on() -> None:
        try:
            await goes_through(db)
            await goes_through(db)
        finally:
            async with asyncio.timeout(2):
                await close_database(db)

    asyncio.run(go_on())
    assert stored_outputs(db) == ["held", "next", "next"]
    assert not writer_threads()


def test_a_new_loop_batches_at_once_after_asyncio_run_ended_with_a_lone_write(
    tmp_path: Path,
) -> None:
    """After `asyncio.run` ended with a lone write in the thread, a new loop's batch goes through.

    A batch on the new loop was refused as "unfinished" while the old loop's statement ran; before
    that check, it ran BEGIN IMMEDIATE on the writer while the statement still ran on it.
    """
    path = tmp_path / "loops.db"

    async def start() -> Database:
        db = await open_database(path)
        await migrate(db)
        gate = gate_on(db)
        asyncio.get_running_loop().create_task(save_result(db, result("held")))
        await gate.wait_entered()
        threading.Timer(0.05, gate.opened.set).start()
        return db

    db = asyncio.run(start())

    async def go_on() -> list[TestResult]:
        async with asyncio.timeout(2):
            return list(
                await asyncio.gather(save_result(db, result("a")), save_result(db, result("b")))
            )

    try:
        saved = asyncio.run(go_on())
        assert [s.output for s in saved] == ["a", "b"]
    finally:
        asyncio.run(close_database(db))
    assert stored_outputs(db) == ["held", "a", "b"]
    assert not writer_threads()


async def test_cancelled_while_waiting_for_another_process_lock(tmp_path: Path) -> None:
    """A lone write that found the lock taken, cancelled while it waits: never written."""
    async with connect(tmp_path / "locked.db", busy_timeout=2) as db:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(db.url, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            task = asyncio.create_task(save_result(db, result("cancelled")))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            other.execute("COMMIT")
        await goes_through(db)
        assert stored_outputs(db) == ["next"]
