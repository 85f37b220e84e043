"""One change feed for every cache: whoever commits, every cache follows the database's feed.

The writes here bypass what a writer through this package would do: plain SQL from the
engine's own shell, a writer killed right after its commit, a call cancelled after its
commit, and Redis brought back from an older snapshot. None of them may leave a cache
serving the old value past the moment its change watch has seen the commit.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import assert_type

import asyncpg
import pytest
from redis.asyncio import Redis

from codegen.facts import written_tables
from codegen.model import CodegenError
from persistence import (
    Database,
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    delete_config_entry,
    delete_file_record,
    delete_file_record_by_path,
    delete_result,
    delete_results_before,
    delete_run,
    get_config_entry_by_key,
    migrate,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    save_run,
    set_config,
    transaction,
)
from persistence._interface import JsonValue
from persistence._sqlite.changes import wal_stamp
from persistence.cache import MemoryCache, RedisCache, open_memory_cache, open_redis_cache
from persistence.database import backend_of, watch_writes
from persistence.queries import QUERY_WRITES

ROOT = Path(__file__).resolve().parent.parent
WRITER = str(Path(__file__).parent / "_feed_writer.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
HEARTBEAT = 0.2
BOUND = float(os.environ.get("TEST_FEED_BOUND", "2.0"))
"""Seconds within which a committed change must show on PostgreSQL, with room for load."""

Read = Callable[[], Awaitable[int]]


@pytest.fixture(name="namespace")
async def fresh_namespace(redis_url: str) -> AsyncIterator[str]:
    """A namespace of this test's own, whose keys are deleted afterwards."""
    name = f"persistence-feed-{uuid.uuid4().hex[:12]}"
    yield name
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def redis_cache(db: Database, url: str, namespace: str, local_size: int) -> RedisCache:
    """A Redis cache with short limits; `local_size=0` makes every read ask Redis."""
    return await open_redis_cache(
        db,
        url,
        namespace=namespace,
        timeout=0.5,
        retry_after=0.2,
        heartbeat=HEARTBEAT,
        local_size=local_size,
    )


@pytest.fixture(name="readers")
async def three_readers(
    db: Database, redis_url: str, namespace: str
) -> AsyncIterator[tuple[MemoryCache, RedisCache, RedisCache]]:
    """A memory cache, a Redis cache with its memory tier and one without, on one namespace."""
    memory = await open_memory_cache(db, heartbeat=HEARTBEAT)
    tiered = await redis_cache(db, redis_url, namespace, 100)
    bare = await redis_cache(db, redis_url, namespace, 0)
    try:
        yield memory, tiered, bare
    finally:
        for cache in (memory, tiered, bare):
            await cache.close()


def workers(cache: MemoryCache | RedisCache) -> Read:
    """The read of runner.workers through `cache`."""
    return lambda: cache.get_config_value("runner", "workers", int)


async def shows(read: Read, expected: int, *, at_once: bool) -> None:
    """The read gives `expected`: at once (SQLite), or within the bound; and keeps giving it."""
    started = time.monotonic()
    while (value := await read()) != expected:
        assert not at_once, f"still {value}, not {expected}"
        assert time.monotonic() - started < BOUND, f"still {value}, not {expected}"
        await asyncio.sleep(0.005)
    for _ in range(5):
        assert await read() == expected


async def loaded(db: Database, caches: tuple[MemoryCache | RedisCache, ...], value: int) -> None:
    """Set runner.workers and have every cache hold it (in memory and in Redis)."""
    await set_config(db, "runner", "workers", value)
    for cache in caches:
        await shows(workers(cache), value, at_once=False)


async def every_reader_shows(
    db: Database, caches: tuple[MemoryCache | RedisCache, ...], value: int
) -> None:
    """Every cache gives `value`: at once on SQLite, within the bound on PostgreSQL."""
    at_once = db.engine.value == "sqlite"
    for cache in caches:
        await shows(workers(cache), value, at_once=at_once)


