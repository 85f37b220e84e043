"""The drivers' first import runs in a worker thread, not on the event loop.

The first PostgreSQL open imported asyncpg, and the first Redis cache redis-py, on the loop:
65 to 640 ms of their modules' code in one go, as the loop's other tasks waited.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_CHILD = """
import asyncio, sys, tempfile, threading
from importlib.abc import MetaPathFinder

where = {}

class Watch(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in ("asyncpg", "redis") and name not in where:
            where[name] = threading.current_thread() is threading.main_thread()
        return None

sys.meta_path.insert(0, Watch())
import persistence
from persistence import DatabaseError, open_database, open_persistence
assert "asyncpg" not in sys.modules and "redis" not in sys.modules, "imported before a use"

async def main():
    try:
        await open_database("postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.5)
    except DatabaseError:
        pass
    folder = tempfile.mkdtemp()
    try:
        async with open_persistence(
            folder + "/app.db", files=folder + "/files", redis="redis://127.0.0.1:1/9"
        ):
            pass
    except Exception:
        pass

asyncio.run(main())
print(sorted(where.items()))
"""


def test_asyncpg_and_redis_are_first_imported_off_the_loop(tmp_path: Path) -> None:
    """In a new process, each driver's import ran in a thread other than the loop's."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('asyncpg', False), ('redis', False)]", done.stdout
