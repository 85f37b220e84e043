"""SQLite's backend, split by role: see `persistence._sqlite.backend`."""

from __future__ import annotations

from persistence._sqlite.adapter import SqliteAdapter, SqliteSession
from persistence._sqlite.backend import SqliteBackend, open_sqlite
from persistence._sqlite.changes import ChangeStamp
from persistence._sqlite.scripts import split_sqlite

__all__ = [
    "ChangeStamp",
    "SqliteAdapter",
    "SqliteBackend",
    "SqliteSession",
    "open_sqlite",
    "split_sqlite",
]
