"""A database or role set as a DBA may set it: a stricter isolation, fewer rights.

A DBA may set `default_transaction_isolation` for a database or a role. The package's SQL is
written for READ COMMITTED: two migrations at once took their snapshot before the runners'
lock and applied the first migration twice, and upserts of one key at once failed with
serialization errors, 171 calls in 200.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from _roles import SEQUENCES, TABLES, role_of_its_own
from conftest import with_database
from persistence import (
    DatabaseError,
    FileRecord,
    MigrationError,
    connect,
    get_config_entry_by_key,
    migrate,
    migration_status,
    open_persistence,
    save_file_record,
    set_config,
)
from persistence.database import Engine
from persistence.migrations import discover_migrations, migrations_folder, pending_migrations

STRICTER = ["repeatable read", "serializable"]
_PREFIX = "persistence_rows"
_ROWS = (
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLES} TO {{role}}",
    f"GRANT USAGE, SELECT, UPDATE ON {SEQUENCES} TO {{role}}",
)
"""The rights of a role that uses the package's rows, and may make nothing."""


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


@pytest.mark.parametrize("limit", ["no CREATE on the schema", "read-only transactions"])
async def test_an_up_to_date_database_migrates_as_a_role_that_may_not_create(
    migrated_postgres_url: str, tmp_path: Path, limit: str
) -> None:
    """Nothing pending: `migrate` and `open_persistence` change nothing, so they need no right to.

    The history's CREATE TABLE IF NOT EXISTS ran all the same, and PostgreSQL checks the
    schema's CREATE privilege (which 15 gives no role but the owner) and the transaction's
    mode before it looks for the table: "permission denied for schema public".
    """
    grants = [*_ROWS, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"]
    if limit == "read-only transactions":
        grants.append("ALTER ROLE {role} SET default_transaction_read_only = on")
    async with role_of_its_own(migrated_postgres_url, *grants, prefix=_PREFIX) as (as_role, _):
        async with connect(as_role) as db:
            assert await migrate(db) == []
        async with open_persistence(as_role, files=tmp_path / "files") as opened:
            assert (await migration_status(opened.db)).up_to_date


async def test_a_role_with_no_right_on_the_history_is_refused_naming_it(
    migrated_postgres_url: str,
) -> None:
    """A role that may use the package's tables but not its history is told which table.

    The history is looked for in the catalogs, which list a table whatever the role's rights;
    `information_schema.columns` lists only the columns a role may use, so the table was
    missing to it: `migration_status` listed every migration as pending, and `migrate` failed
    making the table again, as "permission denied for schema public".
    """
    grants = [*_ROWS, "REVOKE ALL ON persistence_migrations FROM {role}"]
    async with role_of_its_own(migrated_postgres_url, *grants, prefix=_PREFIX) as (as_role, admin):
        before = await admin.fetchval("SELECT count(*) FROM persistence_migrations")
        async with connect(as_role) as db:
            denied = r"PostgreSQL: permission denied for table persistence_migrations"
            with pytest.raises(DatabaseError, match=denied):
                await migration_status(db)
            with pytest.raises(DatabaseError, match=denied):
                await migrate(db)
        assert await admin.fetchval("SELECT count(*) FROM persistence_migrations") == before


@pytest.mark.parametrize("encoding", ["SQL_ASCII", "LATIN1"])
async def test_a_database_not_in_utf8_is_refused_before_any_migration(
    postgres_admin: str, encoding: str
) -> None:
    """Its encoding cannot hold the package's text: refused at once, nothing applied.

    Migration 0005 failed on its Unicode after 0004 had committed, and the half-migrated
    database failed every call on a missing column.
    """
    name = f"persistence_test_enc_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres_admin)
    try:
        await admin.execute(
            f"CREATE DATABASE {name} ENCODING '{encoding}' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        url = with_database(postgres_admin, name)
        async with connect(url) as db:
            with pytest.raises(MigrationError, match=f"the database's encoding is {encoding}"):
                await migrate(db)
            # A dry run says so too: it said every migration would run (`migrate --dry-run`).
            with pytest.raises(MigrationError, match=f"the database's encoding is {encoding}"):
                await pending_migrations(db)
        tables = await asyncpg.connect(url)
        try:
            assert (
                await tables.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                == 0
            )
        finally:
            await tables.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
