"""The first search of a process over text beyond ASCII leaves the event loop free.

The patterns that split such text into words are built on first use, from every code point's
category: done on the loop, that held it for 55 to 190 ms. Each search runs in a process of
its own, so that no earlier test has built them, beside the benchmark's lag probe.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Final

import pytest

from _lag import assert_lag
from persistence import TestResult, TestStatus, TestType, connect, save_results

MAX_FIRST_SEARCH_LAG: Final = float(os.environ.get("TEST_MAX_FIRST_SEARCH_LAG", "0.05"))
"""The longest the first search may hold the loop, in seconds. Its patterns, built in a worker
thread, take the GIL from the loop: the probe saw 9 to 17 ms on a quiet machine, up to 37 ms
with the other core busy; the fault held the loop 98 to 190 ms."""
_CHILD_ENV: Final = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}

_FIRST_SEARCH: Final = """
import asyncio, sys
from _lag import held
from persistence import connect, search_results

async def main() -> None:
    async with connect(sys.argv[1]) as db:
        await search_results(db, "nowhere")  # the first query of a process: no hit, no snippet
        search = await held(lambda: search_results(db, sys.argv[2]), collector=True)
        print(len(search.outcome.items), search.lag)

asyncio.run(main())
"""
"""Search a database twice, the second time beside the probe: its hits and the longest lag."""


async def _first_search(path: Path, text: str) -> tuple[int, float]:
    """Run the child's search over the database at `path`: how many hits, and the longest lag."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _FIRST_SEARCH,
        str(path),
        text,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_CHILD_ENV,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    hits, lag = out.split()
    return int(hits), float(lag)


@pytest.fixture
async def searched(tmp_path: Path, _migrated_sqlite_template: Path) -> Path:
    """A SQLite file of outputs in French, each also holding the ASCII word `needle`."""
    path = tmp_path / "search.db"
    shutil.copyfile(_migrated_sqlite_template, path)
    outputs = [f"needle café crème naïve déjà {index}" for index in range(20)]
    async with connect(str(path)) as db:
        await save_results(
            db,
            [
                TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, output=output)
                for output in outputs
            ],
        )
    return path


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("café", id="text-beyond-ascii"),
        pytest.param("needle", id="snippets-beyond-ascii"),
    ],
)
async def test_the_first_search_beyond_ascii_leaves_the_loop_free(
    searched: Path, text: str
) -> None:
    """Whether the search text or only the outputs its snippets cut hold such characters."""
    hits, lag = await _first_search(searched, text)
    assert hits == 20
    assert_lag("the first search", lag, MAX_FIRST_SEARCH_LAG)


_SLOW_DRIVER = """
import asyncio, sys, time
from importlib.abc import MetaPathFinder
from importlib.machinery import PathFinder

class Slow(MetaPathFinder):
    # asyncpg's import made slow, as a first import without compiled files is: 0.4 s
    def find_spec(self, name, path, target=None):
        if name != "asyncpg":
            return None
        spec = PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def slowly(module):
            time.sleep(0.4)
            run(module)
        spec.loader.exec_module = slowly
        return spec

sys.meta_path.insert(0, Slow())
from persistence import DatabaseError, open_database

async def opened():
    try:
        await open_database("postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.5)
    except DatabaseError:
        pass

async def main():
    stalls = [0.0]
    async def tick():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            stalls.append(now - last)
            last = now
    ticking = asyncio.ensure_future(tick())
    await asyncio.sleep(0.01)
    await asyncio.gather(opened(), opened())  # two first uses at once
    ticking.cancel()
    print(f"{max(stalls):.3f}")

asyncio.run(main())
"""


async def test_two_first_postgresql_opens_at_once_import_asyncpg_off_the_loop(
    tmp_path: Path,
) -> None:
    """The second of two opens at once waits for asyncpg's import in a thread, too.

    The first imported it in a worker thread; the second found it begun, and imported it on
    the loop, waiting there for the module's lock the whole import long.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SLOW_DRIVER,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    assert float(out) < 0.2, f"the loop was held {float(out):.3f} s"
