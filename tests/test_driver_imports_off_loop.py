"""The drivers' first import runs in a worker thread, not on the event loop.

The first PostgreSQL open imported asyncpg, and the first Redis cache redis-py, on the loop:
65 to 640 ms of their modules' code in one go, as the loop's other tasks waited. So did the
first open of any database OpenTelemetry's API, where the `otel` extra is installed (80 to
250 ms).
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
        if name in ("asyncpg", "redis", "opentelemetry") and name not in where:
            where[name] = threading.current_thread() is threading.main_thread()
        return None

sys.meta_path.insert(0, Watch())
import persistence
from persistence import DatabaseError, open_database, open_persistence
assert not {"asyncpg", "redis", "opentelemetry"} & set(sys.modules), "imported before a use"

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


def test_the_drivers_and_opentelemetry_are_first_imported_off_the_loop(tmp_path: Path) -> None:
    """In a new process, each driver's import ran in a thread other than the loop's."""
    assert _child_says(_CHILD, tmp_path) == (
        "[('asyncpg', False), ('opentelemetry', False), ('redis', False)]"
    )


_WITHOUT_OTEL = """
import asyncio, sys, tempfile
from importlib.abc import MetaPathFinder

looks = []

class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "opentelemetry":
            looks.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from persistence import connect, migrate

async def main():
    folder = tempfile.mkdtemp()
    for _ in range(3):
        async with connect(folder + "/app.db") as db:
            await migrate(db)

asyncio.run(main())
print(len(looks))
"""


def test_an_open_without_the_otel_extra_looks_for_it_once(tmp_path: Path) -> None:
    """Not installed, OpenTelemetry is looked for at the first open alone, and nothing fails."""
    assert _child_says(_WITHOUT_OTEL, tmp_path) == "1"


def _child_says(script: str, folder: Path) -> str:
    """Run `script` in a new process of this interpreter, in `folder`: what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
