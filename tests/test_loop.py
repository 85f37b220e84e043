"""SQLite's short statements run on the event loop, and still leave it to other tasks.

A gap between two turns of the loop is measured twice: in the loop thread's own CPU time, the
work the package did without giving the loop back, held to a few slices on any machine; and in
wall time, which a loaded machine stretches by descheduling the whole process, held to the same
bound plus TEST_LOOP_GAP_SLACK seconds (none unless set).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import itertools
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Final

import attrs
import pytest

from _budget import arm_past
from _lag import within
from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connection,
    delete_results_before,
    get_config_value,
    get_result,
    save_result,
    save_results,
    search_results,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence._loop import LOOP_SLICE
from persistence.cache import open_memory_cache

SLACK: Final = float(os.environ.get("TEST_LOOP_GAP_SLACK", "0"))
"""How much longer, in wall-clock seconds, a loaded machine may make a wait between turns."""


def result() -> TestResult:
    """A plain result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"k": [1, 2]})


def _now() -> tuple[float, float]:
    """The wall clock and this thread's CPU clock."""
    return time.perf_counter(), time.thread_time()


async def _longest_gap(work: Callable[[], Awaitable[object]]) -> tuple[float, float, int]:
    """Run `work` beside a task that counts its turns; give the longest wait between turns.

    The wait is given in wall time and in the loop thread's CPU time, with the number of turns.
    The collector is kept out of the measure, as `_lag.held` keeps it: a full collection holds
    the loop as long as the whole heap takes to walk, whoever's code set it off, so its pause
    measures what the rest of the test session keeps (once 107 ms), not `work`.
    """
    gc.collect()
    gc.disable()
    try:
        return await _turns(work)
    finally:
        gc.enable()


async def _turns(work: Callable[[], Awaitable[object]]) -> tuple[float, float, int]:
    turns: list[tuple[float, float]] = []
    done = False

    async def ticker() -> None:
        while not done:
            turns.append(_now())
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = _now()
    await work()
    end = _now()
    done = True
    await task
    moments = [start, *(t for t in turns if t >= start), end]
    pairs = list(itertools.pairwise(moments))
    wall = max(later[0] - earlier[0] for earlier, later in pairs)
    cpu = max(later[1] - earlier[1] for earlier, later in pairs)
    return wall, cpu, len(moments)


async def test_calls_that_never_wait_still_share_the_loop(sqlite_db: Database) -> None:
    """Thousands of on-loop reads and writes in a row let another task run every few ms."""
    saved = await save_result(sqlite_db, result())
    assert saved.id is not None
    result_id = saved.id

    async def reads() -> None:
        for _ in range(3000):
            await get_result(sqlite_db, result_id)

    async def writes() -> None:
        async with transaction(sqlite_db) as tx:
            for _ in range(3000):
                await save_result(tx, result())

    for work in (reads, writes):
        gap, cpu, turns = await _longest_gap(work)
        assert turns > 10, work.__name__
        assert cpu < LOOP_SLICE * 20, (work.__name__, cpu)
        assert gap < LOOP_SLICE * 20 + SLACK, (work.__name__, gap)


async def test_cache_hits_share_the_loop(sqlite_db: Database) -> None:
    """A cache hit never waits on anything, so thousands in a row give the loop back too."""
    saved = await save_result(sqlite_db, result())
    assert saved.id is not None
    result_id = saved.id
    await set_config(sqlite_db, "run", "jobs", 4)
    cache = await open_memory_cache(sqlite_db)
    try:
        assert await cache.find_result(result_id) == saved  # filled: every later read hits
        assert await cache.find_config_entry_by_key("run", "jobs") is not None

        async def results() -> None:
            for _ in range(20_000):
                await cache.find_result(result_id)

        async def settings() -> None:
            for _ in range(20_000):
                await cache.find_config_entry_by_key("run", "jobs")

        async def values() -> None:
            for _ in range(20_000):
                await get_config_value(cache, "run", "jobs", int)

        for work in (results, settings, values):
            hits = cache.stats().hits
            gap, cpu, turns = await _longest_gap(work)
            assert cache.stats().hits - hits == 20_000, work.__name__
            assert turns > 10, work.__name__
            assert cpu < LOOP_SLICE * 20, (work.__name__, cpu)
            assert gap < LOOP_SLICE * 20 + SLACK, (work.__name__, gap)
    finally:
        await cache.close()


