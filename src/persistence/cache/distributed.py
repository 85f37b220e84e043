"""The Redis cache: the memory cache's reads, shared by workers on many hosts.

A read looks in this process's memory, then Redis, then the database. A Redis key holds
its table's stamp from the change watch (`ChangeWatch.stamp`), which every commit changes
whoever makes it, so no entry is read past a change the reader's watch has seen, and
nothing is published. A Redis fault never raises: the read goes to the database.
docs/CACHE.md tells the rules.

redis-py is imported when a Redis URL is first checked, not with the package: its import took
more of the CPU than all the rest of `import persistence`, in every program and command that
never uses Redis.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from typing import TYPE_CHECKING, Final, TypeVar, cast, get_args, get_origin

import cattrs
from cachetools import TTLCache

from persistence._backend import ChangeWatch, Engine
from persistence._cancelling import finish_then_cancel
from persistence._codecs import json_size
from persistence._database_value import backend_of
from persistence._guards import at_least, finite_amount, nonempty_text
from persistence._json_pieces import encode_in_pieces, loads_in_pieces
from persistence._loop import (
    OFF_LOOP_SIZE,
    imported,
    map_in_slices,
    off_loop,
    off_loop_if_large,
)
from persistence.cache._core import (
    DEFAULT_MAX_BYTES,
    DEFAULT_SIZE,
    MISS,
    Cache,
    Load,
    check_cache_target,
    heartbeat_seconds,
)
from persistence.cache._redis_url import REDIS_URL_VARIABLE, redis_url
from persistence.cache.memory import DEFAULT_HEARTBEAT
from persistence.converters import encoding_converter
from persistence.database import redact_url
from persistence.exceptions import ValidationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from persistence.database import Database

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_ENTRY_BYTES",
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "MAX_ENTRY_BYTES",
    "MAX_TTL",
    "NAMESPACE_PREFIX",
    "REDIS_URL_VARIABLE",
    "RedisCache",
    "open_redis_cache",
]

NAMESPACE_PREFIX: Final = "persistence"
"""The default namespace is this, a colon and a digest of the database's identity."""

DEFAULT_TTL: Final = 300.0
"""Seconds a Redis entry lives."""

DEFAULT_TIMEOUT: Final = 0.25
"""Seconds a Redis call may take before the read goes to the database instead."""

DEFAULT_RETRY_AFTER: Final = 1.0
"""Seconds after a Redis fault during which Redis is not tried."""

DEFAULT_MAX_CONNECTIONS: Final = 16
"""Redis connections a cache holds at most, unless its URL says `?max_connections=`: a call
past them waits for one, within the timeout (redis-py's 100 at once ran out of it)."""

DEFAULT_MAX_ENTRY_BYTES: Final = 1024 * 1024
"""Bytes of the largest entry written to or read from Redis: one sent well within the timeout."""

MAX_ENTRY_BYTES: Final = 512 * 1024 * 1024
"""The highest `max_entry_bytes` taken: Redis holds no string larger (512 MiB)."""


_BAD_ENTRY_QUIET: Final = 60.0
"""Seconds after a bad entry is logged during which that key's bad entries are not logged."""

_LOG: Final = logging.getLogger("persistence.cache")
"""URL options of how replies are decoded: the cache reads and writes UTF-8 bytes itself."""
_FAULT: Final = object()
_T = TypeVar("_T")
_V = TypeVar("_V")

# What a damaged or foreign entry can raise while it is decoded: it is then a miss.
_DECODE_ERRORS: Final = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RecursionError,
    cattrs.BaseValidationError,
)


