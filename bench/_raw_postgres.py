"""asyncpg by hand: the same SQL, COPY for the batch, rows left as asyncpg Records."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import asyncpg

from bench._contenders import in_tasks
from bench._raw_sqlite import page_params
from bench._sql import (
    COLUMNS,
    GET_POSTGRES,
    INSERT_POSTGRES,
    LIST_BY_TYPE_POSTGRES,
    LIST_POSTGRES,
)
from persistence._paging import READ_PAGE

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = ["RawPostgres", "open_raw_pool", "open_raw_postgres"]

_START_OF_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)
_END_OF_TIME = dt.datetime.max.replace(tzinfo=dt.UTC)
_MAX_INT = 2**63 - 1
_READ_PAGE = READ_PAGE  # all_results reads pages of this size, with the same query


def _encode_jsonb(value: object) -> bytes:
    return b"\x01" + json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _decode_jsonb(data: bytes) -> object:
    return json.loads(data[1:])


async def _set_codecs(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


async def open_raw_postgres(url: str) -> asyncpg.Connection[asyncpg.Record]:
    """Connect once, with a binary jsonb codec so metadata reads and writes as dicts."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(url)
    await _set_codecs(conn)
    return conn


async def open_raw_pool(url: str, size: int) -> asyncpg.Pool[asyncpg.Record]:
    """Open a pool of `size` connections (the layer's pool size), each with the jsonb codec."""
    pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(
        url, min_size=size, max_size=size, init=_set_codecs
    )
    return pool


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
        result.created_at,
        result.metadata,
        result.run_id,
        result.test_id,
    )


class RawPostgres:
    """One asyncpg connection, and a pool for the concurrent tasks, used the quickest way."""

    name = "asyncpg"

    def __init__(
        self, conn: asyncpg.Connection[asyncpg.Record], pool: asyncpg.Pool[asyncpg.Record]
    ) -> None:
        self.conn = conn
        self.pool = pool

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One `fetchval` of INSERT ... RETURNING id per row, in one transaction."""
        async with self.conn.transaction():
            for result in results:
                await self.conn.fetchval(INSERT_POSTGRES, *_params(result))

    async def save_many(self, results: list[TestResult]) -> None:
        """One `copy_records_to_table` in one transaction."""
        async with self.conn.transaction():
            await self.conn.copy_records_to_table(
                "test_results", records=[_params(r) for r in results], columns=list(COLUMNS)
            )

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: `pool.fetchval` of INSERT ... RETURNING id, which commits itself."""
        pool = self.pool

        async def save(result: TestResult) -> object:
            return await pool.fetchval(INSERT_POSTGRES, *_params(result))

        await in_tasks(batches, save)

    async def save_durable(self, results: list[TestResult]) -> None:
        """One `fetchval` of INSERT ... RETURNING id per row, each its own commit."""
        for result in results:
            await self.conn.fetchval(INSERT_POSTGRES, *_params(result))

    async def get_by_id(self, ids: list[int]) -> int:
        """One `fetchrow` per id."""
        found = 0
        for result_id in ids:
            row = await self.conn.fetchrow(GET_POSTGRES, result_id)
            found += row is not None
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, fetched as Records."""
        return await self._pages(LIST_POSTGRES, (_START_OF_TIME, _END_OF_TIME), _READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, fetched as Records.

        Like the layer, a type filter goes through ListTestResultsByType and unset time
        bounds are the start and end of time. The benchmark's filter sets no other field.
        """
        if where.status is not None or where.statuses or where.metadata:
            msg = "the hand-written listing covers a type and a time range only"
            raise NotImplementedError(msg)
        bounds = (where.created_from or _START_OF_TIME, where.created_until or _END_OF_TIME)
        types = [t.value for t in where.test_types or ()] or (
            [] if where.test_type is None else [where.test_type.value]
        )
        if types:
            return await self._pages(LIST_BY_TYPE_POSTGRES, (types, *bounds), page_size)
        return await self._pages(LIST_POSTGRES, bounds, page_size)

    async def _pages(self, sql: str, filters: tuple[object, ...], page_size: int) -> int:
        kept: list[asyncpg.Record] = []  # kept to the end, as `all_results` keeps its models
        cursor: tuple[dt.datetime, int] = (_END_OF_TIME, _MAX_INT)
        while True:
            rows = await self.conn.fetch(sql, *page_params(filters, cursor, page_size))
            kept += rows
            if len(rows) < page_size:
                return len(kept)
            last = rows[-1]
            cursor = (last["created_at"], last["id"])