async def test_big_batches_and_pages_share_the_loop(sqlite_db: Database) -> None:
    """Converting a big batch and decoding big pages give the loop back between slices."""
    batch = [result() for _ in range(20_000)]
    _, _, turns = await _longest_gap(lambda: save_results(sqlite_db, batch))
    assert turns > 10
    gap, cpu, turns = await _longest_gap(lambda: all_results(sqlite_db))
    assert turns > 10
    assert cpu < 0.1
    assert gap < 0.1 + SLACK


async def test_reads_that_go_to_a_thread_are_decoded_alike(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read interrupted on the loop and done again in a thread gives the same models.

    Here every read is made to run past its loop budget at its first step.
    """
    saved = await save_result(sqlite_db, result())
    assert saved.id is not None
    backend = backend_of(sqlite_db)
    readers = backend._readers  # type: ignore[attr-defined]  # noqa: SLF001  # forced past its budget
    budget = readers._budget  # noqa: SLF001

    monkeypatch.setattr(type(budget), "arm", arm_past)
    assert await get_result(sqlite_db, saved.id) == saved
    assert await all_results(sqlite_db) == [saved]
    assert budget.tripped


async def test_statements_marked_to_run_long_never_run_on_the_loop(sqlite_db: Database) -> None:
    """Retention's delete and the ranked search run in a worker thread, never on the loop.

    Each can spend tens of ms in one step that no progress handler interrupts (an FTS5
    merge, bm25): on a batch, in a transaction, and on a reader alike, they leave the loop.
    """
    backend = backend_of(sqlite_db)
    seen: list[tuple[bool, str]] = []
    loop_thread = threading.get_ident()

    def trace(sql: str) -> None:
        seen.append((threading.get_ident() == loop_thread, sql))

    writer = backend._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # traced
    reader = backend._readers.connection  # type: ignore[attr-defined]  # noqa: SLF001  # traced
    writer.set_trace_callback(trace)
    reader.set_trace_callback(trace)
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await save_results(sqlite_db, [attrs.evolve(result(), output="needle", created_at=old)] * 30)
    cutoff = old + dt.timedelta(days=1)
    async with connection(sqlite_db) as conn:  # a single-call write: a group-commit batch
        assert await sqlite_db.queries.delete_test_results_before_batch(
            conn, cutoff=cutoff, batch_size=10
        )
    assert await delete_results_before(sqlite_db, cutoff) == 20  # in transactions
    await save_results(sqlite_db, [attrs.evolve(result(), output="needle")] * 3)
    assert len((await search_results(sqlite_db, "needle")).items) == 3
    async with transaction(sqlite_db) as tx:
        assert len((await search_results(tx, "needle")).items) == 3
    writer.set_trace_callback(None)
    reader.set_trace_callback(None)
    deletes = [
        on_loop for on_loop, sql in seen if sql.lstrip().startswith("DELETE FROM test_results")
    ]
    searches = [on_loop for on_loop, sql in seen if "bm25" in sql]
    assert deletes
    assert not any(deletes), "a retention delete ran on the loop"
    assert searches
    assert not any(searches), "a ranked search ran on the loop"


async def test_single_call_writes_run_off_the_loop(sqlite_db: Database) -> None:
    """Group-committed writes run in a worker thread: a slow insert never holds the loop.

    An insert can spend tens of ms in one step no budget sees (FTS5 merging its segments).
    A trigger made for this test calls a function that notes its thread, and sleeps for one
    row: every insert of many concurrent saves runs off the loop, and the loop stays free.
    """
    writer = backend_of(sqlite_db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # a trigger of the test's own
    loop_thread = threading.get_ident()
    on_loop: list[bool] = []

    def inserted(output: str) -> int:
        on_loop.append(threading.get_ident() == loop_thread)
        if output == "slow":
            time.sleep(0.25)  # as long as a bad FTS5 merge, and more
        return 0

    writer.create_function("inserted", 1, inserted)
    writer.execute(
        "CREATE TEMP TRIGGER noted AFTER INSERT ON main.test_results"
        " BEGIN SELECT inserted(NEW.output); END"
    )
    rows = [attrs.evolve(result(), output="slow" if n == 7 else f"row {n}") for n in range(200)]

    async def one(batch: list[TestResult]) -> None:
        for row in batch:
            await save_result(sqlite_db, row)

    await within(
        0.2,
        "the writes",
        lambda: asyncio.gather(*(one(rows[start::20]) for start in range(20))),
        collector=True,
    )
    assert len(on_loop) == len(rows)
    assert not any(on_loop), "a single-call write ran on the loop"
