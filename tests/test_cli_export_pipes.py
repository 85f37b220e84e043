"""An export into a FIFO or a pipe that waits for its reader stops at one Ctrl-C.

The write blocked in the system call: with no reader yet, in the FIFO's open; with a reader
that stopped reading, in the write. Ctrl-C then only set the command's cancellation, which the
blocked call never saw, and a second Ctrl-C was needed to stop the process.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _cli_helpers import AS_A_SHELL_STARTS_IT, ok
from persistence import _cli_output

CASES = 5_000
"""Test cases in the run exported: its export is past a pipe's 64 KiB."""
PIPE_FULL = 65_536
"""A pipe's room on Linux: a writer that has filled it waits for its reader."""
SETTLE = 1.5
"""Seconds given a command, its database open, to reach the FIFO's open."""


def _database(tmp_path: Path) -> list[str]:
    """A database holding run 1, and the option that names it."""
    db = ["--database", str(tmp_path / "app.db")]
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(CASES))
    report = tmp_path / "report.xml"
    report.write_text(f'<testsuite name="s">\n{cases}\n</testsuite>')
    ok("migrate", *db)
    ok("import", str(report), *db)
    return db


def _wait_until_waiting(running: subprocess.Popen[str], database: Path, held: int | None) -> None:
    """Return once the export waits: on a full pipe (its reader `held`), or at the FIFO's open."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert running.poll() is None, running.communicate()
        if held is not None:
            room = array.array("i", [0])
            fcntl.ioctl(held, termios.FIONREAD, room)
            if room[0] >= PIPE_FULL:
                return
        elif str(database) in _opened_by(running.pid):
            time.sleep(SETTLE)
            return
        time.sleep(0.02)
    raise AssertionError("the export never came to wait")


def _opened_by(pid: int) -> set[str]:
    """What the process has open, by path."""
    found = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while listed
            found.add(str(entry.readlink()))
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("reader", ["none yet", "stopped reading", "stdout stopped reading"])
@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_export_waiting_on_its_reader_stops_at_one_signal(
    tmp_path: Path, reader: str, number: int, code: int
) -> None:
    """One SIGINT (or SIGTERM) ends the command at once, whichever way the pipe waits.

    Standard output too: `persistence export 1 | slow-reader` blocked in its write there.
    """
    db = _database(tmp_path)
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    output = ["--output", str(fifo)]
    held = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK) if reader == "stopped reading" else None
    stdout: int = subprocess.PIPE
    if reader == "stdout stopped reading":
        held, stdout = os.pipe()  # a pipe as a shell makes it: blocking at both ends
        output = []
    running = subprocess.Popen(  # this interpreter, fixed arguments
        [sys.executable, "-c", AS_A_SHELL_STARTS_IT, "export", "1", *output, *db],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stdout != subprocess.PIPE:
        os.close(stdout)  # the command's alone
    try:
        _wait_until_waiting(running, tmp_path / "app.db", held)
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
        time.sleep(0.5)  # it comes late
        read = bytearray()
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                try:
                    chunk = os.read(reader, 7_000)
                except BlockingIOError:  # nothing yet
                    chunk = None
                if chunk == b"" and running.poll() is not None:
                    break  # the writer closed it and ended
                read += chunk or b""
                time.sleep(0.001)
        finally:
            os.close(reader)
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


def test_an_export_to_a_socket_fails_at_once_naming_it(tmp_path: Path) -> None:
    """A socket's open fails as a FIFO with no reader does (ENXIO): it was waited on for good."""
    db = _database(tmp_path)
    place = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(place))
        done = subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", "export", "1", "--output", str(place), *db],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 3
    assert done.stderr == f"persistence: error: No such device or address: {place}\n"


async def test_a_fifo_opened_without_blocking_takes_all_it_has_room_for_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its writes are not cut to a pipe's atomic amount: the loop was waited on each 4 KiB."""
    waits: list[int] = []
    real = _cli_output._writable  # noqa: SLF001  # the wait counted

    async def counted(loop: asyncio.AbstractEventLoop, descriptor: int) -> None:
        waits.append(descriptor)
        await real(loop, descriptor)

    monkeypatch.setattr(_cli_output, "_writable", counted)
    data = bytes(range(256)) * 4_096  # 1 MiB: 256 writes of 4 KiB
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # as the FIFO's own open makes it
    with ThreadPoolExecutor(1) as reader:
        got = reader.submit(_read_all, read_end)
        try:
            await _cli_output._written_through(write_end, data)  # noqa: SLF001  # what it writes
        finally:
            os.close(write_end)
        assert got.result(timeout=30) == data
    assert len(waits) < len(data) // _cli_output.CHUNK // 4


def _read_all(descriptor: int) -> bytes:
    read = bytearray()
    try:
        while chunk := os.read(descriptor, 1 << 16):
            read += chunk
    finally:
        os.close(descriptor)
    return bytes(read)


def test_a_stdout_pipe_in_non_blocking_mode_gets_all_of_the_output(tmp_path: Path) -> None:
    """A parent may hand over a pipe in non-blocking mode (Node's, some CI runners').

    What the command printed past the pipe's 64 KiB, while its reader was slow, failed with
    `EAGAIN`, exit 3, "Resource temporarily unavailable" naming nothing; an export, which
    waits on the loop, was written whole. The printed output now waits for room too.
    """
    new = str(tmp_path / "new.db")
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        running = subprocess.Popen(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", "migrate", "--dry-run", "--database", new],
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    with contextlib.closing(os.fdopen(read_end, "rb")) as reader:
        time.sleep(1.5)  # a slow reader: the pipe fills meanwhile
        printed = reader.read()
    _, err = running.communicate(timeout=60)
    assert (running.returncode, err) == (0, b"")
    assert len(printed) > 65_536
    assert printed.rstrip().endswith(b"migration(s) would be applied")
