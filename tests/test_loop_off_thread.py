"""`off_loop_if_large`: a small value is handled on the loop, a large one in a worker thread.

The threshold keeps the hop off the common path; a caller cancelled while the thread works
hears of it only once the thread has ended, so nothing it computes outlives the failure.
"""

from __future__ import annotations

import asyncio
import threading

from persistence._codecs import json_size
from persistence._loop import OFF_LOOP_SIZE, off_loop_if_large


async def test_a_value_up_to_the_threshold_is_handled_on_the_loop() -> None:
    """A call for a value of OFF_LOOP_SIZE characters runs in the loop's own thread."""
    ran = await off_loop_if_large(OFF_LOOP_SIZE, threading.get_ident)
    assert ran == threading.get_ident()


async def test_a_value_past_the_threshold_is_handled_in_a_worker_thread() -> None:
    """One character more, and the call runs in another thread."""
    ran = await off_loop_if_large(OFF_LOOP_SIZE + 1, threading.get_ident)
    assert ran != threading.get_ident()


async def test_a_cancelled_caller_hears_of_it_once_the_thread_has_ended() -> None:
    """The cancellation waits for the call to end, then reaches the caller."""
    started, release, ended = threading.Event(), threading.Event(), threading.Event()

    def work() -> None:
        started.set()
        release.wait(5)
        ended.set()

    caller = asyncio.ensure_future(off_loop_if_large(OFF_LOOP_SIZE + 1, work))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    await asyncio.sleep(0.05)
    assert not caller.done()  # the thread still works: the caller waits for it
    release.set()
    await asyncio.wait([caller])
    assert caller.cancelled()
    assert ended.is_set()


def test_json_size_counts_items_and_texts() -> None:
    """Each item counts 8 characters, a text its length."""
    assert json_size(7, OFF_LOOP_SIZE) == 8
    assert json_size("x" * 100, OFF_LOOP_SIZE) == 100
    assert json_size({"a": ["xy", 1]}, OFF_LOOP_SIZE) == 8 + 16 + 2 + 8


def test_json_size_stops_counting_past_the_limit() -> None:
    """A value of a million items is counted only as far as the limit: its first level."""
    wide = {f"key{index}": ["x" * 100] for index in range(1_000_000)}
    assert json_size(wide, OFF_LOOP_SIZE) == 8_000_000
    deep = [[["x" * 10]] * 1000] * 1000
    assert OFF_LOOP_SIZE < json_size(deep, OFF_LOOP_SIZE) < 2 * OFF_LOOP_SIZE


async def test_other_tasks_cancelled_meanwhile_never_reach_the_call() -> None:
    """A shutdown handler cancelling every other task leaves the caller its answer."""
    release = threading.Event()

    def work() -> int:
        release.wait(5)
        return 7

    caller = asyncio.ensure_future(off_loop_if_large(OFF_LOOP_SIZE + 1, work))
    await asyncio.sleep(0.01)
    for task in asyncio.all_tasks():
        if task is not caller and task is not asyncio.current_task():
            task.cancel()
    release.set()
    assert await caller == 7
