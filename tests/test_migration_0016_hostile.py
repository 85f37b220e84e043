"""Migration 0016 under a hostile user: killed, raced, written to, searched and watched.

On SQLite 0016 rebuilds test_results, result_artifacts and file_records, which takes seconds
on a big database. A runner SIGKILLed in the middle must leave the database as it was, to be
migrated again; two runners at once apply it once; a plain writer's rows, written while it
runs, are kept; the search index and the caches' change feed go on as before. On PostgreSQL
0016 only adds a CHECK, and the same runners, searches and caches are tried there too.

`TEST_0016_ROWS` sets the size of the big SQLite database (60,000 results by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from persistence import (
    Database,
    MigrationError,
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    migration_status,
    save_result,
    search_results,
)
from persistence.cache import open_memory_cache
from test_plain_ids import plain_sql
from test_stored_numbers import migrate_before_0016, package_through

ROWS: Final = int(os.environ.get("TEST_0016_ROWS", "60000"))
"""Results in the big SQLite database: enough that the rebuild takes a while."""

T0: Final = "2026-05-01T00:00:00.000000+00:00"
SHA: Final = "ab" * 32

FILL: Final = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "  # noqa: S608  # constants
    "INSERT INTO test_results (test_type, status, execution_time, memory_usage, "
    "test_cases_passed, test_cases_total, error_message, output, created_at, metadata, "
    "run_id, test_id) "
    "SELECT 'unit', CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'passed' END, i * 0.001, i, 1, 2, "
    "CASE WHEN i % 500 = 0 THEN 'boom at ' || i END, "
    "CASE WHEN i % 250 = 0 THEN 'kettle output ' || i END, "
    f"'{T0}', json_object('i', i), NULL, 't' || i FROM n"
)
"""Plain SQL that writes `rows` results at once, some with text for the search index."""

FILL_OTHERS: Final = [
    # The counters run ahead of the largest ids: a rebuild that forgot them would reuse ids.
    "DELETE FROM test_results WHERE id > (SELECT max(id) - 7 FROM test_results)",
    (
        "INSERT INTO result_artifacts (result_id, role, sha256, size) "  # noqa: S608  # constants
        f"SELECT id, 'input', '{SHA}', id FROM test_results WHERE id % 4 = 0"
    ),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "  # noqa: S608  # constants
        "INSERT INTO file_records (path, size, hash, created_at, accessed_at) "
        f"SELECT 'f/' || i, i, '{SHA}', '{T0}', '{T0}' FROM n"
    ),
    "DELETE FROM file_records WHERE id > 1995",
]

TABLES: Final = ("test_results", "result_artifacts", "file_records", "test_results_fts_replaced")
SEARCHES: Final = ("kettle", "boom", "writer")
CLI: Final = (sys.executable, "-m", "persistence", "migrate", "--database")
WAITED: Final = (
    "persistence: still migrating after 1s: waiting for the migration lock, which another "
    "runner may hold (giving up after 60s, --lock-timeout), or for a long migration to finish"
)
"""What a runner that waited for the other says: a note, not an error."""


async def big_database_before_0016(path: Path, rows: int) -> None:
    """A SQLite file at 0015 with `rows` results, links and file records, made by plain SQL."""
    await migrate_before_0016(str(path), path.parent / "early")
    await plain_sql(str(path), FILL.format(rows=rows), *FILL_OTHERS)


def stored_state(path: Path) -> dict[str, object]:
    """Everything 0016 touches, as stored: rows with rowids and types, schema, counters, search."""
    state: dict[str, object] = {}
    with contextlib.closing(sqlite3.connect(path)) as plain:
        for table in TABLES:
            columns = [row[1] for row in plain.execute(f"PRAGMA table_info({table})")]
            typed = ", ".join(f"{c}, typeof({c})" for c in columns)
            state[table] = plain.execute(
                f"SELECT rowid, {typed} FROM {table} ORDER BY rowid"  # noqa: S608  # the schema's own names
            ).fetchall()
        state["schema"] = plain.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type <> 'table'"
            " ORDER BY type, name"
        ).fetchall()
        state["tables"] = plain.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        state["sequence"] = plain.execute("SELECT * FROM sqlite_sequence ORDER BY name").fetchall()
        state["search"] = {
            word: plain.execute(
                "SELECT rowid FROM test_results_fts WHERE test_results_fts MATCH ? ORDER BY rowid",
                [word],
            ).fetchall()
            for word in SEARCHES
        }
        state["history"] = plain.execute(
            "SELECT version FROM persistence_migrations ORDER BY version"
        ).fetchall()
        state["integrity"] = plain.execute("PRAGMA integrity_check").fetchall()
    return state


def wal_size(path: Path) -> int:
    """The size of a SQLite file's write-ahead log, 0 when it has none."""
    try:
        return Path(f"{path}-wal").stat().st_size
    except OSError:
        return 0


