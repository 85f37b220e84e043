"""sqlite3 by hand on the event loop, yielding every 0.5 ms as a careful author would.

The same SQL and parameter conversions as the other hand-written SQLite contenders, the
layer's file settings (WAL, `synchronous = FULL`), and no thread at all: every statement,
and every commit with its fsync, runs on the loop. It gives the loop back whenever it has
held it for 0.5 ms (`share_loop`), between statements and between slices of rows read.
Rows come back as sqlite3's raw tuples: timestamps and metadata stay text.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Final

from bench._contenders import in_tasks, share_loop
from bench._raw_sqlite import (
    END_OF_TIME,
    MAX_INT,
    READ_PAGE,
    START_OF_TIME,
    listing_of,
    page_params,
    params_of,
)
from bench._sql import GET_SQLITE, INSERT_SQLITE, LIST_SQLITE, multi_row_insert_sqlite

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from persistence import ResultFilter, TestResult

__all__ = ["FETCH", "LoopSqlite", "open_plain_sqlite", "read_pages"]

FETCH: Final = 100
"""Rows fetched between two looks at the clock."""
STEP_ROWS: Final = 16
"""Rows per INSERT in the loop's bulk save: about 0.5 ms of work with the full-text index."""

Row = tuple[Any, ...]  # sqlite3 rows are untyped


def open_plain_sqlite(path: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open the file as the layer does (WAL, full sync, foreign keys); rows as plain tuples."""
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        timeout=5.0,
        cached_statements=256,
        check_same_thread=check_same_thread,
    )
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


async def read_pages(
    conn: sqlite3.Connection,
    sql: str,
    filters: Sequence[object],
    page_size: int,
    decode: Callable[[list[Row]], list[Row]] | None = None,
) -> int:
    """Read keyset pages on the loop, FETCH rows at a time, yielding every 0.5 ms; count them."""
    pace = share_loop()
    rows: list[Row] = []  # kept to the end, as `all_results` keeps its models
    cursor: tuple[object, int] = (END_OF_TIME, MAX_INT)
    while True:
        statement = conn.execute(sql, page_params(filters, cursor, page_size))
        got = 0
        last: Row = ()
        while chunk := statement.fetchmany(FETCH):
            got += len(chunk)
            last = chunk[-1]
            rows += chunk if decode is None else decode(chunk)
            await pace()
        if got < page_size:
            return len(rows)
        cursor = (last[9], last[0])


class LoopSqlite:
    """One sqlite3 connection, used from async functions without ever leaving the loop."""

    name = "sqlite3"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One INSERT ... RETURNING per row, between BEGIN and COMMIT."""
        conn, pace = self.conn, share_loop()
        conn.execute("BEGIN IMMEDIATE")
        for result in results:
            conn.execute(INSERT_SQLITE, params_of(result)).fetchall()
            await pace()
        conn.execute("COMMIT")

    async def save_many(self, results: list[TestResult]) -> None:
        """Multi-row INSERTs of STEP_ROWS rows, yielding between them, in one transaction."""
        conn, pace = self.conn, share_loop()
        full = multi_row_insert_sqlite(STEP_ROWS)
        conn.execute("BEGIN IMMEDIATE")
        for start in range(0, len(results), STEP_ROWS):
            step = results[start : start + STEP_ROWS]
            sql = full if len(step) == STEP_ROWS else multi_row_insert_sqlite(len(step))
            conn.execute(sql, [value for r in step for value in params_of(r)])
            await pace()
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

    async def save_durable(self, results: list[TestResult]) -> None:
        """One INSERT ... RETURNING per row that commits itself (its fsync on the loop)."""
        conn, pace = self.conn, share_loop()
        for result in results:
            conn.execute(INSERT_SQLITE, params_of(result)).fetchall()
            await pace()

    async def get_by_id(self, ids: list[int]) -> int:
        """One SELECT per id, fetched as a raw tuple."""
        conn, pace = self.conn, share_loop()
        found = 0
        for result_id in ids:
            found += len(conn.execute(GET_SQLITE, (result_id,)).fetchall())
            await pace()
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, as raw tuples."""
        return await read_pages(self.conn, LIST_SQLITE, (START_OF_TIME, END_OF_TIME), READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, as raw tuples."""
        sql, filters = listing_of(where)
        return await read_pages(self.conn, sql, filters, page_size)
