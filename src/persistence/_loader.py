"""Load each engine's queries through aiosql, from the files that `make generate` wrote.

`make generate` turns sql/queries/ (sqlc's form, checked by `sqlc compile`) into one file per
engine in aiosql's form, sql/aiosql/<engine>.sql, and the typed interface
`persistence.queries`, whose row mappers aiosql hands the adapters as record classes. Both
come from one run of the generator, and `make check-generated` fails when either differs
from what it writes now: that is the one drift check, so nothing is compared at run time.

How aiosql runs them
--------------------
Each engine's adapter (`SqliteAdapter`, `PostgresAdapter`) takes the SQL that aiosql gives
to its `process_sql` and runs it with the record class that aiosql gives each call: `select`
(sqlc's :many) gives every row as a list, `select_one` (:one) the first row or None,
`insert_returning` (:execlastid) the new id, `insert_update_delete` (:exec, :execrows) the
count of changed rows, `insert_update_delete_many` (:copyfrom) the count of inserted rows.

The adapters tell aiosql they are synchronous (`is_aio_driver = False`): aiosql then returns
what the adapter's method returns, here a coroutine that the caller awaits. Its asynchronous
wrapper of a select would be an async generator, which cannot give a list, and costs one
more coroutine per call.

Where aiosql cannot serve a need, the adapter hands the statement over to its backend:

- SQLite (`SqliteSession.run`): a statement outside a transaction goes to the backend, which
  reads on the event loop within the loop budget (and again in a thread when it runs past
  it or must wait for a lock), and queues writes for group commit, where one transaction
  and one fsync serve every write that arrives together. Bulk inserts (`*!`) become
  multi-row INSERT statements, run in a thread.

  A statement that may run long runs off the loop, writes included: its query is marked
  with the line `-- runs: long` in sql/queries/, the generator lists it in `RUNS_LONG`, and
  its plan sends it to a worker thread. A read runs on a reader of its own; a write runs on
  the writer connection in a thread, in its place within the group-commit batch or the
  transaction that holds the writer. This is the one way a statement is sent off the loop
  before it starts. It is needed because some statements spend tens of milliseconds in one
  step that no progress handler can interrupt (FTS5 merging index segments inside a
  retention delete; bm25 ranking a search of many terms), and because a write cannot be
  interrupted and tried again: SQLite answers an interrupted write by rolling back the whole
  transaction, which would take the batch's other writes with it. The read budget stays the
  safety net for reads that are not marked.
- PostgreSQL (`PostgresAdapter.insert_update_delete_many`): a plain INSERT ... VALUES of
  many rows is loaded with COPY, under the command timeout, instead of aiosql's executemany.

The adapters' write paths receive the query's name (`query_name`), the place for anything
that must know which query wrote.

The hand-over is also the one place where queries are traced, measured and logged when slow:
each adapter takes the database's `Observer` (`persistence._tracing`), or None, and hands
over the observed call when it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

import aiosql
from aiosql.queries import Queries as LoadedQueries
from aiosql.types import QueryDatum, SQLOperationType

from persistence.exceptions import SqlFilesMissingError
from persistence.queries import ROW_MAPPERS

if TYPE_CHECKING:
    from persistence.queries import Queries

__all__ = ["load_queries", "query_file", "sql_root"]


def sql_root() -> Path:
    """Find the SQL files: in the installed package, or in the checkout an editable install runs.

    The wheel ships the repository's sql/ folder as `persistence/sql`.
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


class _Recorder:
    """Hands aiosql's `process_sql` calls to an adapter, noting what each was given."""

    def __init__(self, adapter: _Adapter) -> None:
        self.adapter = adapter
        self.is_aio_driver = adapter.is_aio_driver
        self.given: list[tuple[str, SQLOperationType, str]] = []

    def process_sql(self, query_name: str, op_type: SQLOperationType, sql: str) -> str:
        self.given.append((query_name, op_type, sql))
        return self.adapter.process_sql(query_name, op_type, sql)


def load_queries(adapter: Callable[[], _Adapter], engine: str) -> Queries:
    """Load one engine's queries through aiosql, bound to a new `adapter`, with its row mappers.

    aiosql parses the file once per process (about 10 ms, most of an open): each later load
    gives its new adapter the same `process_sql` calls, in the same order, and builds the
    query functions from the parse kept. An edited file, by its size or time, is read again.
    """
    path = query_file(engine)
    status = path.stat()
    stamp = (str(path), status.st_mtime_ns, status.st_size)
    fresh = adapter()
    parsed = _PARSED.get(engine)
    if parsed is None or parsed.stamp != stamp:
        recorder = _Recorder(fresh)
        loaded = aiosql.from_path(
            path,
            lambda: recorder,  # type: ignore[arg-type,return-value]  # it passes process_sql on
            record_classes=dict(ROW_MAPPERS[engine]),
            attribute=None,  # `:a.b` is never an attribute of a parameter here
            queries_cls=_Kept,
        )
        _PARSED[engine] = _Parsed(stamp, loaded.kept, tuple(recorder.given))
        data = loaded.kept
    else:
        for query_name, op_type, sql in parsed.given:
            fresh.process_sql(query_name, op_type, sql)
        data = parsed.data
    bound = LoadedQueries(fresh, kwargs_only=True)  # type: ignore[arg-type]  # aiosql's own protocol; each adapter follows it
    return cast("Queries", bound.load_from_list(data))


class _Kept(LoadedQueries):
    """aiosql's queries object, keeping the parsed query data that it was built from."""

    kept: list[QueryDatum]

    def load_from_list(self, query_data: list[QueryDatum]) -> _Kept:
        self.kept = query_data
        loaded: _Kept = super().load_from_list(query_data)
        return loaded
