"""Paths no file can be at, given to the entry points: each is the package's error, naming it.

A symlink loop or `/` as the database raised a bare RuntimeError or ValueError (Python 3.11's
`Path.resolve` and `with_name`); a name too long to look at, as a migrations folder, a bare
OSError (`is_dir` raises ENAMETOOLONG there); as a backup to restore, a bare OSError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence import (
    DatabaseError,
    MigrationError,
    ValidationError,
    connect,
    migrate,
    open_database,
    open_persistence,
)
from persistence.backup import restore_database

_TOO_LONG = "a" * 300
"""Past every file system's longest name (255 bytes)."""


@pytest.mark.parametrize("where", ["a loop", "/"])
async def test_a_database_path_no_file_can_be_at_is_a_database_error(
    tmp_path: Path, where: str
) -> None:
    """`open_database`, and `connect` with it, say that the database cannot be opened."""
    path = Path("/")
    if where == "a loop":
        path = tmp_path / "loop.db"
        path.symlink_to(path)
    with pytest.raises(DatabaseError, match="cannot open SQLite database"):
        await open_database(path)


async def test_a_migrations_folder_name_too_long_is_refused_naming_it(tmp_path: Path) -> None:
    """By `migrate` as a MigrationError, and by `open_persistence` before it opens anything."""
    folder = tmp_path / _TOO_LONG
    async with connect(tmp_path / "app.db") as db:
        with pytest.raises(MigrationError, match=f"{_TOO_LONG} cannot be read: File name too long"):
            await migrate(db, folder)
    with pytest.raises(ValidationError, match=r"user_migrations: .* cannot be read"):
        async with open_persistence(tmp_path / "app.db", user_migrations=folder):
            pass


@pytest.mark.parametrize("name", [_TOO_LONG, "/"])
async def test_a_backup_path_no_file_can_be_at_is_a_database_error(
    tmp_path: Path, name: str
) -> None:
    """`restore_database` says that there is no backup file there, and why."""
    async with connect(tmp_path / "app.db") as db:
        await migrate(db)
        with pytest.raises(DatabaseError, match="no backup file at"):
            await restore_database(db, tmp_path / name if name != "/" else Path("/"))
