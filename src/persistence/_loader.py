"""Load each engine's queries through aiosql, from the files that `make generate` wrote.

`make generate` turns sql/queries/ (sqlc's form) into sql/aiosql/<engine>.sql and the typed
interface `persistence.queries`, whose row mappers aiosql hands the adapters as record
classes. `make check-generated` is the one drift check: nothing is compared at run time.

Each adapter runs the SQL and record class that aiosql gives: `select` (sqlc's :many) gives a
list, `select_one` (:one) a row or None, `insert_returning` (:execlastid) the new id,
`insert_update_delete` (:exec, :execrows) and `insert_update_delete_many` (:copyfrom) a count.
They tell aiosql they are synchronous (`is_aio_driver = False`), so that it returns the
coroutine each method returns: its asynchronous select is an async generator, which gives no
list and costs one more coroutine per call.

Where aiosql cannot serve a need, the adapter hands the statement over to its backend:

- SQLite (`SqliteSession.run`): reads run on the loop within the loop budget (in a thread past
  it, or to wait for a lock); writes are queued for group commit, one transaction and one
  fsync for every write that arrives together; bulk inserts (`*!`) become multi-row INSERTs
  in a thread. A query marked `-- runs: long` in sql/queries/ (listed in `RUNS_LONG`) runs in
  a worker thread from its start, writes included, in its place in the batch or transaction:
  some steps (FTS5 merging segments in a retention delete, bm25 ranking many terms) no
  progress handler can interrupt, and an interrupted write rolls back its whole transaction.
- PostgreSQL (`PostgresAdapter.insert_update_delete_many`): a plain INSERT ... VALUES of many
  rows is loaded with COPY, under the command timeout.

The adapters also report the tables each query writes, by its name (`_changes.py`), and hand
the call to the database's `Observer` (`persistence._tracing`) when it has one.
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
