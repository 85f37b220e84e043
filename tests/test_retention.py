"""Retention deletes in short batches: whole rows only, the index in step, writers not kept out."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from persistence import (
    Database,
    Engine,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    connect,
    delete_results_before,
    list_results,
    migrate,
    open_counterexample_store,
    save_results,
    search_results,
    transaction,
)
from persistence import results as results_module
from persistence.exceptions import StorageError
from persistence.storage import open_storage

HERE: Final = Path(__file__).parent
WORKER: Final = str(HERE / "_retention_worker.py")
CHILD_ENV: Final = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
MAX_WRITER_WAIT: Final = float(os.environ.get("TEST_MAX_WRITER_WAIT", "0.25"))
"""The longest a plain-SQL writer may wait for the lock behind retention, in seconds.

Retention aims at about 100 ms; the margin is for a loaded machine, where the writer thread
also waits for the GIL. Before batching, writers waited 1.3 to 3.5 s.
"""

OLD: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CUTOFF: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NEW: Final = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _rows(count: int, created_at: dt.datetime, word: str, chars: int = 0) -> list[TestResult]:
    filler = " ".join(f"w{n % 997}x{n % 13}" for n in range(chars // 7))
    return [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            output=f"{word} row{index} {filler}",
            created_at=created_at + dt.timedelta(seconds=index),
        )
        for index in range(count)
    ]


async def _count(db: Database) -> int:
    page = await list_results(db, limit=10_000)
    return len(page.items)


async def _found(db: Database, word: str) -> int:
    return len((await search_results(db, word, limit=10_000)).items)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every retention batch at most 3 rows, so that a few dozen rows take many."""
    monkeypatch.setattr(results_module, "RETENTION_FIRST_BATCH", 3)
    monkeypatch.setattr(results_module, "RETENTION_MAX_BATCH", 3)


@pytest.mark.usefixtures("small_batches")
async def test_retention_in_batches_deletes_every_old_row_and_counts_them(db: Database) -> None:
    """Many batches delete exactly the rows before the cut-off; the count is their sum."""
    await save_results(db, _rows(50, OLD, "expired"))
    await save_results(db, _rows(7, NEW, "kept"))
    assert await delete_results_before(db, CUTOFF) == 50
    assert await _count(db) == 7
    assert await _found(db, "expired") == 0
    assert await _found(db, "kept") == 7
    assert await delete_results_before(db, CUTOFF) == 0


@pytest.mark.parametrize("cutoff", [dt.datetime(2026, 3, 1), "2026-03-01", None])  # noqa: DTZ001  # naive on purpose
async def test_a_bad_cutoff_is_refused_before_anything_is_deleted(
    db: Database, cutoff: object
) -> None:
    """A naive or non-datetime cut-off is a ValidationError naming it, and nothing goes."""
    await save_results(db, _rows(5, OLD, "expired"))
    with pytest.raises(ValidationError, match="cutoff"):
        await delete_results_before(db, cutoff)  # type: ignore[arg-type]  # bad on purpose
    assert await _count(db) == 5


class _NoSweep:
    """Has a `sweep` that is no method of a database: not a store of files."""

    sweep = 1


@pytest.mark.parametrize("artifacts", ["files", object(), _NoSweep()])
async def test_a_bad_artifact_store_is_refused_before_anything_is_deleted(
    db: Database, artifacts: object
) -> None:
    """Something that cannot sweep as `artifacts` is a ValidationError naming it, and nothing goes.

    It was found out only after every old row was deleted, by a bare AttributeError.
    """
    await save_results(db, _rows(5, OLD, "expired"))
    with pytest.raises(ValidationError, match="artifacts"):
        await delete_results_before(db, CUTOFF, artifacts=artifacts)  # type: ignore[arg-type]  # bad on purpose
    assert await _count(db) == 5


async def test_a_sweep_that_fails_after_the_rows_went_says_how_many_went(
    db: Database, tmp_path: Path
) -> None:
    """The storage root gone: the rows are deleted, then the sweep fails, and says the count.

    The count, the call's answer, was lost with the error: the caller could not tell that the
    rows had gone.
    """
    await save_results(db, _rows(5, OLD, "expired"))
    store = await open_counterexample_store(await open_storage(tmp_path / "files"))
    (tmp_path / "files").rename(tmp_path / "gone")
    with pytest.raises(StorageError) as raised:
        await delete_results_before(db, CUTOFF, artifacts=store)
    assert raised.value.__notes__ == ["delete_results_before deleted 5 results before this"]
    assert await _count(db) == 0


