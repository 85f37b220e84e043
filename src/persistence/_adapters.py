"""aiosql driver adapters that make both engines return the same things, in as few round trips.

aiosql's own adapters differ by driver: `!` gives a row count on aiosqlite but a status
string such as "UPDATE 1" on asyncpg, `<!` gives `lastrowid` on SQLite, and a select on
aiosqlite crosses to the driver's thread three times (execute, fetch, close). These adapters:

- cross to aiosqlite's thread once per call;
- give `!` as an int row count and `<!` as the first column of the RETURNING row;
- run `*!` (sqlc's `:copyfrom`) as one `executemany` on SQLite and as COPY on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiosql.adapters.asyncpg import AsyncPGAdapter

if TYPE_CHECKING:
    import aiosqlite
    import asyncpg

__all__ = [
    "BOOLEAN",
    "JSON_TEXT",
    "TIMESTAMP_TEXT",
    "PostgresAdapter",
    "SqliteAdapter",
    "register_sqlite_types",
]

TIMESTAMP_TEXT = "TIMESTAMP_TEXT"
"""SQLite's declared type for timestamps: UTC ISO 8601 text, read back as an aware datetime."""

JSON_TEXT = "JSON_TEXT"
"""SQLite's declared type for JSON objects: JSON text, read back as a dict."""

BOOLEAN = "BOOLEAN"
"""SQLite's declared type for booleans: stored as 0 or 1, read back as a bool, as typed."""

# Parameters and rows cross the adapters as whatever the drivers take and give.
Params = Mapping[str, Any]