def plain_sql(database_url: str, sql: str) -> None:
    """Run `sql` with the engine's own shell (psql, sqlite3), or its driver without one."""
    postgres = database_url.startswith("postgresql")
    shell = shutil.which("psql" if postgres else "sqlite3")
    if shell is not None:
        args = [shell, "-q", "-v", "ON_ERROR_STOP=1", database_url, "-c", sql]
        if not postgres:
            args = [shell, database_url, sql]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    elif postgres:

        async def run() -> None:
            connection = await asyncpg.connect(database_url)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(run())  # pragma: no cover  # only without psql
    else:  # pragma: no cover  # only without the sqlite3 shell
        connection = sqlite3.connect(database_url, isolation_level=None)
        connection.execute(sql)
        connection.close()


# --- the four ways around a writer that publishes -------------------------------------------

_SET_WORKERS_TO_9 = (
    "UPDATE config_entries SET value = '9' WHERE section = 'runner' AND key = 'workers'"
)


async def test_a_write_by_the_engines_shell_reaches_every_cache(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """An UPDATE by psql or the sqlite3 shell shows in the memory tier and in Redis alike."""
    await loaded(db, readers, 4)
    await asyncio.to_thread(plain_sql, database_url, _SET_WORKERS_TO_9)
    await every_reader_shows(db, readers, 9)


async def test_the_feed_outlives_a_shutdown_handler_cancelling_its_tasks(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """Code that cancels every task but its own leaves every cache on the database's feed.

    On PostgreSQL, the listener's task ended with the cancel and never came back: the caches
    then read the database on every call, with nothing logged. The next read that finds the
    feed down starts it again (a listener that restarted itself would outlive `asyncio.run`).
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415

    await loaded(db, readers, 4)
    cancel_all_tasks_but()
    await asyncio.sleep(HEARTBEAT * 3)  # a listener that is back has answered a heartbeat
    await asyncio.to_thread(plain_sql, database_url, _SET_WORKERS_TO_9)
    await every_reader_shows(db, readers, 9)
    for cache in readers:  # the feed is back within the bound: a read is a hit again
        deadline = time.monotonic() + 2.0
        while True:
            await workers(cache)()  # loaded, and kept once the feed is back
            before = cache.stats()
            await workers(cache)()
            after = cache.stats()
            if after.hits == before.hits + 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(HEARTBEAT / 4)
        assert after.hits == before.hits + 1, f"{type(cache).__name__}: {before} -> {after}"


async def test_a_writer_killed_after_its_commit_reaches_every_cache(
    db: Database,
    database_url: str,
    redis_url: str,
    namespace: str,
    readers: tuple[MemoryCache, RedisCache, RedisCache],
) -> None:
    """A process SIGKILLed right after its commit, before anything else ran, is seen."""
    await loaded(db, readers, 4)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        WRITER,
        database_url,
        redis_url,
        namespace,
        "11",
        env=CHILD_ENV,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -9, stderr.decode()
    entry = await get_config_entry_by_key(db, "runner", "workers")
    assert entry.value == 11, "the killed writer had committed"
    await every_reader_shows(db, readers, 11)


async def committed_but_cancelled(db: Database, database_url: str, value: int) -> bool:
    """Set runner.workers to `value` and cancel the call once the commit is visible.

    True if the call was cancelled after its commit (its caller never saw it return).
    """
    postgres = database_url.startswith("postgresql")
    probe_pg = await asyncpg.connect(database_url) if postgres else None
    probe_lite = None if postgres else sqlite3.connect(database_url, isolation_level=None)
    sql = "SELECT value FROM config_entries WHERE section = 'runner' AND key = 'workers'"

    async def committed() -> bool:
        if probe_pg is not None:
            return str(await probe_pg.fetchval(sql)) == str(value)
        assert probe_lite is not None
        return str(probe_lite.execute(sql).fetchone()[0]) == str(value)

    task = asyncio.ensure_future(set_config(db, "runner", "workers", value))
    try:
        while not await committed():
            assert not task.done() or task.exception() is None
            await asyncio.sleep(0)
        cancelled = task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return cancelled
        return False
    finally:
        if probe_pg is not None:
            await probe_pg.close()
        if probe_lite is not None:
            probe_lite.close()


async def test_a_call_cancelled_after_its_commit_reaches_every_cache(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """A write whose caller was cancelled after the commit is seen by every cache."""
    await loaded(db, readers, 4)
    cancelled = 0
    for value in range(20, 220):  # the window after a commit is narrow: try often
        if await committed_but_cancelled(db, database_url, value):
            cancelled += 1
        await every_reader_shows(db, readers, value)
        if cancelled >= 3:  # a few are enough
            break
    assert cancelled, "no call was cancelled after its commit"


async def test_redis_brought_back_from_an_older_snapshot_gives_no_old_value(
    db: Database,
    database_url: str,
    redis_url: str,
    namespace: str,
    readers: tuple[MemoryCache, RedisCache, RedisCache],
) -> None:
    """Every key of the namespace written back as it was before a write changes no read."""
    await loaded(db, readers, 4)
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(f"{namespace}:*")]
        assert keys, "the caches stored nothing in Redis"
        snapshot = {key: await client.dump(key) for key in keys}
        await set_config(db, "runner", "workers", 5)
        await every_reader_shows(db, readers, 5)
        for key, dumped in snapshot.items():
            assert dumped is not None
            await client.restore(key, 0, dumped, replace=True)
        await every_reader_shows(db, readers, 5)
        late = await redis_cache(db, redis_url, namespace, 0)
        try:
            await shows(workers(late), 5, at_once=True)
        finally:
            await late.close()
    finally:
        await client.aclose()
    del database_url


async def test_another_process_through_the_package_reaches_redis_readers(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """A write by another open database, with no cache of its own, is seen by every reader."""
    await loaded(db, readers, 4)
    async with connect(database_url) as other:
        await set_config(other, "runner", "workers", 6)
    await every_reader_shows(db, readers, 6)


@pytest.mark.usefixtures("postgres_admin")
async def test_a_write_under_replica_role_is_seen(postgres_url: str) -> None:
    """`session_replication_role = replica` skips ordinary triggers, not the change feed's."""
    async with connect(postgres_url) as db:
        await migrate(db)
        await set_config(db, "runner", "workers", 4)
        cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
        try:
            assert await cache.get_config_value("runner", "workers", int) == 4
            raw = await asyncpg.connect(postgres_url)
            try:
                await raw.execute("SET session_replication_role = replica")
                await raw.execute("UPDATE config_entries SET value = '7'")
            finally:
                await raw.close()
            await shows(workers(cache), 7, at_once=False)
        finally:
            await cache.close()


# --- a write through the package announces itself ------------------------------------------


async def _config_writes(db: Database) -> None:
    saved = await set_config(db, "runner", "workers", 1)
    await save_config_entry(db, saved)
    assert saved.id is not None
    await delete_config_entry(db, saved.id)


async def _result_writes(db: Database) -> None:
    result = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    await save_result(db, result)
    await save_results(db, [TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED)])
    assert result.id is not None
    await delete_result(db, result.id)
    await delete_results_before(db, result.created_at)


async def _file_record_writes(db: Database) -> None:
    record = await save_file_record(db, FileRecord(path="a.txt", size=1, hash="0" * 64))
    await save_file_record(db, record)
    assert record.id is not None
    await delete_file_record(db, record.id)
    await save_file_record(db, FileRecord(path="b.txt", size=1, hash="0" * 64))
    await delete_file_record_by_path(db, "b.txt")


async def _run_writes(db: Database) -> None:
    run = await save_run(db, Run())
    await save_run(db, run)
    assert run.id is not None
    await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)
    )
    await delete_run(db, run.id)


