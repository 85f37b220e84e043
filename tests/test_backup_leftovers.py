"""A backup removes the working folders that killed backups left, and nothing of the user's."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import persistence.backup
from _backup_helpers import names
from persistence import DatabaseError
from persistence.backup import backup_database, restore_database

if TYPE_CHECKING:
    from persistence import Database


@pytest.mark.parametrize(
    "name",
    [
        ".b.db.my old attempt.partial",
        ".b.db..partial",
        ".b.db.x.y.partial",
        ".b.db.ABCDEFGH.partial",
    ],
)
async def test_a_folder_of_the_users_shaped_like_a_working_folder_stays(
    tmp_path: Path, source: Database, name: str
) -> None:
    """Only the package's own shape, `.FILE.` and mkdtemp's 8 characters, is taken for its own."""
    mine = tmp_path / name
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    await backup_database(source, tmp_path / "b.db")
    assert (mine / "notes.txt").read_text() == "precious"
    assert names(tmp_path) == sorted([name, "b.db", "source.db", *_sidecars(tmp_path)])


async def test_a_working_folder_a_killed_backup_left_still_goes(
    tmp_path: Path, source: Database
) -> None:
    """A folder of the package's shape that no process holds is removed, as before."""
    left = tmp_path / ".b.db.k3_x9q0a.partial"
    left.mkdir()
    (left / "backup.db").write_bytes(b"half")
    await backup_database(source, tmp_path / "b.db")
    assert not left.exists()


def _sidecars(folder: Path) -> list[str]:
    """The source database's own -wal and -shm files, there while it is open."""
    return [name for name in os.listdir(folder) if name.startswith("source.db-")]  # noqa: PTH208


def _working_folders(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".partial"))


async def test_a_cancelled_backup_or_restore_has_removed_its_folder_when_it_returns(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut at each moment, the caller is told once the working folder is gone.

    The removal went on after the caller was told (handed to a thread, or to a callback once
    the folder's making ended): a quarter of the cancels found it still there.
    """
    restores = tmp_path / "restores"  # where a restore makes its folder: its own, looked at
    restores.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(restores))
    await backup_database(sqlite_db, tmp_path / "whole.backup")
    cut = 0
    for step in range(120):
        target = tmp_path / f"b{step}.backup"
        try:
            async with asyncio.timeout(0.00005 * (step % 40)):
                if step % 2:
                    await restore_database(sqlite_db, tmp_path / "whole.backup")
                else:
                    await backup_database(sqlite_db, target)
        except TimeoutError:
            cut += 1
        except DatabaseError:  # the restore's own refusal: the database is not empty
            pass
        assert _working_folders(tmp_path) == [], step
        assert _working_folders(restores) == [], step
    assert cut > 10, "the timeouts cut the calls"


async def test_a_restore_cancelled_while_it_copies_the_file_is_told_once_the_copy_ended(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy of the backup into the working folder runs in a thread: it is waited for.

    The caller was told at once, while the thread went on copying into a folder removed
    meanwhile (one whose file it made after the removal's look was left behind, unlocked).
    """
    restores = tmp_path / "restores"
    restores.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(restores))
    await backup_database(sqlite_db, tmp_path / "whole.backup")
    real = persistence.backup._checked_source  # noqa: SLF001  # watched
    ended: list[bool] = []

    def slow(file: Path, folder: Path, stop: Callable[[], bool]) -> object:
        time.sleep(0.3)  # a large file's copy, under way
        try:
            return real(file, folder, stop)
        finally:
            ended.append(stop())

    monkeypatch.setattr(persistence.backup, "_checked_source", slow)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await restore_database(sqlite_db, tmp_path / "whole.backup")
    assert ended == [True]  # ended, told to stop, before the caller was told
    assert _working_folders(restores) == []


async def test_a_restore_cancelled_while_it_copies_a_large_file_stops_the_copy(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The copy stops between two pieces once the caller is cancelled, and is waited for.

    Waited for to its end, a cancelled restore of a 3 GiB file told its caller after 16 s.
    """
    large = tmp_path / "large.backup"
    with large.open("wb") as file:  # sparse: no disk taken, every byte read all the same
        file.truncate(2 << 30)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await restore_database(sqlite_db, large)
    assert time.monotonic() - started < 1.5, "the copy ran on to its end"
