"""A copy whose target is its own source: refused at once on both engines, nothing written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from persistence import DatabaseError, all_config_entries, connect, set_config
from persistence.backup import backup_database, copy_database, restore_database

if TYPE_CHECKING:
    from persistence import Database

_BOUND = float(os.environ.get("TEST_SAME_DATABASE_TIMEOUT", "3"))
"""The command timeout of the handles: a copy that waited for its own locks ended only then."""


@pytest.mark.parametrize("rows", [0, 1], ids=["empty", "with-a-row"])
async def test_a_copy_onto_its_own_database_is_refused_at_once(
    db: Database, database_url: str, tmp_path: Path, rows: int
) -> None:
    """Through the same handle or another URL of it: PostgreSQL waited for its own snapshot."""
    for number in range(rows):
        await set_config(db, "s", f"k{number}", number)
    before = await all_config_entries(db)
    if database_url.startswith("postgresql://"):
        other = f"{database_url}?application_name=another"
    else:
        (tmp_path / "link.db").symlink_to(database_url)
        other = str(tmp_path / "link.db")
    async with (
        connect(database_url, command_timeout=_BOUND) as source,
        connect(other, command_timeout=_BOUND) as target,
    ):
        for into in (source, target):
            with pytest.raises(DatabaseError, match="are one database") as refused:
                await copy_database(source, into)
            assert "not empty" not in str(refused.value)
    assert await all_config_entries(db) == before


async def test_a_restore_of_a_database_from_its_own_file_is_refused(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The backup file read as it is, and the database written, are the one file."""
    with pytest.raises(DatabaseError, match="are one database"):
        await restore_database(sqlite_db, sqlite_db.url)
    link = tmp_path / "elsewhere.db"
    link.symlink_to(sqlite_db.url)
    with pytest.raises(DatabaseError, match="are one database"):
        await restore_database(sqlite_db, link)
    backup = tmp_path / "kept.backup"
    await backup_database(sqlite_db, backup)
    async with connect(backup) as copy:
        with pytest.raises(DatabaseError, match="are one database"):
            await restore_database(copy, backup)
