"""The SQL of sql/queries/test_results.sql, as the raw drivers take it.

Read from the same generated files the layer loads, so the raw contenders can never run other
SQL. Both drivers take a tuple: SQLite gets the `:name` placeholders numbered `?1, ?2, ...` by
their order of first appearance, asyncpg `$1, $2, ...` in that same order, as the layer's adapter
does.
"""

from __future__ import annotations

import re
from typing import Final

import aiosql

from persistence._loader import query_file

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
    "multi_row_insert_sqlite",
]

_SQLITE: Final = aiosql.from_path(query_file("sqlite"), "sqlite3")
_POSTGRES: Final = aiosql.from_path(query_file("postgres"), "asyncpg")


_SQLITE_PARAMETER: Final = re.compile(r"(?<![:\w]):(\w+)")


def _sqlite(name: str) -> str:
    """Give the query with `?1, ?2, ...` for its `:name` placeholders, numbered as they come first.

    sqlite3 warns from Python 3.12 (and refuses from 3.14) a tuple bound to `:name` placeholders.
    """
    sql: str = getattr(_SQLITE, name).sql
    numbers: dict[str, int] = {}
    return _SQLITE_PARAMETER.sub(
        lambda found: f"?{numbers.setdefault(found[1], len(numbers) + 1)}", sql
    )


def _postgres(name: str) -> str:
    sql: str = getattr(_POSTGRES, name).sql
    return sql


COLUMNS: Final[tuple[str, ...]] = tuple(_SQLITE.insert_test_results.parameters)
"""The columns an insert writes, in order (the query's parameters are named after them)."""

INSERT_SQLITE: Final = _sqlite("insert_test_result")
INSERT_SQLITE_NO_RETURNING: Final = _sqlite("insert_test_results")
INSERT_POSTGRES: Final = _postgres("insert_test_result")

GET_SQLITE: Final = _sqlite("get_test_result")
GET_POSTGRES: Final = _postgres("get_test_result")

LIST_SQLITE: Final = _sqlite("list_test_results")
"""Parameters: created_from, cursor_created_at, cursor_id, page_size."""
LIST_POSTGRES: Final = _postgres("list_test_results")

LIST_BY_TYPE_SQLITE: Final = _sqlite("list_test_results_by_type")
"""Parameters: test_types (a JSON list), then those of LIST_SQLITE."""
LIST_BY_TYPE_POSTGRES: Final = _postgres("list_test_results_by_type")


def multi_row_insert_sqlite(rows: int) -> str:
    """Give one INSERT of `rows` rows, with `?` placeholders in the columns' order.

    The statement the layer's `save_results` runs too: one statement per batch, so that the
    full-text index is flushed once a batch rather than once a row.
    """
    one = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    # Only placeholders are joined in: the values are bound.
    return f"INSERT INTO test_results ({', '.join(COLUMNS)}) VALUES " + ", ".join([one] * rows)  # noqa: S608
