"""SQLite's short statements run on the event loop, and still leave it to other tasks.

A gap between two turns of the loop is measured twice: in the loop thread's own CPU time, the
work the package did without giving the loop back, held to a few slices on any machine; and in
wall time, which a loaded machine stretches by descheduling the whole process, held to the same
bound plus TEST_LOOP_GAP_SLACK seconds (none unless set).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Final

import pytest

from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    get_result,
    save_result,
    save_results,
    transaction,
)
from persistence._loop import LOOP_SLICE
from persistence.database import backend_of

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
    """
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
    monkeypatch.setattr(type(budget), "arm", lambda self: setattr(self, "deadline", -1.0))
    readers.connection.set_progress_handler(budget, 1)
    assert await get_result(sqlite_db, saved.id) == saved
    assert await all_results(sqlite_db) == [saved]
    assert budget.tripped