@pytest.mark.long
async def test_a_runner_killed_in_the_rebuild_leaves_the_database_as_before(
    tmp_path: Path,
) -> None:
    """SIGKILL in the middle of 0016's rebuild: rows, ids, schema, counters and search as before.

    The kill comes once the log holds a third of the file: only the rebuild's copy writes so
    much. Migrating again then applies 0016, keeping every row, counter and search hit.
    """
    path = tmp_path / "big.db"
    await big_database_before_0016(path, ROWS)
    before = stored_state(path)
    assert before["integrity"] == [("ok",)]
    assert before["search"] != {word: [] for word in SEARCHES}
    runner = await asyncio.create_subprocess_exec(
        *CLI, str(path), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while (
            wal_size(path) < path.stat().st_size // 3 and runner.returncode is None
        ):  # progress is in the log
            assert time.monotonic() < deadline, "the rebuild never wrote to the log"
            await asyncio.sleep(0.002)
        runner.send_signal(signal.SIGKILL)
        await asyncio.wait_for(runner.wait(), 10)
    finally:
        if runner.returncode is None:
            runner.kill()
            await asyncio.wait_for(runner.wait(), 10)
    assert runner.returncode == -signal.SIGKILL, "the migration ended before it was killed"
    assert stored_state(path) == before
    async with connect(path) as db:
        through = package_through(db.engine, tmp_path / "through", 16)
        assert [m.version for m in await migrate(db, package_folder=through)] == [16]
        assert (await migration_status(db, package_folder=through)).up_to_date
    after = stored_state(path)
    for key in (*TABLES, "schema", "sequence", "search", "integrity"):
        assert after[key] == before[key], key
    history = before["history"]
    assert isinstance(history, list)
    assert after["history"] == [*history, (16,)]


async def _run_cli(url: str) -> tuple[int, str, str]:
    runner = await asyncio.create_subprocess_exec(
        *CLI, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(runner.communicate(), 120)
    assert runner.returncode is not None
    return runner.returncode, out.decode(), err.decode()


async def test_two_processes_migrating_at_once_apply_0016_once(
    database_url: str, tmp_path: Path
) -> None:
    """Two `persistence migrate` processes at once: one applies 0016, the other finds it applied.

    Neither fails; the one that waited may say so on its error stream, and nothing else.
    """
    await migrate_before_0016(database_url, tmp_path / "early")
    if "://" not in database_url:
        await plain_sql(database_url, FILL.format(rows=min(ROWS, 20000)), *FILL_OTHERS)
    first, second = await asyncio.gather(_run_cli(database_url), _run_cli(database_url))
    for code, _, err in (first, second):
        assert code == 0, err
        assert err.strip() in {"", WAITED}, err
    outputs = first[1] + second[1]
    assert outputs.count("applied 0016_numbers_stored_as_numbers.sql") == 1, outputs
    async with connect(database_url) as db:
        status = await migration_status(db)
    assert status.up_to_date
    assert [a.version for a in status.applied].count(16) == 1


WRITER: Final = """
import sqlite3, sys, time
from pathlib import Path
path, stop = sys.argv[1], Path(sys.argv[2])
plain = sqlite3.connect(path, timeout=60, isolation_level=None)
k = 0
while not stop.exists():
    k += 1
    cursor = plain.execute(
        "INSERT INTO test_results (test_type, status, execution_time, created_at, output, test_id)"
        " VALUES ('unit', 'passed', 0.5, ?, ?, ?)", [sys.argv[3], f"writer row {k}", f"w{k}"])
    print(cursor.lastrowid, k, time.monotonic(), flush=True)
    time.sleep(0.002)
"""
"""A plain writer in a process of its own: one row a transaction, each printed once committed."""


async def test_a_plain_writer_during_the_rebuild_loses_no_row(tmp_path: Path) -> None:
    """Rows a plain sqlite3 writer commits before, during and after 0016 all stay, searchable.

    The writer waits on the write lock while the migration holds it; a row it was told was
    committed must never be dropped by the rebuild's copy.
    """
    path = tmp_path / "big.db"
    await big_database_before_0016(path, ROWS)
    stop = tmp_path / "stop"
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        str(stop),
        T0,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert writer.stdout is not None
    written: list[tuple[int, int, float]] = []

    async def read_rows(count: int) -> None:
        assert writer.stdout is not None
        for _ in range(count):
            line = await asyncio.wait_for(writer.stdout.readline(), 60)
            assert line, "the writer stopped"
            row_id, k, when = line.split()
            written.append((int(row_id), int(k), float(when)))

    try:
        await read_rows(5)
        started = time.monotonic()
        code, _, err = await _run_cli(str(path))
        ended = time.monotonic()
        assert code == 0, err
        await read_rows(5)
        stop.touch()
        out, err_bytes = await asyncio.wait_for(writer.communicate(), 60)
    finally:
        if writer.returncode is None:
            writer.kill()
            await asyncio.wait_for(writer.wait(), 10)
    assert writer.returncode == 0, err_bytes.decode()
    for line in out.decode().split("\n"):
        if line:
            row_id, k, when = line.split()
            written.append((int(row_id), int(k), float(when)))
    assert any(started < when < ended for *_, when in written) or any(
        when > ended for *_, when in written
    )
    with contextlib.closing(sqlite3.connect(path)) as plain:
        stored = dict(
            plain.execute("SELECT id, output FROM test_results WHERE test_id GLOB 'w*'").fetchall()
        )
        found = {
            row[0]
            for row in plain.execute(
                "SELECT rowid FROM test_results_fts WHERE test_results_fts MATCH 'writer'"
            )
        }
    assert stored == {row_id: f"writer row {k}" for row_id, k, _ in written}
    assert found == set(stored)


def _result(output: str, error: str | None = None) -> TestResult:
    return TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.FAILED,
        execution_time=1.5,
        output=output,
        error_message=error,
        created_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
    )


async def _hits(db: Database, text: str) -> list[tuple[int | None, str, str, object]]:
    page = await search_results(db, text, limit=100)
    return sorted(
        (hit.result.id, hit.snippet.field, hit.snippet.text, hit.snippet.highlights)
        for hit in page.items
    )


def _triggers(database_url: str) -> list[tuple[str, str]]:
    if "://" in database_url:
        return []
    with contextlib.closing(sqlite3.connect(database_url)) as plain:
        return plain.execute(
            "SELECT name, sql FROM sqlite_master WHERE type IN ('trigger', 'index')"
            " AND sql IS NOT NULL ORDER BY name"
        ).fetchall()


WORDS: Final = ("kettle", "boom", "lantern", "quiet")


async def test_search_finds_results_saved_before_and_after_the_rebuild(
    database_url: str, tmp_path: Path
) -> None:
    """Search gives the same hits and snippets after 0016; later writes keep the index in step.

    An UPDATE and a DELETE by plain SQL after the rebuild must reach the index: its triggers
    are those 0016 found, and the hits are those a scan of the texts finds.
    """
    await migrate_before_0016(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        saved = [
            await save_result(db, _result(f"the kettle sang {i} times", "boom" if i % 2 else None))
            for i in range(6)
        ]
        saved.append(await save_result(db, _result("a lantern and a kettle", "quiet boom")))
        before = {word: await _hits(db, word) for word in WORDS}
        triggers = _triggers(database_url)
        through = package_through(db.engine, tmp_path / "through", 16)
        assert [m.version for m in await migrate(db, package_folder=through)] == [16]
        assert {word: await _hits(db, word) for word in WORDS} == before
        assert _triggers(database_url) == triggers
        later = await save_result(db, _result("a new kettle, lantern lit", "boom again"))
        texts = {r.id: (r.output, r.error_message) for r in [*saved, later]}
        first, second = saved[0].id, saved[1].id
        await plain_sql(
            database_url,
            f"UPDATE test_results SET output = 'quiet lantern now' WHERE id = {first}",  # noqa: S608  # the test's own ids
            f"DELETE FROM test_results WHERE id = {second}",  # noqa: S608
        )
        texts[first] = ("quiet lantern now", texts[first][1])
        del texts[second]
        for word in WORDS:
            wanted = {i for i, (out, err) in texts.items() if word in f"{out} {err or ''}"}
            assert {hit[0] for hit in await _hits(db, word)} == wanted, word


async def test_a_cache_open_across_the_migration_sees_later_writes(
    database_url: str, tmp_path: Path
) -> None:
    """A memory cache open while another process applies 0016 sees the writes made after it.

    On SQLite the rebuild must not break the watch of the log, on PostgreSQL the triggers that
    notify: a plain UPDATE and INSERT show at once on SQLite, within the bound on PostgreSQL.
    """
    from _cache_feed_helpers import BOUND, HEARTBEAT  # noqa: PLC0415  # the feed tests' bound

    await migrate_before_0016(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        kept = await save_result(db, _result("kettle"))
        assert kept.id is not None
        cache = await open_memory_cache(db, heartbeat=HEARTBEAT)
        try:
            assert (await cache.find_result(kept.id)) == kept
            assert [r.id for r in await cache.recent_results()] == [kept.id]
            code, _, err = await _run_cli(database_url)
            assert code == 0, err
            await plain_sql(
                database_url,
                f"UPDATE test_results SET status = 'passed' WHERE id = {kept.id}",  # noqa: S608  # the test's own id
                "INSERT INTO test_results (test_type, status, execution_time, created_at) "  # noqa: S608  # constants
                f"VALUES ('unit', 'error', 2.5, '{T0}')",
            )
            bound = 0.0 if db.engine.value == "sqlite" else BOUND
            started = time.monotonic()
            while True:
                found = await cache.find_result(kept.id)
                recent = await cache.recent_results()
                if (found is not None and found.status is TestStatus.PASSED) and len(recent) == 2:
                    break
                assert time.monotonic() - started <= bound, (found, recent)
                await asyncio.sleep(0.01)
        finally:
            await cache.close()
    if "://" in database_url:
        pg = await asyncpg.connect(database_url)
        try:
            assert await pg.fetchval("SELECT 16 IN (SELECT version FROM persistence_migrations)")
        finally:
            await pg.close()


async def blocked_on_a_lock(url: str) -> None:
    """Wait until a session of the database waits for a lock on a table."""
    watcher = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + 30
        query = (
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        while not await watcher.fetchval(query):
            assert time.monotonic() < deadline, "no migration waited for the table"
            await asyncio.sleep(0.01)
    finally:
        await watcher.close()


async def test_a_time_committed_during_0016_on_postgres_is_named(
    postgres_url: str, tmp_path: Path
) -> None:
    """A bad time a plain writer commits while 0016 waits for the table stops it, naming its row.

    The check ran before the constraint's lock was taken, so a row committed between them
    was seen by neither: the constraint failed with the server's "violated by some row",
    naming no row to mend.
    """
    await migrate_before_0016(postgres_url, tmp_path / "early")
    writer = await asyncpg.connect(postgres_url)
    try:
        block = writer.transaction()
        await block.start()
        row_id = await writer.fetchval(
            "INSERT INTO test_results (test_type, status, execution_time, created_at)"
            " VALUES ('unit', 'passed', 2e12, now()) RETURNING id"
        )
        async with connect(postgres_url) as db:
            migrating = asyncio.ensure_future(migrate(db, lock_timeout=30))
            try:
                await blocked_on_a_lock(postgres_url)
                await block.commit()
                with pytest.raises(MigrationError, match=rf"in the results of ids {row_id}: write"):
                    await migrating
            finally:
                if not migrating.done():
                    migrating.cancel()
            assert (await migration_status(db)).pending[0].version == 16
    finally:
        await writer.close()
