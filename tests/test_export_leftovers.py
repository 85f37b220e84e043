"""The partial file of an export killed mid-write goes with the next write to its place.

`persistence export --output F` writes `F` whole through a partial file beside it
(`.F.<16 hex>.storage-partial`). A writer killed (SIGKILL) before its rename leaves that
file; the next write to `F` removes it, while a writer still at work keeps its own, and a
file or folder of the user's named like one stays.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from persistence._cli_output import write_whole
from persistence._files.paths import is_partial_name

CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}

_STALLED_WRITER = """
import asyncio, os, sys, time
from pathlib import Path
from persistence._cli_output import write_whole

def stall(fd):  # the partial file is written, not yet synced nor renamed into place
    print("writing", flush=True)
    time.sleep(float(sys.argv[2]))

os.fsync = stall
asyncio.run(write_whole(Path(sys.argv[1]), "x" * 100_000))
"""
STALL_SECONDS = 30.0
"""How long a stalled writer waits mid-write; every test kills it long before."""


@contextmanager
def _stalled_writer(target: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process that writes `target` and stops mid-write, its partial file made; kill it."""
    child = subprocess.Popen(
        [sys.executable, "-c", _STALLED_WRITER, str(target), str(STALL_SECONDS)],
        stdout=subprocess.PIPE,
        env=CHILD_ENV,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"writing\n"
        yield child
    finally:
        child.kill()
        child.communicate()  # reaps it and closes its pipe


def _partials(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if is_partial_name(path.name)}


def test_a_killed_exports_partial_file_goes_with_the_next_write_and_a_live_ones_stays(
    tmp_path: Path,
) -> None:
    """Killed mid-write, an export's partial file stays until the next write to its place.

    That write removes it; the partial file of a second writer still at work stays, and so
    does anything of the user's named like one: another shape, another file's, a folder, a
    symlink, a FIFO, a second link of a file.
    """
    target = tmp_path / "run.xml"
    with _stalled_writer(target) as killed:
        left = _partials(tmp_path)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
    assert len(left) == 1
    mine = tmp_path / "mine.txt"
    mine.write_text("mine")
    yours = [
        ".run.xml.0123456789ABCDEF.storage-partial",
        ".run.xml.0123456789abcde.storage-partial",
        ".run.xml.0123456789abcdef.storage-partial.bak",
        "run.xml.0123456789abcdef.storage-partial",
        ".other.xml.0123456789abcdef.storage-partial",
    ]
    for name in yours:
        (tmp_path / name).write_text("yours")
    shaped = {
        "folder": ".run.xml.1111111111111111.storage-partial",
        "link": ".run.xml.2222222222222222.storage-partial",
        "fifo": ".run.xml.3333333333333333.storage-partial",
        "second link": ".run.xml.4444444444444444.storage-partial",
    }
    (tmp_path / shaped["folder"]).mkdir()
    (tmp_path / shaped["link"]).symlink_to(mine)
    os.mkfifo(tmp_path / shaped["fifo"])
    (tmp_path / shaped["second link"]).hardlink_to(mine)

    before = _partials(tmp_path)
    with _stalled_writer(target):
        working = _partials(tmp_path) - before
        assert len(working) == 1
        asyncio.run(write_whole(target, "done"))
        assert target.read_text() == "done"
        assert _partials(tmp_path) & left == set()
        assert working <= _partials(tmp_path)  # a writer at work keeps its file
        for name in [*yours, *shaped.values()]:
            assert os.path.lexists(tmp_path / name), name
        assert mine.read_text() == "mine"

    asyncio.run(write_whole(target, "again"))  # the second writer, killed too, left its file
    assert target.read_text() == "again"
    assert _partials(tmp_path) & working == set()
    assert sorted(_partials(tmp_path)) == sorted(
        name for name in [*yours, *shaped.values()] if is_partial_name(name)
    )
