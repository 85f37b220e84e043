"""A cache refused as it opens leaves nothing running: no listener task, no connection."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from _cache_feed_helpers import HEARTBEAT
from persistence import Database, ValidationError, transaction
from persistence.cache import open_memory_cache, open_redis_cache

OTHER_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def connections(db: Database, url: str) -> int:
    """Count the connections to `db`'s PostgreSQL database but the one asking; 0 on SQLite."""
    if db.engine.value != "postgres":
        return 0
    admin = await asyncpg.connect(url)
    try:
        found: int = await admin.fetchval(OTHER_CONNECTIONS)
    finally:
        await admin.close()
    return found


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_cache_refused_on_a_transaction_starts_no_listener(
    db: Database, database_url: str, redis_url: str, namespace: str, kind: str
) -> None:
    """Opening a cache on a transaction() block is refused before the change feed starts.

    It was refused after: on PostgreSQL the listener's task and its LISTEN connection were
    left running for good, heartbeat after heartbeat, nothing to close them.
    """
    async with transaction(db) as tx:
        tasks = len(asyncio.all_tasks())
        before = await connections(db, database_url)
        with pytest.raises(ValidationError, match="not on a transaction"):
            if kind == "memory":
                await open_memory_cache(tx, heartbeat=HEARTBEAT)
            else:
                await open_redis_cache(tx, redis_url, namespace=namespace, heartbeat=HEARTBEAT)
        assert len(asyncio.all_tasks()) == tasks
        assert await connections(db, database_url) == before
