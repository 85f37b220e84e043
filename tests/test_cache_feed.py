"""One change feed for every cache: whoever commits, every cache follows the database's feed.

The writes here bypass what a writer through this package would do: plain SQL from the
engine's own shell, a writer killed right after its commit, a call cancelled after its
commit, and Redis brought back from an older snapshot. None of them may leave a cache
serving the old value past the moment its change watch has seen the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from _cache_feed_helpers import (
    BOUND,
    HEARTBEAT,
    loaded,
    redis_cache,
    shows,
    workers,
)
from persistence import (
    Database,
    connect,
    connection,
    get_config_entry_by_key,
    migrate,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence._postgres.connections import as_pg
from persistence._sqlite.changes import wal_stamp
from persistence.cache import MemoryCache, RedisCache, open_memory_cache
from persistence.database import watch_writes

WRITER = str(Path(__file__).parent / "_feed_writer.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


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


_ENABLE_ALWAYS = "ALTER TABLE config_entries ENABLE ALWAYS TRIGGER config_entries_notify_change"
_REPLICA = "SET session_replication_role = replica; "
_MOVE_TO_CHILD = (
    "CREATE TABLE config_child () INHERITS (config_entries);"
    " WITH moved AS (DELETE FROM ONLY config_entries RETURNING *)"
    " INSERT INTO config_child SELECT * FROM moved"
)
_SILENCING = {
    "restored": (
        (
            "ALTER TABLE config_entries DISABLE TRIGGER ALL;"
            " ALTER TABLE config_entries ENABLE TRIGGER ALL"
        ),
        _REPLICA + _SET_WORKERS_TO_9,
        _ENABLE_ALWAYS,
    ),
    "disabled": (
        "ALTER TABLE config_entries DISABLE TRIGGER config_entries_notify_change",
        _SET_WORKERS_TO_9,
        _ENABLE_ALWAYS,
    ),
    "dropped": (
        "DROP TRIGGER config_entries_notify_change ON config_entries",
        _SET_WORKERS_TO_9,
        "CREATE TRIGGER config_entries_notify_change AFTER INSERT OR UPDATE OR DELETE OR"
        " TRUNCATE ON config_entries FOR EACH STATEMENT"
        " EXECUTE FUNCTION persistence_notify_change(); " + _ENABLE_ALWAYS,
    ),
    "inherited": (
        _MOVE_TO_CHILD,
        _SET_WORKERS_TO_9.replace("UPDATE config_entries", "UPDATE config_child"),
        (
            "INSERT INTO config_entries OVERRIDING SYSTEM VALUE SELECT * FROM config_child;"
            " DROP TABLE config_child"
        ),
    ),
}
"""Ways to leave writes that the package's reads see with no change trigger telling of them:
how, the write, and the mend.

`restored` is what `pg_restore --disable-triggers` does: the trigger fires again, but for
ordinary sessions only, no longer for `session_replication_role = replica`. `inherited`
moves the row to a table that inherits from the cached one: the reads return it, but writes
to it fire no trigger of the parent.
"""


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("silencing", sorted(_SILENCING))
async def test_a_write_past_a_silenced_change_trigger_is_seen(
    db: Database,
    database_url: str,
    readers: tuple[MemoryCache, RedisCache, RedisCache],
    silencing: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every cache reads the database while a table's writes may go unheard.

    A change trigger left as a restore leaves it (or disabled, or dropped) sent nothing for a
    write under the replica role (or any write), nor did a write to a table inheriting from a
    cached one: every cache served the old value for good. The heartbeat now checks the
    triggers and the tables' heirs; once all is mended, the feed is trusted again, and the
    writes made meanwhile are not served stale.
    """
    silence, write, mend = _SILENCING[silencing]
    await loaded(db, readers, 4)
    await asyncio.to_thread(plain_sql, database_url, silence)
    await every_reader_shows(db, readers, 4)  # held again, where the feed is trusted
    await asyncio.to_thread(plain_sql, database_url, write)
    await every_reader_shows(db, readers, 9)
    said = "inherits from config_entries" if silencing == "inherited" else _ENABLE_ALWAYS
    deadline = time.monotonic() + BOUND
    while said not in caplog.text:  # the heartbeat that saw it says so
        assert time.monotonic() < deadline, caplog.text
        await asyncio.sleep(HEARTBEAT / 4)
    await asyncio.to_thread(plain_sql, database_url, mend)
    for cache in readers:  # trusted again: a read is a hit, and a replica write still shows
        deadline = time.monotonic() + BOUND
        while not await hit_again(cache):
            assert time.monotonic() < deadline, f"{type(cache).__name__} never trusted again"
            await asyncio.sleep(HEARTBEAT / 4)
    await asyncio.to_thread(
        plain_sql, database_url, _REPLICA + _SET_WORKERS_TO_9.replace("'9'", "'10'")
    )
    await every_reader_shows(db, readers, 10)


