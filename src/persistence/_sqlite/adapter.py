"""aiosql's adapter for SQLite, and the session that the loaded queries take as `conn`."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import attrs

from persistence._backend import Params
from persistence._changes import report_query
from persistence._loader import Method, observed
from persistence._loop import map_in_slices
from persistence._sqlite.statements import (
    COUNT,
    MANY,
    ROW,
    ROWS,
    VALUE,
    Mode,
    Plan,
    plan_query,
    rows_encoder,
)
from persistence.exceptions import DatabaseError
from persistence.queries import RUNS_LONG

if TYPE_CHECKING:
    from persistence._interface import RowMapper
    from persistence._sqlite.reads import Reads
    from persistence._sqlite.writer import Writer
    from persistence._tracing import Observer


@attrs.define(eq=False)
class SqliteSession:
    """What the loaded queries take as `conn` on SQLite.

    Outside a transaction, reads go to a reader and writes to the group-commit queue;
    inside one, everything runs on the writer, which the transaction holds. A snapshot's
    session only reads.
    """

    _readers: Reads
    _writer: Writer
    _in_transaction: bool = attrs.field(kw_only=True)
    _reads_only: bool = attrs.field(default=False, kw_only=True)

    def run(
        self, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None = None
    ) -> Coroutine[Any, Any, Any]:
        """Start one query where this session runs it: the hand-over from aiosql's adapter.

        Gives the coroutine of the reader or the writer that runs it, not one of its own: a
        coroutine less for each call.
        """
        report_query(plan.name)  # the one report of a query's written tables: see _changes.py
        if mode is MANY:
            return self._run_many(plan, params, rows_as)
        if self._in_transaction:
            return self._writer.run_leased(plan, params, mode, rows_as)
        if plan.writes:
            if self._reads_only:
                return _refuse_write(plan)
            return self._writer.queue_write(plan, params, mode, rows_as)
        return self._readers.read(plan, params, mode, rows_as)

    async def _run_many(self, plan: Plan, params: Any, rows_as: RowMapper | None) -> Any:
        """Encode a bulk write's rows a slice at a time, then run it where it belongs."""
        params = await map_in_slices(rows_encoder(), params)
        if self._in_transaction:
            return await self._writer.run_leased(plan, params, MANY, rows_as)
        if self._reads_only:
            raise DatabaseError(f"{plan.name} writes, and a snapshot only reads")
        return await self._writer.queue_write(plan, params, MANY, rows_as)


async def _refuse_write(plan: Plan) -> Any:
    """Refuse, when awaited, a write in a snapshot's session."""
    raise DatabaseError(f"{plan.name} writes, and a snapshot only reads")


def _run_as(mode: Mode) -> Method:
    """Start a query in `mode` on the session that aiosql passes as `conn`."""

    def start(
        self: SqliteAdapter,
        conn: SqliteSession,
        name: str,
        _sql: str,
        params: Any,
        rows_as: RowMapper | None,
    ) -> Coroutine[Any, Any, Any]:
        return conn.run(self._plans[name], params, mode, rows_as)

    return start


class SqliteAdapter:
    """aiosql's adapter for SQLite: each call goes to the session, which knows where it runs."""

    is_aio_driver = False

    def __init__(self, observer: Observer | None = None) -> None:
        self._plans: dict[str, Plan] = {}
        self._observer = observer

    def process_sql(self, query_name: str, _op_type: object, sql: str) -> str:
        """Keep the SQL (sqlite3 takes `:name` parameters) and note where it runs."""
        runs_long = query_name in RUNS_LONG["sqlite"]
        self._plans[query_name] = plan_query(query_name, sql, runs_long=runs_long)
        if self._observer is not None:
            self._observer.prepare("sqlite", query_name, sql)
        return sql

    select = observed(_run_as(ROWS), "Give every row, mapped by the record class (:many).")

    def select_one(
        self,
        conn: SqliteSession,
        query_name: str,
        _sql: str,
        parameters: Params,
        record_class: RowMapper | None = None,
    ) -> Coroutine[Any, Any, object]:
        """Give the first row, mapped, or None (:one); written out: `bench/tracing.py` times it."""
        run = conn.run(self._plans[query_name], parameters, ROW, record_class)
        observer = self._observer
        return run if observer is None else observer.observe(run, query_name, parameters)

    select_value = observed(_run_as(VALUE), "Give the first column of the first row, or None.")
    insert_returning = observed(
        _run_as(VALUE), "Give the first column of the RETURNING row: the new id (:execlastid)."
    )
    insert_update_delete = observed(
        _run_as(COUNT), "Run one statement; give how many rows it changed (:exec, :execrows)."
    )
    insert_update_delete_many = observed(
        _run_as(MANY),
        "Insert every parameter set, all or none, in a thread (:copyfrom).",
        many=True,
    )

    def execute_script(self, _conn: SqliteSession, _sql: str) -> str:
        """Refuse scripts: the migration runner runs them statement by statement."""
        raise NotImplementedError("scripts are not supported as queries")