def encode_json(value: object) -> str:
    """Write JSON the same way everywhere: compact, UTF-8, no NaN."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _adapt_datetime(value: dt.datetime) -> str:
    if value.utcoffset() is None:
        msg = f"naive datetime {value} cannot be stored: give it a timezone"
        raise ValueError(msg)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _convert_timestamp(raw: bytes) -> dt.datetime:
    return dt.datetime.fromisoformat(raw.decode())


def _convert_boolean(raw: bytes) -> bool:
    return int(raw) != 0


def _convert_json(raw: bytes) -> object:
    # Most metadata is empty; json.loads on bytes costs about 2 us even for "{}".
    return {} if raw == b"{}" else json.loads(raw.decode())


def register_sqlite_types() -> None:
    """Teach sqlite3 this package's timestamp and JSON columns, both ways.

    sqlite3 keeps adapters and converters in one registry per process. The converters use
    declared types of this package's own (TIMESTAMP_TEXT, JSON_TEXT) and BOOLEAN, which the
    generated interface types as bool; the adapters store
    aware datetimes as fixed-width UTC ISO 8601 text, which sorts in time order, and dicts
    as JSON text. Registering twice is harmless.
    """
    sqlite3.register_adapter(dt.datetime, _adapt_datetime)
    sqlite3.register_adapter(dict, encode_json)
    sqlite3.register_converter(TIMESTAMP_TEXT, _convert_timestamp)
    sqlite3.register_converter(JSON_TEXT, _convert_json)
    sqlite3.register_converter(BOOLEAN, _convert_boolean)


class SqliteAdapter:
    """aiosqlite, one thread hop per call."""

    is_aio_driver = True

    def process_sql(self, _query_name: str, _op_type: object, sql: str) -> str:
        """Keep the SQL: sqlite3 takes `:name` parameters as they are."""
        return sql

    async def select(
        self,
        conn: aiosqlite.Connection,
        _query_name: str,
        sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> AsyncIterator[sqlite3.Row]:
        """Fetch every row in one hop, then hand them out."""
        for row in await conn.execute_fetchall(sql, parameters):
            yield row

    async def select_one(
        self,
        conn: aiosqlite.Connection,
        _query_name: str,
        sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> sqlite3.Row | None:
        """Return the first row, or None."""
        rows = await conn.execute_fetchall(sql, parameters)
        return next(iter(rows), None)

    async def select_value(
        self, conn: aiosqlite.Connection, _query_name: str, sql: str, parameters: Params
    ) -> object:
        """Return the first column of the first row, or None."""
        row = await self.select_one(conn, _query_name, sql, parameters)
        return None if row is None else row[0]

    async def insert_returning(
        self, conn: aiosqlite.Connection, _query_name: str, sql: str, parameters: Params
    ) -> object:
        """Return the first column of the RETURNING row (the new id)."""
        rows = await conn.execute_fetchall(sql, parameters)
        return next(iter(rows))[0]

    async def insert_update_delete(
        self, conn: aiosqlite.Connection, _query_name: str, sql: str, parameters: Params
    ) -> int:
        """Run one statement and return how many rows it changed."""
        cursor = await conn.execute(sql, parameters)
        return cursor.rowcount

    async def insert_update_delete_many(
        self, conn: aiosqlite.Connection, _query_name: str, sql: str, parameters: Iterable[Params]
    ) -> int:
        """Run one statement for every parameter set, in one hop."""
        cursor = await conn.executemany(sql, parameters)
        return cursor.rowcount

    async def execute_script(self, conn: aiosqlite.Connection, sql: str) -> str:
        """Refuse scripts: sqlite3 commits before one, which would break a transaction."""
        msg = "scripts are not supported: they commit any open transaction"
        raise NotImplementedError(msg)


_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>\w+)\s*\((?P<columns>[^)]*)\)\s*VALUES\s*\((?P<values>[^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


class PostgresAdapter(AsyncPGAdapter):
    """asyncpg, with row counts as ints and `*!` as COPY."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # aiosql's adapters are untyped
        self.copy_targets: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {}

    def process_sql(self, query_name: str, op_type: object, sql: str) -> str:
        """Rewrite the parameters as $1, $2...; note where a plain INSERT can use COPY."""
        match = _INSERT.match(sql)
        if match:
            columns = tuple(c.strip() for c in match["columns"].split(","))
            values = tuple(v.strip() for v in match["values"].split(","))
            if len(columns) == len(values) and all(v.startswith(":") for v in values):
                params = tuple(v[1:] for v in values)
                self.copy_targets[query_name] = (match["table"], columns, params)
        processed: str = super().process_sql(query_name, op_type, sql)  # type: ignore[no-untyped-call]  # untyped base
        return processed

    # The calls below go straight to the connection: aiosql's own versions first look for
    # a pool with dir(conn) on every call, and this package always passes a connection.

    def _ordered(self, query_name: str, parameters: Params) -> list[object]:
        ordered: list[object] = self.maybe_order_params(query_name, parameters)  # type: ignore[no-untyped-call]  # untyped base
        return ordered

    async def select(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        query_name: str,
        sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> AsyncIterator[asyncpg.Record]:
        """Fetch every row in one round trip, then hand them out."""
        for row in await conn.fetch(sql, *self._ordered(query_name, parameters)):
            yield row

    async def select_one(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        query_name: str,
        sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> asyncpg.Record | None:
        """Return the first row, or None."""
        return await conn.fetchrow(sql, *self._ordered(query_name, parameters))

    async def insert_returning(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        query_name: str,
        sql: str,
        parameters: Params,
    ) -> object:
        """Return the first column of the RETURNING row (the new id)."""
        return await conn.fetchval(sql, *self._ordered(query_name, parameters))

    async def insert_update_delete(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        query_name: str,
        sql: str,
        parameters: Params,
    ) -> int:
        """Run one statement and return how many rows it changed, parsed from its status."""
        status = await conn.execute(sql, *self._ordered(query_name, parameters))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def insert_update_delete_many(
        self,
        conn: asyncpg.Connection[asyncpg.Record],
        query_name: str,
        sql: str,
        parameters: Sequence[Params],
    ) -> int:
        """Load every parameter set with COPY when the query is a plain INSERT ... VALUES."""
        target = self.copy_targets.get(query_name)
        if target is None:
            await super().insert_update_delete_many(conn, query_name, sql, parameters)  # type: ignore[no-untyped-call]  # untyped base
            return len(parameters)
        table, columns, params = target
        records = [tuple(row[name] for name in params) for row in parameters]
        status = await conn.copy_records_to_table(table, records=records, columns=list(columns))
        return int(status.rsplit(" ", 1)[-1])
