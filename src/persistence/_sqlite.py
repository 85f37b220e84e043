"""SQLite: short statements on the event loop, anything that can take long off it.

Crossing to a driver thread costs about as much as a short SQLite statement itself, so
this backend calls `sqlite3` directly from the event loop and keeps for worker threads
only what can take long:

- the fsync of a commit (`synchronous = FULL`);
- bulk writes, and reads that run past the loop budget (a progress handler interrupts
  them on the loop; they are read again in a thread, on a reader connection of their own);
- waiting for a lock that another process holds: BEGIN IMMEDIATE is tried without
  waiting, then again after short sleeps, so the loop never blocks and a cancelled wait
  leaves nothing behind.

Writes go through one writer connection. Outside `transaction()`, single-call writes
that arrive together share a commit (group commit): a runner task opens one transaction,
runs each queued write on the loop, then commits once; each caller returns after that
commit is durable, and a write that fails fails alone. A transaction takes the writer
for its whole block, queued in turn with the batches.

Reads outside transactions use a reader connection: in WAL mode they see the last commit
and never wait for the writer. Inside a transaction every statement uses the writer, so
the block sees its own writes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import enum
import functools
import hashlib
import json
import math
import mmap
import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

import attrs

from persistence._backend import Engine, finish_then_cancel
from persistence._changes import report_query
from persistence._loader import load_queries
from persistence._loop import SLICE_ITEMS, gave_back, share_loop
from persistence.exceptions import (
    ConflictError,
    DatabaseError,
    MigrationError,
    PersistenceError,
    QueryInterfaceError,
    ValidationError,
)
from persistence.queries import QUERY_SHAPES

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries

__all__ = [
    "LOOP_BUDGET",
    "ChangeStamp",
    "SqliteAdapter",
    "SqliteBackend",
    "SqliteSession",
    "encode_datetime",
    "encode_json",
    "open_sqlite",
    "split_sqlite",
]

_T = TypeVar("_T")

LOOP_BUDGET: Final = 0.001
"""Seconds a read may run on the event loop before it is interrupted and run in a thread."""

_PROGRESS_STEPS: Final = 1000
"""SQLite virtual-machine steps between two looks at the loop budget."""

_BATCH_LIMIT: Final = 1000
"""The most single-call writes that share one commit."""

_LOCK_POLL: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
"""Sleeps between tries of BEGIN IMMEDIATE while another process holds the write lock."""

_ROWS_PER_INSERT: Final = 500
"""The most rows one statement of a bulk insert writes.

A bulk insert is a few multi-row INSERT statements rather than one per row: each statement
of a transaction opens a savepoint, and at each savepoint FTS5 writes out what it has
indexed so far, so that a trigger-maintained index would cost a segment per row.
"""

# Rows and parameters cross the driver as whatever sqlite3 takes and gives.
Params = Mapping[str, Any]
Row = Any


class _Mode(enum.Enum):
    ROWS = "rows"
    ROW = "row"
    VALUE = "value"
    COUNT = "count"
    MANY = "many"


# Codecs: this package's own, applied per query. sqlite3's adapter and converter
# registries are process-wide, so they stay untouched.


def encode_datetime(value: dt.datetime) -> str:
    """Store an aware datetime as fixed-width UTC ISO 8601 text, which sorts in time order."""
    if value.utcoffset() is None:
        raise ValidationError("query", "datetime", f"naive datetime {value} cannot be stored")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def encode_json(value: object) -> str:
    """Write JSON the same way everywhere: compact, UTF-8, no NaN."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _decode_datetime(raw: object) -> object:
    return dt.datetime.fromisoformat(raw) if isinstance(raw, str) else raw


def _decode_json(raw: object) -> object:
    # Most metadata is empty; json.loads costs about 1 us even for "{}".
    if raw == "{}":
        return {}
    return json.loads(raw) if isinstance(raw, str) else raw


def _decode_bool(raw: object) -> object:
    return bool(raw) if isinstance(raw, int) else raw


def _encode_json_param(value: object) -> object:
    return value if value is None else encode_json(value)


def _encode_datetime_param(value: object) -> object:
    if isinstance(value, dt.datetime):
        return encode_datetime(value)
    return value


_DECODERS: Final[dict[str, Callable[[object], object]]] = {
    "datetime": _decode_datetime,
    "json": _decode_json,
    "list": _decode_json,
    "bool": _decode_bool,
}
_ENCODERS: Final[dict[str, Callable[[object], object]]] = {
    "datetime": _encode_datetime_param,
    "json": _encode_json_param,
    "list": _encode_json_param,
}


