"""The thread-wake probe: how long a round trip to an idle worker thread and back takes.

Every call through aiosqlite, and every commit the layer sends to a thread, pays one such
round trip. On an idle virtual CPU it can cost several times what it costs on a busy one,
so the runner measures it before every round, and the report gives it beside each
"x aiosqlite" figure: the part of that figure that is the machine, not the code.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Final

__all__ = ["HOPS", "thread_wake_us"]

HOPS: Final = 200
"""Round trips per probe; the median is kept."""


def _nothing() -> None:
    """Do nothing: the work handed to the thread."""


async def thread_wake_us(hops: int = HOPS) -> float:
    """Give the median microseconds of `hops` round trips to a worker thread and back."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1, thread_name_prefix="bench-wake") as thread:
        await loop.run_in_executor(thread, _nothing)  # the thread is started, and idle
        times = []
        for _ in range(hops):
            started = time.perf_counter()
            await loop.run_in_executor(thread, _nothing)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6
