"""What the command-line tests share: running it, in this process or its own, and a database."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from persistence.__main__ import main

ROOT = Path(__file__).parents[1]

AS_A_SHELL_STARTS_IT = (
    "import runpy, signal, sys;"
    "signal.signal(signal.SIGINT, signal.default_int_handler);"
    "signal.signal(signal.SIGTERM, signal.SIG_DFL);"
    "signal.signal(signal.SIGHUP, signal.SIG_DFL);"
    "sys.argv[0] = 'persistence';"
    "runpy.run_module('persistence', run_name='__main__', alter_sys=True)"
)
"""`python -m persistence`, its signals as an interactive shell leaves them: a test worker may
ignore SIGINT, and a run under `nohup` SIGHUP, which their children inherit (and which the
command then leaves ignored, as it should)."""


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `python -m persistence` in a process of its own and capture what it says."""
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(env or {})
    return subprocess.run(
        [*prefix, sys.executable, "-m", "persistence", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def redirected(redirection: str) -> tuple[str, ...]:
    """A `cli` prefix: the command runs under a shell's `redirection` (`>&-`, `2>/dev/full`)."""
    return ("sh", "-c", f'exec "$@" {redirection}', "sh")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process: exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def ok(*args: str) -> None:
    """Run the command line in this process, a step that sets up or checks: it must exit 0.

    A process of its own costs an interpreter and the package's import; a step whose process
    is not what the test is about runs here. Give `--database` and paths in full: this
    process's DATABASE_URL and working folder are not the test's. What it prints is kept
    apart, out of a test's `capsys`.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    assert code == 0, f"persistence {' '.join(args)} exited {code}: {err.getvalue()}"


def assert_one_error_line(err: str) -> None:
    """Stderr holds exactly one line, an error, and no traceback."""
    assert err.count("\n") == 1, err
    assert err.startswith("persistence: error: "), err
    assert "Traceback" not in err


def existing(database_url: str) -> str:
    """Make sure the database exists, empty for SQLite, and give its URL."""
    if not database_url.startswith("postgresql://"):
        sqlite3.connect(database_url).close()
    return database_url


async def _execute(database_url: str, statement: str) -> None:
    if database_url.startswith("postgresql://"):
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
        return
    with contextlib.closing(sqlite3.connect(database_url)) as plain, plain:
        plain.execute(statement)


def execute(database_url: str, statement: str) -> None:
    """Run one statement on the database with its driver, behind the package's back."""
    asyncio.run(_execute(database_url, statement))


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens, for now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
