"""SQLite by hand: aiosqlite, and the conversions that every hand-written SQLite contender shares.

Same SQL as the layer, parameters converted from the models by hand, rows left as tuples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import aiosqlite

from bench._contenders import in_tasks
from bench._sql import (
    GET_SQLITE,
    INSERT_SQLITE,
    INSERT_SQLITE_NO_RETURNING,
    LIST_BY_TYPE_SQLITE,
    LIST_SQLITE,
)
from persistence._paging import READ_PAGE as LAYER_READ_PAGE
from persistence._paging import upper_bounds

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = [
    "END_OF_TIME",
    "MAX_INT",
    "READ_PAGE",
    "START_OF_TIME",
    "RawSqlite",
    "listing_of",
    "open_raw_sqlite",
    "page_params",
    "params_of",
    "register_converters",
    "text_of",
]

END_OF_TIME: Final = "9999-12-31T23:59:59.999999+00:00"
"""The keyset cursor before the first page: later than any stored time."""
MAX_INT: Final = 2**63 - 1
READ_PAGE: Final = LAYER_READ_PAGE
"""`all_results` reads pages of this size, with the listing query."""


def page_params(
    filters: Sequence[object], cursor: tuple[object, int], page_size: int
) -> tuple[object, ...]:
    """Give one keyset page's parameters, with the upper bounds the layer gives the same page.

    `filters` ends with the listing's exclusive upper time bound; times are ISO 8601 text or
    datetimes, and come back as they were given. Like the layer (`upper_bounds`), the bound goes
    into the cursor when it is the tighter, so that SQLite's scan starts at the page.
    """
    *rest, until = filters
    as_text = isinstance(until, str)
    at, row_id = upper_bounds(_moment(until), _moment(cursor[0]), cursor[1])
    if as_text:
        return (*rest, text_of(at), row_id, page_size)
    return (*rest, at, row_id, page_size)


def _moment(value: object) -> dt.datetime:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]  # a datetime when not text


def params_of(result: TestResult) -> tuple[Any, ...]:
    """Convert a model to the insert's parameters by hand: enum values, ISO text, JSON text."""
    return (
        result.test_type.value,
        result.status.value,
        result.execution_time,
        result.memory_usage,
        result.test_cases_passed,
        result.test_cases_total,
        result.error_message,
        result.output,
        result.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        json.dumps(result.metadata, ensure_ascii=False, allow_nan=False, separators=(",", ":")),
        result.run_id,
        result.test_id,
    )


def register_converters() -> None:
    """Let sqlite3 read the schema's declared types, as a hand-written program would.

    sqlite3 keeps converters per process; the layer itself registers none.
    """
    sqlite3.register_converter(
        "TIMESTAMP_TEXT", lambda raw: dt.datetime.fromisoformat(raw.decode())
    )
    sqlite3.register_converter(
        "JSON_TEXT", lambda raw: {} if raw == b"{}" else json.loads(raw.decode())
    )


def text_of(value: dt.datetime | None) -> str | None:
    """Write a datetime parameter as the schema stores it: UTC ISO 8601 text."""
    return None if value is None else value.astimezone(dt.UTC).isoformat(timespec="microseconds")


START_OF_TIME = "0001-01-01T00:00:00.000000+00:00"


def listing_of(where: ResultFilter) -> tuple[str, tuple[str, ...]]:
    """Give the SQL the layer runs for `where`, and its parameters before the cursor.

    Like the layer, a type filter goes through ListTestResultsByType and unset time
    bounds are the start and end of time. The benchmark's filter sets no other field.
    """
    if where.status is not None or where.statuses or where.metadata:
        msg = "the hand-written listing covers a type and a time range only"
        raise NotImplementedError(msg)
    bounds = (
        text_of(where.created_from) or START_OF_TIME,
        text_of(where.created_until) or END_OF_TIME,
    )
    types = [t.value for t in where.test_types or ()] or (
        [] if where.test_type is None else [where.test_type.value]
    )
    if types:
        return LIST_BY_TYPE_SQLITE, (json.dumps(types), *bounds)
    return LIST_SQLITE, bounds


async def open_raw_sqlite(path: str) -> aiosqlite.Connection:
    """Open the file as the layer does: WAL, full sync, declared types converted by sqlite3."""
    register_converters()
    conn = await aiosqlite.connect(
        path, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES, timeout=5.0
    )
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


class RawSqlite:
    """One aiosqlite connection, used the quickest way a careful hand would."""

    name = "aiosqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One awaited INSERT ... RETURNING per row (one thread hop), between BEGIN and COMMIT."""
        conn = self.conn
        await conn.execute("BEGIN")
        for result in results:
            await conn.execute_fetchall(INSERT_SQLITE, params_of(result))
        await conn.execute("COMMIT")

    async def save_many(self, results: list[TestResult]) -> None:
        """One executemany in one transaction."""
        await self.conn.execute("BEGIN")
        await self.conn.executemany(INSERT_SQLITE_NO_RETURNING, [params_of(r) for r in results])
        await self.conn.execute("COMMIT")

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: take the lock, then one INSERT ... RETURNING that commits itself.

        The connection is in autocommit mode, so the insert and its commit (with its
        fsync) are one call and one hop to aiosqlite's thread. The lock keeps the tasks'
        statements apart on the shared connection, as a careful hand would.
        """
        conn = self.conn
        lock = asyncio.Lock()

        async def save(result: TestResult) -> object:
            async with lock:
                rows = list(await conn.execute_fetchall(INSERT_SQLITE, params_of(result)))
            return rows[0][0]

        await in_tasks(batches, save)

    async def save_durable(self, results: list[TestResult]) -> None:
        """One awaited INSERT ... RETURNING per row that commits itself (autocommit)."""
        conn = self.conn
        for result in results:
            await conn.execute_fetchall(INSERT_SQLITE, params_of(result))

    async def get_by_id(self, ids: list[int]) -> int:
        """One awaited SELECT per id, fetched as a tuple."""
        found = 0
        for result_id in ids:
            rows = await self.conn.execute_fetchall(GET_SQLITE, (result_id,))
            found += len(list(rows))
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, fetched as tuples."""
        return await self._pages(LIST_SQLITE, (START_OF_TIME, END_OF_TIME), READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, fetched as tuples."""
        return await self._pages(*listing_of(where), page_size)

    async def _pages(self, sql: str, filters: tuple[str, ...], page_size: int) -> int:
        kept: list[object] = []  # kept to the end, as `all_results` keeps its models
        cursor: tuple[str, int] = (END_OF_TIME, MAX_INT)
        while True:
            params = page_params(filters, cursor, page_size)
            rows = list(await self.conn.execute_fetchall(sql, params))
            kept += rows
            if len(rows) < page_size:
                return len(kept)
            last = rows[-1]
            cursor = (text_of(last[9]) or "", last[0])
