"""Results written with plain SQL into a database migrated only part way.

The package's inserts name every column of the newest schema; a test of a migration that
must keep or index rows written before it writes them here, in the seed's columns only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from contextlib import closing

import asyncpg

from persistence import TestResult

_COLUMNS = (
    "test_type, status, execution_time, memory_usage, test_cases_passed, test_cases_total, "
    "error_message, output, created_at, metadata"
)


async def insert_early_results(url: str, results: Iterable[TestResult]) -> None:
    """Insert results into test_results by their seed columns, over a connection of our own."""
    rows = [
        (
            r.test_type.value,
            r.status.value,
            r.execution_time,
            r.memory_usage,
            r.test_cases_passed,
            r.test_cases_total,
            r.error_message,
            r.output,
            r.created_at,
            json.dumps(r.metadata),
        )
        for r in results
    ]
    if url.startswith(("postgresql://", "postgres://")):
        conn = await asyncpg.connect(url)
        try:
            await conn.executemany(
                f"INSERT INTO test_results ({_COLUMNS}) "  # noqa: S608  # a constant list of columns
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)",
                rows,
            )
        finally:
            await conn.close()
        return
    with closing(sqlite3.connect(url)) as lite, lite:
        lite.executemany(
            f"INSERT INTO test_results ({_COLUMNS}) "  # noqa: S608  # a constant list of columns
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row[:8], row[8].isoformat(timespec="microseconds"), row[9]) for row in rows],
        )
