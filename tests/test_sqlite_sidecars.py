"""A SQLite database whose `-journal`, `-wal` or `-shm` is there but is no file (a folder).

SQLite opened such a database, and every write then failed as "attempt to write a readonly
database", naming neither the folder nor what to do. Every open, read-only ones too, now
refuses it, naming the file, and the database is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from persistence import DatabaseError, connect, list_runs


def _released(fifo: Path) -> None:
    """Open the FIFO's other end: an open that blocked on it (the fault guarded) goes on."""
    with contextlib.suppress(OSError):  # no open waits on it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("create", [True, False], ids=["for writing", "read-only"])
@pytest.mark.parametrize("end", ["-journal", "-wal", "-shm"])
@pytest.mark.parametrize("kind", ["folder", "fifo", "link to a folder"])
async def test_an_open_refuses_a_sidecar_that_is_no_file(
    migrated_sqlite: Path, end: str, kind: str, *, create: bool
) -> None:
    """Refused at the open, named, with nothing written; once it is gone, the open works."""
    path, tmp_path = migrated_sqlite, migrated_sqlite.parent
    beside = path.with_name(path.name + end)
    if kind == "folder":
        beside.mkdir()
    elif kind == "fifo":
        os.mkfifo(beside)
    else:
        (tmp_path / "elsewhere").mkdir()
        beside.symlink_to(tmp_path / "elsewhere")
    before = path.read_bytes()
    # Should the open block on the FIFO again, this ends the wait, and the test fails.
    release = threading.Timer(10, _released, (beside,))
    release.start()
    try:
        with pytest.raises(DatabaseError, match=f"{path.name}{end} beside it is .*; move it away"):
            async with connect(str(path), create=create):
                pass
    finally:
        release.cancel()
    assert path.read_bytes() == before
    beside.unlink() if kind != "folder" else beside.rmdir()
    async with connect(str(path)) as db:
        assert (await list_runs(db)).items == ()
