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
from typing import TYPE_CHECKING, cast

import aiosql

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


def load_queries(adapter: Callable[[], object], engine: str) -> Queries:
    """Load one engine's queries through aiosql, bound to `adapter`, with its row mappers."""
    loaded = aiosql.from_path(
        query_file(engine),
        adapter,  # type: ignore[arg-type]  # aiosql wants its own protocol; each adapter follows it
        record_classes=dict(ROW_MAPPERS[engine]),
        attribute=None,  # `:a.b` is never an attribute of a parameter here
    )
    return cast("Queries", loaded)