@pytest.mark.usefixtures("small_batches")
async def test_inside_a_transaction_retention_is_one_transaction(db: Database) -> None:
    """In a block, its batches are statements of the block: rolled back all together."""
    await save_results(db, _rows(20, OLD, "expired"))

    class UndoError(Exception):
        pass

    with pytest.raises(UndoError):
        async with transaction(db) as tx:
            assert await delete_results_before(tx, CUTOFF) == 20
            assert await _count(tx) == 0
            raise UndoError
    assert await _count(db) == 20
    assert await _found(db, "expired") == 20
    async with transaction(db) as tx:
        assert await delete_results_before(tx, CUTOFF) == 20
    assert await _count(db) == 0


@pytest.mark.usefixtures("small_batches")
async def test_a_cancelled_retention_leaves_whole_rows_and_the_index_in_step(
    db: Database,
) -> None:
    """Cancelled part way, the batches done stay done; each row is there whole, or gone whole."""
    await save_results(db, _rows(300, OLD, "expired"))
    task = asyncio.create_task(delete_results_before(db, CUTOFF))
    for _ in range(2000):
        await asyncio.sleep(0.001)
        if await _count(db) < 300:
            break
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    left = await _count(db)
    assert 0 < left < 300, "the cancel came too late or too early to show batches"
    assert await _found(db, "expired") == left
    assert await delete_results_before(db, CUTOFF) == left
    assert await _found(db, "expired") == 0


def _indexed(path: Path, word: str) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM test_results_fts(?)", (word,)).fetchone()[0])


def _stored(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM test_results").fetchone()[0])


async def test_a_killed_retention_leaves_whole_rows_and_the_index_in_step(tmp_path: Path) -> None:
    """SIGKILL mid-retention: some old rows are left, each whole, and the index holds just them."""
    path = tmp_path / "retention.db"
    total = 1500
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, _rows(total, OLD, "expired", chars=3000))
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        WORKER,
        str(path),
        CUTOFF.isoformat(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )
    assert child.stdout is not None
    first = await asyncio.wait_for(child.stdout.readline(), timeout=20)
    if first != b"started\n":
        child.kill()
        _, errors = await child.communicate()
        pytest.fail(f"the worker never started: {first!r}\n{errors.decode()[-2000:]}")
    for _ in range(2000):
        if _stored(path) < total:
            break
        await asyncio.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    output, _ = await child.communicate()
    assert child.returncode == -signal.SIGKILL, output
    left = _stored(path)
    assert 0 < left < total, "the kill came too late or too early to show batches"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [row[0] for row in conn.execute("PRAGMA integrity_check")] == ["ok"]
    assert _indexed(path, "expired") == left
    async with connect(path) as db:
        assert await delete_results_before(db, CUTOFF) == left
    assert _indexed(path, "expired") == 0


def _plain_writer(path: Path, stop: threading.Event, waits: list[float]) -> None:
    """Copy a new row by plain SQL until stopped, polling for the lock every millisecond."""
    with contextlib.closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as conn:
        source = conn.execute("SELECT max(id) FROM test_results").fetchone()[0]
        while not stop.is_set():
            asked = time.perf_counter()
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError:
                    time.sleep(0.001)
            conn.execute(
                "INSERT INTO test_results (test_type, status, created_at, metadata) "
                "SELECT test_type, status, created_at, metadata FROM test_results WHERE id = ?",
                (source,),
            )
            conn.execute("COMMIT")
            waits.append(time.perf_counter() - asked)
            time.sleep(0.002)


async def test_retention_leaves_the_write_lock_to_other_writers(sqlite_db: Database) -> None:
    """A writer by plain SQL, outside the package, never waits long behind retention."""
    assert sqlite_db.engine is Engine.SQLITE
    await save_results(sqlite_db, _rows(1500, OLD, "expired", chars=6000))
    await save_results(sqlite_db, _rows(1, NEW, "kept"))
    path = Path(sqlite_db.url)
    stop = threading.Event()
    waits: list[float] = []
    writer = threading.Thread(target=_plain_writer, args=(path, stop, waits))
    writer.start()
    try:
        assert await delete_results_before(sqlite_db, CUTOFF) == 1500
    finally:
        stop.set()
        await asyncio.to_thread(writer.join)
    assert len(waits) > 10
    assert max(waits) < MAX_WRITER_WAIT, f"a writer waited {max(waits) * 1000:.0f} ms"