WRITE_FUNCTIONS = {
    "set_config": "config_entries",
    "save_config_entry": "config_entries",
    "delete_config_entry": "config_entries",
    "save_result": "test_results",
    "save_results": "test_results",
    "delete_result": "test_results",
    "delete_results_before": "test_results",
    "save_file_record": "file_records",
    "delete_file_record": "file_records",
    "delete_file_record_by_path": "file_records",
    "save_run": "runs",
    "delete_run": "runs",
}
"""Every write function of the public API, and the table it changes."""


def test_every_public_write_function_is_covered_here() -> None:
    """A new write function must be listed above, so that the test below runs it."""
    import persistence  # noqa: PLC0415  # the package's public names, read once

    writes = {
        name
        for name in persistence.__all__
        if name.startswith(("save_", "delete_", "set_", "update_", "insert_"))
    }
    assert writes == set(WRITE_FUNCTIONS)


async def test_every_write_function_is_announced_without_help(db: Database) -> None:
    """Each write function's table is told to the caches, with no call in the repository."""
    told: list[frozenset[str]] = []
    stop = watch_writes(db, told.append)
    try:
        for run, table in (
            (_config_writes, "config_entries"),
            (_result_writes, "test_results"),
            (_file_record_writes, "file_records"),
            (_run_writes, "runs"),
        ):
            told.clear()
            await run(db)
            names = [name for name, written in WRITE_FUNCTIONS.items() if written == table]
            assert len(told) >= len(names) - 1, (table, told)  # set_config is save_config_entry
            seen = list(told)
            if table == "runs":  # save_result, and delete_run takes the run's results too
                assert seen[-1] == {"runs", "test_results"}, seen
                seen = [tables for tables in seen[:-1] if tables != {"test_results"}]
            assert all(tables == {table} for tables in seen), seen
    finally:
        stop()


