"""A command stopped by Ctrl-C or by SIGTERM ends its work undone, says so, and exits at once.

SIGTERM (`timeout`, `docker stop`, systemd) took the process down by its default action: no
rollback waited for, no working file removed (a restore's copy of the backup, a backup's
`.partial` folder, hundreds of megabytes each).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest

from _cli_helpers import AS_A_SHELL_STARTS_IT
from persistence import connect, migration_status

STARTED_WAIT = 30.0
"""How long the migration may take to reach its statement, in seconds."""


async def _sleeping(url: str) -> bool:
    """Whether a statement of the database sleeps: the migration is under way."""
    connection = await asyncpg.connect(url)
    try:
        return bool(
            await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND query LIKE '%pg_sleep(30)%'"
                " AND pid <> pg_backend_pid()"
            )
        )
    finally:
        await connection.close()


async def _user_applied(url: str, folder: Path) -> list[str]:
    """The names of the user's migrations applied to the database."""
    async with connect(url) as db:
        user = (await migration_status(db, folder)).user
    assert user is not None
    return [migration.name for migration in user.applied]


IGNORING_SIGINT = AS_A_SHELL_STARTS_IT.replace("signal.default_int_handler", "signal.SIG_IGN")
"""The same, SIGINT ignored, as a script's `command &` starts it: SIGTERM still stops it."""


@pytest.mark.parametrize(
    ("number", "code", "said", "started"),
    [
        (signal.SIGINT, 130, "interrupted", AS_A_SHELL_STARTS_IT),
        (signal.SIGTERM, 143, "terminated", AS_A_SHELL_STARTS_IT),
        (signal.SIGTERM, 143, "terminated", IGNORING_SIGINT),
        (signal.SIGHUP, 129, "hung up", AS_A_SHELL_STARTS_IT),
    ],
    ids=["SIGINT", "SIGTERM", "SIGTERM, SIGINT ignored", "SIGHUP"],
)
def test_a_migration_stopped_by_a_signal_is_undone_and_says_so(
    tmp_path: Path,
    postgres_url: str,
    *,
    number: int,
    code: int,
    said: str,
    started: str,
) -> None:
    """A user migration sleeping on the server: the command ends at once, that one undone.

    Its statement is cancelled at the server before the process ends. The one applied before
    it is kept, and said to be: the command said only that it was interrupted.
    """
    folder = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (folder / engine).mkdir(parents=True)
        (folder / engine / "0001_quick.sql").write_text("SELECT 1;\n", encoding="utf-8")
        (folder / engine / "0002_slow.sql").write_text(
            "SELECT pg_sleep(30);\n" if engine == "postgres" else "SELECT 1;\n", encoding="utf-8"
        )
    command = [sys.executable, "-c", started, "migrate"]
    running = subprocess.Popen(  # this interpreter, fixed arguments
        [*command, "--migrations", str(folder), "--database", postgres_url],
        cwd=tmp_path,
        env={key: value for key, value in os.environ.items() if key != "DATABASE_URL"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + STARTED_WAIT
        while not asyncio.run(_sleeping(postgres_url)):
            assert running.poll() is None, running.communicate()
            assert time.monotonic() < deadline, "the migration never started"
            time.sleep(0.05)
        stopped = time.monotonic()
        running.send_signal(number)
        _, err = running.communicate(timeout=20)
        assert time.monotonic() - stopped < 10
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode == code
    *_, kept, last = err.strip().splitlines()
    assert last == f"persistence: {said}", err
    # The package's migrations too: the database was new.
    assert kept.startswith("persistence: this run applied and kept, before it: 0001_"), err
    assert kept.endswith(", user/0001_quick"), err
    assert asyncio.run(_user_applied(postgres_url, folder)) == ["0001_quick"]
    # The server was asked to cancel it: it ran on there after the process had gone.
    deadline = time.monotonic() + 5
    while asyncio.run(_sleeping(postgres_url)):
        assert time.monotonic() < deadline, "the statement runs on at the server"
        time.sleep(0.05)


_NEW_SIGNALLED = """
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
import persistence._cli_migrations as cli
from persistence.__main__ import main
text = cli._TEMPLATE
class Signalled:
    def format(self, **given):
        os.kill(os.getpid(), int(sys.argv[1]))
        return text.format(**given)
cli._TEMPLATE = Signalled()
sys.exit(main(["new", "add_index", "--migrations", sys.argv[2]]))
"""
"""`persistence new`, a signal sent to it as it writes its first file."""


@pytest.mark.parametrize(("number", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_new_stopped_by_a_signal_leaves_neither_file(
    tmp_path: Path, number: int, code: int
) -> None:
    """Killed by the signal's default action, it left one engine's file without its twin, empty.

    The next `new` numbered both past it: one chain lacked that number for good. The signal
    comes once both files are written (or neither): both are there, whole, or none.
    """
    folder = tmp_path / "mine"
    done = subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-c", _NEW_SIGNALLED, str(int(number)), str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    made = sorted(folder.rglob("*.sql"))
    assert [path.relative_to(folder).parts for path in made] in (
        [],
        [("postgres", "0001_add_index.sql"), ("sqlite", "0001_add_index.sql")],
    )
    assert all("0001_add_index" in path.read_text(encoding="utf-8") for path in made)


IMPORTING_SLOWLY = """
import importlib.abc, signal, sys, time
class Slow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "persistence.__main__":
            print("importing", flush=True)
            time.sleep(30)
        return None
sys.meta_path.insert(0, Slow())
signal.signal(signal.SIGINT, signal.default_int_handler)
from persistence_cli import main
sys.argv[0] = "persistence"
sys.exit(main())
"""
"""The command's entry point, as its installed script calls it, its import held up 30 s."""


def test_a_ctrl_c_while_the_command_starts_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C during the command's imports: `persistence: interrupted`, exit 130.

    Its imports take tenths of a second, and far longer on a loaded machine: a Ctrl-C then
    came before the command's own handling, and Python printed a traceback of the import.
    """
    process = subprocess.Popen(  # this interpreter, the test's own code
        [sys.executable, "-c", IMPORTING_SLOWLY, "status", "--database", str(tmp_path / "a.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "importing\n"
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=STARTED_WAIT)
    finally:
        process.kill()
        process.wait()
    assert (process.returncode, err) == (130, "persistence: interrupted\n")
    assert not (tmp_path / "a.db").exists()
