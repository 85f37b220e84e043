"""The tables a write changed: reported where a query runs, announced by `database.py`.

Each engine's adapter calls `report_query` with the name of every query it runs. The tables
that the generated `QUERY_WRITES` gives for it go into the set that `database.connection()`
has put in `WRITTEN` for its block, and the block's end (or the transaction's commit)
announces them to the caches: a repository function cannot forget to announce a write.
"""

from __future__ import annotations

import contextvars
from typing import Final

from persistence.queries import QUERY_WRITES

__all__ = ["WRITTEN", "WRITTEN_TABLES", "report_query"]

WRITTEN: Final[contextvars.ContextVar[set[str] | None]] = contextvars.ContextVar(
    "persistence_written_tables", default=None
)
"""Where this task's write queries add the tables they change, while a block records them."""


def report_query(query_name: str) -> None:
    """Note the tables that `query_name` changes, if it writes and a block records them."""
    tables = QUERY_WRITES.get(query_name)
    if tables is not None:
        record = WRITTEN.get()
        if record is not None:
            record.update(tables)


WRITTEN_TABLES: Final = frozenset[str]().union(*QUERY_WRITES.values())
"""Every table a query of the package writes: the only ones a cache can ask a change of."""
