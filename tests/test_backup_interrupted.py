"""Backups cut short: cancelled as their working folder is made, killed, or racing to one file."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from _backup_helpers import (
    EMPTY,
    assert_same,
    contents,
    names,
)
from persistence import (
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    migration_status,
    save_result,
)
from persistence.backup import backup_database, copy_database, restore_database

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence import Database
    from persistence.backup import CopyReport


def _descriptors_on(folder: Path) -> list[str]:
    """Where this process's descriptors open on `folder` (or in it) point, gone or not."""
    links = (os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir())
    return [link for link in links if link.startswith(str(folder))]


async def test_a_backup_whose_folder_is_made_while_other_tasks_are_cancelled_goes_on(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working folder being made, every task but the backup's cancelled: the backup ends.

    The folder was made in a task of its own: code that cancels every task but its own (a
    shutdown handler) cancelled it, the backup, which nobody had cancelled, failed, and the
    folder the thread then made was never removed, nor its locked descriptor closed.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    made: list[Path] = []
    started, go_on = threading.Event(), threading.Event()
    real = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:  # noqa: ANN401  # as tempfile's
        started.set()
        go_on.wait(5)
        folder = str(real(*args, **kwargs))
        made.append(Path(folder))
        return folder

    out = tmp_path / "out"
    out.mkdir()
    await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
    backing_up = asyncio.ensure_future(backup_database(db, out / "a.backup"))
    assert await asyncio.to_thread(started.wait, 5)
    cancel_all_tasks_but(backing_up)
    await asyncio.sleep(0.01)
    go_on.set()
    async with asyncio.timeout(10):
        report = await backing_up
    assert report.test_results == 1
    assert len(made) == 1
    assert names(out) == ["a.backup"]
    assert _descriptors_on(made[0]) == []
    monkeypatch.undo()
    assert (await backup_database(db, out / "b.backup")).test_results == 1
    assert names(out) == ["a.backup", "b.backup"]


async def test_a_cancel_while_a_working_folder_is_made_leaves_no_folder(
    tmp_path: Path, source: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its working folder is being made, a backup or a restore removes it.

    The folder, `.FILE.*.partial` beside the file for a backup, `.persistence-restore.*.partial`
    in $TMPDIR for a restore's private copy of its file, is made in a worker thread, which goes
    on after the cancel. A copy makes no folder: it reads in a read transaction.
    """
    made: list[Path] = []
    started, finished = threading.Event(), threading.Event()
    real = tempfile.mkdtemp

    def slow_mkdtemp(*args: Any, **kwargs: Any) -> str:  # noqa: ANN401  # as tempfile's
        started.set()
        time.sleep(0.1)  # a slow file system: the cancel comes meanwhile
        folder = str(real(*args, **kwargs))
        made.append(Path(folder))
        finished.set()
        return folder

    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        await backup_database(source, tmp_path / "a.backup")
        monkeypatch.setattr(tempfile, "mkdtemp", slow_mkdtemp)
        for name, into in (("restored.db", "restore"), ("copied.db", "copy")):
            async with connect(tmp_path / name) as other:
                await migrate(other)
                if into == "restore":
                    await restore_database(other, tmp_path / "a.backup")
                else:
                    await copy_database(source, other)
        assert len(made) == 1, "a restore made its folder, a copy none"
        assert not made[0].exists(), "and the restore removed it"
        before = names(tmp_path)
        works: list[Callable[[], Awaitable[CopyReport]]] = [
            lambda: backup_database(source, tmp_path / "b.backup"),
            lambda: restore_database(target, tmp_path / "a.backup"),
        ]
        for work in works:
            made.clear()
            started.clear()
            finished.clear()
            task = asyncio.ensure_future(work())
            assert await asyncio.to_thread(started.wait, 5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await asyncio.to_thread(finished.wait, 5)
            deadline = time.monotonic() + 1
            while any(folder.exists() for folder in made) and time.monotonic() < deadline:  # noqa: ASYNC110  # removed by a callback
                await asyncio.sleep(0.01)
            assert made
            assert [folder for folder in made if folder.exists()] == []
            assert names(tmp_path) == before
        monkeypatch.undo()
        assert await contents(target) == EMPTY


_STALLED = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import persistence.backup as backup
    from persistence import connect

    async def stall(*args, **kwargs):
        print("working", flush=True)
        await asyncio.sleep(30)  # killed long before

    publish = backup._publish

    def stall_publish(made, target):
        print("working", flush=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{target}.go") and time.monotonic() < deadline:
            time.sleep(0.01)  # killed meanwhile, or told to go on
        publish(made, target)

    async def main(what, database, file):
        async with connect(database) as db:
            if what == "backup":
                backup._publish = stall_publish
                await backup.backup_database(db, file)
            else:
                backup.move_rows = stall
                await backup.restore_database(db, file)

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def stalled(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    """Start a backup or a restore in a process of its own, stalled in the middle of its work.

    A backup waits before it publishes until a file named as its own plus `.go` appears.
    """
    script = tmp_path / "stalled.py"
    script.write_text(_STALLED, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line == b"working\n", "the process got to its work"
    return process


async def killed(process: asyncio.subprocess.Process) -> None:
    """SIGKILL a process and reap it."""
    process.send_signal(signal.SIGKILL)
    assert await process.wait() == -signal.SIGKILL


async def test_working_folders_of_killed_processes_are_removed_by_the_next_one(
    tmp_path: Path, source: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process killed mid-backup or mid-restore left is removed, what a live one uses is not.

    A backup killed (SIGKILL) before it publishes leaves its `.FILE.*.partial` folder beside
    the file: the next backup of that file removes it, and the folder of a process still at
    work stays. A restore reads a private copy of the backup, in a `.persistence-restore.*.partial`
    folder in $TMPDIR: one killed leaves it there, and the next restore removes it, not the
    folder of a restore still at work; nothing is left beside the backup.
    """
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    await backup_database(source, tmp_path / "a.backup")
    for name in ("t1.db", "t2.db", "t3.db"):
        async with connect(tmp_path / name) as target:
            await migrate(target)

    def partials() -> list[str]:
        return sorted(name for name in names(tmp_path) if name.endswith(".partial"))

    dead = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / "k"))
    await killed(dead)
    left = partials()
    assert len(left) == 1
    live = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / "k"))
    try:
        working = [name for name in partials() if name not in left]
        await backup_database(source, tmp_path / "k")
        assert partials() == working, "the dead process's folder went, the live one's stayed"
    finally:
        await killed(live)

    dead = await stalled(tmp_path, "restore", str(tmp_path / "t1.db"), str(tmp_path / "a.backup"))
    await killed(dead)
    left = names(tmp_path / "tmp")
    assert len(left) == 1
    live = await stalled(tmp_path, "restore", str(tmp_path / "t2.db"), str(tmp_path / "a.backup"))
    try:
        working = [name for name in names(tmp_path / "tmp") if name not in left]
        async with connect(tmp_path / "t3.db") as target:
            await restore_database(target, tmp_path / "a.backup")
            await assert_same(source, target)
        assert names(tmp_path / "tmp") == working, "the dead one's copy went, the live one's stayed"
    finally:
        await killed(live)
    async with connect(tmp_path / "t1.db") as target:
        assert await contents(target) == EMPTY


