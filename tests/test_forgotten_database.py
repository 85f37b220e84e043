"""A SQLite database collected without a close ends its threads and says so.

A forgotten close (a test fixture's, say) left its writer's thread and its readers' waiting
for good, each holding a connection and the file's descriptors: 50 forgotten databases held
51 threads and 206 descriptors, with no warning.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import persistence._sqlite.changes as wal_changes
from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    open_database,
    save_result,
)
from persistence._sqlite.backend import SqliteBackend
from persistence.cache import open_memory_cache


async def _used_then_dropped(path: Path, *, cached: bool) -> None:
    db = await open_database(path)
    await migrate(db)
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    if cached:  # its change watch maps the WAL index: two descriptors more, and a mapping
        cache = await open_memory_cache(db)
        await cache.get_config_value("runner", "workers", int, default=1)


async def _opened_and_closed(path: Path) -> None:
    async with connect(path) as db:
        await (await open_memory_cache(db)).close()


def _counts() -> tuple[int, int]:
    return threading.active_count(), len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("cached", [False, True])
def test_a_database_collected_unclosed_ends_its_threads_and_warns(
    tmp_path: Path,
    cached: bool,  # noqa: FBT001  # a parameter of the test
) -> None:
    """Ten of them, each dropped: the same threads and descriptors after, and ten warnings.

    With a cache each, its mapping of the WAL index was kept too: two descriptors a database.
    """
    gc.collect()
    before = _counts()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", ResourceWarning)
        for index in range(10):
            asyncio.run(_used_then_dropped(tmp_path / f"{index}.db", cached=cached))
            gc.collect()
        # A mapping whose file a connection still locked at the collection waits for the next
        # release of mappings: a later close gives it back.
        asyncio.run(_opened_and_closed(tmp_path / "later.db"))
        deadline = time.monotonic() + 10
        while _counts() > before and time.monotonic() < deadline:  # the threads end meanwhile
            time.sleep(0.01)
            gc.collect()
            asyncio.run(_opened_and_closed(tmp_path / "later.db"))
    forgotten = [w for w in said if "was never closed" in str(w.message)]
    assert len(forgotten) == 10, [str(w.message) for w in said]
    assert _counts() <= before, (before, _counts())


def test_the_finalizer_takes_no_lock_the_collecting_thread_may_hold(tmp_path: Path) -> None:
    """A collection can run inside the WAL index guard: the finalizer must not wait for it.

    It gave its mappings back under that guard: collected in a thread holding it (a close's
    release of mappings, allocating), it waited for itself for good, and every later close.
    """
    db = asyncio.run(_opened_with_a_cache(tmp_path / "app.db"))
    backend = db._backend  # noqa: SLF001  # its finalizer, called as the collector would
    assert isinstance(backend, SqliteBackend)
    ended = threading.Event()

    def finalize() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            backend._forgotten()  # noqa: SLF001
        ended.set()

    with wal_changes._WAL_INDEXES_GUARD:  # noqa: SLF001  # held, as inside a release
        # In another thread, so that a finalizer that waits for the guard fails, not hangs:
        # in the collecting thread, the holder, it waited for itself for good.
        threading.Thread(target=finalize, daemon=True).start()
        assert ended.wait(5), "the finalizer waited for the guard"
    asyncio.run(_opened_and_closed(tmp_path / "later.db"))  # gives the mappings back


async def _opened_with_a_cache(path: Path) -> Database:
    db = await open_database(path)
    await migrate(db)
    await open_memory_cache(db)
    return db


_LEFT_WITH_CALLS_UNDER_WAY = """
import asyncio, sys
from persistence import TestResult, TestStatus, TestType, open_database, save_result

loop = asyncio.new_event_loop()

async def main():
    db = await open_database(sys.argv[1])
    passed = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
    for _ in range(20):
        loop.create_task(save_result(db, passed))
    await asyncio.sleep(0)

loop.run_until_complete(main())
"""


def test_a_program_leaving_its_loop_with_calls_under_way_prints_no_context_error(
    migrated_postgres_url: str,
) -> None:
    """The loop left open at exit, its calls unfinished: their loans end as they are collected.

    Each loan's end reset a context variable outside its task's context: twenty calls printed
    twenty `ValueError: <Token ...> was created in a different Context` tracebacks, beside
    asyncio's own "Task was destroyed but it is pending!".
    """
    done = subprocess.run(  # this interpreter, a fixed script
        [sys.executable, "-c", _LEFT_WITH_CALLS_UNDER_WAY, migrated_postgres_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Task was destroyed but it is pending" in done.stderr  # the calls were under way
    assert "different Context" not in done.stderr, done.stderr[-2000:]
