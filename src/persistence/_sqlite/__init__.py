"""SQLite's backend, split by role: see `persistence._sqlite.backend`."""

from __future__ import annotations

from persistence._sqlite.adapter import SqliteAdapter
from persistence._sqlite.opening import open_sqlite
from persistence._sqlite.scripts import split_sqlite

__all__ = ["SqliteAdapter", "open_sqlite", "split_sqlite"]
