"""A backup removes the working folders that killed backups left, and nothing of the user's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _backup_helpers import names
from persistence.backup import backup_database

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
