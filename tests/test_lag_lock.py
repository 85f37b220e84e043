"""Two processes that measure the loop's lag take turns: no two measurements overlap.

The timed tests run on two workers; each measurement holds the lock that tests/conftest.py
names, so that one worker's measured work never shares the CPU with the other's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _lag import LOCK_VARIABLE

HERE = Path(__file__).parent

MEASURE = f"""
import asyncio, sys, time
sys.path.insert(0, {str(HERE)!r})
from _lag import held

async def work() -> tuple[float, float]:
    started = time.time()
    await asyncio.sleep(0.3)
    return started, time.time()

print("ready", flush=True)
sys.stdin.readline()  # the go, given to both once both are ready
print(*asyncio.run(held(work)).outcome)
"""


def spans(lock: str) -> list[tuple[float, float]]:
    """The spans of two processes' measurements, started at once, with `lock` named.

    Each waits for a go once it has started, so that one process starting late on a busy
    machine does not keep the two apart.
    """
    environment = {**os.environ, LOCK_VARIABLE: lock}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MEASURE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    found = []
    for process in processes:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        start, end = map(float, out.split())
        found.append((start, end))
    return sorted(found)


def test_two_processes_measure_one_after_the_other(tmp_path: Path) -> None:
    """With the lock named, the second measurement starts after the first ended."""
    (first_start, first_end), (second_start, _) = spans(str(tmp_path / "lag.lock"))
    assert first_start < first_end <= second_start


def test_without_a_lock_they_overlap() -> None:
    """The control: with no lock named, the two measurements run at once."""
    (_, first_end), (second_start, _) = spans("")
    assert second_start < first_end
