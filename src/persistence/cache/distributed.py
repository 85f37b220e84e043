"""The Redis cache: the memory cache's reads, shared by workers on many hosts.

A read looks in three tiers: this process's memory, then Redis, then the database.

- **Redis entries** are the models as JSON, written by `make_converter()`, with a TTL, under
  keys `<namespace>:<table>:<digest of the read>`. Each table has a generation, a random
  token at `<namespace>:gen:<table>`; an entry holds the generation it was loaded at, and
  one read (MGET) fetches both. An entry of an older generation is a miss.
- **A write through this package** gives its table a new generation and publishes it on
  `<namespace>:invalidate` before the write returns. From then on no worker takes the old
  entries from Redis, and every worker forgets its memory tier of that table when the
  message arrives.
- **The memory tier** is trusted only while the subscription answers its heartbeat (every
  `heartbeat` seconds) and, as in the memory cache, while the database's change watch
  is live.
- **Faults.** Every Redis call is bounded by `timeout`. A call that fails or runs out of
  time is logged (once per outage) and the read goes to the database; for `retry_after`
  seconds after that, Redis is not tried at all. A write whose new generation could not be
  published marks its table: this process reads that table from the database until the
  generation is published. No cache fault raises or fails the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Final, TypeVar, cast

import cattrs
from cachetools import LRUCache
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from persistence._backend import ChangeWatch, Engine
from persistence.cache._core import MISS, TABLES, CachedReads, CacheStats, Load
from persistence.cache.memory import DEFAULT_HEARTBEAT, DEFAULT_SIZE, check_table
from persistence.converters import make_converter
from persistence.database import backend_of, redact_url, watch_writes
from persistence.exceptions import ValidationError

if TYPE_CHECKING:
    from persistence.database import Database

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "NAMESPACE_PREFIX",
    "REDIS_URL_VARIABLE",
    "RedisCache",
    "open_redis_cache",
]

NAMESPACE_PREFIX: Final = "persistence"
"""The default namespace is this, a colon and a digest of the database's URL."""

DEFAULT_TTL: Final = 300.0
"""Seconds a Redis entry lives."""

DEFAULT_TIMEOUT: Final = 0.25
"""Seconds a Redis call may take before the read goes to the database instead."""

DEFAULT_RETRY_AFTER: Final = 1.0
"""Seconds after a Redis fault during which Redis is not tried."""

REDIS_URL_VARIABLE: Final = "REDIS_URL"
"""The environment variable read when no Redis URL is given."""

_RESUBSCRIBE_WAITS: Final = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_LOG: Final = logging.getLogger("persistence.cache")
_FAULT: Final = object()
_T = TypeVar("_T")
_V = TypeVar("_V")

_TRANSPORT_ERRORS: Final = (RedisError, OSError, TimeoutError)
# What a damaged or foreign entry can raise while it is decoded: it is then a miss.
_DECODE_ERRORS: Final = (ValueError, TypeError, KeyError, cattrs.BaseValidationError)


