"""The SQL of sql/queries/test_results.sql, as the raw drivers take it.

Read from the same files the layer loads, so the raw contenders can never run other SQL.
SQLite binds `:name` placeholders by their order of first appearance when given a tuple;
asyncpg gets them numbered `$1, $2, ...` in that same order, as the layer's adapter does.
"""

from __future__ import annotations

from typing import Final

from persistence._loader import read_queries
from persistence._postgres import PostgresAdapter

__all__ = [
    "COLUMNS",
    "GET_POSTGRES",
    "GET_SQLITE",
    "INSERT_POSTGRES",
    "INSERT_SQLITE",
    "INSERT_SQLITE_NO_RETURNING",
    "LIST_BY_TYPE_POSTGRES",
    "LIST_BY_TYPE_SQLITE",
    "LIST_POSTGRES",
    "LIST_SQLITE",
]

_QUERIES: Final = {query.name: query for query in read_queries(engine="sqlite")}
_POSTGRES_QUERIES: Final = {query.name: query for query in read_queries(engine="postgres")}


def _postgres(name: str) -> str:
    numbered: str = PostgresAdapter().process_sql(name, None, _POSTGRES_QUERIES[name].sql)
    return numbered


COLUMNS: Final = _QUERIES["InsertTestResults"].parameters
"""The columns an insert writes, in order (the query's parameters are named after them)."""

INSERT_SQLITE: Final = _QUERIES["InsertTestResult"].sql
INSERT_SQLITE_NO_RETURNING: Final = _QUERIES["InsertTestResults"].sql
INSERT_POSTGRES: Final = _postgres("InsertTestResult")

GET_SQLITE: Final = _QUERIES["GetTestResult"].sql
GET_POSTGRES: Final = _postgres("GetTestResult")

LIST_SQLITE: Final = _QUERIES["ListTestResults"].sql
"""Parameters: created_from, created_until, cursor_created_at, cursor_id, page_size."""
LIST_POSTGRES: Final = _postgres("ListTestResults")

LIST_BY_TYPE_SQLITE: Final = _QUERIES["ListTestResultsByType"].sql
"""Parameters: test_types (a JSON list), then those of LIST_SQLITE."""
LIST_BY_TYPE_POSTGRES: Final = _postgres("ListTestResultsByType")