async def test_two_backups_to_one_file_give_one_and_leave_nothing_else(
    tmp_path: Path, source: Database
) -> None:
    """Of two backups to one file, the one that publishes first wins; the other overwrites nothing.

    A backup in another process, about to publish, finds the file made meanwhile by a backup of
    this one, or a symbolic link planted there (to a file that does not exist): it fails saying
    so, the link is left as it was and creates nothing, and no working folder stays.
    """
    (tmp_path / "tmp").mkdir()
    for name, plant in (("mine", "link"), ("theirs", "backup")):
        other = await stalled(tmp_path, "backup", str(tmp_path / "source.db"), str(tmp_path / name))
        if plant == "link":
            (tmp_path / name).symlink_to(tmp_path / "victim")
        else:
            await backup_database(source, tmp_path / name)
        made = os.lstat(tmp_path / name)
        (tmp_path / f"{name}.go").touch()
        assert other.stderr is not None
        err = await asyncio.wait_for(other.stderr.read(), 30)
        assert await other.wait() != 0
        assert b"appeared meanwhile: a backup never overwrites a file" in err
        assert os.lstat(tmp_path / name) == made
        assert not (tmp_path / "victim").exists()
        assert [n for n in names(tmp_path) if n.endswith(".partial")] == []
    async with connect(tmp_path / "theirs", create=False) as backup:
        assert (await migration_status(backup)).up_to_date
