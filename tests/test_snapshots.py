"""Reading one committed state across many calls, writers going on: `read_snapshot`.

Exports and copies read a run, or a whole database, a page at a time. In a snapshot every page
sees the state the first saw, whoever writes meanwhile: this package, or plain SQL. On SQLite a
snapshot is a reader of its own in one read transaction; on PostgreSQL a `REPEATABLE READ,
READ ONLY` transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from _server import own_connections
from persistence import (
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    close_database,
    open_database,
    save_result,
    save_results,
)
from persistence.backup import backup_database, copy_database
from persistence.database import read_snapshot, transaction
from persistence.migrations import migrate
from test_plain_ids import plain_sql


def result(test_id: str = "t") -> TestResult:
    """A plain result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=test_id)


def _descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


async def test_a_snapshot_reads_one_state_while_others_write(
    db: Database, database_url: str
) -> None:
    """Writes by the package and by plain SQL after the snapshot began are not seen in it."""
    first = await save_result(db, result("first"))
    async with read_snapshot(db) as seen:
        assert [r.test_id for r in await all_results(seen)] == ["first"]
        await save_result(db, result("package"))
        await plain_sql(database_url, f"DELETE FROM test_results WHERE id = {first.id}")  # noqa: S608  # an id of this test's own
        assert [r.test_id for r in await all_results(seen)] == ["first"]
        assert [r.test_id for r in await all_results(db)] == ["package"]
    assert [r.test_id for r in await all_results(db)] == ["package"]


async def test_a_snapshot_refuses_writes(db: Database) -> None:
    """A write in a snapshot is a DatabaseError, and nothing is written."""
    async with read_snapshot(db) as seen:
        with pytest.raises(DatabaseError):
            await save_result(seen, result())
    assert await all_results(db) == []


