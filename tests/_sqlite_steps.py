"""What SQLite's plan tests share: a query's text as the package loads it, and its VM steps."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, Final

import aiosql

from persistence._loader import query_file

_QUERIES: Final = aiosql.from_path(query_file("sqlite"), "sqlite3")


def sqlite_text(name: str) -> str:
    """A query's SQLite text, as aiosql loads it for the package: `:name` parameters."""
    sql: str = getattr(_QUERIES, name).sql
    return sql


def counted_steps(
    path: Path, sql: str, arguments: Mapping[str, object], every: int
) -> tuple[list[Any], int]:
    """Run `sql` on the file at `path` by plain sqlite3: its rows, and its VM steps.

    The steps are counted by SQLite's progress handler, `every` at a time: they grow with
    the rows a plan reads.
    """
    calls = 0

    def step() -> int:
        nonlocal calls
        calls += 1
        return 0  # go on

    with closing(sqlite3.connect(path)) as lite:
        lite.set_progress_handler(step, every)
        rows = lite.execute(sql, arguments).fetchall()
    return rows, calls * every