class RedisCache(CachedReads):
    """Reads of one database through this process's memory and Redis; see the module."""

    def __init__(  # every limit is the caller's to set
        self,
        db: Database,
        watch: ChangeWatch,
        client: Redis,
        *,
        shown_url: str,
        namespace: str,
        ttl: float = DEFAULT_TTL,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
        heartbeat: float = DEFAULT_HEARTBEAT,
        local_size: int = DEFAULT_SIZE,
    ) -> None:
        super().__init__(db)
        self._watch: ChangeWatch | None = watch
        self._client = client
        self._shown_url = shown_url
        self._namespace = namespace
        self._channel = f"{namespace}:invalidate"
        self._ttl_ms = max(1, round(ttl * 1000))
        self._timeout = timeout
        self._retry_after = retry_after
        self._heartbeat = heartbeat
        self._converter = make_converter()
        self._local: LRUCache[tuple[str, tuple[Hashable, ...]], tuple[object, object]] | None = (
            LRUCache(maxsize=local_size) if local_size > 0 else None
        )
        self._own = dict.fromkeys(TABLES, 0)
        self._remote = dict.fromkeys(TABLES, 0)
        self._subscribed = 0
        self._fresh_until = 0.0
        self._dirty: set[str] = set()
        self._seen: dict[str, int | None] = dict.fromkeys(TABLES)
        """The database's versions at the last heartbeat: what the subscription has covered."""
        self._down_until = 0.0
        self._outage = False
        self._hits = self._misses = self._bypassed = self._faults = 0
        self._listening = asyncio.Event()
        self._subscriber: asyncio.Task[None] | None = None
        self._stop_watching = watch_writes(db, self._written)

    # The memory tier.

    def _version(self, table: str) -> tuple[int, int, int] | None:
        watch = self._watch
        if watch is None or time.monotonic() >= self._fresh_until or table in self._dirty:
            return None
        version = watch.version(table)
        if version is None:
            return None
        return version, self._subscribed + self._remote[table], self._own[table]

    def _peek(self, table: str, key: tuple[Hashable, ...]) -> object:
        local = self._local
        if local is not None:
            version = self._version(table)
            if version is not None:
                entry = local.get((table, key))
                if entry is not None and entry[0] == version:
                    self._hits += 1
                    return entry[1]
        return MISS

    async def _fill(
        self, table: str, key: tuple[Hashable, ...], load: Load[_V], shape: object
    ) -> _V:
        version = self._version(table)
        generation, value = await self._from_redis(table, key, shape)
        if value is MISS:
            self._misses += 1
            value = await load()
            if generation is not None:
                await self._to_redis(table, key, generation, value, shape)
        else:
            self._hits += 1
        if self._local is not None and version is not None and self._version(table) == version:
            self._local[table, key] = (version, value)
        return cast("_V", value)

    # The Redis tier.

    def _keys(self, table: str, key: tuple[Hashable, ...]) -> tuple[str, str]:
        text = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"{self._namespace}:gen:{table}", f"{self._namespace}:{table}:{digest}"

    async def _from_redis(
        self, table: str, key: tuple[Hashable, ...], shape: object
    ) -> tuple[bytes | None, object]:
        """Give the table's generation and the entry of `key`, or MISS; (None, MISS) on a fault."""
        if not await self._usable(table):
            self._bypassed += 1
            return None, MISS
        generation_key, entry_key = self._keys(table, key)
        got = await self._call(lambda: self._client.mget([generation_key, entry_key]))
        if got is _FAULT:
            self._bypassed += 1
            return None, MISS
        generation, raw = cast("list[bytes | None]", got)
        if generation is None:
            return await self._new_generation(table, set_if_missing=True), MISS
        return generation, MISS if raw is None else self._decode(raw, generation, shape)

    def _decode(self, raw: bytes, generation: bytes, shape: object) -> object:
        """Read an entry back as the models it holds; MISS if it is of another generation."""
        try:
            stored = json.loads(raw)
            if stored["g"] != generation.decode():
                return MISS
            return self._converter.structure(stored["v"], cast("type[object]", shape))
        except _DECODE_ERRORS as error:
            self._fault(error, "an entry could not be read")
            return MISS

    async def _to_redis(
        self,
        table: str,
        key: tuple[Hashable, ...],
        generation: bytes,
        value: object,
        shape: object,
    ) -> None:
        _, entry_key = self._keys(table, key)
        data = self._converter.unstructure(value, unstructure_as=shape)
        text = json.dumps({"g": generation.decode(), "v": data}, separators=(",", ":"))
        await self._call(lambda: self._client.set(entry_key, text, px=self._ttl_ms))

    async def _new_generation(self, table: str, *, set_if_missing: bool = False) -> bytes | None:
        """Give `table` a new generation and publish it; None on a fault."""
        token = secrets.token_hex(8).encode()
        generation_key = f"{self._namespace}:gen:{table}"
        if set_if_missing:
            # A generation lost with Redis's memory: the first reader makes a new one.
            await self._call(lambda: self._client.set(generation_key, token, nx=True))
            got = await self._call(lambda: self._client.get(generation_key))
            return None if got is _FAULT else cast("bytes | None", got)

        async def publish() -> object:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(generation_key, token)
                pipe.publish(self._channel, f"{table} {token.decode()}")
                return await pipe.execute()

        return None if await self._call(publish) is _FAULT else token

    async def _usable(self, table: str) -> bool:
        """Tell whether Redis may be asked about `table`; publish what faults held back."""
        now = time.monotonic()
        if now < self._down_until or now >= self._fresh_until:
            return False
        for dirty in sorted(self._dirty):
            if await self._new_generation(dirty) is None:
                return False
            self._dirty.discard(dirty)
        return table not in self._dirty

    async def _call(self, make: Callable[[], Awaitable[_T]]) -> _T | object:
        """Run one Redis call within the timeout; _FAULT if it fails or runs out of time."""
        if time.monotonic() < self._down_until:
            return _FAULT
        try:
            async with asyncio.timeout(self._timeout):
                result = await make()
        except _TRANSPORT_ERRORS as error:
            self._fault(error, f"no answer within {self._timeout:g}s or a failed call")
            self._down_until = time.monotonic() + self._retry_after
            return _FAULT
        if self._outage:
            self._outage = False
            _LOG.info("Redis at %s answers again; caching through it", self._shown_url)
        return result

    def _fault(self, error: BaseException, what: str) -> None:
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

    # Invalidation.

    async def _written(self, tables: frozenset[str]) -> None:
        """Forget the tables here, then publish their new generations to every worker."""
        for table in tables:
            if table in self._own:
                self._own[table] += 1
                self._dirty.add(table)
        for table in sorted(tables & self._dirty):
            if await self._new_generation(table) is not None:
                self._dirty.discard(table)

    def _invalidated(self, data: object) -> None:
        if isinstance(data, bytes):
            table = data.decode(errors="replace").partition(" ")[0]
            if table in self._remote:
                self._remote[table] += 1

    def _note_versions(self) -> None:
        watch = self._watch
        for table in TABLES:
            self._seen[table] = None if watch is None else watch.version(table)

    def _missed_while_away(self) -> None:
        """Mark the tables that changed while no invalidation could arrive.

        A writer that could not reach Redis then could not publish their new generations:
        this worker publishes them before it trusts Redis again.
        """
        watch = self._watch
        for table in TABLES:
            now = None if watch is None else watch.version(table)
            if now is None or now != self._seen[table]:
                self._dirty.add(table)

    async def _subscribe(self) -> None:
        """Keep a subscription to the invalidation channel, its heartbeat and its lease."""
        attempt = 0
        while True:
            pubsub = self._client.pubsub()
            try:
                async with asyncio.timeout(self._timeout + self._heartbeat):
                    await pubsub.subscribe(self._channel)
                    while (await pubsub.get_message(timeout=self._heartbeat)) is None:
                        pass  # the subscription's confirmation
                self._subscribed += 1  # messages may have been missed while not subscribed
                if self._subscribed > 1:
                    self._missed_while_away()
                else:
                    self._note_versions()
                attempt = 0
                await self._receive(pubsub)
            except _TRANSPORT_ERRORS:
                pass
            finally:
                self._fresh_until = 0.0
                with contextlib.suppress(*_TRANSPORT_ERRORS):
                    async with asyncio.timeout(self._timeout):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            await asyncio.sleep(_RESUBSCRIBE_WAITS[min(attempt, len(_RESUBSCRIBE_WAITS) - 1)])
            attempt += 1

    async def _receive(self, pubsub: PubSub) -> None:
        """Take invalidations; ping every heartbeat, and end when a pong comes late."""
        next_ping = time.monotonic()
        sent: float | None = None
        while True:
            now = time.monotonic()
            if sent is None and now >= next_ping:
                sent = now
                await pubsub.ping()
            if sent is not None and now >= sent + self._heartbeat:
                raise TimeoutError("no pong within the heartbeat")
            wait = (next_ping if sent is None else sent + self._heartbeat) - now
            message = await pubsub.get_message(timeout=max(wait, 0.001))
            if message is None:
                continue
            if message["type"] == "message":
                self._invalidated(message["data"])
            elif message["type"] == "pong" and sent is not None:
                self._note_versions()
                self._fresh_until = sent + 2 * self._heartbeat
                next_ping, sent = sent + self._heartbeat, None
                self._listening.set()

    async def start(self) -> None:
        """Subscribe; wait at most `timeout` + `heartbeat` for the subscription to answer."""
        self._subscriber = asyncio.get_running_loop().create_task(self._subscribe())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout + self._heartbeat):
                await self._listening.wait()
        if not self._listening.is_set():
            self._fault(TimeoutError("no subscription"), "could not subscribe")

    # The API's bookkeeping.

    def stats(self) -> CacheStats:
        """Return how the cache has served its reads so far; Redis hits count as hits."""
        return CacheStats(
            hits=self._hits, misses=self._misses, bypassed=self._bypassed, faults=self._faults
        )

    async def invalidate(self, table: str | None = None) -> None:
        """Forget `table`, or every table, here and in every worker."""
        check_table(table)
        await self._written(frozenset(TABLES if table is None else (table,)))

    async def close(self) -> None:
        """Publish what earlier faults held back, stop listening, and close the connections."""
        watch, self._watch = self._watch, None
        self._stop_watching()
        if self._dirty and time.monotonic() >= self._down_until:
            for table in sorted(self._dirty):
                await self._new_generation(table)
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await subscriber
        if self._local is not None:
            self._local.clear()
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            async with asyncio.timeout(self._timeout):
                await self._client.aclose(close_connection_pool=True)
        if watch is not None:
            await watch.close()


