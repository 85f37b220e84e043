"""A backup, restore or copy cancelled once its work has taken effect says it was kept.

A COMMIT and a backup's rename run to their end before a cancellation goes on: the caller
heard only that it was cancelled, and `persistence copy` stopped by a SIGTERM as its
databases closed said `terminated` alone, of a target that held every row. Its retry was
refused (the target not empty, the backup file there), as `migrate` and the imports no
longer leave a caller to find out.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import persistence.backup
from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    migrate,
    save_results,
)
from persistence.backup import copy_database

ROWS = 5

TERMINATED_AFTER = """
import os, signal, sys
import persistence.backup as backup
from persistence.__main__ import main
after = getattr(backup, sys.argv[1])
def then_terminated(*args):
    done = after(*args)
    os.kill(os.getpid(), signal.SIGTERM)
    return done
setattr(backup, sys.argv[1], then_terminated)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
sys.exit(main(sys.argv[2:]))
"""
"""`python -m persistence`, with a SIGTERM sent to itself once the backup module's function
`argv[1]` has run: `_publish` (the backup file is in place) or `_report` (the copy committed,
its databases not yet closed)."""


async def _filled(path: Path) -> None:
    async with connect(path) as db:
        await migrate(db)
        results = [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)] * ROWS
        await save_results(db, results)


def _terminated_after(step: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TERMINATED_AFTER, step, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_backup_terminated_once_its_file_is_in_place_says_so(tmp_path: Path) -> None:
    """The file is whole and kept: the command says so before `terminated`."""
    await _filled(tmp_path / "app.db")
    done = await asyncio.to_thread(
        _terminated_after, "_publish", "backup", "out.db", "--database", "app.db", cwd=tmp_path
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stderr.splitlines() == [
        "persistence: the backup 'out.db' was in place, whole",
        "persistence: terminated",
    ]
    async with connect(tmp_path / "out.db", create=False) as backup:
        assert len(await all_results(backup)) == ROWS


async def test_a_copy_terminated_as_its_databases_close_says_it_is_complete(
    tmp_path: Path,
) -> None:
    """The copy had committed; the signal came as the command closed the databases."""
    await _filled(tmp_path / "source.db")
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
    done = await asyncio.to_thread(
        _terminated_after, "_report", "copy", "source.db", "target.db", cwd=tmp_path
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    (said, last) = done.stderr.splitlines()
    assert said.startswith("persistence: copied "), said
    assert said.endswith(": it is complete"), said
    assert last == "persistence: terminated"
    async with connect(tmp_path / "target.db", create=False) as target:
        assert len(await all_results(target)) == ROWS


async def test_copy_database_cancelled_once_it_committed_notes_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On both engines: the cancellation notes that the target holds every row."""
    await _filled(tmp_path / "source.db")
    reported = persistence.backup._report  # noqa: SLF001  # the step after the commit

    def cancelled(*args: object) -> object:
        reported(*args)  # type: ignore[arg-type]  # as given
        raise asyncio.CancelledError

    monkeypatch.setattr(persistence.backup, "_report", cancelled)
    async with connect(tmp_path / "source.db", create=False) as source:
        with pytest.raises(asyncio.CancelledError) as caught:
            await copy_database(source, db)
    assert getattr(caught.value, "__notes__", []) == [
        f"the copy into {db.url} had committed: it holds every row"
    ]
    assert len(await all_results(db)) == ROWS


async def test_a_backup_cancelled_in_its_working_databases_migrate_notes_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup of rows (PostgreSQL's, or `skip_user_tables`) migrates a working database.

    A cancellation there carried migrate's notes, "this run applied and kept, before it: ...",
    of a database thrown away: the command printed them of a backup that kept nothing.
    """

    async def cancelled(*_: object) -> None:
        error = asyncio.CancelledError()
        error.add_note("this run applied and kept, before it: 0001_initial_schema")
        raise error

    monkeypatch.setattr(persistence.backup, "migrate", cancelled)
    with pytest.raises(asyncio.CancelledError) as caught:
        await persistence.backup.backup_database(db, tmp_path / "out.db", skip_user_tables=True)
    assert getattr(caught.value, "__notes__", []) == []
    assert not (tmp_path / "out.db").exists()
