"""Measure how long a cache in this process serves a value older than another process's write."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

WRITER = str(Path(__file__).parent / "_cache_writer.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


@attrs.frozen
class Staleness:
    """Per write: seconds from its return to the first read that saw it, and the stale reads."""

    delays: tuple[float, ...]
    stale_reads: tuple[int, ...]

    @property
    def worst(self) -> float:
        """The longest delay."""
        return max(self.delays)


async def measure(
    url: str,
    writes: int,
    read: Callable[[], Awaitable[int]],
    *,
    redis: str | None = None,
    give_up: float = 5.0,
) -> Staleness:
    """Have a child process write `writes` values; read each here until it shows."""
    args = [WRITER, url, str(writes), *([redis] if redis else [])]
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    delays: list[float] = []
    stale: list[int] = []
    try:
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
        await read()  # the cache holds the value before the first write
        for number in range(1, writes + 1):
            child.stdin.write(b"go\n")
            await child.stdin.drain()
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line == f"{number}\n".encode(), line
            written = time.perf_counter()
            reads = 0
            while await read() != number:
                reads += 1
                assert time.perf_counter() - written < give_up, f"write {number} never seen"
                await asyncio.sleep(0)
            delays.append(time.perf_counter() - written)
            stale.append(reads)
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 30)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, (await child.stderr.read()).decode() if child.stderr else ""
    return Staleness(tuple(delays), tuple(stale))
