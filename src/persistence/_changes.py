"""The tables a write changed: reported where a query runs, announced by `database.py`.

Each engine's adapter calls `report_query` with the name of every query it runs (one
call, before the query). The generated `QUERY_WRITES` says which tables a query changes;
they are added to the record that `database.connection()` keeps for its block, and the
block's end announces them to the caches (inside `transaction()`, the block's commit
does). A repository function therefore cannot forget to announce a write.
"""

from __future__ import annotations

import contextvars
from typing import Final

from persistence.queries import QUERY_WRITES

__all__ = ["recording", "report_query", "stop_recording"]

_RECORD: Final[contextvars.ContextVar[set[str] | None]] = contextvars.ContextVar(
    "persistence_written_tables", default=None
)


def report_query(query_name: str) -> None:
    """Note the tables that `query_name` changes, if it writes and a block records them."""
    tables = QUERY_WRITES.get(query_name)
    if tables is not None:
        record = _RECORD.get()
        if record is not None:
            record.update(tables)


def recording(record: set[str]) -> contextvars.Token[set[str] | None]:
    """Collect into `record` the tables of the write queries run from here on in this task."""
    return _RECORD.set(record)


def stop_recording(token: contextvars.Token[set[str] | None]) -> None:
    """End the collection that `recording` started."""
    _RECORD.reset(token)
