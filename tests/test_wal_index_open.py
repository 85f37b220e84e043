"""The WAL index (`-shm`) is mapped from a regular file only, and opening it never waits.

It was looked at (a regular file of 96 bytes or more), then opened by its path without
O_NONBLOCK: a FIFO put at the path in between made the open wait for a writer for good, in
a worker thread of the backend, holding the lock every backend of the process takes to map.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from persistence._sqlite import changes

_WAIT = 2.0  # seconds: the open of a FIFO without a writer never returns by itself


@pytest.mark.timed
def test_a_fifo_swapped_in_after_the_look_is_refused_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look sees a regular -shm; the open then finds a FIFO: no mapping, and no wait."""
    database = tmp_path / "app.db"
    database.write_bytes(b"")
    shm = tmp_path / "app.db-shm"
    os.mkfifo(shm)
    regular = tmp_path / "regular-shm"
    regular.write_bytes(b"\0" * 4096)
    seen = regular.stat()  # what the look saw before the FIFO took the path

    class Looked(type(Path())):  # type: ignore[misc]  # the concrete class of this platform
        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:  # noqa: ARG002
            return seen

    monkeypatch.setattr(changes, "Path", Looked)
    got: list[object] = []
    worker = threading.Thread(target=lambda: got.append(changes.map_wal_index(str(database))))
    worker.start()
    worker.join(_WAIT)
    blocked = worker.is_alive()
    if blocked:  # a writer wakes the waiting open, so that the test ends
        with contextlib.suppress(OSError):
            os.close(os.open(shm, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
    assert not blocked, "mapping the WAL index waited on a FIFO"
    assert got == [None]
