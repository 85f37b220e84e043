"""The caches under bad input and load: the rules both caches share.

Arguments checked as the repository checks them, concurrent misses sharing one load, one
rule inside transaction() blocks, poisoned Redis entries, a byte budget, bad arguments
refused before any side effect, namespaces by the database's identity, cancelled opens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from _cache_feed_helpers import (
    HEARTBEAT,
    redis_cache,
)
from persistence import (
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    find_result,
    migrate,
    open_database,
    open_persistence,
    save_result,
    save_results,
    set_config,
    transaction,
)
from persistence.cache import MemoryCache, RedisCache, open_memory_cache, open_redis_cache
from persistence.cache._redis_url import redis_url
from persistence.database import close_database

# --- the caches under bad input and load ------------------------------------------------------


@pytest.mark.parametrize("bad", [True, 1.0, "1", 2**63, -(2**63) - 1])
async def test_a_cache_refuses_the_ids_the_repository_refuses(db: Database, bad: object) -> None:
    """find_result(True) is not result 1 from the cache: both refuse it alike."""
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        assert await cache.find_result(1) is not None
        with pytest.raises(ValidationError, match="id"):
            await find_result(db, bad)  # type: ignore[arg-type]  # what the test is about
        with pytest.raises(ValidationError, match="id"):
            await cache.find_result(bad)  # type: ignore[arg-type]  # what the test is about
        await cache.recent_results(1)
        with pytest.raises(ValidationError, match="limit"):
            await cache.recent_results(1.0)  # type: ignore[arg-type]  # what the test is about
        with pytest.raises(ValidationError, match="limit"):
            await cache.recent_results(limit=True)  # bool is an int to mypy: refused all the same
    finally:
        await cache.close()


async def test_concurrent_misses_share_one_load(
    db: Database, redis_url: str, namespace: str
) -> None:
    """200 tasks reading one missing key make one database read, in each cache."""
    saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    assert saved.id is not None
    memory = await open_memory_cache(db, heartbeat=HEARTBEAT)
    tiered = await redis_cache(db, redis_url, namespace, 100)
    try:
        for cache in (memory, tiered):
            await cache.get_config_value("runner", "warm", int, 0)  # the watch is live
            found = await asyncio.gather(*(cache.find_result(saved.id) for _ in range(200)))
            assert all(result == saved for result in found)
            assert cache.stats().misses == 2  # the warm-up and the one load
    finally:
        await memory.close()
        await tiered.close()


async def test_one_rule_for_reads_inside_a_transaction(db: Database) -> None:
    """Inside a transaction() block of its database, a cache read is refused, hit or miss.

    It said to pass the database that transaction() gave, which no cache read takes.
    """
    await set_config(db, "runner", "workers", 4)
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        assert await cache.get_config_value("runner", "workers", int) == 4  # now held
        async with transaction(db) as tx:
            await set_config(tx, "runner", "workers", 5)
            said = r"inside transaction\(db\), whose uncommitted writes no cache .* not the cache"
            with pytest.raises(DatabaseError, match=said):
                await cache.get_config_value("runner", "workers", int)  # a hit
            with pytest.raises(DatabaseError, match=said):
                await cache.find_result(1)  # a miss
        assert await cache.get_config_value("runner", "workers", int) == 5
    finally:
        await cache.close()


@pytest.mark.parametrize(
    "poison",
    [
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"t": "config_entries", "k": "[]", "s": "x", "v": null}',
        b'{"v": 4}',
        b"",
    ],
)
async def test_a_poisoned_redis_entry_is_a_miss(
    db: Database, redis_url: str, namespace: str, poison: bytes
) -> None:
    """Bytes that are not an entry of this read, under its key, are a miss, never an error."""
    await set_config(db, "runner", "workers", 4)
    cache = await redis_cache(db, redis_url, namespace, 0)
    client = Redis.from_url(redis_url)
    try:
        assert await cache.get_config_value("runner", "workers", int) == 4
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        assert keys
        for key in keys:
            await client.set(key, poison)
        assert await cache.get_config_value("runner", "workers", int) == 4
        assert cache.stats().faults >= (1 if poison else 0)  # empty: read as no entry at all
    finally:
        await client.aclose()
        await cache.close()


async def test_an_entry_under_another_reads_key_is_a_miss(
    db: Database, redis_url: str, namespace: str
) -> None:
    """An entry copied to the key of another read names its own read: it is not served."""
    await set_config(db, "runner", "a", 1)
    await set_config(db, "runner", "b", 2)
    cache = await redis_cache(db, redis_url, namespace, 0)
    client = Redis.from_url(redis_url)
    try:
        assert await cache.get_config_value("runner", "a", int) == 1
        (first,) = [key async for key in client.scan_iter(f"{namespace}:*")]
        assert await cache.get_config_value("runner", "b", int) == 2
        keys = {key async for key in client.scan_iter(f"{namespace}:*")}
        (second,) = keys - {first}
        await client.set(second, await client.get(first) or b"")
        assert await cache.get_config_value("runner", "b", int) == 2
    finally:
        await client.aclose()
        await cache.close()


@pytest.mark.parametrize("kind", ["bytes", "list"])
async def test_a_bad_entry_is_its_keys_fault_not_an_outage(
    db: Database, redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    """A bad entry is a miss of its read alone: logged once, naming its key, and replaced.

    It took the outage's path: each logged "reading from the database meanwhile", and the
    next good call "answers again", though Redis had answered all along. A list where an
    entry belongs (Redis's WRONGTYPE) also made every read skip Redis for `retry_after`, and
    the key was never replaced.
    """
    caplog.set_level(logging.INFO, "persistence.cache")
    await set_config(db, "runner", "a", 1)
    await set_config(db, "runner", "b", 2)
    cache = await open_redis_cache(
        db, redis_url, namespace=namespace, heartbeat=HEARTBEAT, retry_after=60, local_size=0
    )
    client = Redis.from_url(redis_url)
    try:
        assert await cache.get_config_value("runner", "a", int) == 1
        (key,) = [key async for key in client.scan_iter(f"{namespace}:*")]
        assert await cache.get_config_value("runner", "b", int) == 2
        for _ in range(3):  # planted again after each read replaced it
            await client.delete(key)
            await (client.set(key, b"no entry") if kind == "bytes" else client.rpush(key, b"x"))
            assert await cache.get_config_value("runner", "a", int) == 1
            hits = cache.stats().hits
            assert await cache.get_config_value("runner", "b", int) == 2
            assert await cache.get_config_value("runner", "a", int) == 1
            assert cache.stats().hits == hits + 2  # Redis still used, and the entry replaced
        assert cache.stats().faults == 3
    finally:
        await client.aclose()
        await cache.close()
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1, said
    assert key.decode() in said[0]
    assert caplog.records[0].levelno == logging.WARNING


@pytest.mark.timed  # its reads race a 50 ms timeout: a loaded run's normal read outlasted it
async def test_a_huge_entry_is_a_miss_of_its_key_not_an_outage(
    db: Database, redis_url: str, namespace: str
) -> None:
    """No entry over `max_entry_bytes` is written, and a huge one planted is a miss of its key.

    A multi-MB entry (a result with a large output) ran out of the timeout on each read, and
    each time every read skipped Redis for `retry_after`.
    """
    big = await save_result(
        db,
        TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, output="x" * 2**21),
    )
    assert big.id is not None
    await set_config(db, "runner", "a", 1)
    await set_config(db, "runner", "b", 2)
    cache = await open_redis_cache(
        db,
        redis_url,
        namespace=namespace,
        heartbeat=HEARTBEAT,
        timeout=0.05,  # a 1 MiB entry takes a few ms on loopback, 32 MiB well over 0.1 s
        retry_after=60,
        local_size=0,
    )
    client = Redis.from_url(redis_url)
    try:
        assert await cache.get_config_value("runner", "a", int) == 1
        (first,) = [key async for key in client.scan_iter(f"{namespace}:*")]
        assert await cache.get_config_value("runner", "b", int) == 2
        assert await cache.find_result(big.id) == big
        assert len([key async for key in client.scan_iter(f"{namespace}:*")]) == 2
        await client.set(first, b"x" * 2**25)
        hits = cache.stats().hits
        assert await cache.get_config_value("runner", "a", int) == 1
        assert await cache.get_config_value("runner", "b", int) == 2
        assert await cache.get_config_value("runner", "a", int) == 1  # replaced
        assert (cache.stats().hits, cache.stats().faults) == (hits + 2, 1)
        assert cache.stats().bypassed == 0
        assert await cache.find_result(big.id) == big
    finally:
        await client.aclose()
        await cache.close()


@pytest.mark.parametrize("dropped", [("test_id", "run_id"), ("metadata",), ("output",)])
async def test_an_entry_of_another_form_is_a_miss(
    db: Database, redis_url: str, namespace: str, dropped: tuple[str, ...]
) -> None:
    """An entry lacking fields, as one written before they existed, is a miss, not defaults.

    Its missing fields were filled with the model's defaults and served as the row: a
    result without its test id, its metadata or its output.
    """
    saved = await save_result(
        db,
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.FAILED,
            output="case 3: wrong answer",
            metadata={"seed": 3},
            test_id="tests.test_io::test_read",
        ),
    )
    assert saved.id is not None
    cache = await redis_cache(db, redis_url, namespace, 0)
    client = Redis.from_url(redis_url)
    try:
        assert await cache.find_result(saved.id) == saved
        assert await cache.recent_results(1) == (saved,)
        for key in [key async for key in client.scan_iter(f"{namespace}:*")]:
            entry = json.loads(await client.get(key) or b"")
            for value in entry["v"] if isinstance(entry["v"], list) else [entry["v"]]:
                for field in dropped:
                    del value[field]
            await client.set(key, json.dumps(entry, separators=(",", ":")), keepttl=True)
        hits = cache.stats().hits
        assert await cache.find_result(saved.id) == saved
        assert await cache.recent_results(1) == (saved,)
        assert cache.stats().hits == hits
        assert cache.stats().faults >= 2
    finally:
        await client.aclose()
        await cache.close()


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/3", "redis://127.0.0.1:6379?db=3", "redis://127.0.0.1:6379/?db=3"],
)
def test_a_redis_url_naming_its_database_once_is_taken(url: str) -> None:
    """In its path or in its query, once: the URL is the one given."""
    assert redis_url(url) == url


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": 1e16}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"heartbeat": float("inf")}, "heartbeat"),
        ({"heartbeat": 1e-300}, "heartbeat.*at least 0.01 seconds"),
        ({"heartbeat": 1e300}, "heartbeat.*at most 3600 seconds"),
        ({"heartbeat": 3600.5}, "heartbeat.*at most 3600 seconds"),
        ({"max_entry_bytes": 0}, "max_entry_bytes"),
        ({"namespace": 5}, "namespace"),
        ({"namespace": "workers-\ud800"}, "namespace"),
        ({"url": "redis://127.0.0.1:abc/0"}, "url"),
        ({"url": "redis://127.0.0.1:6379/abc"}, "url"),
        ({"url": "redis://127.0.0.1:6379/?db=abc"}, "url"),
        ({"url": "redis://127.0.0.1:6379/3?db=14"}, "url.*database 3 in its path and 14"),
        ({"url": "redis://127.0.0.1:6379/0?db=0"}, "url.*database 0 in its path and 0"),
        ({"url": "redis://127.0.0.1:6379?db=3&db=5"}, "url.*gives db 2 times"),
        ({"url": "unix:///run/redis.sock?db=3&db=5"}, "url.*gives db 2 times"),
        ({"url": "redis://127.0.0.1:6379/0?sockettimeout=1"}, "url"),
        ({"url": "rediss://127.0.0.1:6379/0?ssl_cert_reqs=maybe"}, "url"),
        ({"url": "redis://[::1/0"}, "url"),
        ({"url": "redis://127.0.0.1:6379/0?decode_responses=False"}, "url.*decode_responses"),
        ({"url": "redis://127.0.0.1:6379/0?encoding=ascii"}, "url.*encoding"),
        ({"url": "redis://127.0.0.1:6379/0?encoding_errors=ignore"}, "url.*encoding_errors"),
        ({"url": "redis://127.0.0.1:6379/0?max_connections=0"}, "url.*max_connections"),
        ({"url": "redis://127.0.0.1:6379/0?max_connections=-0"}, "url.*max_connections"),
        ({"url": "redis://127.0.0.1:6379/0?max_connections=0_0"}, "url.*max_connections"),
    ],
)
async def test_bad_redis_arguments_are_refused_before_anything_opens(
    db: Database, redis_url: str, arguments: dict[str, object], name: str
) -> None:
    """Each bad argument is a ValidationError naming it, before a connection or a listener.

    A query redis-py cannot take was taken: `?db=abc` raised a bare ValueError, and an option
    it does not know made every read through the cache raise TypeError, when it connected.
    A namespace holding a lone surrogate was taken, and every read raised UnicodeEncodeError.
    `?decode_responses=` (any value: redis-py reads the text as true) made an entry that is
    not UTF-8 raise UnicodeDecodeError from the read; `?encoding=ascii`, a namespace beyond
    ASCII raise UnicodeEncodeError.
    """
    settings: dict[str, object] = {"url": redis_url, **arguments}
    tasks = len(asyncio.all_tasks())
    with pytest.raises(ValidationError, match=name):
        await open_redis_cache(db, **settings)  # type: ignore[arg-type]  # bad on purpose
    assert len(asyncio.all_tasks()) == tasks


@pytest.mark.parametrize(
    ("section", "key", "name"), [(["runner"], "a", "section"), ("runner", {}, "key")]
)
async def test_a_cache_refuses_unhashable_config_keys_as_the_repository_does(
    db: Database, section: object, key: object, name: str
) -> None:
    """A list or a dict as section or key is a ValidationError naming it, as without a cache.

    The memory tier was asked first, with the key unchecked: a raw TypeError, unhashable type.
    """
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        with pytest.raises(ValidationError, match=name):
            await cache.find_config_entry_by_key(section, key)  # type: ignore[arg-type]  # bad on purpose
        with pytest.raises(ValidationError, match=name):
            await cache.get_config_value(section, key, int)  # type: ignore[call-overload]  # bad on purpose
    finally:
        await cache.close()


@pytest.mark.parametrize("heartbeat", ["1", None, True, float("inf"), 1e-6, 0.009])
async def test_a_bad_memory_heartbeat_is_refused_before_anything_opens(
    db: Database, heartbeat: object
) -> None:
    """The memory cache checks `heartbeat` as the Redis cache does, before any listener.

    It only asked `heartbeat > 0`: text or None raised a raw TypeError, True was one second,
    and an infinite one kept a PostgreSQL listener that stopped answering trusted for good.
    A microsecond's sent `SELECT 1` back to back, and the feed was never trusted.
    """
    tasks = len(asyncio.all_tasks())
    with pytest.raises(ValidationError, match="heartbeat"):
        await open_memory_cache(db, heartbeat=heartbeat)  # type: ignore[arg-type]  # bad on purpose
    assert len(asyncio.all_tasks()) == tasks


@pytest.mark.parametrize(
    "arguments",
    [
        {"heartbeat": 0.0},
        {"heartbeat": float("inf")},
        {"heartbeat": 1e-6},
        {"redis": "redis://127.0.0.1:abc"},
        {"redis": "http://127.0.0.1"},
        {"redis": "redis://127.0.0.1:6379/0?db=abc"},
        {"redis": "redis://127.0.0.1:6379/3?db=14"},
        {"redis": "redis://127.0.0.1:6379/0?sockettimeout=1"},
        {"artifact_budget": 0},
        {"artifact_budget": True},
    ],
)
async def test_open_persistence_refuses_bad_arguments_before_any_side_effect(
    tmp_path: Path, arguments: dict[str, object]
) -> None:
    """No database file, no folder: the bad argument is refused first."""
    with pytest.raises(ValidationError):
        async with open_persistence(
            tmp_path / "app.db",
            files=tmp_path / "files",
            **arguments,  # type: ignore[arg-type]  # bad on purpose
        ):
            pass
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


async def test_the_memory_tier_keeps_to_its_byte_budget(db: Database) -> None:
    """100 `recent_results` reads of big outputs hold no more than the byte budget."""
    big = "x" * 200_000
    await save_results(
        db, [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output=big)] * 20
    )
    budget = 4_000_000
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT, max_bytes=budget)
    try:
        for limit in range(1, 101):
            assert len(await cache.recent_results(limit)) == min(limit, 20)
        held = cache.stats().held_bytes
        assert 200_000 < held <= budget, held
        assert len(await cache.recent_results(1)) == 1
    finally:
        await cache.close()
    with pytest.raises(ValidationError, match="max_bytes"):
        await open_memory_cache(db, max_bytes=0)


@pytest.mark.usefixtures("postgres_admin")
async def test_one_url_text_two_databases_share_no_namespace(
    postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same URL text reaching two databases (by PGDATABASE) gives two namespaces."""
    first_name = postgres_url.rsplit("/", 1)[1]
    second_name = f"{first_name}_b"
    server = postgres_url.rsplit("/", 1)[0]
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{second_name}" TEMPLATE template0')
    try:
        caches: list[RedisCache] = []
        try:
            for name, value in ((first_name, 1), (second_name, 2)):
                monkeypatch.setenv("PGDATABASE", name)
                db = await open_database(server)  # the same text, without a database
                await migrate(db)
                await set_config(db, "runner", "workers", value)
                cache = await open_redis_cache(db, redis_url, heartbeat=HEARTBEAT, local_size=0)
                caches.append(cache)
                assert await cache.get_config_value("runner", "workers", int) == value
            assert caches[0]._namespace != caches[1]._namespace  # noqa: SLF001
        finally:
            client = Redis.from_url(redis_url)
            for cache in caches:
                await cache.close()
                await close_database(cache._db)  # noqa: SLF001
                keys = [key async for key in client.scan_iter(f"{cache._namespace}:*")]  # noqa: SLF001
                if keys:
                    await client.delete(*keys)
            await client.aclose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{second_name}" WITH (FORCE)')
        await admin.close()


LISTENERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND (query = 'SELECT 1' OR query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_notify%'"
    " OR query LIKE 'SELECT ''postgres:''%')"
)
"""The change listeners' connections to this test's database, by the last query they sent."""


@pytest.mark.parametrize("redis", [False, True])
async def test_a_cancelled_cache_open_leaves_nothing_behind(
    db: Database, database_url: str, redis_url: str, *, redis: bool
) -> None:
    """A cache open cancelled at any point leaves no task and no listener connection."""
    for _ in range(3):  # the fixture's last write: its writer task ends a loop turn after it
        await asyncio.sleep(0)
    tasks = len(asyncio.all_tasks())
    for step in range(30):

        async def use() -> None:
            if redis:
                cache: MemoryCache | RedisCache = await redis_cache(db, redis_url, "ns", 10)
            else:
                cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
            try:
                await asyncio.sleep(10)
            finally:
                await cache.close()

        opening = asyncio.ensure_future(use())
        await asyncio.sleep(step * 0.002)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert len(asyncio.all_tasks()) == tasks, step
    if db.engine.value == "postgres":
        admin = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + 2
            while await admin.fetchval(LISTENERS):
                assert time.monotonic() < deadline, "a listener was left open"
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
