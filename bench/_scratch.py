"""Scratch PostgreSQL databases for the benchmark: made empty, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg

__all__ = ["scratch_postgres", "with_database"]


def with_database(url: str, name: str) -> str:
    """Give the same server URL, naming another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def scratch_postgres(admin_url: str, prefix: str) -> AsyncIterator[str]:
    """Lend the URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url, timeout=5)
    try:
        # Identifiers cannot be bound parameters; the name is made here, from hex digits only.
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        try:
            yield with_database(admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