@attrs.define(slots=True)
class _RowsInsert:
    """A plain `INSERT INTO t (cols) VALUES (:a, :b, ...)`, written for many rows at once."""

    head: str
    names: tuple[str, ...]
    _sql: dict[int, str] = attrs.field(factory=dict)

    def sql(self, rows: int) -> str:
        """Give the statement that inserts `rows` rows, with positional parameters."""
        sql = self._sql.get(rows)
        if sql is None:
            row = "(" + ", ".join("?" * len(self.names)) + ")"
            sql = self._sql[rows] = self.head + ", ".join([row] * rows)
        return sql


@attrs.define(slots=True)
class _Plan:
    """How to run one query on SQLite: its SQL, codecs, row type and where it may run."""

    name: str
    sql: str
    writes: bool
    encoders: tuple[tuple[str, Callable[[object], object]], ...]
    decode: Callable[[list[tuple[object, ...]]], list[object]] | None
    """Turns the tuples sqlite3 gives into the generated row type, by position."""
    columns: tuple[str, ...]
    rows_insert: _RowsInsert | None = None
    """The multi-row form of a plain INSERT, for bulk writes."""
    many: bool = False
    """Whether the query is sqlc's :many: its call gives every row as a list."""
    checked: bool = False
    """Whether the query's columns were compared with the generated ones yet."""

    def encode(self, params: Params) -> Params:
        if not self.encoders:
            return params
        encoded = dict(params)
        for name, encoder in self.encoders:
            if name in encoded:
                encoded[name] = encoder(encoded[name])
        return encoded

    def check(self, cursor: sqlite3.Cursor) -> None:
        """Refuse to decode rows whose columns are not the generated row's, in order."""
        self.checked = True
        if self.decode is None or cursor.description is None:
            return
        actual = tuple(column[0] for column in cursor.description)
        if actual != self.columns:
            self.checked = False
            raise QueryInterfaceError(
                f"query {self.name} returns columns {actual}, but the generated interface "
                f"expects {self.columns}: run 'make generate'"
            )


_INSERT = re.compile(
    r"^\s*(?P<head>INSERT\s+INTO\s+\w+\s*\([^)]*\)\s*VALUES)\s*\((?P<values>[^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LEADING_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(\w+)", re.DOTALL)
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL)
_WRITE_WORDS = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _writes(sql: str) -> bool:
    """Tell whether a statement may change the database: anything but a plain SELECT."""
    match = _LEADING_WORD.match(sql)
    first = match[1].upper() if match else ""
    if first == "SELECT":
        return False
    if first == "WITH":
        return _WRITE_WORDS.search(sql) is not None
    return True


def _plan(query_name: str, sql: str) -> _Plan:
    """Work out a query's codecs and row decoder from its generated shape."""
    shape = QUERY_SHAPES.get(query_name)
    if shape is None:  # a query of another folder, loaded on its own: rows as sqlite3 gives them
        return _Plan(query_name, sql, _writes(sql), (), None, ())
    encoders = tuple(
        (name, _ENCODERS[kind])
        for name, kind in zip(shape.parameters, shape.parameter_kinds, strict=False)
        if kind in _ENCODERS
    )
    decode = None
    if shape.row is not None:
        decode = _row_decoder(shape.row, shape.column_kinds or ("",) * len(shape.columns))
    return _Plan(
        query_name,
        sql,
        _writes(sql),
        encoders,
        decode,
        shape.columns,
        _rows_insert(sql),
        many=shape.command == ":many",
    )


def _rows_insert(sql: str) -> _RowsInsert | None:
    """Read a plain INSERT whose values are all parameters; None for any other statement."""
    match = _INSERT.match(sql)
    if match is None:
        return None
    values = [value.strip() for value in match["values"].split(",")]
    if not all(value.startswith(":") and value[1:].isidentifier() for value in values):
        return None
    return _RowsInsert(" ".join(match["head"].split()) + " ", tuple(v[1:] for v in values))


def _insert_rows(
    conn: sqlite3.Connection, cursor: sqlite3.Cursor, plan: _Plan, rows: Sequence[Params]
) -> int:
    """Insert many rows, already encoded, with a few multi-row statements; give how many."""
    insert = plan.rows_insert
    assert insert is not None  # noqa: S101  # only called for plans that have one
    names = insert.names
    per_statement = max(
        1,
        min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names)),
    )
    inserted = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values: list[object] = []
        for row in chunk:
            try:
                values.extend(row[name] for name in names)
            except KeyError as missing:
                msg = f"You did not supply a value for binding parameter :{missing.args[0]}."
                raise sqlite3.ProgrammingError(msg) from None
        cursor.execute(insert.sql(len(chunk)), values)
        inserted += cursor.rowcount
    return inserted


