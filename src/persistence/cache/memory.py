"""The memory cache: hot reads served from this process, never older than the last commit.

An entry is kept with the version its table had when it was loaded, and trusted while the
version stays the same. The version changes:

- on SQLite, with every commit by any connection or process: the next read compares the
  WAL index header, which every commit rewrites, with the one it last saw;
- on PostgreSQL, when the notification that migration 0004's triggers send at commit
  arrives, on a connection of the cache's own (about a millisecond on loopback). While that
  connection is lost or has not answered its heartbeat for 2 x `heartbeat` seconds, every
  read goes to the database and nothing is kept;
- for a write through this package, as `_core` says: its table is read from the database
  until the watch has seen the commit, so the next read shows the write.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, TypeVar

from persistence._backend import ChangeWatch
from persistence.cache._core import (
    DEFAULT_MAX_BYTES,
    MISS,
    TABLES,
    Cache,
    CacheStats,
    Entries,
    Load,
)
from persistence.database import backend_of
from persistence.exceptions import ValidationError

if TYPE_CHECKING:
    from persistence.database import Database

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_SIZE", "MemoryCache", "open_memory_cache"]

DEFAULT_SIZE = 10_000
"""Entries a memory cache keeps before it forgets the least recently used."""

DEFAULT_HEARTBEAT = 1.0
"""Seconds between two heartbeats of PostgreSQL's change listener."""

_V = TypeVar("_V")


def check_count(model: str, **counts: int) -> None:
    """Refuse a bound that is not a positive int."""
    for name, value in counts.items():
        given: object = value  # callers without type checking may pass anything
        if isinstance(given, bool) or not isinstance(given, int) or value < 1:
            raise ValidationError(model, name, f"must be a positive int, got {value!r}")


def check_table(table: str | None) -> None:
    """Refuse a table that no cache serves."""
    if table is not None and table not in TABLES:
        raise ValidationError("Cache", "table", f"must be one of {', '.join(TABLES)}: {table!r}")


class MemoryCache(Cache):
    """Reads of one database served from this process's memory; made by `open_memory_cache`."""

    def __init__(
        self,
        db: Database,
        watch: ChangeWatch,
        *,
        size: int = DEFAULT_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(db, watch)
        self._entries = Entries(size, max_bytes)
        self._hits = self._misses = self._bypassed = 0

    def _peek(self, table: str, key: tuple[Hashable, ...]) -> object:
        version = self._version(table)
        if version is not None:
            entry = self._entries.get((table, key))
            if entry is not None and entry[0] == version:
                self._hits += 1
                return entry[1]
        return MISS

    async def _fill(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        del shape  # kept as it is, in memory
        await self._caught_up(table)
        version = self._version(table)
        self._misses += 1
        if version is None:
            self._bypassed += 1
        value = await load()
        if version is not None and self._version(table) == version:
            self._entries[table, key] = (version, value)
        return value

    def stats(self) -> CacheStats:
        """Return how the cache has served its reads so far."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            bypassed=self._bypassed,
            held_bytes=self._entries.held_bytes,
        )

    async def invalidate(self, table: str | None = None) -> None:
        """Forget what is cached of `table`, or of every table."""
        check_table(table)
        for name in TABLES if table is None else (table,):
            self._own[name] += 1

    async def close(self) -> None:
        """Stop watching; later reads go to the database. The database stays open."""
        self._entries.clear()
        await self._stop()


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
    check_count("MemoryCache", size=size, max_bytes=max_bytes)
    if not heartbeat > 0:
        raise ValidationError("MemoryCache", "heartbeat", f"must be positive, got {heartbeat!r}")
    watch = await backend_of(db).watch_changes(heartbeat=heartbeat)
    return MemoryCache(db, watch, size=size, max_bytes=max_bytes)
