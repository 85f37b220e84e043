"""aiosql's adapter for asyncpg: the SQL and record class aiosql gives, and COPY for bulk rows."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import asyncpg
import asyncpg.pool
from aiosql.adapters.asyncpg import AsyncPGAdapter

from persistence._backend import Params, row_picker
from persistence._cancelling import finish_then_cancel
from persistence._changes import report_query
from persistence._codecs import decode_json_text, stored_value_error
from persistence._loader import observed
from persistence._loop import OFF_LOOP_SIZE, SLICE_ITEMS, Pace, map_slices
from persistence.exceptions import ValidationError

if TYPE_CHECKING:
    from persistence._interface import RowMapper
    from persistence._tracing import Observer


PgConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
"""The connection the pool lends: what the loaded queries take as `conn` on PostgreSQL."""
_CopyTarget = tuple[str, tuple[str, ...], tuple[str, ...]]  # a plain INSERT's table, columns, names

_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>\w+)\s*\((?P<columns>[^)]*)\)\s*VALUES\s*\((?P<values>[^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


_Processed = tuple[str, tuple[str, ...], _CopyTarget | None, Callable[[Params], tuple[object, ...]]]
"""A query's SQL with $1, $2..., its parameters in that order, its COPY target, its picker."""

_PROCESSED: dict[tuple[str, str], _Processed] = {}
"""Each query's processing in this process, by its name and its SQL."""


BEGIN_READ_COMMITTED: Final = "BEGIN ISOLATION LEVEL READ COMMITTED"
"""How a transaction of the package's begins: see `connections.ISOLATION`."""


class DeferredJson:
    """A jsonb value past OFF_LOOP_SIZE, as the server sent it: read when its row is mapped.

    asyncpg decodes each value as its row arrives, on the event loop, in one call: 3.5 MB of
    metadata held the loop 250 to 750 ms. Left as bytes there, it is read with its row in a
    worker thread (`_loop.map_slices`), by the same codec.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def read(self) -> object:
        """Read the value as the codec reads every other: checked to the models' rules."""
        return decode_json_text(self.data.decode())


class RefusedJson:
    """A jsonb value that the models refuse, as the codec found it: refused when its row is mapped.

    Refused in the codec, the error could not say which row held it; with its row, it names
    the row's table, column and id (`stored_value_error`), as SQLite's row mappers do.
    """

    __slots__ = ("error",)

    def __init__(self, error: ValidationError) -> None:
        self.error = error

    def __len__(self) -> int:
        return 0  # refused on the loop: nothing to read

    def read(self) -> object:
        """Raise the refusal."""
        raise self.error


class JsonDeferral:
    """Whether a connection's JSON codec now defers values past OFF_LOOP_SIZE, and how many.

    On only while the adapter fetches rows that it maps itself, so that no `DeferredJson`
    reaches a caller's own SQL. A value the models refuse is deferred too (`RefusedJson`).
    """

    __slots__ = ("deferred", "on")

    def __init__(self) -> None:
        self.on = False
        self.deferred = 0

    def decoded(self, data: bytes, start: int) -> object:
        """Give a jsonb value (its text from `start`) read now, or deferred if on and large."""
        if self.on and len(data) > OFF_LOOP_SIZE:
            self.deferred += 1
            return DeferredJson(data[start:])
        try:
            return decode_json_text(data[start:].decode())
        except ValidationError as error:
            if not self.on:
                raise
            self.deferred += 1
            return RefusedJson(error)


_READ_LATER: Final = (DeferredJson, RefusedJson)


def _read_deferred(record: asyncpg.Record, table: str) -> tuple[object, ...]:
    """Give a record's values with each deferred one read: in a worker thread, for a large one.

    A refusal names the row by `table`, the column and the row's id.
    """
    values = list(record.values())
    for index, (column, value) in enumerate(record.items()):
        if type(value) in _READ_LATER:
            try:
                values[index] = value.read()
            except ValidationError as error:
                raise stored_value_error(error, f"{table}.{column}", record.get("id")) from None
    return tuple(values)


async def _mapped(rows_as: RowMapper, records: list[asyncpg.Record]) -> list[object]:
    """Map rows whose values are all read: a page in one call, more a slice at a time.

    Mapped in one call on the loop, 30,000 rows held it about 22 ms, 600,000 rows 170 ms. Each
    value is read already (none past OFF_LOOP_SIZE), so a row takes about a microsecond: a
    page of SLICE_ITEMS well under 1 ms, mapped without `map_slices`' own cost.
    """
    if len(records) <= SLICE_ITEMS:
        return rows_as(records)
    return await map_slices(rows_as, records)