def _row_decoder(
    row: type, kinds: tuple[str, ...]
) -> Callable[[list[tuple[object, ...]]], list[object]]:
    """Build the decoder of one row type: by position, each column through its codec.

    It is compiled from the column kinds once, as attrs compiles `__init__`, into one list
    comprehension over the tuples sqlite3 fetched: a loop over the columns, or a row
    factory called from sqlite3 for each row, costs about as much again.
    """
    scope: dict[str, object] = {"_new": tuple.__new__, "_row": row}
    values = []
    for index, kind in enumerate(kinds):
        decoder = _DECODERS.get(kind)
        if decoder is None:
            values.append(f"r[{index}]")
        else:
            scope[f"_decode{index}"] = decoder
            values.append(f"_decode{index}(r[{index}])")
    source = f"lambda rows: [_new(_row, ({', '.join(values)},)) for r in rows]"
    decode: Callable[[list[tuple[object, ...]]], list[object]] = eval(source, scope)  # noqa: S307  # compiled from the generated column kinds only
    return decode


def _execute(
    conn: sqlite3.Connection, plan: _Plan, params: Any, mode: _Mode, *, decode: bool = True
) -> Any:
    """Run one query to its end and give what its command returns.

    `MANY` takes parameters already encoded. Without `decode`, rows come back as the
    tuples sqlite3 gives, for the loop to decode in slices.
    """
    cursor = conn.cursor()
    try:
        if mode is _Mode.MANY:
            if plan.rows_insert is not None:
                return _insert_rows(conn, cursor, plan, params)
            cursor.executemany(plan.sql, params)
            return cursor.rowcount
        cursor.execute(plan.sql, plan.encode(params))
        if not plan.checked:
            plan.check(cursor)
        if mode is _Mode.COUNT:
            return cursor.rowcount
        rows = cursor.fetchall()
        if decode and plan.decode is not None and mode is not _Mode.VALUE:
            rows = plan.decode(rows)
        return _pick(rows, mode)
    finally:
        cursor.close()


def _pick(rows: list[Any], mode: _Mode) -> Any:
    """Give what a command returns from its rows: all of them, the first, or its first value."""
    if mode is _Mode.ROWS:
        return rows
    if mode is _Mode.ROW:
        return rows[0] if rows else None
    return rows[0][0] if rows else None


class _Budget:
    """The progress handler that interrupts a read running past the loop budget."""

    __slots__ = ("deadline", "tripped")

    def __init__(self) -> None:
        self.deadline = math.inf
        self.tripped = False

    def __call__(self) -> int:
        if time.perf_counter() > self.deadline:
            self.tripped = True
            return 1
        return 0

    def arm(self) -> None:
        self.tripped = False
        self.deadline = time.perf_counter() + LOOP_BUDGET

    def disarm(self) -> None:
        self.deadline = math.inf


def _retry_elsewhere(error: sqlite3.OperationalError, budget: _Budget) -> bool:
    """Tell whether a read failed on the loop only because it was slow or had to wait."""
    return budget.tripped or _is_busy(error)