async def _lock_waits(other: asyncpg.Connection[asyncpg.Record]) -> int:
    return int(
        await other.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE NOT l.granted AND a.datname = current_database()"
        )
    )


async def _waiting_on(other: asyncpg.Connection[asyncpg.Record], job: asyncio.Task[int]) -> None:
    """Wait until `job` waits for a lock that `other` holds."""
    deadline = time.monotonic() + 10
    while not await _lock_waits(other):
        assert time.monotonic() < deadline, "retention never waited for the other writer"
        assert not job.done(), job
        await asyncio.sleep(0.01)


async def test_rows_another_writer_deleted_first_leave_no_older_row_behind(
    migrated_postgres_url: str,
) -> None:
    """Another writer deletes the oldest rows while retention waits for their locks.

    Its first batch then deleted none of the rows it had picked, and it stopped as if none
    were left, the rest of the old rows kept: under READ COMMITTED a waiting DELETE skips
    rows that are gone once it may go on.
    """
    async with connect(migrated_postgres_url) as db:
        await save_results(db, _rows(100, OLD, "oldest") + _rows(100, OLD.replace(month=2), "old"))
        other: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
        try:
            writing = other.transaction()
            await writing.start()
            await other.execute(
                "DELETE FROM test_results WHERE created_at < $1", OLD.replace(day=2)
            )
            job = asyncio.create_task(delete_results_before(db, CUTOFF))
            await _waiting_on(other, job)
            await writing.commit()
            assert await job == 100
            assert await other.fetchval("SELECT count(*) FROM test_results") == 0
        finally:
            await other.close()


async def test_a_row_another_writer_moved_past_the_cutoff_is_kept(
    migrated_postgres_url: str,
) -> None:
    """A result whose time another writer moves past the cut-off while retention waits: kept."""
    async with connect(migrated_postgres_url) as db:
        await save_results(db, _rows(3, OLD, "old"))
        moved = min(result.id or 0 for result in (await list_results(db)).items)
        other: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(migrated_postgres_url)
        try:
            writing = other.transaction()
            await writing.start()
            await other.execute("UPDATE test_results SET created_at = $1 WHERE id = $2", NEW, moved)
            job = asyncio.create_task(delete_results_before(db, CUTOFF))
            await _waiting_on(other, job)
            await writing.commit()
            assert await job == 2
            kept = await list_results(db)
            assert [result.id for result in kept.items] == [moved]
        finally:
            await other.close()


async def _protect_the_oldest(database_url: str) -> None:
    """Plain SQL: a trigger of the user's that skips the delete of the oldest result."""
    if database_url.startswith("postgresql"):
        server: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(database_url)
        try:
            await server.execute(
                "CREATE FUNCTION keep_oldest() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN IF old.id = (SELECT min(id) FROM test_results) THEN RETURN NULL; END IF;"
                " RETURN old; END $$;"
                " CREATE TRIGGER keep_oldest BEFORE DELETE ON test_results"
                " FOR EACH ROW EXECUTE FUNCTION keep_oldest()"
            )
        finally:
            await server.close()
        return
    with contextlib.closing(sqlite3.connect(database_url)) as plain, plain:
        plain.execute(
            "CREATE TRIGGER keep_oldest BEFORE DELETE ON test_results"
            " WHEN old.id = (SELECT min(id) FROM test_results)"
            " BEGIN SELECT RAISE(IGNORE); END"
        )


async def test_a_row_no_delete_takes_ends_retention_all_the_same(database_url: str) -> None:
    """A trigger of the user's skips one old row: retention deletes the rest and returns.

    After a batch that deleted none, it looks for a row left before the cut-off, and goes on
    while it finds one: the same one found twice is one no DELETE takes, and it stops there.
    """
    async with connect(database_url) as db:
        await migrate(db)
        await save_results(db, _rows(5, OLD, "old") + _rows(2, NEW, "new"))
    await _protect_the_oldest(database_url)
    async with connect(database_url) as db:
        async with asyncio.timeout(10):
            assert await delete_results_before(db, CUTOFF) == 4
            assert await delete_results_before(db, CUTOFF) == 0
        left = (await list_results(db)).items
        assert sorted(result.created_at for result in left) == [
            OLD,
            NEW,
            NEW + dt.timedelta(seconds=1),
        ]
