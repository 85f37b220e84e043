"""A restore reads the backup file it checked, whatever is put at its path after the check.

The path was checked to be a regular file, then SQLite opened the path itself: a FIFO renamed
over it in between made the restore block for good, waiting for a writer on the pipe, and a
symlink to another database made it restore that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persistence import (
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    migrate,
    save_result,
)
from persistence._sqlite import opening as sqlite_opening
from persistence.backup import restore_database
from persistence.exceptions import DatabaseError


def _result(test_id: str) -> TestResult:
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=test_id)


async def _database_file(file: Path, test_id: str) -> None:
    """A closed database file holding one result."""
    async with connect(file) as db:
        await migrate(db)
        await save_result(db, _result(test_id))


def _put_fifo(file: Path) -> None:
    fifo = file.with_name("pipe")
    os.mkfifo(fifo)
    fifo.replace(file)


def _put_symlink(file: Path) -> None:
    link = file.with_name("link")
    link.symlink_to(file.with_name("other.db"))
    link.replace(file)


@contextlib.contextmanager
def _unblocked(file: Path) -> Iterator[list[str]]:
    """After 3 s, wake whatever reader blocks on a FIFO at `file`, noting that one did.

    A reader waiting on a pipe wakes once a writer opens it: the test then fails, not hangs.
    """
    woken: list[str] = []
    done = threading.Event()

    def wake() -> None:
        while not done.wait(3):
            with contextlib.suppress(OSError):  # no reader: ENXIO; no FIFO: not ours to open
                if stat.S_ISFIFO(file.lstat().st_mode):
                    os.close(os.open(file, os.O_WRONLY | os.O_NONBLOCK))
                    woken.append("a reader blocked on the FIFO")

    waker = threading.Thread(target=wake, daemon=True)
    waker.start()
    try:
        yield woken
    finally:
        done.set()
        waker.join()


@pytest.mark.parametrize("swap", [_put_fifo, _put_symlink], ids=["fifo", "symlink"])
async def test_a_file_swapped_after_the_check_is_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: Callable[[Path], None]
) -> None:
    """The swap lands just as SQLite is handed a path to open: the file checked is read.

    The restore reads the copy it made of the file checked, never blocks, never reads the
    other file, and, seeing the path changed before it commits, restores nothing.
    """
    backups = tmp_path / "backups"
    backups.mkdir()
    source = backups / "app.db"
    await _database_file(source, "checked")
    (backups / "other.db").write_bytes(b"not a database: reading it fails otherwise\n" * 100)
    opening = sqlite_opening._read_only_uri  # noqa: SLF001  # the moment SQLite is given a path
    swapped: list[Path] = []

    def then_swap(path: str, *, as_is: bool = False) -> str:
        uri = opening(path, as_is=as_is)
        if not swapped:
            swap(source)
            swapped.append(source)
        return uri

    monkeypatch.setattr(sqlite_opening, "_read_only_uri", then_swap)
    with _unblocked(source) as woken:
        async with connect(tmp_path / "target.db") as target:
            await migrate(target)
            async with asyncio.timeout(10):
                with pytest.raises(DatabaseError, match="changed while it was read"):
                    await restore_database(target, source)
            assert await all_results(target) == []
    assert swapped == [source]
    assert woken == []


async def test_a_fifo_at_the_path_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO given as the backup is refused, naming what it is, without waiting on it."""
    fifo = tmp_path / "app.db"
    os.mkfifo(fifo)
    with _unblocked(fifo) as woken:
        async with connect(tmp_path / "target.db") as target:
            await migrate(target)
            async with asyncio.timeout(10):
                with pytest.raises(DatabaseError, match="no backup file"):
                    await restore_database(target, fifo)
    assert woken == []
