"""A migration cancelled while its statement runs stops that statement, and applies nothing.

On SQLite the statement ran on in its thread until it ended, and the cancel waited for it: a
Ctrl-C during a table's rebuild took effect minutes later. On PostgreSQL the statement ran on
at the server after the client had gone.
"""

from __future__ import annotations

import asyncio
import time
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
            " AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()"
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
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """Cancelled mid-statement: it ends within seconds, the statement stopped, nothing applied."""
    folder = tmp_path / "mine"
    for engine, text in ENDLESS.items():
        (folder / engine).mkdir(parents=True)
        (folder / engine / "0001_endless.sql").write_text(text, encoding="utf-8")
    postgres = db.engine.value == "postgresql"
    task = asyncio.create_task(migrate(db, folder))
    deadline = time.monotonic() + 30
    if postgres:
        while not await _sleeping_at_server(database_url):
            assert not task.done(), task
            assert time.monotonic() < deadline, "the statement never started"
            await asyncio.sleep(0.05)
    else:
        await asyncio.sleep(1.0)  # well into its statement
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
