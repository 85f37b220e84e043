"""An export into a FIFO or a pipe that waits for its reader stops at one Ctrl-C.

The write blocked in the system call: with no reader yet, in the FIFO's open; with a reader
that stopped reading, in the write. Ctrl-C then only set the command's cancellation, which the
blocked call never saw, and a second Ctrl-C was needed to stop the process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _cli_helpers import AS_A_SHELL_STARTS_IT

CASES = 5_000
"""Test cases in the run exported: its export is past a pipe's 64 KiB."""
WAITING = frozenset({"wait_for_partner", "pipe_write", "anon_pipe_write", "do_epoll_wait"})
"""What the process's main thread sleeps in while its write waits (a FIFO's open, a full
pipe's write, or the event loop)."""
STEADY = 1.0
"""How long the process must sleep there before it is stopped, in seconds."""


def _database(tmp_path: Path) -> list[str]:
    """A database holding run 1, and the option that names it."""
    db = ["--database", str(tmp_path / "app.db")]
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(CASES))
    report = tmp_path / "report.xml"
    report.write_text(f'<testsuite name="s">\n{cases}\n</testsuite>')
    for args in (["migrate", *db], ["import", str(report), *db]):
        subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", *args], check=True, capture_output=True
        )
    return db


def _wait_until_waiting(running: subprocess.Popen[str], database: Path) -> None:
    """Return once the process has its database open and sleeps where a write waits."""
    deadline = time.monotonic() + 30
    since: float | None = None
    while time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()
        try:
            opened = {str(entry.readlink()) for entry in Path(f"/proc/{running.pid}/fd").iterdir()}
            asleep = Path(f"/proc/{running.pid}/wchan").read_text().strip()
        except OSError:  # a descriptor closed while listed
            opened, asleep = set(), ""
        if str(database) in opened and asleep in WAITING:
            since = time.monotonic() if since is None else since
            if time.monotonic() - since >= STEADY:
                return
        else:
            since = None
        time.sleep(0.02)
    raise AssertionError("the export never came to wait")


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("reader", ["none yet", "stopped reading"])
@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_export_waiting_on_its_reader_stops_at_one_signal(
    tmp_path: Path, reader: str, number: int, code: int
) -> None:
    """One SIGINT (or SIGTERM) ends the command at once, whichever way the pipe waits."""
    db = _database(tmp_path)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK) if reader == "stopped reading" else None
    running = subprocess.Popen(  # this interpreter, fixed arguments
        [sys.executable, "-c", AS_A_SHELL_STARTS_IT, "export", "1", "--output", str(fifo), *db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_waiting(running, tmp_path / "app.db")
        running.send_signal(number)
        stopped = time.monotonic()
        try:
            _, err = running.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("one signal did not stop the export") from None
        assert time.monotonic() - stopped < 5
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
        if held is not None:
            os.close(held)
    assert running.returncode == code, err
    assert err.strip().startswith("persistence: "), err
    assert "Traceback" not in err


def test_an_export_into_a_fifo_waits_for_its_reader_and_writes_it_all(tmp_path: Path) -> None:
    """A reader that comes late, and reads slowly, gets the whole export."""
    db = _database(tmp_path)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    running = subprocess.Popen(  # this interpreter, fixed arguments
        [sys.executable, "-m", "persistence", "export", "1", "--output", str(fifo), *db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        read = bytearray()
        with fifo.open("rb", buffering=0) as stream:
            while chunk := stream.read(7_000):
                read += chunk
                time.sleep(0.001)
        out, err = running.communicate(timeout=30)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert (running.returncode, out, err) == (0, "", "")
    assert read.decode("utf-8").count("<testcase ") == CASES
    assert read.decode("utf-8").rstrip().endswith("</testsuites>")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["runs"], ["export", "1"], ["status"]])
def test_a_stdout_that_cannot_be_written_is_named(tmp_path: Path, command: list[str]) -> None:
    """`> /dev/full` (a full disk): the one line says it was standard output that failed.

    It said "No space left on device" alone, which could as well have been the database's.
    """
    db = _database(tmp_path)
    with Path("/dev/full").open("w") as full:
        done = subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", *command, *db],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 3
    assert done.stderr == "persistence: error: No space left on device: standard output\n"
