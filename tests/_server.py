"""What a test reads off its own PostgreSQL database, on the shared server."""

from __future__ import annotations

import asyncpg


async def own_connections(url: str) -> int:
    """The connections to the test's PostgreSQL database, the counting one left out."""
    admin = await asyncpg.connect(url)
    try:
        count: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return count


async def kill_own_connections(url: str) -> int:
    """End every other connection to the test's PostgreSQL database; give how many."""
    admin = await asyncpg.connect(url)
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return killed
