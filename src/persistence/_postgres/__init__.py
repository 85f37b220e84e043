"""PostgreSQL's backend, split by role: see `persistence._postgres.backend`."""

from __future__ import annotations

from persistence._postgres.adapter import PostgresAdapter
from persistence._postgres.backend import open_postgres
from persistence._postgres.scripts import split_postgres

__all__ = ["PostgresAdapter", "open_postgres", "split_postgres"]
