"""A restore refuses a path that reaches no backup file as a DatabaseError naming the reason.

The path is followed to the file it names before the file is opened: a symlink loop made that
step raise a bare RuntimeError, and a path through a regular file, as if it were a folder, was
said to be a symbolic link.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence import connect, migrate
from persistence.backup import restore_database
from persistence.exceptions import DatabaseError


async def _refusal(tmp_path: Path, given: Path) -> str:
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match="no backup file") as refused:
            await restore_database(target, given)
    return str(refused.value)


@pytest.mark.parametrize("given", ["app.db", "app.db/inside.db"], ids=["at", "through"])
async def test_a_symlink_loop_is_refused_naming_the_loop(tmp_path: Path, given: str) -> None:
    """A path that is, or leads through, a symlink to itself: no file, told so."""
    loop = tmp_path / "app.db"
    loop.symlink_to(loop)
    said = await _refusal(tmp_path, tmp_path / given)
    assert str(tmp_path / given) in said
    assert "symbolic link loop" in said


async def test_a_path_through_a_file_is_refused_as_missing_not_as_a_link(tmp_path: Path) -> None:
    """`notes.txt/app.db`, a regular file taken for a folder: no such file, and no link there."""
    (tmp_path / "notes.txt").write_text("a file, no folder")
    said = await _refusal(tmp_path, tmp_path / "notes.txt" / "app.db")
    assert "symbolic link" not in said
    assert "is missing: a part of its path is no folder" in said


async def test_a_file_that_is_no_database_is_refused_naming_it(tmp_path: Path) -> None:
    """Text given as a backup: the error names the file given, not the private copy read.

    It named the copy (`$TMPDIR/.persistence-restore.*.partial/backup.db`), removed by then.
    """
    notes = tmp_path / "notes.bak"
    notes.write_text("hello\n")
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match="file is not a database") as refused:
            await restore_database(target, notes)
    assert str(notes) in str(refused.value)
    assert ".persistence-restore." not in str(refused.value)
