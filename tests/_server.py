"""What a test reads off its own PostgreSQL database, on the shared server."""

from __future__ import annotations

import asyncio
import time

import asyncpg

_OTHERS = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
"""The other connections to the test's own database: the asking one left out."""


async def _count(url: str, counted: str) -> int:
    """Give `SELECT count(<counted>)` over the other connections to the test's database."""
    admin = await asyncpg.connect(url)
    try:
        count: int = await admin.fetchval(f"SELECT count({counted}) {_OTHERS}")
    finally:
        await admin.close()
    return count


async def own_connections(url: str) -> int:
    """The connections to the test's PostgreSQL database, the counting one left out."""
    return await _count(url, "*")


async def kill_own_connections(url: str) -> int:
    """End every other connection to the test's PostgreSQL database; give how many."""
    return await _count(url, "pg_terminate_backend(pid)")


async def no_connection_left(url: str) -> None:
    """Wait, within 2 s, until no connection to the test's database is left."""
    deadline = time.monotonic() + 2
    while (left := await own_connections(url)) != 0:
        assert time.monotonic() < deadline, f"{left} connections left"
        await asyncio.sleep(0.05)