def default_namespace(db: Database) -> str:
    """Give the namespace of `db`: the prefix and a digest of its URL, password hidden."""
    url = db.url if db.engine is Engine.POSTGRES else os.path.abspath(db.url)  # noqa: PTH100  # a string in, a string out
    return f"{NAMESPACE_PREFIX}:{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def redis_url(url: str | None) -> str:
    """Name the Redis server: `url`, else `$REDIS_URL`; refuse to guess one."""
    found = url or os.environ.get(REDIS_URL_VARIABLE)
    if not found:
        raise ValidationError(
            "RedisCache", "url", f"give a redis:// URL, or set {REDIS_URL_VARIABLE}"
        )
    if not found.startswith(("redis://", "rediss://", "unix://")):
        raise ValidationError(
            "RedisCache",
            "url",
            f"expected redis://, rediss:// or unix://, got {redact_url(found)!r}",
        )
    return found


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
) -> RedisCache:
    """Open a Redis cache of `db`'s reads: `url`, else `$REDIS_URL`.

    It opens even when Redis does not answer (it logs that, and reads from the database
    until Redis answers). `local_size=0` turns the memory tier off. Workers share entries
    and invalidations within one `namespace`: by default, one per database URL (a SQLite
    path made absolute), so every worker must open the database by the same URL or pass
    the same namespace.
    """
    target = redis_url(url)
    if namespace is None:
        namespace = default_namespace(db)
    for name, value in (
        ("ttl", ttl),
        ("timeout", timeout),
        ("retry_after", retry_after),
        ("heartbeat", heartbeat),
    ):
        given: object = value  # callers without type checking may pass anything
        if isinstance(given, bool) or not isinstance(given, int | float) or not value > 0:
            raise ValidationError("RedisCache", name, f"must be a positive number, got {value!r}")
    if not namespace or any(c.isspace() for c in namespace):
        raise ValidationError("RedisCache", "namespace", f"must be a word, got {namespace!r}")
    size: object = local_size
    if isinstance(size, bool) or not isinstance(size, int) or local_size < 0:
        raise ValidationError("RedisCache", "local_size", f"must be >= 0, got {local_size!r}")
    no_retry = Retry(NoBackoff(), 0)
    pool = ConnectionPool.from_url(
        target,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=no_retry,
        health_check_interval=0,
    )
    client = Redis(connection_pool=pool, retry=no_retry)
    watch = await backend_of(db).watch_changes(heartbeat=heartbeat)
    cache = RedisCache(
        db,
        watch,
        client,
        shown_url=redact_url(target),
        namespace=namespace,
        ttl=ttl,
        timeout=timeout,
        retry_after=retry_after,
        heartbeat=heartbeat,
        local_size=local_size,
    )
    await cache.start()
    return cache