async def test_a_cache_sees_each_write_at_once(db: Database) -> None:
    """After each write function returns, the next cached read shows its change, on both engines."""
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        assert await cache.get_config_value("runner", "workers", int, 0) == 0
        saved = await set_config(db, "runner", "workers", 3)
        assert await cache.get_config_value("runner", "workers", int) == 3
        assert saved.id is not None
        await delete_config_entry(db, saved.id)
        assert await cache.find_config_entry_by_key("runner", "workers") is None
        assert await cache.recent_results() == ()
        result = await save_result(
            db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
        )
        assert await cache.recent_results() == (result,)
        await save_results(db, [TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED)])
        assert len(await cache.recent_results()) == 2
        assert result.id is not None
        await delete_result(db, result.id)
        assert await cache.find_result(result.id) is None
        record = await save_file_record(db, FileRecord(path="a.txt", size=1, hash="0" * 64))
        assert await cache.find_file_record_by_path("a.txt") == record
        await delete_file_record_by_path(db, "a.txt")
        assert await cache.find_file_record_by_path("a.txt") is None
        async with transaction(db) as tx:
            await set_config(tx, "runner", "workers", 8)
        assert await cache.get_config_value("runner", "workers", int) == 8
    finally:
        await cache.close()


async def test_an_entry_loaded_after_a_write_survives_its_notification(db: Database) -> None:
    """The README's sequence: a read after a write is kept, though the write's notice follows."""
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        for value in range(5):
            await set_config(db, "runner", "workers", value)
            assert await cache.get_config_value("runner", "workers", int) == value
            await asyncio.sleep(0.05)  # PostgreSQL's notification of the write arrives meanwhile
            hits = cache.stats().hits
            assert await cache.get_config_value("runner", "workers", int) == value
            assert cache.stats().hits == hits + 1
    finally:
        await cache.close()


