"""PostgreSQL's backend, split by role: see `persistence._postgres.backend`."""

from __future__ import annotations

from persistence._postgres.adapter import PgConnection, PostgresAdapter
from persistence._postgres.backend import PostgresBackend, open_postgres
from persistence._postgres.changes import CHANGES_CHANNEL, ChangeListener
from persistence._postgres.errors import translate_postgres
from persistence._postgres.scripts import split_postgres

__all__ = [
    "CHANGES_CHANNEL",
    "ChangeListener",
    "PgConnection",
    "PostgresAdapter",
    "PostgresBackend",
    "open_postgres",
    "split_postgres",
    "translate_postgres",
]
