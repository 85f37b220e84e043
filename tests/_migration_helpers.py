"""What the migration runner's tests share: migration files, a fresh database, its tables."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from persistence import Database, connect

CREATE_A = "-- first\nCREATE TABLE a (id integer PRIMARY KEY, name text NOT NULL);\n"
CREATE_B = "CREATE TABLE b (id integer PRIMARY KEY);\nINSERT INTO b (id) VALUES (1);\n"
BROKEN = "CREATE TABLE c (id integer PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\n"


def write_both(folder: Path, name: str, text: str) -> None:
    """Write one migration of the user's chain for both engines, as `persistence new` lays out."""
    for engine in ("sqlite", "postgres"):
        (folder / engine).mkdir(parents=True, exist_ok=True)
        (folder / engine / name).write_text(text, encoding="utf-8")


def write(folder: Path, name: str, text: str) -> Path:
    """Write one migration file."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(name="folder")
def migrations(tmp_path: Path) -> Path:
    """A folder with two good migrations."""
    folder = tmp_path / "migrations"
    write(folder, "0001_create_a.sql", CREATE_A)
    write(folder, "0002_create_b.sql", CREATE_B)
    return folder


@pytest.fixture(name="empty")
async def empty_database(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with nothing applied, of each engine."""
    async with connect(database_url) as db:
        yield db


async def table_names(db: Database, *, every: bool = False) -> set[str]:
    """The tables of the database behind `db`, read over a connection of the test's own.

    The package's history and SQLite's own table are left out, unless `every`.
    """
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            names = [
                row[0]
                for row in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
    else:
        pg = await asyncpg.connect(db.url)
        try:
            query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            names = [row[0] for row in await pg.fetch(query)]
        finally:
            await pg.close()
    return set(names) if every else set(names) - {"persistence_migrations", "sqlite_sequence"}


async def row_count(db: Database, table: str) -> int:
    """Count the rows of a table over a connection of the test's own."""
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            return int(lite.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608  # a test's own table name
    pg = await asyncpg.connect(db.url)
    try:
        return int(await pg.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608  # a test's own table name
    finally:
        await pg.close()


def package_versions_from(first: int) -> list[int]:
    """The versions of the package's own migrations from `first` on, as the checkout holds them."""
    folder = Path(__file__).parent.parent / "sql" / "migrations" / "sqlite"
    return sorted(v for path in folder.glob("[0-9]*.sql") if (v := int(path.name[:4])) >= first)
