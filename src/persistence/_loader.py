"""Load each engine's queries through aiosql, from the files that `make generate` wrote.

`make check-generated` is the one drift check. Each adapter runs the SQL and record class that
aiosql gives: `select` (:many) a list, `select_one` (:one) a row or None, `insert_returning`
(:execlastid) the new id, `insert_update_delete` (:exec, :execrows) and
`insert_update_delete_many` (:copyfrom) a count. The adapters tell aiosql they are synchronous
(`is_aio_driver = False`) so that it returns each method's coroutine: its asynchronous select is
an async generator, which gives no list and costs one more coroutine per call. They report the
tables each query writes (`_changes.py`), and hand each call to the `Observer`, if any.

Where aiosql cannot serve a need, the adapter hands the statement to its backend:

- SQLite (`SqliteSession.run`): reads run on the loop within the loop budget (in a thread past
  it, or to wait for a lock); writes are queued for group commit, one transaction and one fsync
  for all that arrive together; bulk inserts (`*!`) become multi-row INSERTs in a thread. A
  query marked `-- runs: long` (`RUNS_LONG`) runs in a worker thread from its start, writes
  included, in its place in the batch or transaction: some steps (an FTS5 segment merge, bm25
  over many terms) no progress handler can interrupt, and an interrupted write would roll back
  its whole transaction.
- PostgreSQL (`PostgresAdapter.insert_update_delete_many`): a plain INSERT ... VALUES of many
  rows is loaded with COPY, under the command timeout.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable, Sequence
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import aiosql
from aiosql.queries import Queries as LoadedQueries
from aiosql.types import QueryDatum, SQLOperationType

from persistence.exceptions import SqlFilesMissingError
from persistence.queries import ROW_MAPPERS

if TYPE_CHECKING:
    from persistence._tracing import Observer
    from persistence.queries import Queries

Method = Callable[..., Coroutine[Any, Any, Any]]
"""An adapter's method as aiosql calls it, giving the coroutine that the caller awaits."""


@functools.cache
def sql_root() -> Path:
    """Find the SQL files: in the installed package (`persistence/sql`), or in the checkout.

    Found once per process (a failure is not kept): each open asked three times, 0.7 ms.
    """
    packaged = resources.files("persistence") / "sql"
    checkout = Path(__file__).parents[2] / "sql"
    for folder in (packaged, checkout):
        # A package imported from a zip file gives no folder on disk: the SQL counts as missing.
        if isinstance(folder, Path) and (folder / "aiosql").is_dir():
            return folder
    raise SqlFilesMissingError((Path(str(packaged)), checkout))


def query_file(engine: str) -> Path:
    """Give the file of one engine's queries in aiosql's form: `engine` is sqlite or postgres."""
    return sql_root() / "aiosql" / f"{engine}.sql"


class _Observed(Protocol):
    _observer: Observer | None


def observed(start: Method, doc: str, *, many: bool = False) -> Method:
    """Make an adapter's method: `start` the call, observed when there is an observer.

    A `many` method's parameter sets are one list, observed as a batch of that many.
    """

    def method(  # noqa: PLR0917  # aiosql's call: positional
        self: _Observed,
        conn: object,
        name: str,
        sql: str,
        params: Iterable[object],
        rows_as: object = None,
    ) -> Coroutine[Any, Any, Any]:
        batch = None
        if many:
            params = params if isinstance(params, Sequence) else list(params)
            batch = len(params)
        run = start(self, conn, name, sql, params, rows_as)
        observer = self._observer
        return run if observer is None else observer.observe(run, name, params, batch)

    method.__doc__ = doc
    return method


class _Adapter(Protocol):
    """What the loader asks of an adapter; aiosql asks the rest."""

    is_aio_driver: bool

    def process_sql(self, query_name: str, op_type: SQLOperationType, sql: str) -> str: ...


class _Parsed(NamedTuple):
    """One engine's file as aiosql parsed it, and what it gave the adapter's `process_sql`."""

    stamp: tuple[str, int, int]
    data: list[QueryDatum]
    given: tuple[tuple[str, SQLOperationType, str], ...]


_PARSED: dict[str, _Parsed] = {}
"""Each engine's last parse, in this process: keyed by engine, checked by the file's stamp."""


def load_queries(adapter: Callable[[], _Adapter], engine: str) -> Queries:
    """Load one engine's queries through aiosql, bound to a new `adapter`, with its row mappers.

    aiosql parses the file once per process (about 10 ms, most of an open): a later load gives
    its adapter the same `process_sql` calls and the parse kept, until the file is edited.
    """
    path = query_file(engine)
    status = path.stat()
    stamp = (str(path), status.st_mtime_ns, status.st_size)
    fresh = adapter()
    parsed = _PARSED.get(engine)
    if parsed is None or parsed.stamp != stamp:
        given: list[tuple[str, SQLOperationType, str]] = []

        def record(query_name: str, op_type: SQLOperationType, sql: str) -> str:
            """Hand aiosql's `process_sql` call to the adapter, noting what it was given."""
            given.append((query_name, op_type, sql))
            return fresh.process_sql(query_name, op_type, sql)

        recorder = SimpleNamespace(is_aio_driver=fresh.is_aio_driver, process_sql=record)
        loaded = aiosql.from_path(
            path,
            lambda: recorder,  # aiosql calls its process_sql; the adapter gets each call
            record_classes=dict(ROW_MAPPERS[engine]),
            attribute=None,  # `:a.b` is never an attribute of a parameter here
            queries_cls=_Kept,
        )
        parsed = _PARSED[engine] = _Parsed(stamp, loaded.kept, tuple(given))
    else:
        for query_name, op_type, sql in parsed.given:
            fresh.process_sql(query_name, op_type, sql)
    bound = LoadedQueries(fresh, kwargs_only=True)  # type: ignore[arg-type]  # aiosql's own protocol; each adapter follows it
    return cast("Queries", bound.load_from_list(parsed.data))


class _Kept(LoadedQueries):
    """aiosql's queries object, keeping the parsed query data that it was built from."""

    kept: list[QueryDatum]

    def load_from_list(self, query_data: list[QueryDatum]) -> _Kept:
        self.kept = query_data
        return cast("_Kept", super().load_from_list(query_data))
