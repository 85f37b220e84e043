"""What the memory and Redis caches share: the read API, the change feed and private copies.

An entry is trusted only while its table's version in the change watch (the WAL index header
on SQLite, commit notifications on PostgreSQL: every commit, plain SQL included) is the one
it was loaded at. A table this process wrote is read from the database until the watch has
seen that commit (`ChangeWatch.sync`); while the watch cannot be trusted, every read goes to
the database. docs/CACHE.md tells the rules.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import attrs
from cachetools import LRUCache

from persistence import config, file_records, results
from persistence._cancelling import refuse_cancel_from_outside
from persistence._codecs import json_size
from persistence._database_value import CACHE_IN_BLOCK, check_usable, require_database
from persistence._guards import key_id, nonempty_text, seconds
from persistence._json_pieces import encode_in_pieces
from persistence._loop import OFF_LOOP_SIZE, map_in_slices, off_loop_if_large, share_loop
from persistence._paging import page_limit
from persistence._rows import with_own_metadata
from persistence.database import Engine, watch_writes
from persistence.exceptions import DatabaseError, ValidationError
from persistence.models import ConfigEntry, FileRecord, TestResult, TestType
from persistence.results import ResultFilter

if TYPE_CHECKING:
    from persistence._backend import ChangeWatch
    from persistence.database import Database

TABLES = (config.TABLE, results.TABLE, file_records.TABLE)
"""The tables whose reads the caches serve."""

_V = TypeVar("_V")

DEFAULT_SIZE: Final = 10_000
"""Entries a memory tier keeps before it forgets the least recently used."""

DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
"""Bytes (estimated) that a memory tier holds before it forgets the least recently used."""

_BASE_BYTES: Final = 160
"""What an entry costs beside its texts and JSON: the model, its fields, the key and version."""


@attrs.frozen
class CacheStats:
    """How a cache has served its reads since it opened.

    `hits` came from the cache, `misses` from the database. `bypassed` counts the misses
    made while the cache could not be trusted (a lost watch, Redis down); `faults` counts
    the Redis calls that failed or ran out of time.
    """

    hits: int = 0
    misses: int = 0
    bypassed: int = 0
    faults: int = 0
    held_bytes: int = 0
    """The estimated bytes that the memory tier holds now."""


def entry_bytes(value: object, *, in_pieces: bool = False) -> int:
    """Estimate the memory a cached value holds: its texts and JSON, plus a fixed cost.

    It never counts less than the JSON's characters. `in_pieces`, in a worker thread: each
    JSON value is written a run of items at a time, so that the thread lets the loop run.
    """
    if isinstance(value, tuple):
        return _BASE_BYTES + sum(entry_bytes(item, in_pieces=in_pieces) for item in value)
    if isinstance(value, TestResult):
        texts = sys.getsizeof(value.output or "") + sys.getsizeof(value.error_message or "")
        return _BASE_BYTES + texts + _json_bytes(value.metadata, in_pieces=in_pieces)
    if isinstance(value, ConfigEntry):
        described = sys.getsizeof(value.description or "")
        return _BASE_BYTES + described + _json_bytes(value.value, in_pieces=in_pieces)
    if isinstance(value, FileRecord):
        path = sys.getsizeof(value.path)
        return _BASE_BYTES + path + _json_bytes(value.metadata, in_pieces=in_pieces)
    return _BASE_BYTES


_SIZING: Final = json.JSONEncoder(ensure_ascii=False, default=str)
"""The encoder whose text `_json_bytes` counts."""


def _json_bytes(value: object, *, in_pieces: bool) -> int:
    if not value:
        return 0
    if isinstance(value, str | int | float):
        return sys.getsizeof(value)
    return 2 * len(encode_in_pieces(_SIZING, value) if in_pieces else _SIZING.encode(value))


def _held_json(value: object) -> list[object]:
    """Give the JSON values that a cached value holds, for `json_size` to weigh."""
    if isinstance(value, tuple):
        return [held for item in value for held in _held_json(item)]
    if isinstance(value, ConfigEntry):
        return [value.value]
    if isinstance(value, TestResult | FileRecord):
        return [value.metadata]
    return []


async def held_bytes(value: object) -> int:
    """`entry_bytes`, in a worker thread for a value holding JSON of megabytes.

    Writing 1.35 MB of JSON, to count it, held the loop 30 to 95 ms on each miss. `json_size`
    alone would not do: it skips keys, quotes and escapes, so it counts less than is held.
    """
    size = json_size(_held_json(value), OFF_LOOP_SIZE)
    large = size > OFF_LOOP_SIZE
    return await off_loop_if_large(size, lambda: entry_bytes(value, in_pieces=large))


def _entry_size(entry: tuple[object, object, int]) -> int:
    return entry[2]


class Entries(LRUCache[tuple[str, tuple[Hashable, ...]], tuple[object, object, int]]):
    """A memory tier: (version, value, bytes) by table and key, bounded in entries and in bytes.

    An entry's bytes are estimated before it is kept (`held_bytes`). Past either bound the
    least recently used go; a value over the whole budget is not kept.
    """

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=_entry_size)
        self.most = size

    def __setitem__(
        self, key: tuple[str, tuple[Hashable, ...]], value: tuple[object, object, int]
    ) -> None:
        try:
            super().__setitem__(key, value)
        except ValueError:  # larger than the budget
            self.pop(key, None)
            return
        while len(self) > self.most:
            self.popitem()


def private_copy(value: _V) -> _V:
    """Return `value`, or a deep copy when it holds a dict or a list a caller could change."""
    if isinstance(value, ConfigEntry):
        return copy.deepcopy(value) if isinstance(value.value, list | dict) else value
    if isinstance(value, TestResult | FileRecord):  # its metadata, even empty, is a dict
        return cast("_V", with_own_metadata(value))  # of value's own class
    if isinstance(value, tuple):
        return type(value)(map(private_copy, value))
    return value


MIN_HEARTBEAT: Final = 0.01
"""The shortest `heartbeat` a cache takes, in seconds."""

MAX_HEARTBEAT: Final = 3600.0
"""An hour: the feed is trusted for two heartbeats after each answer, so a longer one would
keep serving cached values that long after the feed fell silent."""


def heartbeat_seconds(model: str, value: object) -> float:
    """Check a cache's `heartbeat`: a finite number of seconds, MIN_HEARTBEAT to MAX_HEARTBEAT.

    A shorter one sends PostgreSQL's listener its heartbeat back to back, and is answered
    late on any real network: the feed is then never trusted, and every read goes to the
    database.
    """
    number = seconds(model, "heartbeat", value)
    if number < MIN_HEARTBEAT:
        raise ValidationError(
            model, "heartbeat", f"must be at least {MIN_HEARTBEAT:g} seconds, got {value!r}"
        )
    if number > MAX_HEARTBEAT:
        raise ValidationError(
            model, "heartbeat", f"must be at most {MAX_HEARTBEAT:g} seconds, got {value!r}"
        )
    return number


def check_cache_target(db: Database) -> None:
    """Refuse a `transaction()` block as a cache's database: the cache would outlive it.

    Called before a cache starts following the change feed, so a refusal leaves nothing.
    """
    if require_database(db).in_transaction:  # anything but a Database: refused, named
        raise ValidationError(
            "Cache", "db", "open a cache on the database, not on a transaction() block"
        )


async def private_copy_in_slices(value: _V) -> _V:
    """`private_copy`, a tuple's items a slice at a time, the loop given back between.

    A deep copy of a result with metadata takes tens of microseconds: the 10,000 results of
    one `recent_results`, copied in one go, held the loop 300 ms on each hit. No slice cuts
    one item holding JSON of megabytes: a value holding more than OFF_LOOP_SIZE of JSON is
    copied in a worker thread.
    """
    size = json_size(_held_json(value), OFF_LOOP_SIZE)
    if size > OFF_LOOP_SIZE or not isinstance(value, tuple):
        return await off_loop_if_large(size, lambda: private_copy(value))
    return cast("_V", type(value)(await map_in_slices(private_copy, value)))


Load = Callable[[], Awaitable[_V]]

MISS = object()
"""What `_peek` gives when the cache does not hold a trusted value."""


class Cache:
    """The reads that the memory cache and the Redis cache serve, alike, and the memory tier.

    A miss goes to `_fill`, which the Redis cache extends with its tier. A hit costs one
    `_peek`, with no await in between: the setting read on every run must cost next to nothing.
    """

    def __init__(
        self,
        db: Database,
        watch: ChangeWatch,
        *,
        size: int = DEFAULT_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        check_cache_target(db)
        self._db = db
        self._loop = asyncio.get_running_loop()  # its watch and its Redis client are this loop's
        self._watch: ChangeWatch | None = watch
        self._local = Entries(size, max_bytes) if size > 0 else None
        self._hits = self._misses = self._bypassed = self._faults = 0
        self._own = dict.fromkeys(TABLES, 0)
        """Counts this process's writes and invalidations of each table."""
        self._pending: set[str] = set()
        """The tables written here whose commit the watch may not have seen yet."""
        # PostgreSQL's feed tells of a commit a moment after it: a write through another value
        # of this database in this process (a second `connect()` to its URL) must hold entries
        # until the watch has seen it, as this one's does. SQLite's is read on each read.
        self._stop_watching = watch_writes(
            db, self._written, any_handle=db.engine is Engine.POSTGRES
        )
        self._loading: dict[tuple[str, tuple[Hashable, ...], object], asyncio.Future[Any]] = {}
        """The loads under way, by table, key and version: a miss joins one of them."""
        self._closed = False

    def _written(self, tables: frozenset[str]) -> None:
        for table in tables:
            if table in self._own:
                self._own[table] += 1
                self._pending.add(table)

    def _version(self, table: str) -> tuple[int, int] | None:
        """Give the version an entry of `table` is kept at; None while none may be trusted."""
        watch = self._watch
        if watch is None or table in self._pending:
            return None
        version = watch.version(table)
        return None if version is None else (version, self._own[table])

    async def _caught_up(self, table: str) -> None:
        """After a write here to `table`, wait until the watch has seen its commit."""
        watch = self._watch
        if table in self._pending and watch is not None:
            own = self._own[table]
            if await watch.sync() and self._own[table] == own:
                self._pending.discard(table)

    def _peek(self, table: str, key: tuple[Hashable, ...]) -> object:
        """Return the trusted value of `key` in `table` from the memory tier, or MISS."""
        local = self._local
        if local is not None:
            version = self._version(table)
            if version is not None:
                try:
                    entry = local.get((table, key))
                except TypeError:  # an unhashable key, never held: the miss's checks refuse it
                    return MISS
                if entry is not None and entry[0] == version:
                    self._hits += 1
                    return entry[1]
        return MISS

    async def _keep(
        self, table: str, key: tuple[Hashable, ...], version: object, value: object
    ) -> None:
        """Keep a value loaded at `version` in the memory tier, if nothing changed meanwhile."""
        local = self._local
        if local is None or version is None:
            return
        size = await held_bytes(value)
        if self._version(table) == version:  # a close meanwhile: None
            local[table, key] = (version, value, size)

    def stats(self) -> CacheStats:
        """Return how the cache has served its reads so far; Redis hits count as hits."""
        held = 0 if self._local is None else int(self._local.currsize)
        return CacheStats(self._hits, self._misses, self._bypassed, self._faults, held)

    async def invalidate(self, table: str | None = None) -> None:
        """Forget what this process's memory holds of `table`, or of every table.

        Redis entries need no invalidation: each is keyed by the database's stamp of its
        table, which every commit changes.
        """
        if table is not None and table not in TABLES:
            allowed = ", ".join(TABLES)
            raise ValidationError("Cache", "table", f"must be one of {allowed}: {table!r}")
        for name in TABLES if table is None else (table,):
            self._own[name] += 1

    async def close(self) -> None:
        """Stop watching; later reads go to the database. The database stays open."""
        if self._local is not None:
            self._local.clear()
        watch, self._watch = self._watch, None
        self._closed = True  # a read whose load it cancels reads the database instead
        self._stop_watching()
        loading = list(self._loading.values())
        self._loading.clear()
        for load in loading:
            load.cancel()
        await asyncio.gather(*loading, return_exceptions=True)
        if watch is not None:
            await watch.close()

    _moves: bool = True
    """Whether the cache may follow its database to a new loop once its own has closed."""

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Take `loop` for the cache's own, or refuse it.

        A cache over SQLite follows its database to a new loop once the old one has closed, as
        the database does (its watch is read at each read). On PostgreSQL its listener, and
        the Redis tier's client, belong to the loop that opened them: the Redis tier's shared
        load failed with a bare RuntimeError (a future of another loop).
        """
        if self._moves and self._loop.is_closed() and self._db.engine is Engine.SQLITE:
            self._loop = loop
            return
        raise DatabaseError(
            "this cache was opened on another event loop: its watch of the database (and "
            "its Redis client) work only there; keep a bundle, or a cache, on one loop"
        )

    def _lookup(self, table: str, key: tuple[Hashable, ...]) -> object:
        """Return the trusted value of `key` in `table`, or MISS; refuse a read in a block.

        A cache cannot see the writes of an open `transaction()` block: a read through it
        inside a block of its database is refused (DatabaseError), hit or miss alike.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._move_to(loop)
        check_usable(self._db, outer=CACHE_IN_BLOCK)
        return self._peek(table, key)

    async def _fill_once(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        """Run `_fill`, shared by every read of the same key and version that misses meanwhile."""
        version = self._version(table)
        if version is None:
            return await self._fill(table, key, load, shape)
        token = (table, key, version)
        running = self._loading.get(token)
        if running is None:
            running = asyncio.ensure_future(self._fill(table, key, load, shape))
            self._loading[token] = running
            running.add_done_callback(lambda done: self._loaded(token, done))
        try:
            return cast("_V", await asyncio.shield(running))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._closed and running.cancelled() and not (current and current.cancelling()):
                return await load()  # the close cancelled the load: read as later reads do
            refuse_cancel_from_outside(running)  # cancelled from outside: a DatabaseError
            raise

    def _loaded(
        self, token: tuple[str, tuple[Hashable, ...], object], done: asyncio.Future[Any]
    ) -> None:
        if self._loading.get(token) is done:
            del self._loading[token]
        if not done.cancelled():
            done.exception()  # read, so that a load no caller waited for is not reported

    async def _fill(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        """Load a missed entry, kept if nothing changed meanwhile; Redis stores it as `shape`."""
        del shape  # kept as it is, in memory
        await self._caught_up(table)
        version = self._version(table)
        self._misses += 1
        self._bypassed += version is None
        value = await load()
        await self._keep(table, key, version, value)
        return value

    async def _read(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        """Give a private copy of the trusted value of `key`, filled by `load` on a miss."""
        found = self._lookup(table, key)
        if found is MISS:
            found = await self._fill_once(table, key, load, shape)
        else:
            await share_loop()  # a hit never waits: thousands in a row would hold the loop
        return await private_copy_in_slices(cast("_V", found))

    async def _load_config_entry(self, section: str, key: str) -> ConfigEntry | None:
        """Give the entry of (section, key) as held, not copied: from a tier, or loaded."""
        found = self._lookup(config.TABLE, ("entry", section, key))
        if found is not MISS:  # the setting read on every run: checked only on a miss
            await share_loop()
            return cast("ConfigEntry | None", found)
        section = nonempty_text("ConfigEntry", "section", section)
        key = nonempty_text("ConfigEntry", "key", key)
        load = functools.partial(config.find_config_entry_by_key, self._db, section, key)
        return await self._fill_once(
            config.TABLE, ("entry", section, key), load, ConfigEntry | None
        )

    async def find_config_entry_by_key(self, section: str, key: str) -> ConfigEntry | None:
        """Return the entry of (section, key), or None."""
        return await private_copy_in_slices(await self._load_config_entry(section, key))

    get_config_value = config.get_config_value
    """Return the value of (section, key) as `kind`; see `persistence.get_config_value`."""

    def _held_config_entry(self, section: str, key: str) -> tuple[ConfigEntry | None] | None:
        """Give the entry of (section, key) as a 1-tuple if held and trusted, else None.

        Through `_lookup`, as every read: inlined without its look at the loop, a hit from
        another loop (a forked child's, a SyncRunner's) gave a value its watch could not follow.
        """
        found = self._lookup(config.TABLE, ("entry", section, key))
        return None if found is MISS else (cast("ConfigEntry | None", found),)

    async def all_config_entries(self) -> tuple[ConfigEntry, ...]:
        """Return every entry, by section then key."""

        async def load() -> tuple[ConfigEntry, ...]:
            return tuple(await config.all_config_entries(self._db))

        return await self._read(config.TABLE, ("all",), load, tuple[ConfigEntry, ...])

    async def find_result(self, result_id: int) -> TestResult | None:
        """Return the result with this id, or None; the id is checked as the repository does."""
        result_id = key_id("TestResult", result_id)
        load = functools.partial(results.find_result, self._db, result_id)
        return await self._read(results.TABLE, ("id", result_id), load, TestResult | None)

    async def recent_results(
        self, limit: int = 50, test_type: TestType | None = None
    ) -> tuple[TestResult, ...]:
        """Return the newest results, of one type if given, newest first."""
        limit = page_limit("ResultFilter", limit)
        where = ResultFilter(test_type=test_type)  # checks it, as the repository does

        async def load() -> tuple[TestResult, ...]:
            return (await results.list_results(self._db, where, limit=limit)).items

        key = ("recent", limit, where.test_type)
        return await self._read(results.TABLE, key, load, tuple[TestResult, ...])

    async def find_file_record_by_path(self, path: str) -> FileRecord | None:
        """Return the record of this path, or None."""
        path = nonempty_text("FileRecord", "path", path)
        load = functools.partial(file_records.find_file_record_by_path, self._db, path)
        return await self._read(file_records.TABLE, ("path", path), load, FileRecord | None)