async def test_inside_a_transaction_a_snapshot_is_the_transaction(db: Database) -> None:
    """In a transaction() block a snapshot sees the block's own writes, not yet committed."""
    async with transaction(db) as tx:
        await save_result(tx, result("mine"))
        async with read_snapshot(tx) as seen:
            assert [r.test_id for r in await all_results(seen)] == ["mine"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_cancelled_snapshot_reads_leave_no_reader_open(tmp_path: Path) -> None:
    """Snapshots cancelled at any point of a long read close their readers: no descriptor stays.

    SQLite keeps a closed connection's descriptor while another connection of the process holds
    a lock on the file, and reuses it at the next open: so the count after a first round of
    cancels may move by one or two over the next rounds (a reader kept open by each cancel
    would add 21), and falls back at the close.
    """
    opened_at = _descriptors()
    db = await open_database(tmp_path / "app.db")
    await migrate(db)
    await save_results(db, [result(f"t{i}") for i in range(20_000)])

    async def read() -> None:
        async with read_snapshot(db) as seen:
            await all_results(seen)

    async def cancel_at_each_point() -> int:
        cancelled = 0
        for delay in (0.0, 0.0005, 0.001, 0.003, 0.01, 0.03, 0.1):
            task = asyncio.ensure_future(read())
            await asyncio.sleep(delay)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                cancelled += 1
        await asyncio.sleep(0.2)  # a reader still opening at its cancel is closed once open
        return cancelled

    await read()
    await cancel_at_each_point()
    steady = _descriptors()
    for _ in range(3):
        assert await cancel_at_each_point() >= 3
    assert _descriptors() <= steady + 2
    assert len(await all_results(db)) == 20_000
    await close_database(db)
    assert _descriptors() <= opened_at  # other tests' connections may close meanwhile


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_closing_the_database_ends_an_open_snapshot(tmp_path: Path) -> None:
    """A database closed while a snapshot is open closes its reader; the block then ends quietly."""
    before = _descriptors()
    db = await open_database(tmp_path / "app.db")
    await migrate(db)
    await save_result(db, result())
    async with read_snapshot(db) as seen:
        assert len(await all_results(seen)) == 1
        await close_database(db)
        with pytest.raises(DatabaseError, match="closed"):
            await all_results(seen)
    assert _descriptors() == before


async def test_a_snapshot_ends_after_a_read_under_way_and_refuses_use_after(db: Database) -> None:
    """A read another task sent through the block ends before the snapshot; later use is refused.

    Ended under the read, the SQLite reader was closed while its thread read, and PostgreSQL's
    ROLLBACK met the read still on the connection; used after the block, the snapshot said the
    database was closed, or that the connection to the server was lost.
    """
    await save_results(db, [result(f"t{i}") for i in range(5_000)])
    async with read_snapshot(db) as seen:
        reading = asyncio.ensure_future(all_results(seen))
        await asyncio.sleep(0.001)  # its first page is being read
    try:
        assert len(await reading) == 5_000
    except DatabaseError as error:
        assert "read_snapshot() block has ended" in str(error)  # noqa: PT017  # either outcome
    with pytest.raises(DatabaseError, match=r"read_snapshot\(\) block has ended"):
        await all_results(seen)
    assert len(await all_results(db)) == 5_000


async def test_a_transaction_in_a_snapshot_is_refused(db: Database) -> None:
    """transaction() on a snapshot's database is a DatabaseError; the snapshot reads on.

    It raised a bare AssertionError on SQLite (a savepoint on a writer no transaction held),
    and on PostgreSQL opened a savepoint whose first write failed.
    """
    await save_result(db, result("kept"))
    async with read_snapshot(db) as seen:
        with pytest.raises(DatabaseError, match=r"read_snapshot\(\) block only reads"):
            async with transaction(seen):
                pass
        assert [r.test_id for r in await all_results(seen)] == ["kept"]


def _gone(path: Path) -> None:
    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
        path.with_name(name).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced", "a symlink"])
async def test_a_snapshot_of_a_file_deleted_or_replaced_since_the_open_is_refused(
    tmp_path: Path, how: str
) -> None:
    """A SQLite file deleted, or replaced by another, since the open is named: nothing is read.

    The snapshot opened the path again: a deleted file was made again, empty, and the snapshot
    said the database was not migrated; another database put in its place was read instead.
    """
    path = tmp_path / "app.db"
    db = await open_database(path)
    try:
        await migrate(db)
        await save_result(db, result("mine"))
        if how != "deleted":
            other = await open_database(tmp_path / "other.db")
            await migrate(other)
            await save_result(other, result("other"))
            await close_database(other)
        _gone(path)
        if how == "replaced":
            (tmp_path / "other.db").rename(path)
        elif how == "a symlink":
            path.symlink_to(tmp_path / "other.db")
        with pytest.raises(DatabaseError, match="deleted, moved or replaced"):
            async with read_snapshot(db) as seen:
                await all_results(seen)
        assert path.exists() == (how != "deleted")  # no empty file made in its place
    finally:
        await close_database(db)


async def test_a_backup_of_a_file_replaced_since_the_open_is_refused(tmp_path: Path) -> None:
    """backup_database of a SQLite file replaced by another since the open copies neither."""
    path = tmp_path / "app.db"
    db = await open_database(path)
    try:
        await migrate(db)
        other = await open_database(tmp_path / "other.db")
        await migrate(other)
        await save_result(other, result("other"))
        await close_database(other)
        _gone(path)
        (tmp_path / "other.db").rename(path)
        with pytest.raises(DatabaseError, match="deleted, moved or replaced"):
            await backup_database(db, tmp_path / "backup.db")
        assert not (tmp_path / "backup.db").exists()
    finally:
        await close_database(db)


async def test_a_snapshot_sees_the_state_when_its_block_began(
    db: Database, database_url: str
) -> None:
    """Writes after the block began, before its first read, are not seen: alike on both engines.

    PostgreSQL's REPEATABLE READ fixes its state at the transaction's first query, not at BEGIN:
    a snapshot that wrote nothing yet saw what was committed until its first read.
    """
    await save_result(db, result("before"))
    async with read_snapshot(db) as seen:
        await save_result(db, result("package"))
        await plain_sql(database_url, "DELETE FROM test_results WHERE test_id = 'before'")
        assert [r.test_id for r in await all_results(seen)] == ["before"]
    assert [r.test_id for r in await all_results(db)] == ["package"]


async def test_a_snapshot_begun_as_the_database_closes_says_it_is_closed(tmp_path: Path) -> None:
    """A snapshot that begins while a close is under way gets DatabaseError, or reads: nothing else.

    It raised a bare RuntimeError ("cannot schedule new futures after shutdown") when its
    reader was asked of the worker threads after the close had stopped them.
    """
    outcomes: set[str] = set()
    for steps in range(24):
        db = await open_database(tmp_path / f"app{steps}.db")
        await migrate(db)
        await save_result(db, result())

        async def read(db: Database = db) -> int:
            async with read_snapshot(db) as seen:
                return len(await all_results(seen))

        reading = asyncio.ensure_future(read())
        for _ in range(steps % 8):
            await asyncio.sleep(0)
        await close_database(db)
        try:
            outcomes.add(str(await reading))
        except DatabaseError as error:
            assert "closed" in str(error)  # noqa: PT017  # either outcome is right
            outcomes.add("closed")
    assert "closed" in outcomes


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
async def test_a_burst_of_cancelled_snapshots_opens_no_reader_for_each(tmp_path: Path) -> None:
    """Snapshots cancelled before their reader's thread starts open none: the descriptors stay few.

    Each opened its reader anyway, closed at once; but SQLite keeps a closed connection's
    descriptor while another connection of the process holds a lock on the file (in WAL mode,
    always), reusing one per later open: 200 cancels in a row held 30 to 50 more until close.
    """
    db = await open_database(tmp_path / "app.db")
    try:
        await migrate(db)
        await save_results(db, [result(f"t{i}") for i in range(1_000)])

        async def read() -> None:
            async with read_snapshot(db) as seen:
                await all_results(seen)

        await read()
        steady = _descriptors()
        for steps in range(200):
            task = asyncio.ensure_future(read())
            for _ in range(1 + steps % 8):
                await asyncio.sleep(0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.sleep(0.3)  # a reader still opening at its cancel is closed once open
        assert _descriptors() <= steady + 8  # the worker threads' opens at most
        await read()
    finally:
        await close_database(db)


async def test_a_copy_of_a_snapshots_database_names_the_snapshot(db: Database) -> None:
    """A copy opens its own snapshot and transaction: it refuses a database bound to a block.

    For a `read_snapshot()` block, the refusal said "is inside transaction()".
    """
    async with read_snapshot(db) as seen:
        with pytest.raises(ValidationError, match=r"copy\.source: .*read_snapshot\(\) block"):
            await copy_database(seen, db)
    async with transaction(db) as tx:
        with pytest.raises(ValidationError, match=r"copy\.target: .*transaction\(\) block"):
            await copy_database(db, tx)


async def test_closing_inside_a_snapshot_ends_it_at_once_on_both_engines(
    database_url: str, db: Database
) -> None:
    """close_database in the snapshot's own block returns at once, leaving no connection open.

    On PostgreSQL the close waited for the snapshot's connection, which its own block held:
    `release_timeout` plus `command_timeout` (61 s by default), then terminated it.
    """
    await save_result(db, result())
    postgres = not database_url.endswith(".db")
    before = await own_connections(database_url) if postgres else 0
    short = await open_database(database_url, command_timeout=5, release_timeout=1)
    started = asyncio.get_running_loop().time()
    async with read_snapshot(short) as seen:
        assert len(await all_results(seen)) == 1
        await close_database(short)
        assert asyncio.get_running_loop().time() - started < 2  # 6 s before
        with pytest.raises(DatabaseError, match="closed"):
            await all_results(seen)
    if postgres:
        assert await own_connections(database_url) == before
