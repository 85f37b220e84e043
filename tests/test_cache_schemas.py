"""Two schemas of one PostgreSQL database, each a database of its own, and the Redis tier.

A URL may name a schema (`?options=-csearch_path%3Da`): the package migrates and uses the
tables its search path finds. The Redis tier's default namespace named the server and the
database alone, so a reader of schema `b` was served schema `a`'s entries: its result of the
same id, another test's output.
"""

from __future__ import annotations

import asyncpg
import pytest
from redis.asyncio import Redis

from persistence import TestResult, TestStatus, TestType, migrate, save_result
from persistence.cache import RedisCache, open_redis_cache
from persistence.database import Database, close_database, open_database

HEARTBEAT = 0.2


@pytest.mark.usefixtures("postgres_admin")
async def test_two_schemas_of_one_database_share_no_entries(
    postgres_url: str, redis_url: str
) -> None:
    """PostgreSQL: each schema's reader gets its own result of one id, not the other's."""
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute("CREATE SCHEMA a; CREATE SCHEMA b")
    finally:
        await admin.close()
    databases: list[Database] = []
    caches: list[RedisCache] = []
    try:
        for schema in ("a", "b"):
            db = await open_database(f"{postgres_url}?options=-csearch_path%3D{schema}")
            databases.append(db)
            await migrate(db)
            await save_result(
                db,
                TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output=schema),
            )
        caches.extend(
            [
                await open_redis_cache(db, redis_url, heartbeat=HEARTBEAT, local_size=0)
                for db in databases
            ]
        )
        for _ in range(2):  # filled, then read from Redis
            found = [await cache.find_result(1) for cache in caches]
            assert [result.output if result else None for result in found] == ["a", "b"]
        assert caches[0]._namespace != caches[1]._namespace  # noqa: SLF001
    finally:
        client = Redis.from_url(redis_url)
        for cache in caches:
            await cache.close()
            keys = [key async for key in client.scan_iter(f"{cache._namespace}:*")]  # noqa: SLF001
            if keys:
                await client.delete(*keys)
        await client.aclose()
        for db in databases:
            await close_database(db)