class RedisCache(Cache):
    """Reads of one database through this process's memory and Redis; see the module."""

    _moves = False  # its client's connections belong to the loop that opened them

    def __init__(  # every limit is the caller's to set
        self,
        db: Database,
        watch: ChangeWatch,
        client: Redis,
        *,
        shown_url: str,
        namespace: str | None = None,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
        local_size: int = DEFAULT_SIZE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        from redis.exceptions import (  # noqa: PLC0415  # see the module
            MaxConnectionsError,
            RedisError,
        )

        super().__init__(db, watch, size=local_size, max_bytes=max_bytes)
        self._transport_errors = (RedisError, OSError, TimeoutError)
        self._pool_full = MaxConnectionsError
        self._slots = asyncio.Semaphore(client.connection_pool.max_connections)
        """One for each connection the pool may hold: a call takes one before it asks Redis."""
        self._max_entry_bytes = max_entry_bytes
        self._client = client
        self._shown_url = shown_url
        self._given = namespace
        self._named: tuple[str | None, str] | None = None
        """The watch's identity the default namespace was last made of, and that namespace."""
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self._retry_after = retry_after
        self._converter = encoding_converter()
        self._down_until = 0.0
        self._outage = False
        self._probing = False  # a call is trying Redis again after an outage
        self._told: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=_BAD_ENTRY_QUIET)
        """The keys whose bad entry was logged within _BAD_ENTRY_QUIET seconds."""

    async def _fill(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        await self._caught_up(table)
        version = self._version(table)
        watch = self._watch
        stamp = None if version is None or watch is None else watch.stamp(table)
        self._bypassed += stamp is None
        value = MISS if stamp is None else await self._from_redis(table, key, stamp, shape)
        self._hits += value is not MISS
        if value is MISS:
            self._misses += 1
            value = await load()
            if stamp is not None and self._current(table, version, stamp):
                await self._to_redis(table, key, stamp, value, shape)
        await self._keep(table, key, version, value)
        return cast("_V", value)

    def _current(self, table: str, version: tuple[int, int] | None, stamp: str) -> bool:
        """Whether `table` is still at the version and stamp read before a load."""
        watch = self._watch
        return watch is not None and self._version(table) == version and watch.stamp(table) == stamp

    @property
    def _namespace(self) -> str:
        """The namespace given, else the database's by its identity as the watch knows it now.

        PostgreSQL's listener reads the identity again on each connect: after a server restart
        (every stamp new then) every process names the database anew, together.
        """
        if self._given is not None:
            return self._given
        named, watch = self._named, self._watch
        if named is not None and (watch is None or named[0] == watch.identity()):
            return named[1]  # once closed, the last one, so that its keys can be found
        identity = None if watch is None else watch.identity()
        self._named = identity, default_namespace(self._db, identity)
        return self._named[1]

    def _key(self, table: str, key: tuple[Hashable, ...], stamp: str) -> tuple[str, str]:
        """Give the Redis key of an entry and the text of the read it answers."""
        text = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self._namespace}:{table}:{stamp}:{digest}", text

    async def _from_redis(
        self, table: str, key: tuple[Hashable, ...], stamp: str, shape: object
    ) -> object:
        """Give the entry of `key` at `stamp`, or MISS (none, unreadable, too large, or a fault).

        At most one byte past `max_entry_bytes` is read: a larger entry (another worker's, or
        planted) is a miss of this key, never a call that runs out of time. An empty string
        reads as no entry, as Redis gives a missing key.
        """
        entry_key, text = self._key(table, key, stamp)
        most = self._max_entry_bytes
        raw = await self._call(lambda: self._client.getrange(entry_key, 0, most), entry_key)
        if raw is not _FAULT and raw and not isinstance(raw, bytes):  # a peer that is no Redis
            self._not_redis(TypeError(f"GETRANGE gave {type(raw).__name__}, not bytes"))
            raw = _FAULT
        self._bypassed += raw is _FAULT
        if not isinstance(raw, bytes) or not raw:
            return MISS
        if len(raw) > most:
            problem = ValueError(f"it holds more than max_entry_bytes, {most} bytes")
            self._bad_entry(entry_key, problem, "is too large")
            return MISS
        size, entry = len(raw), raw
        try:
            stored = await off_loop_if_large(
                size, lambda: _decoded(entry, in_pieces=size > OFF_LOOP_SIZE)
            )
            if stored["t"] != table or stored["k"] != text or stored["s"] != stamp:
                self._bad_entry(entry_key, ValueError("it names another read"), "did not match")
                return MISS
            value = await self._structured(stored["v"], shape, size)
            form = await self._unstructured(value, shape)
        except _DECODE_ERRORS as error:
            self._bad_entry(entry_key, error, "could not be read")
            return MISS
        if form != stored["v"]:  # a field missing (read as its default): another version's entry
            problem = ValueError("a field is missing or differs from what this version writes")
            self._bad_entry(entry_key, problem, "was not in this version's form")
            return MISS
        return value

    async def _to_redis(
        self, table: str, key: tuple[Hashable, ...], stamp: str, value: object, shape: object
    ) -> None:
        entry_key, text = self._key(table, key, stamp)
        data = await self._unstructured(value, shape)
        entry = {"t": table, "k": text, "s": stamp, "v": data}
        size, most = json_size(entry, OFF_LOOP_SIZE), self._max_entry_bytes

        def encoded_within() -> bytes | None:  # in a worker thread if large, as the look is
            if json_size(entry, most, item=0) > most:
                # Never encoded in vain: its texts alone, a byte a character at least, are past
                # the bound. A 40 MB output was encoded whole (a quarter of a second holding
                # the GIL), then dropped.
                return None
            return _encoded(entry, in_pieces=size > OFF_LOOP_SIZE)

        encoded = await off_loop_if_large(size, encoded_within)
        if encoded is None or len(encoded) > most:
            return  # kept in the memory tier alone
        await self._call(lambda: self._client.set(entry_key, encoded, px=self._ttl_ms), entry_key)

    async def _structured(self, data: object, shape: object, size: int) -> object:
        """Read an entry's JSON as `shape`: a tuple's items a slice at a time (`_unstructured`).

        An entry of `size` bytes past OFF_LOOP_SIZE is read in a worker thread, a tuple's items
        too: the model's checks of one config value of 1.35 MB take over 100 ms, and no slice
        cuts one item.
        """
        item = _item_shape(shape)
        if item is None or not isinstance(data, list):
            whole = cast("type[object]", shape)
            return await off_loop_if_large(size, lambda: self._converter.structure(data, whole))
        structure = functools.partial(self._converter.structure, cl=cast("type[object]", item))
        if size > OFF_LOOP_SIZE:
            return await off_loop(lambda: tuple(map(structure, data)))
        return tuple(await map_in_slices(structure, data))

    async def _unstructured(self, value: object, shape: object) -> object:
        """Give `value` as JSON of `shape`: a tuple's items a slice at a time, the loop given back.

        Results take tens of microseconds each: the 10,000 of one `recent_results`, written in
        one go (on every miss, though an entry so large is then not stored), held it 200 ms.
        """
        item = _item_shape(shape)
        if item is None or not isinstance(value, tuple):
            return self._converter.unstructure(value, unstructure_as=shape)
        unstructure = functools.partial(self._converter.unstructure, unstructure_as=item)
        return await map_in_slices(unstructure, value)

    async def _call(self, make: Callable[[], Awaitable[_T]], entry_key: str) -> _T | object:
        """Run one Redis call on `entry_key` within the timeout; _FAULT if it was not answered.

        A key of another Redis type is that key's fault, not Redis's: it gives None. A call
        that finds every connection busy waits for one, within the timeout too; past it, its
        read alone goes to the database (`_slot`), and Redis is not taken for down.
        """
        if time.monotonic() < self._down_until or self._probing:
            return _FAULT
        # In an outage, one call at a time tries Redis again; the others read the database
        # meanwhile. Each waiting reader tried at once, and each waited out the timeout.
        probing = self._probing = self._outage
        try:
            if not await self._slot():
                return _FAULT
            try:
                async with asyncio.timeout(self._timeout):
                    result = await make()
            finally:
                self._slots.release()
        except self._pool_full:  # the pool's bound, which the slots keep to: not Redis's fault
            return _FAULT  # as a wait past the timeout: this read alone goes to the database
        except Exception as error:  # noqa: BLE001  # a reply redis-py could not read, too
            return self._failed(error, entry_key)
        finally:
            if probing:
                self._probing = False
        if self._outage:
            self._outage = False
            _LOG.info("Redis at %s answers again; caching through it", self._shown_url)
        return result

    async def _slot(self) -> bool:
        """Take a connection's slot within the timeout; False if none came free, or Redis fell.

        Waiting is no fault: such a read alone goes to the database, unlogged (`bypassed`).
        """
        if not self._slots.locked():
            await self._slots.acquire()  # free: taken at once, the loop not given up
            return True
        try:
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        except TimeoutError:
            return False
        if time.monotonic() < self._down_until:
            self._slots.release()
            return False
        return True

    def _failed(self, error: Exception, entry_key: str) -> object:
        """Take a call's error: _FAULT, Redis taken for down a while; None for a key's fault."""
        from redis.exceptions import (  # noqa: PLC0415  # see the module
            AuthenticationError,
            ResponseError,
        )

        if not isinstance(error, self._transport_errors):
            self._not_redis(error)
            return _FAULT
        if isinstance(error, ResponseError) and error.status_code == "WRONGTYPE":
            self._bad_entry(entry_key, error, "held another kind of value")
            return None  # as a missing entry: the load's SET replaces it
        # Its answer: a DB index past its, OOM, no or a wrong password (a ConnectionError).
        refused = isinstance(error, ResponseError | AuthenticationError)
        lost = f"no answer within {self._timeout:g}s or a failed call"
        self._fault(error, "refused the call" if refused else lost)
        self._down_until = time.monotonic() + self._retry_after
        return _FAULT

    def _not_redis(self, error: Exception) -> None:
        """Take a reply that no Redis gives (to its handshake, or a call) as an outage.

        redis-py raised it as it came (`AttributeError` for a handshake answered by a list):
        every read raised, where a fault of Redis's is a read from the database.
        """
        self._fault(error, "gave a reply that no Redis gives")
        self._down_until = time.monotonic() + self._retry_after

    def _bad_entry(self, entry_key: str, error: BaseException, what: str) -> None:
        """Count a bad entry, a miss of its read alone; log it once per _BAD_ENTRY_QUIET."""
        self._faults += 1
        if entry_key not in self._told:
            self._told[entry_key] = True
            _LOG.warning(
                "Redis at %s: the entry %s %s (%s: %s); read from the database, for this key alone",
                self._shown_url,
                entry_key,
                what,
                type(error).__name__,
                error,
            )

    def _fault(self, error: BaseException, what: str) -> None:
        """Count a failed call; log it if it begins an outage (a call that works ends it)."""
        self._faults += 1
        if not self._outage:
            self._outage = True
            _LOG.warning(
                "Redis at %s: %s (%s: %s); reading from the database meanwhile",
                self._shown_url,
                what,
                type(error).__name__,
                error,
            )

    async def close(self) -> None:
        """Stop following the database and close the Redis connections.

        The loads under way end first: one still running could open a connection after them.
        Cancelled meanwhile, the connections are closed all the same, within the timeout: one
        left halfway through its disconnect stayed open for good.
        """
        try:
            await super().close()
        finally:
            await finish_then_cancel(self._close_client())

    async def _close_client(self) -> None:
        with suppress(*self._transport_errors):
            async with asyncio.timeout(self._timeout):
                await self._client.aclose(close_connection_pool=True)


