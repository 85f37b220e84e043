"""Several processes on one database: read-then-write transactions never fail for a lock."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from persistence import connect, get_config_value, migrate

HERE = Path(__file__).parent
WORKER = str(HERE / "_counter_worker.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
PROCESSES = 2
PER_PROCESS = 400


async def _errors(child: asyncio.subprocess.Process) -> str:
    """What a child that stopped early wrote to stderr: why it never said it was ready."""
    assert child.stderr is not None
    return (await asyncio.wait_for(child.stderr.read(), 20)).decode()[-2000:]


async def _run(url: str) -> None:
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            url,
            str(PER_PROCESS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=CHILD_ENV,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 20)
            assert line == b"ready\n", await _errors(child)
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(child.communicate() for child in children)), 120
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
            await child.wait()  # reaped here, not left to the garbage collector's warning
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr.decode()[-2000:]
        assert stdout == b"done\n"


async def test_read_then_write_transactions_in_two_processes(database_url: str) -> None:
    """Two processes each run 400 read-then-write transactions on one counter: none fails.

    A transaction that read before it wrote used to fail at once with "database is
    locked" on SQLite, unable to upgrade its lock; now each takes the write lock when it
    starts and waits its turn, so on SQLite the counter ends at exactly 800. PostgreSQL
    runs blocks at READ COMMITTED, its default: concurrent read-then-write blocks may
    overwrite each other's increments (the README says so), but none fails.
    """
    async with connect(database_url) as db:
        await migrate(db)
    await _run(database_url)
    async with connect(database_url) as db:
        final = await get_config_value(db, "counter", "value", int)
    if db.engine.value == "sqlite":
        assert final == PROCESSES * PER_PROCESS
    else:
        assert PER_PROCESS <= final <= PROCESSES * PER_PROCESS
