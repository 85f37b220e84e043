"""PostgreSQL's backend, split by role: see `persistence._postgres.backend`.

Only the script splitter is imported here: a SQLite user's process, each command-line call
among them, does not load asyncpg (a tenth of a second); `persistence.database` imports the
backend when a PostgreSQL URL is first opened.
"""

from __future__ import annotations

from persistence._postgres.scripts import split_postgres

__all__ = ["split_postgres"]
