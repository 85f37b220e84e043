"""sqlite3 by hand, called directly from the coroutines on the event loop: the limit.

Same SQL and the same conversions by hand as the aiosqlite contender, and the same file
settings (WAL, `synchronous = FULL`), but no thread at all: every statement, and every
commit with its fsync, runs on the loop. Nothing async can be quicker per call; what it
costs is the loop itself, which stands still for as long as each call takes.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from bench._contenders import in_tasks
from bench._raw_sqlite import (
    END_OF_TIME,
    MAX_INT,
    READ_PAGE,
    START_OF_TIME,
    listing_of,
    params_of,
    register_converters,
    text_of,
)
from bench._sql import GET_SQLITE, INSERT_SQLITE, INSERT_SQLITE_NO_RETURNING, LIST_SQLITE

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = ["LoopSqlite", "open_loop_sqlite"]


def open_loop_sqlite(path: str) -> sqlite3.Connection:
    """Open the file as the layer does: WAL, full sync, declared types converted by sqlite3."""
    register_converters()
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        detect_types=sqlite3.PARSE_DECLTYPES,
        timeout=5.0,
        cached_statements=256,
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class LoopSqlite:
    """One sqlite3 connection, called from async functions without ever leaving the loop."""

    name = "sqlite3"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One INSERT ... RETURNING per row, between BEGIN and COMMIT."""
        conn = self.conn
        conn.execute("BEGIN")
        for result in results:
            conn.execute(INSERT_SQLITE, params_of(result)).fetchall()
        conn.execute("COMMIT")

    async def save_many(self, results: list[TestResult]) -> None:
        """One executemany in one transaction."""
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany(INSERT_SQLITE_NO_RETURNING, [params_of(r) for r in results])
        conn.execute("COMMIT")

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: one INSERT ... RETURNING that commits itself, then yield to the loop.

        No lock is needed: a call never suspends, so no other task can come between the
        insert and its commit. Each task yields after each save so that the tasks take turns.
        """
        conn = self.conn

        async def save(result: TestResult) -> object:
            return conn.execute(INSERT_SQLITE, params_of(result)).fetchall()[0][0]

        await in_tasks(batches, save, pause=True)

    async def get_by_id(self, ids: list[int]) -> int:
        """One SELECT per id, fetched as a tuple."""
        conn = self.conn
        found = 0
        for result_id in ids:
            found += len(conn.execute(GET_SQLITE, (result_id,)).fetchall())
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, fetched as tuples."""
        return await self._pages(LIST_SQLITE, (START_OF_TIME, END_OF_TIME), READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, fetched as tuples."""
        return await self._pages(*listing_of(where), page_size)

    async def _pages(self, sql: str, filters: tuple[str, ...], page_size: int) -> int:
        count = 0
        cursor: tuple[str, int] = (END_OF_TIME, MAX_INT)
        while True:
            rows = self.conn.execute(sql, (*filters, *cursor, page_size)).fetchall()
            count += len(rows)
            if len(rows) < page_size:
                return count
            last = rows[-1]
            cursor = (text_of(last[9]) or "", last[0])
