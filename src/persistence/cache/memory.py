"""The memory cache: hot reads served from this process, never older than the last commit.

Its entries follow the database's change watch as `persistence.cache._core` says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from persistence._database_value import backend_of
from persistence._guards import at_least
from persistence.cache._core import (
    DEFAULT_MAX_BYTES,
    DEFAULT_SIZE,
    Cache,
    check_cache_target,
    heartbeat_seconds,
)

if TYPE_CHECKING:
    from persistence.database import Database

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_SIZE", "MemoryCache", "open_memory_cache"]

DEFAULT_HEARTBEAT = 1.0
"""Seconds between two heartbeats of PostgreSQL's change listener."""


class MemoryCache(Cache):
    """Reads of one database served from this process's memory; made by `open_memory_cache`."""


async def open_memory_cache(
    db: Database,
    *,
    size: int = DEFAULT_SIZE,
    heartbeat: float = DEFAULT_HEARTBEAT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> MemoryCache:
    """Open a memory cache of `db`'s hot reads; close it with `close()` before the database.

    `size` bounds the entries kept and `max_bytes` their estimated memory (64 MiB by
    default). On PostgreSQL the cache listens for changes on a connection of its own,
    checked every `heartbeat` seconds.
    """
    at_least("MemoryCache", "size", size, 1)
    at_least("MemoryCache", "max_bytes", max_bytes, 1)
    heartbeat = heartbeat_seconds("MemoryCache", heartbeat)
    check_cache_target(db)
    watch = await backend_of(db).watch_changes(heartbeat=heartbeat)
    return MemoryCache(db, watch, size=size, max_bytes=max_bytes)
