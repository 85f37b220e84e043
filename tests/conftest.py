"""Fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server at TEST_DATABASE_URL (default: the local server, as
postgres). Each test gets a database of its own, created from template0 and dropped after.
Off CI, with no server, those tests skip and say why; with CI=true they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from persistence import Database, connect, migrate

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ["sqlite", "postgres"]


def admin_url() -> str:
    """The server that PostgreSQL tests make their databases on."""
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_ADMIN_URL


def on_ci() -> bool:
    """Whether this run is CI, where no PostgreSQL test may skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def _probe(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return f"no PostgreSQL server at {url}: {type(error).__name__}: {error}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The admin URL of a reachable server; skip (or fail on CI) when there is none."""
    problem = asyncio.run(_probe(admin_url()))
    if problem is not None:
        if on_ci():
            pytest.fail(f"CI=true requires PostgreSQL: {problem}")
        pytest.skip(f"{problem} (set TEST_DATABASE_URL, or start the server)")
    return admin_url()


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = f"persistence_test_{uuid.uuid4().hex[:12]}"
    # Identifiers cannot be bound parameters; the name is made here, from hex digits only.
    asyncio.run(_admin(postgres_admin, f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield with_database(postgres_admin, name)
    finally:
        asyncio.run(_admin(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each engine in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "test.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(name="db")
async def fresh_db(database_url: str) -> AsyncIterator[Database]:
    """A fresh, migrated database of each engine in turn."""
    async with connect(database_url) as db:
        await migrate(db)
        yield db


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, migrated SQLite database, for what only SQLite does."""
    async with connect(tmp_path / "test.db") as db:
        await migrate(db)
        yield db


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
"""Index 9, never 0: the tests write and delete keys there, so they keep off the default."""


def redis_test_url() -> str:
    """The Redis server that cache tests use."""
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


async def _probe_redis(url: str) -> str | None:
    from redis.asyncio import Redis  # noqa: PLC0415  # only the Redis tests need it
    from redis.exceptions import RedisError  # noqa: PLC0415

    client = Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        return f"no Redis server at {url}: {type(error).__name__}: {error}"
    finally:
        await client.aclose()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable Redis; skip (or fail on CI) when there is none."""
    problem = asyncio.run(_probe_redis(redis_test_url()))
    if problem is not None:
        if on_ci():
            pytest.fail(f"CI=true requires Redis: {problem}")
        pytest.skip(f"{problem} (set TEST_REDIS_URL, or start redis-server)")
    return redis_test_url()
