"""A SQLite file deleted, or replaced by another, while its database is open.

The writer keeps the file it opened: a write after the deletion went into a file no path names
any more, and was answered as committed, then lost for good on close. Every write is checked
against the file at the path before it commits, and refused, naming the path and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import pytest

from persistence import (
    Database,
    DatabaseError,
    close_database,
    open_database,
    save_result,
    transaction,
)
from persistence._sqlite.identity import OpenedFile
from persistence.migrations import migrate
from test_lone_writes import result

_REFUSED: Final = "deleted, moved or replaced"


def _unlink(file: Path) -> None:
    file.unlink()


def _replace(file: Path) -> None:
    """Rename another SQLite file over `file`: the path names a new file, the old one is gone."""
    other = file.with_name("other.db")
    with contextlib.closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
    other.replace(file)


async def _lone(db: Database) -> None:
    await save_result(db, result("after"))


async def _batch(db: Database) -> None:
    saves = [save_result(db, result("after")) for _ in range(5)]
    outcomes = await asyncio.gather(*saves, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _block(db: Database) -> None:
    async with transaction(db) as tx:
        await save_result(tx, result("after"))


def _descriptors_in(folder: Path) -> list[str]:
    """Where this process's descriptors open in `folder` point, deleted files included."""
    links = (str(fd.readlink()) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())
    return [link for link in links if link.startswith(str(folder))]


def _stored_after(file: Path) -> list[str]:
    """The outputs 'after' found in the file now at `file`, if it holds the table."""
    if not file.exists():
        return []
    with contextlib.closing(sqlite3.connect(file)) as connection:
        try:
            rows = connection.execute(
                "SELECT output FROM test_results WHERE output = 'after'"
            ).fetchall()
        except sqlite3.OperationalError:  # the other file: no such table
            return []
    return [str(row[0]) for row in rows]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.parametrize("remove", [_unlink, _replace], ids=["unlinked", "replaced"])
@pytest.mark.parametrize("write", [_lone, _batch, _block], ids=["lone", "batch", "block"])
async def test_a_write_after_the_file_is_deleted_is_refused_naming_why(
    tmp_path: Path,
    remove: Callable[[Path], None],
    write: Callable[[Database], Awaitable[None]],
) -> None:
    """The write raises, naming the path; nothing answered as written is lost; close ends."""
    file = tmp_path / "app.db"
    db = await open_database(file)
    await migrate(db)
    await save_result(db, result("before"))
    remove(file)
    with pytest.raises(DatabaseError, match=_REFUSED) as refused:
        await write(db)
    assert str(file) in str(refused.value)
    with pytest.raises(DatabaseError, match=_REFUSED):
        await write(db)  # and the next one too: the file does not come back
    async with asyncio.timeout(5):
        await close_database(db)
    assert _descriptors_in(tmp_path) == []
    assert _stored_after(file) == []


@pytest.mark.parametrize("write", [_lone, _batch, _block], ids=["lone", "batch", "block"])
async def test_a_file_deleted_as_the_write_commits_is_not_answered_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Database], Awaitable[None]]
) -> None:
    """Deleted between the check before the commit and the commit: the check after refuses."""
    file = tmp_path / "app.db"
    db = await open_database(file)
    await migrate(db)
    checked = OpenedFile.check_write

    def check_then_delete(opened: OpenedFile) -> None:
        checked(opened)
        file.unlink(missing_ok=True)

    monkeypatch.setattr(OpenedFile, "check_write", check_then_delete)
    with pytest.raises(DatabaseError, match="left its path as the write committed") as refused:
        await write(db)
    assert str(file) in str(refused.value)
    async with asyncio.timeout(5):
        await close_database(db)