def _is_busy(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


@attrs.define(eq=False)
class _Write:
    """One single-call write waiting for a batch."""

    plan: _Plan
    params: Any
    mode: _Mode
    future: asyncio.Future[Any]


@attrs.define(eq=False)
class _Lease:
    """A request for the writer connection by a transaction."""

    granted: asyncio.Future[None]
    released: asyncio.Future[None]

    def release(self) -> None:
        if not self.released.done():
            self.released.set_result(None)


class SqliteSession:
    """What the loaded queries take as `conn` on SQLite.

    Outside a transaction, reads go to a reader and writes to the group-commit queue;
    inside one, everything runs on the writer.
    """

    __slots__ = ("_backend", "_in_transaction")

    def __init__(self, backend: SqliteBackend, *, in_transaction: bool) -> None:
        self._backend = backend
        self._in_transaction = in_transaction

    async def run(self, plan: _Plan, params: Any, mode: _Mode) -> Any:
        """Run one query where this session runs it."""
        backend = self._backend
        report_query(plan.name)  # the one report of a query's written tables: see _changes.py
        if mode is _Mode.MANY:
            params = await backend.encode_many(plan, params)
        if self._in_transaction:
            return await backend.run_in_transaction(plan, params, mode)
        if plan.writes or mode is _Mode.MANY:
            return await backend.queue_write(plan, params, mode)
        return await backend.read(plan, params, mode)


class SqliteAdapter:
    """The aiosql adapter: each call goes to the session, which knows where it runs."""

    is_aio_driver = True

    def __init__(self) -> None:
        self._plans: dict[str, _Plan] = {}

    def process_sql(self, query_name: str, _op_type: object, sql: str) -> str:
        """Keep the SQL (sqlite3 takes `:name` parameters) and plan the query's codecs."""
        self._plans[query_name] = _plan(query_name, sql)
        return sql

    async def select_one(
        self,
        conn: SqliteSession,
        query_name: str,
        _sql: str,
        parameters: Params,
        _record_class: object = None,
    ) -> Row | list[Row] | None:
        """Return every row of a :many query, else the first row or None."""
        plan = self._plans[query_name]
        return await conn.run(plan, parameters, _Mode.ROWS if plan.many else _Mode.ROW)

    async def select_value(
        self, conn: SqliteSession, query_name: str, _sql: str, parameters: Params
    ) -> object:
        """Return the first column of the first row, or None."""
        return await conn.run(self._plans[query_name], parameters, _Mode.VALUE)

    async def insert_returning(
        self, conn: SqliteSession, query_name: str, _sql: str, parameters: Params
    ) -> object:
        """Return the first column of the RETURNING row (the new id)."""
        return await conn.run(self._plans[query_name], parameters, _Mode.VALUE)

    async def insert_update_delete(
        self, conn: SqliteSession, query_name: str, _sql: str, parameters: Params
    ) -> int:
        """Run one statement and return how many rows it changed."""
        count: int = await conn.run(self._plans[query_name], parameters, _Mode.COUNT)
        return count

    async def insert_update_delete_many(
        self, conn: SqliteSession, query_name: str, _sql: str, parameters: Iterable[Params]
    ) -> int:
        """Run one statement for every parameter set, all or none, in a thread."""
        count: int = await conn.run(self._plans[query_name], list(parameters), _Mode.MANY)
        return count

    async def execute_script(self, _conn: SqliteSession, _sql: str) -> str:
        """Refuse scripts: the migration runner runs them statement by statement."""
        msg = "scripts are not supported as queries"
        raise NotImplementedError(msg)


def _connect(target: str, *, uri: bool, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(
        target,
        timeout=timeout,
        isolation_level=None,  # this package opens and ends every transaction itself
        check_same_thread=False,  # used from the loop and from worker threads, one at a time
        uri=uri,
        cached_statements=256,
    )


class SqliteBackend:
    """One SQLite file: a writer, a reader on the loop, and readers for worker threads."""

    engine = Engine.SQLITE

    def __init__(
        self,
        queries: Queries,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        open_reader: Callable[[], sqlite3.Connection],
        *,
        busy_timeout: float,
        path: str = "",
    ) -> None:
        self._path = path
        self._queries = queries
        self._writer = writer
        self._reader = reader
        self._open_reader = open_reader
        self._busy_timeout = busy_timeout
        self._writer_budget = _Budget()
        self._reader_budget = _Budget()
        writer.set_progress_handler(self._writer_budget, _PROGRESS_STEPS)
        reader.set_progress_handler(self._reader_budget, _PROGRESS_STEPS)
        self._thread_readers: list[sqlite3.Connection] = []
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="persistence-sqlite")
        self._queue: collections.deque[_Write | _Lease] = collections.deque()
        self._runner: asyncio.Task[None] | None = None
        self._autocommit = SqliteSession(self, in_transaction=False)
        self._transaction = SqliteSession(self, in_transaction=True)
        self._closed = False

    @property
    def queries(self) -> Queries:
        """The loaded queries."""
        return self._queries

    # Lending: a session object; nothing to acquire.

    def lend(self) -> _Lent:
        """Lend the session that sends each statement where it belongs."""
        if self._closed:
            raise DatabaseError("the SQLite database is closed")
        return _Lent(self._autocommit)

    # Threads.

    async def _in_thread(self, function: Callable[..., _T], *args: object) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    # Reads outside transactions.

    async def encode_many(self, plan: _Plan, params: Iterable[Params]) -> list[Params]:
        """Encode a bulk write's parameters on the loop, a slice at a time."""
        encoded: list[Params] = []
        for item in params:
            encoded.append(plan.encode(item))
            if len(encoded) % SLICE_ITEMS == 0:
                await share_loop()
        return encoded

    async def _decoded(self, plan: _Plan, picked: Any, mode: _Mode) -> Any:
        """Decode what an undecoded `_execute` gave, on the loop, a slice of rows at a time."""
        decode = plan.decode
        if decode is None or mode in {_Mode.VALUE, _Mode.COUNT, _Mode.MANY}:
            return picked
        if mode is _Mode.ROW:
            return None if picked is None else decode([picked])[0]
        if len(picked) <= SLICE_ITEMS:
            return decode(picked)
        decoded: list[Any] = []
        for start in range(0, len(picked), SLICE_ITEMS):
            decoded += decode(picked[start : start + SLICE_ITEMS])
            await share_loop()
        return decoded

    async def read(self, plan: _Plan, params: Any, mode: _Mode) -> Any:
        """Read on the loop; if it runs long or must wait, read again in a thread.

        Rows are decoded afterwards on the loop, a slice at a time.
        """
        await share_loop()
        budget = self._reader_budget
        budget.arm()
        try:
            picked = _execute(self._reader, plan, params, mode, decode=False)
        except sqlite3.OperationalError as error:
            if not _retry_elsewhere(error, budget):
                raise
            budget.disarm()
            picked = await self._read_in_thread(plan, params, mode)
        finally:
            budget.disarm()
        return await self._decoded(plan, picked, mode)

    async def _read_in_thread(self, plan: _Plan, params: Any, mode: _Mode) -> Any:
        reader = self._thread_readers.pop() if self._thread_readers else None
        if reader is None:
            reader = await self._in_thread(self._open_reader)
        run = functools.partial(_execute, reader, plan, params, mode, decode=False)
        work = asyncio.ensure_future(self._in_thread(run))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            reader.interrupt()  # the read stops at its next step; the reader is reused after
            raise
        finally:
            work.add_done_callback(lambda done: self._give_back(reader, done))

    def _give_back(self, reader: sqlite3.Connection, done: asyncio.Future[Any]) -> None:
        if not done.cancelled():
            done.exception()  # read, so that an abandoned read is not reported as lost
        if self._closed:
            reader.close()
        else:
            self._thread_readers.append(reader)

    # Statements inside a transaction: the writer, which the transaction holds.

    async def run_in_transaction(self, plan: _Plan, params: Any, mode: _Mode) -> Any:
        """Run on the loop; bulk writes, and reads past the budget, in a thread."""
        writer = self._writer
        if mode is _Mode.MANY:
            return await finish_then_cancel(self._in_thread(_savepointed, writer, plan, params))
        await share_loop()
        if plan.writes:
            return _execute(writer, plan, params, mode)
        budget = self._writer_budget
        budget.arm()
        try:
            picked = _execute(writer, plan, params, mode, decode=False)
        except sqlite3.OperationalError:
            if not budget.tripped:
                raise
            budget.disarm()
            run = functools.partial(_execute, writer, plan, params, mode, decode=False)
            picked = await finish_then_cancel(self._in_thread(run))
        finally:
            budget.disarm()
        return await self._decoded(plan, picked, mode)

    # Single-call writes: the group-commit queue.

    async def queue_write(self, plan: _Plan, params: Any, mode: _Mode) -> Any:
        """Queue a write for the next batch; return once the batch has committed."""
        if self._closed:
            raise DatabaseError("the SQLite database is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(plan, params, mode, future))
        self._wake()
        return await future

    def _wake(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run_queue())

    async def _run_queue(self) -> None:
        try:
            while True:
                await asyncio.sleep(0)  # callers woken by the last commit queue their next write
                if not self._queue:
                    return
                head = self._queue[0]
                if isinstance(head, _Lease):
                    self._queue.popleft()
                    if head.granted.done():
                        continue  # its transaction was cancelled while waiting
                    head.granted.set_result(None)
                    await head.released
                    continue
                await self._run_batch()
        finally:
            self._runner = None

    async def _run_batch(self) -> None:
        """Open a transaction, run the queued writes in it, and commit them all at once."""
        writer = self._writer
        try:
            await self._begin_immediate(self._busy_timeout)
        except Exception as error:  # noqa: BLE001  # handed to every waiting caller
            self._fail_waiting(error)
            return
        done = await self._run_queued(writer)
        if done is None:
            return
        try:
            await self._in_thread(writer.execute, "COMMIT")
        except Exception as error:  # noqa: BLE001  # every write of the batch failed with it
            if writer.in_transaction:
                writer.execute("ROLLBACK")
            for item, _ in done:
                _fail(item, error)
            return
        for item, outcome in done:
            if not item.future.done():
                item.future.set_result(outcome)

    async def _run_queued(self, writer: sqlite3.Connection) -> list[tuple[_Write, object]] | None:
        """Run queued writes up to the next transaction; None if SQLite rolled them all back."""
        done: list[tuple[_Write, object]] = []
        while self._queue and len(done) < _BATCH_LIMIT:
            item = self._queue[0]
            if isinstance(item, _Lease):
                break
            self._queue.popleft()
            if item.future.done():
                continue  # cancelled before it ran: it never runs
            try:
                if item.mode is _Mode.MANY:
                    result: object = await self._in_thread(
                        _savepointed, writer, item.plan, item.params
                    )
                else:
                    result = _execute(writer, item.plan, item.params, item.mode)
            except Exception as error:  # noqa: BLE001  # handed to its caller alone
                _fail(item, error)
                if not writer.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error).
                    for earlier, _ in done:
                        _fail(earlier, error)
                    return None
                continue
            done.append((item, result))
            if not self._queue:
                await asyncio.sleep(0)  # let tasks that are ready join this commit
                gave_back()
            else:
                await share_loop()
        return done

    def _fail_waiting(self, error: BaseException) -> None:
        while self._queue:
            item = self._queue[0]
            if not isinstance(item, _Write):
                return
            self._queue.popleft()
            _fail(item, error)

    async def _begin_immediate(self, wait: float) -> None:
        """Take the write lock, sleeping between tries while another process holds it."""
        deadline = time.monotonic() + wait
        for attempt in range(1_000_000):
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    if _is_busy(error):
                        raise DatabaseError(
                            f"SQLite: the database is locked: another connection held the "
                            f"write lock for over {wait:g}s"
                        ) from error
                    raise
                await asyncio.sleep(_LOCK_POLL[min(attempt, len(_LOCK_POLL) - 1)])
            else:
                return

    # Transactions.

    async def _lease(self) -> _Lease:
        """Wait for the writer: after the batches and transactions queued before."""
        loop = asyncio.get_running_loop()
        lease = _Lease(loop.create_future(), loop.create_future())
        self._queue.append(lease)
        self._wake()
        try:
            await lease.granted
        except asyncio.CancelledError:
            if lease.granted.done() and not lease.granted.cancelled():
                lease.release()  # granted just as the wait was cancelled
            else:
                lease.granted.cancel()
            raise
        return lease

    def begin(self) -> contextlib.AbstractAsyncContextManager[SqliteSession]:
        """Open a transaction that holds the write lock from BEGIN IMMEDIATE to its end."""
        return self._transaction_block(self._busy_timeout, migration=False)

    def migration(
        self, lock_timeout: float
    ) -> contextlib.AbstractAsyncContextManager[SqliteSession]:
        """Open a migration's transaction: the write lock, waited on for `lock_timeout`.

        Foreign keys are off for its length, so that SQLite's table-rebuild recipe keeps
        child rows; `PRAGMA foreign_key_check` must find nothing before it commits.
        """
        return self._transaction_block(lock_timeout, migration=True)

    @contextlib.asynccontextmanager
    async def _transaction_block(
        self, wait: float, *, migration: bool
    ) -> AsyncIterator[SqliteSession]:
        if self._closed:
            raise DatabaseError("the SQLite database is closed")
        lease = await self._lease()
        writer = self._writer
        try:
            if migration:
                writer.execute("PRAGMA foreign_keys = OFF")
            await self._begin_immediate(wait)
            try:
                yield self._transaction
                if migration:
                    _check_foreign_keys(writer)
                await finish_then_cancel(self._in_thread(writer.execute, "COMMIT"))
            except BaseException:
                if writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise
        finally:
            try:
                if migration:
                    writer.execute("PRAGMA foreign_keys = ON")
            finally:
                lease.release()

    async def savepoint(self, _conn: Connection, name: str) -> None:
        """Open a savepoint in the running transaction."""
        self._writer.execute(f'SAVEPOINT "{name}"')

    async def release(self, _conn: Connection, name: str) -> None:
        """Keep what the savepoint's block did."""
        self._writer.execute(f'RELEASE "{name}"')

    async def rollback_to(self, _conn: Connection, name: str) -> None:
        """Undo what the savepoint's block did, and end it."""
        self._writer.execute(f'ROLLBACK TO "{name}"')
        self._writer.execute(f'RELEASE "{name}"')

    # Migrations.

    def statements(self, script: str) -> list[str]:
        """Split a script with SQLite's own notion of a complete statement."""
        return split_sqlite(script)

    async def run_script(self, _conn: Connection, statements: list[str]) -> None:
        """Run the statements in a thread: a migration may rebuild big tables."""

        def run() -> None:
            for statement in statements:
                self._writer.execute(statement)

        await finish_then_cancel(self._in_thread(run))

    async def table_columns(self, table: str, _conn: Connection | None = None) -> tuple[str, ...]:
        """Give the column names of `table` in order; none when there is no such table."""
        rows = self._reader.execute(
            "SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,)
        ).fetchall()
        return tuple(str(row[0]) for row in rows)

    # Errors.

    def translate(self, error: BaseException) -> PersistenceError | None:
        """Map a sqlite3 error to this package's error."""
        match error:
            case PersistenceError():
                return None
            case sqlite3.IntegrityError():
                return _integrity(error)
            case sqlite3.Error():
                if _is_busy(error):
                    return DatabaseError(f"SQLite: the database is locked: {error}")
                return DatabaseError(f"SQLite: {error}")
        return None

    # Commits by any connection, for caches.

    async def watch_changes(self, *, heartbeat: float) -> ChangeStamp:  # noqa: ARG002  # asked on each read, so never silent
        """Watch commits by any connection or process: see `ChangeStamp`."""
        if self._closed:
            raise DatabaseError("the SQLite database is closed")
        self._reader.execute("PRAGMA data_version").fetchall()  # the reader has mapped the -shm
        header = await self._in_thread(_map_wal_index, self._path) if self._path else None
        return ChangeStamp(self, header)

    def data_version(self) -> int | None:
        """Ask the reader's `PRAGMA data_version`, which changes when another connection commits."""
        if self._closed:
            return None
        value: int = self._reader.execute("PRAGMA data_version").fetchone()[0]
        return value

    # Closing.

    async def close(self) -> None:
        """Finish queued writes, then close every connection and the worker threads."""
        if self._closed:
            return
        while self._runner is not None:
            await asyncio.shield(self._runner)
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._executor.shutdown(wait=True)
        for connection in (*self._thread_readers, self._reader, self._writer):
            connection.close()
        self._thread_readers.clear()


_WAL_INDEX_HEADER: Final = 96
"""The WAL index header at the start of the -shm file: the same 48 bytes twice."""

_WAL_INDEXES: Final[dict[tuple[int, int], mmap.mmap]] = {}
_WAL_INDEX_FDS: Final[list[int]] = []
_WAL_INDEXES_GUARD: Final = threading.Lock()


def _map_wal_index(path: str) -> mmap.mmap | None:
    """Map the WAL index header of a WAL database read-only; None when there is none.

    The mapping and its descriptor stay open until the process ends, one per file: closing
    any descriptor of a file drops every POSIX lock the process holds on it, and SQLite
    keeps its shared-memory locks on this file.
    """
    shm = f"{path}-shm"
    try:
        info = Path(shm).stat()
    except OSError:
        return None
    with _WAL_INDEXES_GUARD:
        found = _WAL_INDEXES.get((info.st_dev, info.st_ino))
        if found is not None:
            return found
        if not stat.S_ISREG(info.st_mode) or info.st_size < _WAL_INDEX_HEADER:
            return None
        try:
            fd = os.open(shm, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        _WAL_INDEX_FDS.append(fd)  # kept open: see above
        opened = os.fstat(fd)
        try:
            header = mmap.mmap(fd, _WAL_INDEX_HEADER, prot=mmap.PROT_READ)
        except (OSError, ValueError):
            return None
        return _WAL_INDEXES.setdefault((opened.st_dev, opened.st_ino), header)


class ChangeStamp:
    """SQLite's change watch: one version for every table, asked on each cached read.

    In WAL mode every commit, by any connection or process, rewrites the WAL index header
    in the -shm file (https://www.sqlite.org/walformat.html), which this process maps:
    comparing its 96 bytes costs about 0.1 us where `PRAGMA data_version` costs 3.5 us.
    A header being rewritten (its two copies differ) counts as a change. Without a -shm
    file (a read-only, immutable database), `PRAGMA data_version` is asked instead.
    """

    __slots__ = ("_backend", "_count", "_header", "_last")

    def __init__(self, backend: SqliteBackend, header: mmap.mmap | None) -> None:
        self._backend = backend
        self._header = header
        self._last = b""
        self._count = 0

    def version(self, _table: str) -> int | None:
        """Give a number that changes with every commit to any table; None once closed."""
        header = self._header
        if header is None:
            return self._backend.data_version()
        if self._backend._closed:  # noqa: SLF001  # the mapping is read only while the reader holds the file
            return None
        now = header[:_WAL_INDEX_HEADER]
        if now != self._last:
            self._count += 1
            half = _WAL_INDEX_HEADER // 2
            self._last = now if now[:half] == now[half:] else b""
        return self._count

    def stamp(self, _table: str) -> str | None:
        """Name the committed state of the file, alike in every process: see `wal_stamp`."""
        header = self._header
        if header is None or self._backend._closed:  # noqa: SLF001  # as in `version`
            return None
        return wal_stamp(header[:_WAL_INDEX_HEADER], self._backend._path)  # noqa: SLF001

    def identity(self) -> str | None:
        """Name the file by its real path, device and inode."""
        path = self._backend._path  # noqa: SLF001
        try:
            info = Path(path).stat()
        except OSError:
            return None
        return f"sqlite:{os.path.realpath(path)}:{info.st_dev}:{info.st_ino}"

    async def sync(self) -> bool:
        """Nothing to wait for: every commit rewrites the header before it returns."""
        return not self._backend._closed  # noqa: SLF001

    async def close(self) -> None:
        """Nothing to close: the mapping outlives the watch (see `_map_wal_index`)."""


_SALTS: Final = slice(32, 40)
"""Where the WAL index header keeps the salts of the WAL file (random for each new WAL)."""


def wal_stamp(header: bytes, path: str) -> str | None:
    """Name a committed state of a WAL database by its WAL index header; None mid-rewrite.

    The header (shared memory, the same bytes in every process) counts the transactions
    and holds the WAL's last frame, its size in pages, checksums and the WAL's salts, which
    are random for each new WAL. Only a header rebuilt with no WAL file (every connection had
    closed) has no salts, and looks the same for any content: then the database file's
    size, modification time and inode tell the state instead.
    """
    half = len(header) // 2
    if header[:half] != header[half:] or not header[12]:  # being rewritten, or not set up
        return None
    extra = b""
    if not any(header[_SALTS]):
        try:
            info = Path(path).stat()
        except OSError:
            return None
        extra = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}".encode()
    return hashlib.blake2b(header[:half] + extra, digest_size=12).hexdigest()


class _Lent:
    """The context of `lend()`: a class, since it runs once per call."""

    __slots__ = ("_session",)

    def __init__(self, session: SqliteSession) -> None:
        self._session = session

    async def __aenter__(self) -> SqliteSession:
        return self._session

    async def __aexit__(self, *_: object) -> None:
        return None


def _fail(item: _Write, error: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(error)


def _savepointed(writer: sqlite3.Connection, plan: _Plan, params: Sequence[Params]) -> int:
    """Run a bulk write all or nothing, inside whatever transaction is open."""
    writer.execute('SAVEPOINT "bulk"')
    try:
        count: int = _execute(writer, plan, params, _Mode.MANY)
    except BaseException:
        if writer.in_transaction:
            writer.execute('ROLLBACK TO "bulk"')
            writer.execute('RELEASE "bulk"')
        raise
    writer.execute('RELEASE "bulk"')
    return count


def _check_foreign_keys(writer: sqlite3.Connection) -> None:
    problems = writer.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = ", ".join(
            f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in problems[:5]
        )
        raise MigrationError(
            f"the migration leaves {len(problems)} row(s) whose foreign key has no parent: {shown}"
        )


def split_sqlite(script: str) -> list[str]:
    """Split a script into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending):
        raise MigrationError(
            f"the script ends in an incomplete statement: {pending.strip()[:80]!r}"
        )
    return statements


def _has_code(text: str) -> bool:
    """Tell whether text holds anything but comments and blank space."""
    return _COMMENTS.sub(" ", text).strip() != ""


def _integrity(error: sqlite3.IntegrityError) -> PersistenceError:
    message = str(error)
    if message.startswith("UNIQUE constraint failed:") or "PRIMARY KEY" in message:
        return ConflictError(f"SQLite: {message}", constraint=message.partition(": ")[2])
    if message.startswith("FOREIGN KEY"):
        return ConflictError(f"SQLite: {message}")
    detail = message.partition(": ")[2]
    table, _, field = detail.partition(".")
    if not field:
        table, field = "row", detail or "constraint"
    return ValidationError(table, field, f"SQLite: {message}")


async def open_sqlite(
    path: str,
    *,
    busy_timeout: float,
    create: bool,
) -> SqliteBackend:
    """Open (or create) a SQLite file in WAL mode with a full sync on commit."""
    queries = load_queries(SqliteAdapter, engine="sqlite")
    if path == ":memory:" or path.startswith("file:"):
        raise DatabaseError(
            f"{path!r}: give a file path; an in-memory database cannot be shared by the "
            "reader and writer connections (use a temporary file in tests)"
        )
    return await asyncio.get_running_loop().run_in_executor(
        None, _open_files, path, busy_timeout, create, queries
    )


def _open_files(path: str, busy_timeout: float, create: bool, queries: Queries) -> SqliteBackend:  # noqa: FBT001  # called through run_in_executor, positionally
    read_only = not create
    target = _read_only_uri(path) if read_only else path
    if not read_only:
        _make_folder_of(path)
    try:
        writer = _connect(target, uri=read_only, timeout=0)
    except sqlite3.Error as error:
        raise DatabaseError(f"cannot open SQLite database {path!r}: {error}") from error
    # A read-only connection keeps the file's journal mode: setting one would write.
    pragmas = ("PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")
    try:
        for pragma in pragmas if read_only else ("PRAGMA journal_mode = WAL", *pragmas):
            writer.execute(pragma)
        reader = _connect(target, uri=read_only, timeout=0)
        reader.execute("PRAGMA query_only = ON")
    except sqlite3.Error as error:
        writer.close()
        raise DatabaseError(f"cannot set up SQLite database {path!r}: {error}") from error

    def open_reader() -> sqlite3.Connection:
        connection = _connect(target, uri=read_only, timeout=busy_timeout)
        connection.execute("PRAGMA query_only = ON")
        return connection

    return SqliteBackend(queries, writer, reader, open_reader, busy_timeout=busy_timeout, path=path)


def _read_only_uri(path: str) -> str:
    """Return the URI that opens an existing SQLite file read-only; a missing file is an error.

    Reading a WAL database needs a `-wal` file beside it. Where there is none and this process
    may not create one, the file is opened as immutable: only a writer could change it, and a
    writer would have made the `-wal` file.
    """
    file = Path(path)
    if not file.exists():
        raise DatabaseError(f"no SQLite database at {path!r}: the file does not exist")
    if not file.is_file():
        raise DatabaseError(f"no SQLite database at {path!r}: it is not a file")
    uri = f"file:{quote(str(file.resolve()))}?mode=ro"
    if not os.access(file.parent, os.W_OK) and not file.with_name(f"{file.name}-wal").exists():
        uri += "&immutable=1"
    return uri


def _make_folder_of(path: str) -> None:
    """Create the folders a new SQLite file goes in, or say which part of the path is in the way."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (folder, *folder.parents) if p.is_file()), None)
        reason = f"{str(blocking)!r} is a file, not a folder" if blocking else error.strerror
        raise DatabaseError(f"cannot create SQLite database {path!r}: {reason}") from error
