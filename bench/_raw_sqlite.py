"""aiosqlite by hand: the same SQL, parameters converted by hand, rows left as tuples."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import aiosqlite

from bench._sql import GET_SQLITE, INSERT_SQLITE, INSERT_SQLITE_NO_RETURNING, LIST_SQLITE

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = ["RawSqlite", "open_raw_sqlite"]

_END_OF_TIME = "9999-12-31T23:59:59.999999+00:00"
_MAX_INT = 2**63 - 1
_READ_PAGE = 10_000  # all_results reads pages of this size, with the same query


def _params(result: TestResult) -> tuple[Any, ...]:
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
    )


def _register_converters() -> None:
    """Let sqlite3 read the schema's declared types, as a hand-written program would.

    sqlite3 keeps converters per process; the layer itself registers none.
    """
    sqlite3.register_converter(
        "TIMESTAMP_TEXT", lambda raw: dt.datetime.fromisoformat(raw.decode())
    )
    sqlite3.register_converter(
        "JSON_TEXT", lambda raw: {} if raw == b"{}" else json.loads(raw.decode())
    )


def _text(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat(timespec="microseconds")


async def open_raw_sqlite(path: str) -> aiosqlite.Connection:
    """Open the file as the layer does: WAL, full sync, declared types converted by sqlite3."""
    _register_converters()
    conn = await aiosqlite.connect(
        path, isolation_level=None, detect_types=sqlite3.PARSE_DECLTYPES, timeout=5.0
    )
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = FULL")
    await conn.execute("PRAGMA foreign_keys = ON")
    return conn


class RawSqlite:
    """One aiosqlite connection, used the quickest way a careful hand would."""

    name = "raw"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One awaited INSERT ... RETURNING per row (one thread hop), between BEGIN and COMMIT."""
        conn = self.conn
        await conn.execute("BEGIN")
        for result in results:
            await conn.execute_fetchall(INSERT_SQLITE, _params(result))
        await conn.execute("COMMIT")

    async def save_many(self, results: list[TestResult]) -> None:
        """One executemany in one transaction."""
        await self.conn.execute("BEGIN")
        await self.conn.executemany(INSERT_SQLITE_NO_RETURNING, [_params(r) for r in results])
        await self.conn.execute("COMMIT")

    async def get_by_id(self, ids: list[int]) -> int:
        """One awaited SELECT per id, fetched as a tuple."""
        found = 0
        for result_id in ids:
            rows = await self.conn.execute_fetchall(GET_SQLITE, (result_id,))
            found += len(list(rows))
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, fetched as tuples."""
        return await self._pages((None, None, None, None), _READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, fetched as tuples."""
        return await self._pages(
            (
                None if where.test_type is None else where.test_type.value,
                None if where.status is None else where.status.value,
                _text(where.created_from),
                _text(where.created_until),
            ),
            page_size,
        )

    async def _pages(self, filters: tuple[str | None, ...], page_size: int) -> int:
        count = 0
        cursor: tuple[str, int] = (_END_OF_TIME, _MAX_INT)
        while True:
            rows = list(
                await self.conn.execute_fetchall(LIST_SQLITE, (*filters, *cursor, page_size))
            )
            count += len(rows)
            if len(rows) < page_size:
                return count
            last = rows[-1]
            cursor = (_text(last[9]) or "", last[0])
