"""A restore reads its backup file and leaves the file's folder as it was."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

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
from persistence._transfer import move_rows
from persistence.backup import restore_database
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence import Database
    from persistence._interface import Connection


def _folder(path: Path) -> dict[str, tuple[int, int]]:
    """Each file in a folder, with its size and time of last change."""
    return {
        entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns) for entry in path.iterdir()
    }


def _result(test_id: str) -> TestResult:
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=test_id)


async def test_a_restore_from_a_wal_mode_file_leaves_its_folder_as_it_was(tmp_path: Path) -> None:
    """A database file the package made (in WAL mode) restores, and nothing appears beside it.

    Opened read-only, SQLite made an empty `-wal` and a `-shm` beside a WAL-mode file, and
    could not remove them: each restore left both in the folder of backups.
    """
    backups = tmp_path / "backups"
    backups.mkdir()
    async with connect(backups / "app.db") as app:
        await migrate(app)
        await save_result(app, _result("kept"))
    before = _folder(backups)
    assert list(before) == ["app.db"]
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        await restore_database(target, backups / "app.db")
        assert [result.test_id for result in await all_results(target)] == ["kept"]
    assert _folder(backups) == before


async def test_a_restore_from_a_file_in_use_reads_what_its_wal_holds(tmp_path: Path) -> None:
    """A file another connection has open is read through SQLite's locks, its `-wal` included.

    The file alone would be an older state: the row saved last is only in the `-wal` file.
    """
    backups = tmp_path / "backups"
    backups.mkdir()
    async with connect(backups / "app.db") as app:
        await migrate(app)
        await save_result(app, _result("in the wal"))
        assert (backups / "app.db-wal").stat().st_size > 0
        async with connect(tmp_path / "target.db") as target:
            await migrate(target)
            await restore_database(target, backups / "app.db")
            assert [result.test_id for result in await all_results(target)] == ["in the wal"]


async def test_a_restore_refuses_a_file_written_while_it_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read without SQLite's locks, changed by a writer meanwhile, is not restored.

    Read immutable, nothing kept another program from writing to the backup as it was read:
    the copy could hold a torn state. The target keeps nothing of it.
    """
    backups = tmp_path / "backups"
    backups.mkdir()
    async with connect(backups / "app.db") as app:
        await migrate(app)
        await save_result(app, _result("kept"))

    async def moved_then_written(
        source: Database, reading: Connection, tx: Database, page_size: int, *, checked: bool
    ) -> tuple[dict[str, int], dict[str, int]]:
        done = await move_rows(source, reading, tx, page_size, checked=checked)
        with contextlib.closing(sqlite3.connect(backups / "app.db")) as writer, writer:
            writer.execute("UPDATE test_results SET test_id = 'written meanwhile'")
        return done

    monkeypatch.setattr("persistence.backup.move_rows", moved_then_written)
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match="changed while it was read"):
            await restore_database(target, backups / "app.db")
        assert await all_results(target) == []
