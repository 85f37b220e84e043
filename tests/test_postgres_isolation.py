"""A database or role whose default isolation is stricter than READ COMMITTED.

A DBA may set `default_transaction_isolation` for a database or a role. The package's SQL is
written for READ COMMITTED: two migrations at once took their snapshot before the runners'
lock and applied the first migration twice, and upserts of one key at once failed with
serialization errors, 171 calls in 200.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from persistence import (
    FileRecord,
    connect,
    get_config_entry_by_key,
    migrate,
    save_file_record,
    set_config,
)
from persistence.database import Engine
from persistence.migrations import discover_migrations, migrations_folder

STRICTER = ["repeatable read", "serializable"]


async def _default_isolation(url: str, isolation: str) -> None:
    """Set the database's default isolation, as `ALTER DATABASE ... SET` does for new sessions."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation = %L',"
            f" current_database(), '{isolation}'); END$$"
        )
    finally:
        await connection.close()


@pytest.mark.parametrize("isolation", STRICTER)
async def test_migrations_at_once_apply_each_migration_once(
    postgres_url: str, isolation: str
) -> None:
    """Three runners at once: each migration is applied by one of them, once."""
    await _default_isolation(postgres_url, isolation)

    async def runner() -> list[int]:
        async with connect(postgres_url) as db:
            return [migration.version for migration in await migrate(db)]

    every = [m.version for m in discover_migrations(migrations_folder(Engine.POSTGRES))]
    applied = await asyncio.gather(*(runner() for _ in range(3)))
    assert sorted(version for one in applied for version in one) == every


@pytest.mark.parametrize("isolation", STRICTER)
async def test_upserts_of_one_key_at_once_all_succeed(
    migrated_postgres_url: str, isolation: str
) -> None:
    """Twenty upserts of one config key and twenty of one file path at once, five times over."""
    await _default_isolation(migrated_postgres_url, isolation)
    async with connect(migrated_postgres_url, pool_size=8) as db:
        for _ in range(5):
            await asyncio.gather(
                *(set_config(db, "runner", "workers", n) for n in range(20)),
                *(save_file_record(db, FileRecord(path="a.bin", size=n)) for n in range(20)),
            )
        entry = await get_config_entry_by_key(db, "runner", "workers")
        assert entry.value in range(20)
