"""A migration cancelled while its statement runs stops that statement, and applies nothing.

On SQLite the statement ran on in its thread until it ended, and the cancel waited for it: a
Ctrl-C during a table's rebuild took effect minutes later. On PostgreSQL the statement ran on
at the server after the client had gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import asyncpg
import pytest

from persistence import Database, migrate, migration_status
from persistence._database_value import backend_of

if TYPE_CHECKING:
    from persistence._sqlite.backend import SqliteBackend

ENDLESS: Final = {
    "sqlite": (
        "CREATE TABLE counted AS WITH RECURSIVE n(i) AS"
        " (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000000)"
        " SELECT count(*) AS c FROM n;\n"
    ),
    "postgres": "SELECT pg_sleep(600);\n",
}
"""A statement that runs for hours, as a migration's first."""
STOPPED_WITHIN: Final = 10.0
"""Seconds within which a cancelled migration must end."""


async def _sleeping_at_server(url: str) -> int:
    """How many of the database's sessions run the endless statement."""
    connection = await asyncpg.connect(url)
    try:
        found = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'active' AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"
        )
        return int(found)
    finally:
        await connection.close()


async def _stop_it_anyway(db: Database, url: str) -> None:
    """End the endless statement by other means, so that a failing test ends too."""
    if db.engine.value == "sqlite":
        backend = cast("SqliteBackend", backend_of(db))
        backend._writer.connection.interrupt()  # noqa: SLF001  # the test's way out
        return
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()


async def test_a_cancelled_migration_stops_its_statement(
    db: Database, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled mid-statement: it ends within seconds, the statement stopped, nothing applied."""
    await _cancelled_mid_migration(db, database_url, tmp_path, monkeypatch, queued=False)


async def test_a_migration_cancelled_while_its_job_waits_for_a_thread_stops_too(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's interrupt came with no statement running, and was lost.

    The statement then ran to its end. Its job waits here as behind busy threads.
    """
    url = str(tmp_path / "test.db")
    await _cancelled_mid_migration(sqlite_db, url, tmp_path, monkeypatch, queued=True)


def _observed_writer(
    db: Database, monkeypatch: pytest.MonkeyPatch, *, queued: bool
) -> asyncio.Event:
    """Have the SQLite writer's thread jobs set the event given as they begin, after a wait."""
    started = asyncio.Event()
    writer = cast("SqliteBackend", backend_of(db))._writer  # noqa: SLF001  # its thread's job
    in_thread = writer.in_thread
    loop = asyncio.get_running_loop()

    def observed(function: Callable[..., object], *args: object) -> asyncio.Future[object]:
        def job() -> object:
            loop.call_soon_threadsafe(started.set)
            if queued:
                time.sleep(0.5)  # as behind busy threads
            return function(*args)

        return in_thread(job)

    monkeypatch.setattr(writer, "in_thread", observed)
    return started


async def _cancelled_mid_migration(
    db: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    queued: bool,
) -> None:
    folder = tmp_path / "mine"
    for engine, text in ENDLESS.items():
        (folder / engine).mkdir(parents=True)
        (folder / engine / "0001_endless.sql").write_text(text, encoding="utf-8")
    postgres = db.engine.value == "postgres"
    started = asyncio.Event() if postgres else _observed_writer(db, monkeypatch, queued=queued)
    task = asyncio.create_task(migrate(db, folder))
    deadline = time.monotonic() + 30
    if postgres:
        while not await _sleeping_at_server(database_url):
            assert not task.done(), task
            assert time.monotonic() < deadline, "the statement never started"
            await asyncio.sleep(0.05)
    else:
        await asyncio.wait_for(started.wait(), 30)  # the script's job has begun
        await asyncio.sleep(0.2 if queued else 1.0)
        assert not task.done(), task
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=STOPPED_WITHIN)
    if not done:
        await _stop_it_anyway(db, database_url)
        await asyncio.wait([task])
        pytest.fail("the cancel waited for the statement to end")
    assert task.cancelled()
    if postgres:
        deadline = time.monotonic() + STOPPED_WITHIN
        while await _sleeping_at_server(database_url):
            if time.monotonic() > deadline:
                await _stop_it_anyway(db, database_url)
                pytest.fail("the statement ran on at the server")
            await asyncio.sleep(0.05)
    user = (await migration_status(db, folder)).user
    assert user is not None
    assert user.applied == ()
    assert [m.name for m in user.pending] == ["0001_endless"]
