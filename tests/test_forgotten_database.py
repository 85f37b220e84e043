"""A SQLite database collected without a close ends its threads and says so.

A forgotten close (a test fixture's, say) left its writer's thread and its readers' waiting
for good, each holding a connection and the file's descriptors: 50 forgotten databases held
51 threads and 206 descriptors, with no warning.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from pathlib import Path

import pytest

from persistence import TestResult, TestStatus, TestType, migrate, open_database, save_result


async def _used_then_dropped(path: Path) -> None:
    db = await open_database(path)
    await migrate(db)
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))


def _counts() -> tuple[int, int]:
    return threading.active_count(), len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_a_database_collected_unclosed_ends_its_threads_and_warns(tmp_path: Path) -> None:
    """Ten of them, each dropped: the same threads and descriptors after, and ten warnings."""
    gc.collect()
    before = _counts()
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", ResourceWarning)
        for index in range(10):
            asyncio.run(_used_then_dropped(tmp_path / f"{index}.db"))
            gc.collect()
        deadline = time.monotonic() + 10
        while _counts() > before and time.monotonic() < deadline:  # the threads end meanwhile
            time.sleep(0.01)
            gc.collect()
    forgotten = [w for w in said if "was never closed" in str(w.message)]
    assert len(forgotten) == 10, [str(w.message) for w in said]
    assert _counts() <= before, (before, _counts())
