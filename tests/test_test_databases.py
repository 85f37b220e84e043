"""The process that makes and drops each test process's PostgreSQL test databases.

It drops every database it made, whether asked to or not, when its test process closes its
stdin or is killed; it runs no drop while paused, yet answers a take; and the test process
holds no thread or connection of a drop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from _test_databases import LOG_VARIABLE, DatabaseService, _admin

HERE = Path(__file__).parent


async def _existing(admin: str, names: list[str]) -> set[str]:
    connection = await asyncpg.connect(admin, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname = ANY($1::text[])", names
        )
    finally:
        await connection.close()
    return {row["datname"] for row in rows}


def existing(admin: str, names: list[str]) -> set[str]:
    """Which of `names` the server has a database of."""
    return asyncio.run(_existing(admin, names))


def logged(log: Path) -> tuple[list[str], list[str]]:
    """The databases the log says were made, and those it says were dropped."""
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    made = [line.removeprefix("made ") for line in lines if line.startswith("made ")]
    dropped = [line.removeprefix("dropped ") for line in lines if line.startswith("dropped ")]
    return made, dropped


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_admin: str) -> Iterator[Path]:
    """The file that the database processes this test starts log to; none left after."""
    path = tmp_path / "databases.log"
    monkeypatch.setenv(LOG_VARIABLE, str(path))
    yield path
    made, _ = logged(path)
    assert made
    assert existing(postgres_admin, made) == set()


def running(pid: str) -> bool:
    """Whether the process `pid` runs: an orphan ended may stay a zombie until it is reaped."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def native_threads() -> int:
    """The threads of this process, Python's or not."""
    return len(list(Path("/proc/self/task").iterdir()))


def descriptors() -> int:
    """The descriptors this process holds open."""
    return len(list(Path("/proc/self/fd").iterdir()))


def test_closed_it_drops_what_it_made_and_reports_what_it_was_not_asked_to_drop(
    postgres_admin: str, log: Path
) -> None:
    """Closed, it drops every database it made, and names those its test process kept."""
    service = DatabaseService(postgres_admin)
    try:
        taken = [service.take("template0") for _ in range(3)]
        kept = service.create("template0")
        for name in taken:
            service.drop(name)
    finally:
        failures = service.close()
    assert failures == [f"{kept}: never asked to drop"]
    made, dropped = logged(log)
    assert set(taken) | {kept} <= set(made)  # and those made ahead
    assert sorted(dropped) == sorted(made)


def test_a_database_a_test_made_itself_is_dropped_when_asked(postgres_admin: str) -> None:
    """`migrate --create` makes a database of the test's own name, which it asks to drop.

    Only the databases the service had made were dropped: each full run left five behind.
    """
    own = f"persistence_create_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(postgres_admin, f'CREATE DATABASE "{own}"'))
    service = DatabaseService(postgres_admin)
    try:
        service.drop(own)
    finally:
        failures = service.close()
    assert failures == []
    assert existing(postgres_admin, [own]) == set()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="watches the process in /proc")
@pytest.mark.parametrize("how", ["killed", "terminated with its group"])
def test_its_test_process_ended_it_drops_all_it_made_and_ends(
    postgres_admin: str, log: Path, how: str
) -> None:
    """A test process killed, or a SIGTERM to the whole group (`timeout`, a cancelled CI job).

    Either closes the pipe that the database process reads, which then drops all it made.
    """
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(HERE)!r})\n"
        "from _test_databases import DatabaseService\n"
        "service = DatabaseService(sys.argv[1])\n"
        "print(service.pid, service.take('template0'), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    test_process = subprocess.Popen(
        [sys.executable, "-c", code, postgres_admin],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert test_process.stdout is not None
    try:
        pid, name = test_process.stdout.readline().split()
    finally:
        if how == "killed":
            test_process.kill()
        else:
            os.killpg(test_process.pid, signal.SIGTERM)
        test_process.communicate()
    deadline = time.monotonic() + 120  # the drops under a busy server's checkpoints
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(pid)
    made, dropped = logged(log)
    assert name in made
    assert sorted(dropped) == sorted(made)


def test_paused_it_runs_no_drop_and_still_answers_a_take(postgres_admin: str, log: Path) -> None:
    """Paused, it holds the drops, and makes a copy at once that it would have made ahead."""
    service = DatabaseService(postgres_admin)
    try:
        first = service.take("template0")
        taken: list[str] = []
        with service.paused():
            service.drop(first)
            # The copy made ahead is taken; the next is not made while paused, so this one is
            # made now rather than waited for.
            for _ in range(2):
                thread = threading.Thread(target=lambda: taken.append(service.take("template0")))
                thread.start()
                thread.join(timeout=120)
                assert not thread.is_alive(), "a take waited for a copy held by the pause"
            assert existing(postgres_admin, [first, *taken]) == {first, *taken}
        for name in taken:
            service.drop(name)
    finally:
        failures = service.close()
    assert failures == []
    made, dropped = logged(log)
    assert sorted(dropped) == sorted(made)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
def test_no_drop_or_copy_holds_a_descriptor_or_thread_of_the_test_process(
    postgres_admin: str, log: Path
) -> None:
    """Drops and copies under way hold no thread or descriptor here, beyond its two pipes."""
    threads, fds = native_threads(), descriptors()
    service = DatabaseService(postgres_admin)
    try:
        pipes = descriptors() - fds
        counts = []
        for _ in range(5):
            name = service.take("template0")  # the next one is being made ahead
            service.drop(name)
            counts.append((native_threads(), descriptors() - pipes))
    finally:
        failures = service.close()
    assert failures == []
    assert pipes == 2  # its stdin and its stdout
    assert counts == [(threads, fds)] * 5
    made, dropped = logged(log)
    assert sorted(dropped) == sorted(made)
