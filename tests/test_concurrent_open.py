"""A new SQLite file opened by many processes at the same instant: every open succeeds.

The first open of a new file switches it to WAL, which needs the file to itself for a
moment; an open that found it taken used to fail at once with "database is locked". Now
every open waits up to `busy_timeout` for another process's lock, as writes do.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from persistence import DatabaseError, close_database, migration_status, open_database

HERE = Path(__file__).parent
WORKER = str(HERE / "_opener_worker.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
PROCESSES = int(os.environ.get("TEST_OPENERS", "12"))
ROUNDS = int(os.environ.get("TEST_OPEN_ROUNDS", "3"))


async def _start_openers(mode: str) -> list[asyncio.subprocess.Process]:
    """Start the children and wait until each has imported the package and is ready."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            WORKER,
            mode,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=CHILD_ENV,
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    return children


async def _open_at_once(children: list[asyncio.subprocess.Process], path: Path) -> list[bytes]:
    """Let every child open `path` at one signal, and give the line each answered."""
    for child in children:  # one write each, with no await between them
        assert child.stdin is not None
        child.stdin.write(f"{path}\n".encode())

    async def answer(child: asyncio.subprocess.Process) -> bytes:
        assert child.stdout is not None
        return await child.stdout.readline()

    return await asyncio.wait_for(asyncio.gather(*(answer(child) for child in children)), 60)


@pytest.mark.parametrize("mode", ["open", "migrate"])
async def test_many_processes_open_one_new_file_at_once(tmp_path: Path, mode: str) -> None:
    """12 processes open one new path at one signal, a few times over: every open succeeds.

    `migrate` is `persistence migrate` without `--wait`: it too waits for the lock. The same
    12 children serve every round, each round on a new path: starting a child costs more than
    its opens, and a child already started reaches the file sooner, so the opens collide more.
    """
    children = await _start_openers(mode)
    try:
        for attempt in range(ROUNDS):
            path = tmp_path / f"new-{attempt}" / "app.db"
            answers = await _open_at_once(children, path)
            failed = [i for i, line in enumerate(answers) if line != b"done 0\n"]
            if failed:
                for child in children:
                    if child.stdin is not None:
                        child.stdin.close()
                culprit = children[failed[0]].stderr
                assert culprit is not None
                stderr = await asyncio.wait_for(culprit.read(), 30)
                pytest.fail(
                    f"round {attempt}: {len(failed)} opens failed: {stderr.decode()[-500:]}"
                )
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
        codes = await asyncio.wait_for(asyncio.gather(*(child.wait() for child in children)), 30)
        assert codes == [0] * PROCESSES
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()


LOCKS = ["EXCLUSIVE", "IMMEDIATE"]
"""How the other connection holds the file: `IMMEDIATE` lets the switch to WAL read the file,
then refuses it the write lock at once, without a wait, as a concurrent opener does."""


@pytest.mark.parametrize("lock", LOCKS)
async def test_an_open_waits_for_a_lock_held_elsewhere(tmp_path: Path, lock: str) -> None:
    """A file another connection holds locked is opened once the lock is let go.

    The plain sqlite3 connection stands for another process: it made the file in its
    default journal mode, so the switch to WAL needs the lock it holds.
    """
    path = tmp_path / "app.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute(f"BEGIN {lock}")
    opening = asyncio.ensure_future(open_database(path, busy_timeout=5.0))
    await asyncio.sleep(0.2)
    assert not opening.done()
    holder.execute("COMMIT")
    db = await asyncio.wait_for(opening, 5)
    try:
        assert (await migration_status(db)).pending
    finally:
        await close_database(db)
        holder.close()


@pytest.mark.parametrize("lock", LOCKS)
async def test_an_open_gives_up_after_busy_timeout(tmp_path: Path, lock: str) -> None:
    """An open waits no longer than `busy_timeout`, then says that the file is locked."""
    path = tmp_path / "app.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute(f"BEGIN {lock}")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="locked"):
            await open_database(path, busy_timeout=0.3)
        assert 0.25 < time.monotonic() - started < 3
    finally:
        holder.close()
