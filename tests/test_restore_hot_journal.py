"""A restore refuses a backup file whose rollback journal holds a transaction.

A writer that edits a rollback-journal file spills its changes into the file before it commits,
the pages they replace kept in FILE-journal. Read alone, the file was restored as a mix of
committed and uncommitted rows, and the restore said it succeeded. A journal that holds no
transaction (empty, or zeroed as the PERSIST mode leaves it) is no reason to refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from persistence import TestResult, TestStatus, TestType, all_results, connect, migrate
from persistence import save_results as save
from persistence.backup import backup_database, restore_database
from persistence.exceptions import DatabaseError

ROWS: Final = 300

_KILLED_MID_TRANSACTION: Final = """
import os, sqlite3, sys
plain = sqlite3.connect(sys.argv[1], isolation_level=None)
plain.execute("PRAGMA cache_size = 1")  # so that the changes spill into the file
plain.execute("BEGIN")
plain.execute("UPDATE test_results SET output = 'never committed', status = 'failed'")
os._exit(0)
"""


async def _backup(tmp_path: Path) -> Path:
    """A backup file (rollback journal) of ROWS passed results."""
    results = [
        TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="o" * 3000)
        for _ in range(ROWS)
    ]
    async with connect(tmp_path / "source.db") as source:
        await migrate(source)
        await save(source, results)
        await backup_database(source, tmp_path / "app.backup")
    return tmp_path / "app.backup"


async def _restored(tmp_path: Path, backup: Path) -> list[TestResult]:
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        await restore_database(target, backup)
        return await all_results(target)


async def _refused(tmp_path: Path, backup: Path, match: str) -> None:
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match=match) as refused:
            await restore_database(target, backup)
        assert str(backup) in str(refused.value)
        assert await all_results(target) == []


async def test_a_backup_a_writer_was_killed_in_is_refused(tmp_path: Path) -> None:
    """The writer's spilled pages are in the file: refused, nothing restored."""
    backup = await _backup(tmp_path)
    killed = [sys.executable, "-c", _KILLED_MID_TRANSACTION, str(backup)]
    await asyncio.to_thread(subprocess.run, killed, check=True)
    assert (tmp_path / "app.backup-journal").stat().st_size > 0
    await _refused(tmp_path, backup, "changes it never committed")
    with contextlib.closing(sqlite3.connect(backup)) as plain:  # as the error says: rolled back
        plain.execute("SELECT count(*) FROM test_results").fetchone()
    (tmp_path / "again").mkdir()
    restored = await _restored(tmp_path / "again", backup)
    assert len(restored) == ROWS
    assert {(r.status, r.output) for r in restored} == {(TestStatus.PASSED, "o" * 3000)}


@pytest.mark.parametrize("journal", [b"", bytes(512)], ids=["empty", "zeroed"])
async def test_a_journal_holding_no_transaction_is_restored_past(
    tmp_path: Path, journal: bytes
) -> None:
    """An empty journal (TRUNCATE mode) or a zeroed one (PERSIST mode) holds nothing."""
    backup = await _backup(tmp_path)
    (tmp_path / "app.backup-journal").write_bytes(journal)
    assert len(await _restored(tmp_path, backup)) == ROWS


async def test_a_fifo_for_a_journal_is_refused_not_waited_on(tmp_path: Path) -> None:
    """A FIFO in the journal's place is refused at once, named, as no journal SQLite writes."""
    backup = await _backup(tmp_path)
    os.mkfifo(tmp_path / "app.backup-journal")
    await _refused(tmp_path, backup, "app.backup-journal")


@pytest.mark.parametrize("folder", ["writable", "not writable"])
async def test_a_read_only_open_does_not_read_past_a_hot_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """`connect(create=False)` (`persistence status`, `runs`) of a file a writer was killed in.

    In a folder it could not write, the open was immutable, which takes no lock and passes
    over the journal: `status` listed applied migrations as pending, reads gave rows that were
    never committed. It is refused, naming the journal and what to do.
    """
    backup = await _backup(tmp_path)  # a rollback-journal file, as another program may keep
    killed = [sys.executable, "-c", _KILLED_MID_TRANSACTION, str(backup)]
    await asyncio.to_thread(subprocess.run, killed, check=True)
    if folder == "not writable":  # root writes anywhere: the refusal is feigned
        access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode: False if mode == os.W_OK else access(path, mode)
        )
    with pytest.raises(DatabaseError, match=r"app\.backup-journal beside it holds a transaction"):
        async with connect(backup, create=False) as db:
            await all_results(db)
    monkeypatch.undo()
    with contextlib.closing(sqlite3.connect(backup)) as plain:  # as the error says: rolled back
        assert plain.execute("SELECT count(*) FROM test_results").fetchone() == (ROWS,)
    async with connect(backup, create=False) as db:
        assert {r.output for r in await all_results(db)} == {"o" * 3000}
