"""Copies of a whole SQLite file: the online backup API, and the AUTOINCREMENT counters."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Final

from persistence._sqlite.statements import plan_query

LIST_COUNTERS: Final = plan_query("list_id_counters", "SELECT name, seq FROM sqlite_sequence")
"""The highest id each AUTOINCREMENT table has handed out."""

LIST_TABLES: Final = plan_query(
    "list_tables",
    "SELECT name FROM sqlite_schema "
    "WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name",
)
"""Every table of the database but SQLite's own (`sqlite_sequence`, `sqlite_stat1`, ...)."""

RAISE_COUNTER: Final = plan_query(
    "raise_id_counter", "UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :name"
)
ADD_COUNTER: Final = plan_query(
    "add_id_counter",
    "INSERT INTO sqlite_sequence (name, seq) SELECT :name, :seq "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :name)",
)
"""With RAISE_COUNTER: a table's counter becomes at least `seq`, whether it had one or not."""


def backup_into(source: str, path: str, timeout: float) -> None:
    """Copy the database at URI `source` into a new file at `path`, as one committed state.

    One step of the backup API reads under one read transaction, while writers go on; the copy
    leaves WAL mode, to be one self-contained file.
    """
    with (
        closing(
            sqlite3.connect(source, uri=True, timeout=timeout, isolation_level=None)
        ) as reading,
        closing(sqlite3.connect(path, isolation_level=None)) as copy,
    ):
        reading.backup(copy, pages=-1)  # every page in one step: one read transaction
        copy.execute("PRAGMA journal_mode = DELETE")
