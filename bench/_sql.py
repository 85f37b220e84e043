"""The SQL of sql/queries/test_results.sql, written out for the raw drivers' parameter styles."""

from __future__ import annotations

from typing import Final

__all__ = [
    "COLUMNS",
    "GET_POSTGRES",
    "GET_SQLITE",
    "INSERT_POSTGRES",
    "INSERT_SQLITE",
    "INSERT_SQLITE_NO_RETURNING",
    "LIST_POSTGRES",
    "LIST_SQLITE",
]

COLUMNS: Final = (
    "test_type",
    "status",
    "execution_time",
    "memory_usage",
    "test_cases_passed",
    "test_cases_total",
    "error_message",
    "output",
    "created_at",
    "metadata",
)
"""The columns an insert writes, in order."""

_INSERT: Final = f"INSERT INTO test_results ({', '.join(COLUMNS)}) VALUES ({{values}})"  # noqa: S608  # constant

INSERT_SQLITE: Final = _INSERT.format(values=", ".join("?" * len(COLUMNS))) + " RETURNING id"
INSERT_SQLITE_NO_RETURNING: Final = _INSERT.format(values=", ".join("?" * len(COLUMNS)))
INSERT_POSTGRES: Final = (
    _INSERT.format(values=", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))) + " RETURNING id"
)

GET_SQLITE: Final = "SELECT * FROM test_results WHERE id = ?"
GET_POSTGRES: Final = "SELECT * FROM test_results WHERE id = $1"

# ListTestResults, with the parameters numbered: test_type, status, created_from,
# created_until, cursor_created_at, cursor_id, page_size.
_LIST: Final = """SELECT * FROM test_results
WHERE test_type = coalesce({p}1, test_type)
  AND status = coalesce({p}2, status)
  AND created_at >= coalesce({p}3, created_at)
  AND (created_at < {p}4) IS NOT FALSE
  AND (created_at < {p}5 OR (created_at = {p}5 AND id < {p}6))
ORDER BY created_at DESC, id DESC
LIMIT {p}7"""

LIST_SQLITE: Final = _LIST.format(p="?")
LIST_POSTGRES: Final = _LIST.format(p="$")