def _reading_deferred(rows_as: RowMapper) -> Callable[[Sequence[asyncpg.Record]], list[object]]:
    """Give a mapper of records that first reads each record's deferred values.

    The row type's table (or query) is in the generated mapper's name, `_postgres_<name>_row`,
    as SQLite's mappers name it.
    """
    table = getattr(rows_as, "__name__", "").removeprefix("_postgres_").removesuffix("_row")
    return lambda part: rows_as([_read_deferred(record, table) for record in part])


def _deferred_of(record: asyncpg.Record) -> DeferredJson | RefusedJson | None:
    """Give a record's first deferred JSON value, past OFF_LOOP_SIZE in length, if it has one."""
    for value in record:
        if type(value) in _READ_LATER:
            return value  # type: ignore[no-any-return]  # one of _READ_LATER
    return None


class PostgresAdapter(AsyncPGAdapter):
    """aiosql's adapter for asyncpg, with row counts as ints and `*!` (sqlc's `:copyfrom`) as COPY.

    Each method goes straight to the connection: aiosql's own look for a pool on every call.
    """

    is_aio_driver = False

    def __init__(
        self, command_timeout: float | None = None, observer: Observer | None = None
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # aiosql's adapters are untyped
        self._copy_targets: dict[str, _CopyTarget] = {}
        self._pickers: dict[str, Callable[[Params], tuple[object, ...]]] = {}
        """Each query's parameter values in its $1, $2... order, by name."""
        self._command_timeout = command_timeout
        self._observer = observer

    def process_sql(self, query_name: str, op_type: object, sql: str) -> str:
        """Rewrite the parameters as $1, $2...; note where a plain INSERT can use COPY.

        The same query gives the same rewriting in every adapter: each is worked out once a
        process (about 3 ms of a PostgreSQL open for all of them), then taken from `_PROCESSED`.
        """
        done = _PROCESSED.get((query_name, sql))
        if done is None:
            done = _PROCESSED[query_name, sql] = self._process(query_name, op_type, sql)
        processed, names, copy_target, picker = done
        self.var_sorted[query_name] = list(names)
        if copy_target is not None:
            self._copy_targets[query_name] = copy_target
        self._pickers[query_name] = picker
        if self._observer is not None:
            self._observer.prepare("postgres", query_name, processed)
        return processed

    def _process(self, query_name: str, op_type: object, sql: str) -> _Processed:
        match = _INSERT.match(sql)
        copy_target = None
        if match:
            columns = tuple(c.strip() for c in match["columns"].split(","))
            values = tuple(v.strip() for v in match["values"].split(","))
            if len(columns) == len(values) and all(v.startswith(":") for v in values):
                copy_target = (match["table"], columns, tuple(v[1:] for v in values))
        processed: str = super().process_sql(query_name, op_type, sql)  # type: ignore[no-untyped-call]  # untyped base
        names = tuple(self.var_sorted[query_name])  # the order aiosql numbered them in
        # One call picks the values in that order; aiosql's maybe_order_params makes two.
        return processed, names, copy_target, row_picker(names)

    def _ordered(self, query_name: str, parameters: Params) -> tuple[object, ...]:
        report_query(query_name)  # the report of a query's written tables: see _changes.py
        return self._pickers[query_name](parameters)

    async def _select(  # as aiosql calls it
        self, conn: PgConnection, name: str, sql: str, params: Params, rows_as: RowMapper | None
    ) -> list[object]:
        if rows_as is None:
            return await conn.fetch(sql, *self._ordered(name, params))  # type: ignore[return-value]  # Records when unmapped
        # A connection that `init_connection` did not set up has none: it reads every value now.
        deferral: JsonDeferral | None = getattr(conn, "json_deferral", None)
        if deferral is None:
            return await _mapped(rows_as, await conn.fetch(sql, *self._ordered(name, params)))
        deferral.on, deferral.deferred = True, 0
        try:
            records = await conn.fetch(sql, *self._ordered(name, params))
        finally:
            deferral.on = False
        if not deferral.deferred:
            return await _mapped(rows_as, records)
        # A row holding JSON of megabytes is read and mapped alone in a worker thread.
        return await map_slices(_reading_deferred(rows_as), records, _deferred_of)

    async def _select_one(  # as aiosql calls it
        self, conn: PgConnection, name: str, sql: str, params: Params, rows_as: RowMapper | None
    ) -> object:
        deferral: JsonDeferral | None = (
            None if rows_as is None else getattr(conn, "json_deferral", None)
        )
        if deferral is None:
            record = await conn.fetchrow(sql, *self._ordered(name, params))
        else:
            deferral.on, deferral.deferred = True, 0
            try:
                record = await conn.fetchrow(sql, *self._ordered(name, params))
            finally:
                deferral.on = False
        if record is None or rows_as is None:
            return record
        if deferral is None or not deferral.deferred:
            return rows_as((record,))[0]
        # As `_select` does: the row of megabytes is read and mapped in a worker thread.
        return (await map_slices(_reading_deferred(rows_as), [record], _deferred_of))[0]

    async def _insert_returning(  # as aiosql calls it
        self, conn: PgConnection, name: str, sql: str, params: Params, _: None
    ) -> object:
        return await conn.fetchval(sql, *self._ordered(name, params))

    async def _insert_update_delete(  # as aiosql calls it
        self, conn: PgConnection, name: str, sql: str, params: Params, _: None
    ) -> int:
        status = await conn.execute(sql, *self._ordered(name, params))
        count = status.rsplit(" ", 1)[-1]
        return int(count) if count.isdigit() else 0

    async def _insert_update_delete_many(  # as aiosql calls it
        self, conn: PgConnection, name: str, sql: str, rows: Sequence[Params], _: None
    ) -> int:
        target = self._copy_targets.get(name)
        report_query(name)  # the report of a query's written tables: see _changes.py
        if target is None:
            await conn.executemany(sql, [self._ordered(name, row) for row in rows])
            return len(rows)
        if len(rows) <= COPY_ROWS or conn.is_in_transaction():
            return await self._copy(conn, target, rows)
        # Each COPY is one statement, bounded by the command timeout: a long list goes in
        # several, inside one transaction, so that it is still all or nothing. Not asyncpg's
        # transaction, whose end waited on a ROLLBACK: a command timeout more on a silent
        # server, and past a caller's cancellation.
        try:
            await conn.execute(BEGIN_READ_COMMITTED)
        except BaseException:
            conn.terminate()  # cut between BEGIN and its answer: the server may have begun it
            raise
        try:
            copied = await self._copy(conn, target, rows)
        except asyncpg.PostgresError:
            raise  # answered: the loan's end rolls the transaction back, within its bound
        except BaseException:
            conn.terminate()  # no answer, or cut mid-COPY: its transaction ends with it
            raise
        await finish_then_cancel(conn.execute("COMMIT"))  # cut short, it could commit later
        return copied

    async def _copy(self, conn: PgConnection, target: _CopyTarget, rows: Sequence[Params]) -> int:
        table, columns, names = target
        record_of = row_picker(names)
        copied = 0
        for start in range(0, len(rows), COPY_ROWS):
            records = _records_in_slices(rows[start : start + COPY_ROWS], record_of)
            try:
                # asyncpg bounds each message of a COPY, not a peer that stops reading.
                async with asyncio.timeout(self._command_timeout):
                    status = await conn.copy_records_to_table(
                        table, records=records, columns=list(columns)
                    )
            except TimeoutError:
                if conn.is_closed():
                    msg = "the connection closed during COPY"
                    raise asyncpg.ConnectionDoesNotExistError(msg) from None
                raise
            copied += int(status.rsplit(" ", 1)[-1])
        return copied

    select = observed(_select, "Give every row, mapped by the record class (sqlc's :many).")

    def select_one(
        self,
        conn: PgConnection,
        query_name: str,
        sql: str,
        parameters: Params,
        record_class: RowMapper | None = None,
    ) -> Coroutine[Any, Any, object]:
        """Give the first row, mapped, or None (:one); written out: `bench/tracing.py` times it."""
        run = self._select_one(conn, query_name, sql, parameters, record_class)
        observer = self._observer
        return run if observer is None else observer.observe(run, query_name, parameters)

    insert_returning = observed(_insert_returning, "Give the RETURNING row's first column.")
    insert_update_delete = observed(
        _insert_update_delete, "Run one statement; give how many rows it changed, by its status."
    )
    insert_update_delete_many = observed(
        _insert_update_delete_many,
        "Load every parameter set, by COPY for a plain INSERT.",
        many=True,
    )


COPY_ROWS = 10_000
"""Rows in one COPY statement: 10,000 results with 2 KB outputs take about 10 s on 2 cores."""


async def _records_in_slices(
    rows: Sequence[Params], record_of: Callable[[Params], tuple[object, ...]]
) -> AsyncIterator[tuple[object, ...]]:
    """Give COPY its records a slice at a time, and the loop back between slices.

    asyncpg encodes a list's records all in one go, on the loop (about 10 ms per 1,000 rows).
    A slice is as long as `Pace` says: a record holding JSON of hundreds of kB takes 10 ms.
    """
    pace = Pace()
    start = 0
    while start < len(rows):
        part = rows[start : start + pace.size]
        for row in part:
            yield record_of(row)
        start += len(part)
        await pace.slice_done(len(part))