async def test_a_cache_types_a_setting_by_the_kind_asked(db: Database) -> None:
    """A cache's get_config_value is the package's: mypy types its result by `kind`."""
    await set_config(db, "runner", "flags", ["a"])
    await set_config(db, "runner", "workers", 2)
    cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
    try:
        assert_type(await cache.get_config_value("runner", "flags", list), list[JsonValue])
        assert_type(await cache.get_config_value("runner", "workers", int), int)
        assert_type(await cache.get_config_value("runner", "none", str, "x"), str)
        assert_type(await cache.get_config_value("runner", "none", dict, {}), dict[str, JsonValue])
        flags = await cache.get_config_value("runner", "flags", list)
        flags.append("b")  # a private copy
        assert await cache.get_config_value("runner", "flags", list) == ["a"]
    finally:
        await cache.close()


async def test_the_readme_caching_example_runs_on_both_engines(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's caching example, with its hit count, on SQLite and on PostgreSQL."""
    from test_readme import example_under  # noqa: PLC0415  # the README's own block

    monkeypatch.delenv("REDIS_URL", raising=False)
    example = example_under("## Caching")
    assert callable(example)
    for _ in range(3):  # it failed most runs on PostgreSQL, not every one
        await example(tmp_path, database_url)


# --- the generator's table facts -------------------------------------------------------------

_QUERY = re.compile(
    r"^-- name: (?P<name>\w+) (?P<command>:\w+)\n(?P<body>.*?)(?=^-- name:|\Z)",
    re.MULTILINE | re.DOTALL,
)
_WRITE_WORDS = re.compile(
    r"\b(?:INSERT|UPDATE|DELETE|TRUNCATE|MERGE)\b|\bREPLACE\s+INTO\b", re.IGNORECASE
)


def _sql_files() -> dict[str, str]:
    """Every query's SQL text, by method name, from sql/queries and its engine folders."""
    texts: dict[str, str] = {}
    for path in sorted((ROOT / "sql" / "queries").rglob("*.sql")):
        for match in _QUERY.finditer(path.read_text(encoding="utf-8")):
            name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", match["name"]).lower()
            body = re.sub(r"--[^\n]*", " ", match["body"])
            texts[name] = texts.get(name, "") + body
    return texts


def _suffixes() -> dict[str, str]:
    """Every loaded query's aiosql suffix ("" for rows, "!" for a write...), by method name."""
    text = (ROOT / "sql" / "aiosql" / "sqlite.sql").read_text(encoding="utf-8")
    return dict(re.findall(r"^-- name: (\w+)\([^)]*\)(\S*)$", text, flags=re.MULTILINE))


def test_every_write_query_has_table_facts() -> None:
    """A query that may change a row is in QUERY_WRITES; one that only reads is not."""
    texts = _sql_files()
    suffixes = _suffixes()
    assert set(texts) == set(suffixes)
    for name, text in texts.items():
        cleaned = re.sub(r"\bDO\s+UPDATE\b|\bFOR\s+UPDATE\b", " ", text, flags=re.IGNORECASE)
        writes = _WRITE_WORDS.search(cleaned) is not None
        assert writes == (name in QUERY_WRITES), name
        if suffixes[name] in {"!", "<!", "*!"}:  # sqlc's :exec, :execrows, :execlastid, :copyfrom
            assert QUERY_WRITES.get(name), name
    assert all(tables for tables in QUERY_WRITES.values())


@pytest.mark.parametrize(
    ("text", "into", "expected"),
    [
        ("UPDATE config_entries SET value = ?1 WHERE id = ?2", None, ("config_entries",)),
        ("DELETE FROM test_results WHERE id = $1", None, ("test_results",)),
        (
            "INSERT INTO config_entries (key) VALUES (?1) ON CONFLICT (key) DO UPDATE SET key = 1",
            "config_entries",
            ("config_entries",),
        ),
        ("SELECT id FROM test_results FOR UPDATE", None, ()),
        ("SELECT 'DELETE FROM file_records' AS text -- UPDATE test_results\n", None, ()),
        (
            (
                "WITH gone AS (DELETE FROM file_records RETURNING id) "
                'UPDATE "test_results" SET status = 1 WHERE id IN (SELECT id FROM gone)'
            ),
            None,
            ("file_records", "test_results"),
        ),
    ],
)
def test_written_tables_reads_the_targets(
    text: str, into: str | None, expected: tuple[str, ...]
) -> None:
    """INSERT targets come from sqlc, UPDATE and DELETE targets from the text, sorted."""
    raw: dict[str, object] = {"text": text}
    if into is not None:
        raw["insert_into_table"] = {"catalog": "", "schema": "", "name": into}
    tables = dict.fromkeys(("config_entries", "test_results", "file_records"))
    assert written_tables("sqlite", "Q", raw, tables) == expected


def test_a_write_to_an_unknown_table_is_a_generator_error() -> None:
    """A target the schema does not have is refused, so no write goes unannounced."""
    with pytest.raises(CodegenError, match="writes 'elsewhere'"):
        written_tables("sqlite", "Q", {"text": "DELETE FROM elsewhere"}, {"test_results": None})


# --- the shared stamp ------------------------------------------------------------------------

STAMP_CHILD = """
import asyncio, sys
from persistence import connect
from persistence.database import backend_of
async def main(url):
    async with connect(url) as db:
        watch = await backend_of(db).watch_changes(heartbeat=0.2)
        await watch.sync()
        print(watch.stamp("config_entries"), flush=True)
        await watch.close()
asyncio.run(main(sys.argv[1]))
"""


async def test_every_process_names_a_state_by_the_same_stamp(
    db: Database, database_url: str
) -> None:
    """Another process's watch gives the same stamp for the same state; a commit changes it."""
    await set_config(db, "runner", "workers", 1)
    watch = await backend_of(db).watch_changes(heartbeat=HEARTBEAT)
    try:
        stamps = []
        for value in (2, 3):
            await set_config(db, "runner", "workers", value)
            assert await watch.sync()
            started = time.monotonic()
            while watch.stamp("config_entries") is None:  # PostgreSQL: a new listener's token
                assert time.monotonic() - started < BOUND
                await asyncio.sleep(0.01)
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                STAMP_CHILD,
                database_url,
                env=CHILD_ENV,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(child.communicate(), 60)
            theirs = out.decode().strip()
            mine = watch.stamp("config_entries")
            assert mine is not None
            assert theirs == mine or db.engine.value == "postgres"  # see below
            if db.engine.value == "postgres":
                # The child's own start gave every table a new stamp, which reaches this
                # watch too: the two agree on the stamp the child printed, once it arrives.
                while watch.stamp("config_entries") != theirs:
                    assert time.monotonic() - started < BOUND
                    await asyncio.sleep(0.01)
            stamps.append(theirs)
        assert stamps[0] != stamps[1]
    finally:
        await watch.close()


def test_a_wal_stamp_is_none_mid_rewrite_and_tells_rebuilt_headers_apart(tmp_path: Path) -> None:
    """Two copies that differ, or an unset header, give None; no salts bring in the file."""
    header = bytearray(48)
    header[12] = 1  # isInit
    header[8] = 7  # iChange
    path = tmp_path / "a.db"
    path.write_bytes(b"one")
    assert wal_stamp(bytes(header) + bytes(header[:47]) + b"\x01", str(path)) is None
    unset = bytearray(header)
    unset[12] = 0
    assert wal_stamp(bytes(unset) * 2, str(path)) is None
    first = wal_stamp(bytes(header) * 2, str(path))
    path.write_bytes(b"other content")
    assert first is not None
    assert wal_stamp(bytes(header) * 2, str(path)) != first  # no salts: the file tells
    salted = bytearray(header)
    salted[32:40] = b"saltsalt"
    assert wal_stamp(bytes(salted) * 2, str(path)) == wal_stamp(
        bytes(salted) * 2, str(tmp_path / "missing.db")
    )