def default_namespace(db: Database, identity: str | None) -> str:
    """Give the namespace of `db`: the prefix and a digest of the database's identity.

    The identity is the database itself (the SQLite file, or the PostgreSQL server and
    database), so two URLs that reach different databases never share entries. While the
    watch does not know it (no listener yet), the URL stands in (its password hidden).
    """
    name = identity
    if name is None:
        name = db.url if db.engine is Engine.POSTGRES else os.path.abspath(db.url)  # noqa: PTH100  # a string in, a string out
    return f"{NAMESPACE_PREFIX}:{hashlib.sha256(name.encode()).hexdigest()[:16]}"


MAX_TTL: Final = 10 * 365 * 86_400.0
"""The longest TTL taken, in seconds (ten years): Redis keeps TTLs in milliseconds."""


def check_limits(**limits: float) -> None:
    """Refuse a limit that is not a positive, finite number of seconds (a TTL: at most MAX_TTL)."""
    for name, value in limits.items():
        number = finite_amount("RedisCache", name, value)
        if not 0 < number <= (MAX_TTL if name == "ttl" else math.inf):
            bound = f" and at most {MAX_TTL:g}" if name == "ttl" else ""
            raise ValidationError("RedisCache", name, f"must be positive{bound}, got {value!r}")


async def open_redis_cache(  # every limit is the caller's to set
    db: Database,
    url: str | None = None,
    *,
    namespace: str | None = None,
    ttl: float = DEFAULT_TTL,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109  # bounds each Redis call, not this one
    retry_after: float = DEFAULT_RETRY_AFTER,
    heartbeat: float = DEFAULT_HEARTBEAT,
    local_size: int = DEFAULT_SIZE,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
) -> RedisCache:
    """Open a Redis cache of `db`'s reads: `url`, else `$REDIS_URL`.

    It opens even when Redis does not answer (it logs that, and reads from the database
    until Redis answers). `local_size=0` turns the memory tier off; `max_bytes` bounds its
    estimated memory. No entry larger than `max_entry_bytes` (at most MAX_ENTRY_BYTES) is
    written to Redis or read from it. Workers share entries within one `namespace`: by
    default, one per database (see `default_namespace`), whatever URL reached it.
    """
    await imported("redis.asyncio")  # on first use: off the loop
    target = redis_url(url)
    check_limits(ttl=ttl, timeout=timeout, retry_after=retry_after)
    heartbeat_seconds("RedisCache", heartbeat)
    if namespace is not None:  # text a Redis key can hold (no lone surrogate), with no space
        namespace = nonempty_text("RedisCache", "namespace", namespace)
        if any(c.isspace() for c in namespace):
            raise ValidationError("RedisCache", "namespace", f"must be a word, got {namespace!r}")
    at_least("RedisCache", "local_size", local_size, 0)
    at_least("RedisCache", "max_bytes", max_bytes, 1)
    at_least("RedisCache", "max_entry_bytes", max_entry_bytes, 1, MAX_ENTRY_BYTES)
    check_cache_target(db)
    from redis.asyncio import ConnectionPool, Redis  # noqa: PLC0415  # see the module
    from redis.asyncio.retry import Retry  # noqa: PLC0415
    from redis.backoff import NoBackoff  # noqa: PLC0415

    no_retry = Retry(NoBackoff(), 0)
    pool = ConnectionPool.from_url(  # the URL's ?max_connections= wins, as redis-py has it
        target,
        max_connections=DEFAULT_MAX_CONNECTIONS,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=no_retry,
        health_check_interval=0,
    )
    client = Redis(connection_pool=pool, retry=no_retry)
    watch = await backend_of(db).watch_changes(heartbeat=heartbeat)
    return RedisCache(
        db,
        watch,
        client,
        shown_url=redact_url(target),
        namespace=namespace,
        ttl=ttl,
        timeout=timeout,
        retry_after=retry_after,
        local_size=local_size,
        max_bytes=max_bytes,
        max_entry_bytes=max_entry_bytes,
    )


_ENTRY_JSON: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""How an entry is written to Redis."""


def _encoded(entry: object, *, in_pieces: bool) -> bytes:
    """Write an entry as Redis holds it; `in_pieces` in a worker thread (`encode_in_pieces`)."""
    return (
        encode_in_pieces(_ENTRY_JSON, entry) if in_pieces else _ENTRY_JSON.encode(entry)
    ).encode()


def _decoded(raw: bytes, *, in_pieces: bool) -> dict[str, object]:
    """Read an entry as `json.loads` does; `in_pieces` in a worker thread (`loads_in_pieces`).

    A dict, else TypeError: an entry of another shape is a bad one.
    """
    if in_pieces:
        stored = loads_in_pieces(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    else:
        stored = json.loads(raw)
    if not isinstance(stored, dict):
        raise TypeError(f"an entry is a JSON object, not {type(stored).__name__}")
    return stored


def _item_shape(shape: object) -> object | None:
    """Give the item type of a `tuple[X, ...]` shape, or None for any other shape."""
    args = get_args(shape)
    if get_origin(shape) is tuple and len(args) == 2 and args[1] is Ellipsis:  # noqa: PLR2004  # X and ...
        return cast("object", args[0])
    return None