async def hit_again(cache: MemoryCache | RedisCache) -> bool:
    """Read runner.workers twice: whether the second read was a hit."""
    await workers(cache)()
    before = cache.stats().hits
    await workers(cache)()
    return cache.stats().hits == before + 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_writer_whose_path_hides_pg_notify_is_heard(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """A session whose search path puts its own `pg_notify` before pg_catalog's.

    The change trigger's function ran with the writer's path and called that one: the write
    committed, unheard, and every cache served the old value for good. Migration 0020 gives
    the function pg_catalog alone.
    """
    await asyncio.to_thread(
        plain_sql,
        database_url,
        "CREATE SCHEMA quiet; CREATE FUNCTION quiet.pg_notify(text, text) RETURNS void"
        " LANGUAGE sql AS 'SELECT'",
    )
    await loaded(db, readers, 4)
    hidden = "SET search_path = quiet, pg_catalog, public; "
    await asyncio.to_thread(plain_sql, database_url, hidden + _SET_WORKERS_TO_9)
    await every_reader_shows(db, readers, 9)


# --- the shared stamp ------------------------------------------------------------------------

STAMP_CHILD = """
import asyncio, sys
from persistence import connect
from persistence._database_value import backend_of
from persistence._postgres.connections import as_pg
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


# --- DDL that changes rows and fires no trigger ---------------------------------------------

_BY_DDL = {
    ("postgresql", "rewritten"): (
        "ALTER TABLE config_entries ALTER COLUMN value TYPE text"
        " USING (CASE WHEN key = 'workers' THEN '9' ELSE value END)"
    ),
    ("postgresql", "replaced"): (
        "BEGIN; CREATE TABLE renamed (LIKE config_entries INCLUDING ALL);"
        " INSERT INTO renamed OVERRIDING SYSTEM VALUE SELECT * FROM config_entries;"
        " UPDATE renamed SET value = '9' WHERE key = 'workers';"
        " DROP TABLE config_entries CASCADE; ALTER TABLE renamed RENAME TO config_entries; COMMIT"
    ),
    ("sqlite", "rewritten"): (
        "BEGIN; ALTER TABLE config_entries RENAME TO old_entries;"
        " CREATE TABLE config_entries AS SELECT * FROM old_entries;"
        " UPDATE config_entries SET value = '9' WHERE key = 'workers';"
        " DROP TABLE old_entries; COMMIT"
    ),
    ("sqlite", "replaced"): (
        "BEGIN; CREATE TABLE renamed AS SELECT * FROM config_entries;"
        " UPDATE renamed SET value = '9' WHERE key = 'workers';"
        " DROP TABLE config_entries; ALTER TABLE renamed RENAME TO config_entries; COMMIT"
    ),
}
"""Rows changed by DDL alone: no trigger of the table fires (on SQLite, any commit shows)."""


@pytest.mark.parametrize("change", ["rewritten", "replaced"])
async def test_rows_changed_by_ddl_reach_every_cache(
    db: Database,
    database_url: str,
    readers: tuple[MemoryCache, RedisCache, RedisCache],
    change: str,
) -> None:
    """`ALTER TABLE ... TYPE ... USING`, or a table renamed into the place of one dropped.

    On PostgreSQL neither fires the table's triggers, so the feed sent nothing: both tiers
    served the old value for good. The heartbeat now sees the table's catalog row change.
    """
    await loaded(db, readers, 4)
    engine = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    await asyncio.to_thread(plain_sql, database_url, _BY_DDL[engine, change])
    for cache in readers:
        await shows(workers(cache), 9, at_once=engine == "sqlite")


async def test_a_write_through_another_value_of_the_database_shows_at_once(
    db: Database, database_url: str, readers: tuple[MemoryCache, RedisCache, RedisCache]
) -> None:
    """A write through a second `connect()` in this process shows in the next cached read.

    On PostgreSQL the caches heard only of the writes through their own value: one through
    another (a second bundle, say) left the old entry trusted until the feed's notification
    came, a few milliseconds on, and most reads right after it gave the old value.
    """
    await loaded(db, readers, 0)
    async with connect(database_url) as other:
        for value in range(1, 21):
            await set_config(other, "runner", "workers", value)
            assert [await workers(cache)() for cache in readers] == [value] * len(readers)


_SET_WORKERS = "UPDATE config_entries SET value = '{}' WHERE section = 'runner' AND key = 'workers'"


@contextlib.asynccontextmanager
async def _two_caches(
    url: str, redis_url: str, namespace: str
) -> AsyncIterator[tuple[Database, tuple[MemoryCache, RedisCache]]]:
    """The database at `url`, its setting loaded at 0 in a memory cache and a Redis cache."""
    async with connect(url) as db:
        await set_config(db, "runner", "workers", 0)
        memory = await open_memory_cache(db, heartbeat=HEARTBEAT)
        tiered = await redis_cache(db, redis_url, namespace, 100)
        try:
            await loaded(db, (memory, tiered), 0)
            yield db, (memory, tiered)
        finally:
            for cache in (memory, tiered):
                await cache.close()


@pytest.mark.parametrize("where", ["connection", "block"])
async def test_your_sql_through_a_lent_connection_shows_at_once(
    migrated_postgres_url: str, redis_url: str, namespace: str, where: str
) -> None:
    """SQL of yours run on the connection `connection()` lends shows in the next cached read.

    Only the generated queries were told to the caches: an UPDATE of yours, on a connection
    lent alone or inside `transaction()`, left the old entry trusted until the feed's
    notification came, and one read in five or so right after it gave the old value.
    (SQLite's sessions run no SQL of yours, and its feed is read on each read.)
    """
    async with _two_caches(migrated_postgres_url, redis_url, namespace) as (db, caches):
        for value in range(1, 51):
            if where == "block":
                async with transaction(db) as tx, connection(tx) as lent:
                    await as_pg(lent).execute(_SET_WORKERS.format(value))
            else:
                async with connection(db) as lent:
                    await as_pg(lent).execute(_SET_WORKERS.format(value))
            assert [await workers(cache)() for cache in caches] == [value] * 2


async def test_a_migration_of_yours_shows_at_once(
    migrated_postgres_url: str, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    """A migration of yours that changes a cached table shows in the next cached read.

    `migrate` told the caches nothing: the old entry stayed trusted until the feed's
    notification came, and a read right after `migrate` returned often gave the old value.
    """
    folder = tmp_path / "migrations"
    (folder / "postgres").mkdir(parents=True)
    (folder / "sqlite").mkdir()
    async with _two_caches(migrated_postgres_url, redis_url, namespace) as (db, caches):
        for value in range(1, 31):
            script = folder / "postgres" / f"{value:04d}_workers_{value}.sql"
            script.write_text(_SET_WORKERS.format(value) + ";\n", encoding="utf-8")
            assert [m.version for m in await migrate(db, folder)] == [value]
            assert [await workers(cache)() for cache in caches] == [value] * 2


_SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON config_entries
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit();
UPDATE config_entries SET value = '7' WHERE section = 'runner' AND key = 'workers';
"""


async def test_a_migrate_cancelled_in_its_commit_still_tells_the_caches(
    migrated_postgres_url: str, tmp_path: Path
) -> None:
    """A cancel landing in a migration's COMMIT, which takes effect all the same, is told.

    Only the migrations `migrate` saw committed were told: one whose COMMIT the cancel cut
    short (a deferred trigger running) changed the rows, and the caches were told nothing.
    """
    folder = tmp_path / "migrations"
    (folder / "postgres").mkdir(parents=True)
    (folder / "sqlite").mkdir()
    (folder / "postgres" / "0001_slow_commit.sql").write_text(_SLOW_COMMIT, encoding="utf-8")
    async with connect(migrated_postgres_url) as db:
        await set_config(db, "runner", "workers", 3)
        told: list[frozenset[str]] = []
        stop = watch_writes(db, told.append)
        try:
            migrating = asyncio.ensure_future(migrate(db, folder))
            await asyncio.sleep(0.6)  # its script ran; its COMMIT runs the trigger, 1 s
            migrating.cancel()
            with pytest.raises(asyncio.CancelledError):
                await migrating
        finally:
            stop()
        workers = await get_config_entry_by_key(db, "runner", "workers")
        assert workers.value == 7  # the COMMIT, under way, took effect
        assert told, "the caches were told nothing"
        assert "config_entries" in told[-1]
