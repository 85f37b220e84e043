"""A plain test_results: a migrated database with the full-text index taken off.

What each engine's search index costs every write is seen by comparing a database as
migrated with the same database without the index: on SQLite the triggers that keep FTS5 in
step; on PostgreSQL the generated tsvector column and its GIN index. Everything else (the
other indexes, the change-feed triggers) stays, so only the index's cost is taken away.
"""

from __future__ import annotations

import sqlite3
from typing import Final

import asyncpg

__all__ = ["make_plain"]

SQLITE_SEARCH_TRIGGERS: Final = (
    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'test_results' "
    "AND name LIKE 'test_results_fts%'"
)
POSTGRES_PLAIN: Final = (
    "DROP INDEX test_results_search_idx",
    "ALTER TABLE test_results DROP COLUMN search_vector",
)


async def make_plain(url: str) -> None:
    """Take the search index off a migrated database (a SQLite path or a PostgreSQL URL).

    Call it with no connection of the package open on the database, so that none keeps a
    statement prepared against the old table.
    """
    if url.startswith(("postgresql://", "postgres://")):
        conn = await asyncpg.connect(url)
        try:
            for statement in POSTGRES_PLAIN:
                await conn.execute(statement)
        finally:
            await conn.close()
        return
    lite = sqlite3.connect(url, isolation_level=None)
    try:
        for (name,) in lite.execute(SQLITE_SEARCH_TRIGGERS).fetchall():
            # Identifiers cannot be bound; the names are read from the schema just above.
            lite.execute(f'DROP TRIGGER "{name}"')
    finally:
        lite.close()
