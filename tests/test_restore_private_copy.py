"""The private copy of its backup file that a restore reads, and a copy that cannot be made.

A full $TMPDIR failed the restore with the operating system's bare `OSError`, where every
other failure is one of the package's errors.
"""

from __future__ import annotations

import errno
import tempfile
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
from persistence._files import content
from persistence.backup import restore_database
from persistence.exceptions import DatabaseError


async def test_a_copy_that_cannot_be_written_is_a_database_error_naming_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for the copy: a DatabaseError naming the file and why; nothing restored or left."""
    source = tmp_path / "app.db"
    async with connect(source) as app:
        await migrate(app)
        await save_result(app, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))

    def full(_fd: int, _data: memoryview) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(content, "write_all", full)
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match="No space left on device") as refused:
            await restore_database(target, source)
        assert str(source) in str(refused.value)
        assert await all_results(target) == []
    assert list((tmp_path / "tmp").iterdir()) == []
