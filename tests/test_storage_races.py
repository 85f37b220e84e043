import asyncio
import contextlib
import fcntl
import hashlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import pytest

from _storage_worker import burst, jittery, operations
from persistence import (
    Database,
    all_file_records,
    find_file_record_by_path,
    save_file_record,
    transaction,
)
from persistence import storage as storage_module
from persistence._files import content, locks, paths, tree
from persistence._files.locks import stripe_of
from persistence._files.paths import LOCKS_DIR, is_partial_name, partial_name
from persistence.exceptions import DatabaseError, PersistenceError, StorageError
from persistence.storage import (
    FileInfo,
    Storage,
    VerifyReport,
    backup,
    clean_temp,
    copy,
    delete,
    info,
    list_backups,
    list_files,
    move,
    open_storage,
    prune_backups,
    read_bytes,
    verify,
    write_bytes,
    write_text,
)

HERE = Path(__file__).parent
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}


@pytest.fixture(name="slow_records")
def slow_records_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store's record writes take 0 to 4 ms more at random, as on a busy database."""
    monkeypatch.setattr(storage_module, "save_file_record", jittery(7))


async def assert_records_describe_the_disk(storage: Storage, db: Database) -> None:
    """Check that every file has a record of its size and hash, and every record a file."""
    on_disk = {
        entry.path: (entry.size, entry.sha256)
        for entry in await list_files(storage, "*", recursive=True)
        if not entry.is_directory
    }
    recorded = {record.path: (record.size, record.hash) for record in await all_file_records(db)}
    assert recorded == on_disk
    assert await verify(storage, db) == VerifyReport()


# --- a record describes the bytes on disk -----------------------------------------------------


@pytest.mark.usefixtures("slow_records")
async def test_concurrent_tracked_writes_of_one_path_leave_a_true_record(
    storage: Storage, db: Database
) -> None:
    """Twenty concurrent tracked writes of one path, four rounds over, leave a true record."""
    for round_ in range(4):
        texts = [f"round {round_}, writer {index}\n" * (index + 1) for index in range(20)]
        await asyncio.gather(*(write_text(storage, "same.txt", text, track=db) for text in texts))
        await assert_records_describe_the_disk(storage, db)


@pytest.mark.usefixtures("slow_records")
async def test_concurrent_writes_copies_and_moves_leave_true_records(
    storage: Storage, db: Database
) -> None:
    """Tracked writes, copies and moves of three paths in eight tasks at once leave verify clean."""
    await asyncio.gather(*(operations(storage, db, seed, 25) for seed in range(8)))
    await assert_records_describe_the_disk(storage, db)


async def _stop(*children: asyncio.subprocess.Process) -> None:
    """Kill the children still running and reap them all, even when the test failed."""
    for child in children:
        if child.returncode is None:
            child.kill()
        await child.communicate()


async def _worker(url: str, root: Path, seed: int, count: int) -> asyncio.subprocess.Process:
    """Start a child process that runs `count` operations once told to go."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_storage_worker.py"),
        url,
        str(root),
        str(seed),
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
    return child


@pytest.mark.usefixtures("slow_records")
async def test_tracked_operations_from_several_processes_leave_true_records(
    storage: Storage, db: Database, database_url: str
) -> None:
    """Two child processes and this one, four tasks each, changing the same paths agree."""
    children = [await _worker(database_url, storage.root, seed, 2) for seed in (1, 2)]
    try:
        for round_ in range(6):
            for child in children:
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                await child.stdin.drain()
            await burst(storage, db, 3 + 1000 * round_, 2)
            for child in children:
                assert child.stdout is not None
                assert await asyncio.wait_for(child.stdout.readline(), 60) == b"done\n"
            await assert_records_describe_the_disk(storage, db)
        for child in children:
            assert child.stdin is not None
            child.stdin.close()
            assert await asyncio.wait_for(child.wait(), 60) == 0
    finally:
        await _stop(*children)


def _hold(storage: Storage, path: str) -> int:
    """Take the lock of `path` through a descriptor of our own, as another process would."""
    folder = storage.root / LOCKS_DIR
    fd = os.open(folder / f"{stripe_of(path):03x}", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def test_a_write_waits_for_the_lock_of_its_path(storage: Storage) -> None:
    """A write whose path is locked elsewhere waits, then finishes once the lock is freed."""
    await write_bytes(storage, "a.txt", b"old")
    held = _hold(storage, "a.txt")
    try:
        waiting = asyncio.ensure_future(write_bytes(storage, "a.txt", b"new"))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert (storage.root / "a.txt").read_bytes() == b"old"
    finally:
        os.close(held)
    assert (await asyncio.wait_for(waiting, 10)).sha256 == hashlib.sha256(b"new").hexdigest()
    assert (storage.root / "a.txt").read_bytes() == b"new"


async def test_a_lock_held_too_long_is_a_storage_error(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock held past LOCK_TIMEOUT makes the write fail with a StorageError, changing nothing."""
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 0.2)
    await write_bytes(storage, "a.txt", b"old")
    held = _hold(storage, "a.txt")
    try:
        with pytest.raises(StorageError, match="busy"):
            await write_bytes(storage, "a.txt", b"new")
    finally:
        os.close(held)
    assert [path.name for path in storage.root.iterdir() if not path.name.startswith(".")] == [
        "a.txt"
    ]
    assert (storage.root / "a.txt").read_bytes() == b"old"


async def test_a_lock_wait_inside_a_transaction_block_gives_up(
    storage: Storage, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in a block, waiting on a holder that waits for the block, fails, never hangs.

    The holder takes the path's lock from another task (one not started by the block),
    then waits for the database, which the block holds.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 0.3)
    in_block = asyncio.Event()

    async def holder() -> FileInfo:
        await in_block.wait()
        return await write_text(storage, "a.txt", "other", track=sqlite_db)

    other = asyncio.ensure_future(holder())
    with pytest.raises(StorageError, match="busy"):
        async with transaction(sqlite_db) as tx:
            await write_text(storage, "a.txt", "first", track=tx)
            in_block.set()
            await asyncio.sleep(0.1)  # it takes the path's lock, then waits for the connection
            await write_text(storage, "a.txt", "second", track=tx)
    assert (await asyncio.wait_for(other, 10)).size == len("other")
    await assert_records_describe_the_disk(storage, sqlite_db)


async def test_the_outer_database_in_a_block_is_refused_before_the_disk(
    storage: Storage, db: Database
) -> None:
    """A tracked write with the outer db inside its own block fails at once and writes nothing."""
    async with transaction(db) as tx:
        await write_text(storage, "a.txt", "first", track=tx)
        with pytest.raises(DatabaseError, match="pass the database that transaction"):
            await write_text(storage, "a.txt", "outer", track=db)
        child = asyncio.ensure_future(write_text(storage, "b.txt", "child", track=db))
        with pytest.raises(DatabaseError, match="pass the database that transaction"):
            await asyncio.wait_for(child, 5)
    assert (storage.root / "a.txt").read_text() == "first"
    assert not (storage.root / "b.txt").exists()
    await assert_records_describe_the_disk(storage, db)


async def test_a_cancelled_tracked_write_is_recorded_or_not_made(
    storage: Storage, db: Database
) -> None:
    """Tracked writes cancelled at random moments leave the disk and the records in agreement."""
    for index in range(30):
        write = write_bytes(storage, "a.txt", b"x" * index, track=db)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(write, timeout=index / 5000)
        await assert_records_describe_the_disk(storage, db)


def _descriptors_under(folder: Path) -> list[str]:
    """Where this process's descriptors open in `folder` point: files, locks, the root itself."""
    links = (os.path.realpath(fd) for fd in Path("/proc/self/fd").iterdir())
    return [link for link in links if link.startswith(str(folder))]


async def test_a_write_staged_while_other_tasks_are_cancelled_ends_and_lets_go(
    storage: Storage, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose staging hop runs in a thread, every task but the writer's cancelled.

    The hop ran as a task of its own: code that cancels every task but its own (a shutdown
    handler) cancelled it, the writer, which nobody had cancelled, got `CancelledError`, and
    the change the thread staged and applied was never recorded nor closed: its descriptors
    stayed open and its lock held, so the next write of the path waited in vain.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 2.0)
    staging, go_on = threading.Event(), threading.Event()
    real = locks._staged  # noqa: SLF001  # the first hop of every change

    def held(stage: Any) -> Any:  # noqa: ANN401  # as the hop's
        staging.set()
        go_on.wait(5)
        return real(stage)

    await write_bytes(storage, "a.txt", b"before", track=db)
    monkeypatch.setattr(locks, "_staged", held)
    writing = asyncio.ensure_future(write_bytes(storage, "a.txt", b"during", track=db))
    assert await asyncio.to_thread(staging.wait, 5)
    cancel_all_tasks_but(writing)
    await asyncio.sleep(0.01)
    go_on.set()
    async with asyncio.timeout(5):
        written = await writing
    assert written.size == len(b"during")
    assert (storage.root / "a.txt").read_bytes() == b"during"
    await assert_records_describe_the_disk(storage, db)
    assert _descriptors_under(storage.root) == []
    monkeypatch.setattr(locks, "_staged", real)
    await write_bytes(storage, "a.txt", b"after", track=db)
    await assert_records_describe_the_disk(storage, db)


async def test_a_record_cancelled_by_another_task_is_written_again(
    storage: Storage, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tracked write's record, written in a task of its own, cancelled from outside.

    Code that cancels every task but its own (a shutdown handler) cancelled the record's
    write: the writer, which nobody had cancelled, got `CancelledError`, later `DatabaseError`,
    and the file was left without its record. The record is written again, and the call ends.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 2.0)
    recording, gate = asyncio.Event(), asyncio.Event()
    real = save_file_record  # the one storage calls

    async def held(db: Database, record: Any) -> Any:  # noqa: ANN401  # as the call's
        recording.set()
        await gate.wait()
        return await real(db, record)

    monkeypatch.setattr(storage_module, "save_file_record", held)
    writing = asyncio.ensure_future(write_bytes(storage, "a.txt", b"during", track=db))
    async with asyncio.timeout(5):
        await recording.wait()
    cancel_all_tasks_but(writing)
    await asyncio.sleep(0.01)
    gate.set()
    async with asyncio.timeout(5):
        written = await writing
    assert written.path == "a.txt"
    assert _descriptors_under(storage.root) == []
    await assert_records_describe_the_disk(storage, db)
    monkeypatch.setattr(storage_module, "save_file_record", real)
    await write_bytes(storage, "a.txt", b"after", track=db)
    await assert_records_describe_the_disk(storage, db)


_GATED: dict[str, str] = {
    "write": "save_file_record",
    "move": "save_file_record",
    "delete": "delete_file_record_by_path",
}


@pytest.mark.parametrize("operation", list(_GATED))
async def test_a_shutdown_cancelling_every_task_leaves_no_change_without_its_record(
    storage: Storage, db: Database, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The end of `asyncio.run`, or a handler, cancels the call and its record's task at once.

    The file was changed and its record never written: a written file without a record, a
    deleted one whose record stayed (every time, on both engines). The call is cancelled, and
    the record is written first; a moved record keeps its metadata.
    """
    await write_bytes(storage, "a.txt", b"first", track=db)
    kept = await find_file_record_by_path(db, "a.txt")
    assert kept is not None
    await save_file_record(db, attrs.evolve(kept, metadata={"owner": "ci"}))
    recording, gate = asyncio.Event(), asyncio.Event()
    real = getattr(storage_module, _GATED[operation])

    async def held(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401  # as the call's
        recording.set()
        await gate.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(storage_module, _GATED[operation], held)
    call: Callable[[], Awaitable[object]] = {
        "write": lambda: write_bytes(storage, "a.txt", b"second", track=db),
        "move": lambda: move(storage, "a.txt", "b.txt", track=db),
        "delete": lambda: delete(storage, "a.txt", track=db),
    }[operation]
    changing = asyncio.ensure_future(call())
    async with asyncio.timeout(5):
        await recording.wait()
    for task in asyncio.all_tasks():  # the call's task and its record's, as asyncio.run's end
        if task is not asyncio.current_task():
            task.cancel()
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await changing
    monkeypatch.setattr(storage_module, _GATED[operation], real)
    assert _descriptors_under(storage.root) == []
    await assert_records_describe_the_disk(storage, db)
    if operation == "move":
        moved = await find_file_record_by_path(db, "b.txt")
        assert moved is not None
        assert moved.metadata == {"owner": "ci"}


async def test_a_move_recorded_twice_keeps_the_first_writes_record(
    storage: Storage, db: Database
) -> None:
    """A move's record written once more after its first write committed changes nothing."""
    await write_bytes(storage, "a.txt", b"moved", track=db)
    kept = await find_file_record_by_path(db, "a.txt")
    assert kept is not None
    await save_file_record(db, attrs.evolve(kept, metadata={"owner": "ci"}))
    moved = await move(storage, "a.txt", "b.txt", track=db)
    before = await all_file_records(db)
    await storage_module._record_move_again(db, ("a.txt", moved))  # noqa: SLF001
    assert await all_file_records(db) == before
    assert [(r.path, r.metadata) for r in before] == [("b.txt", {"owner": "ci"})]


# --- a symlink swapped in mid-operation never leads out ---------------------------------------

OUTSIDE = b"OUTSIDE: must never be read, changed or deleted through the storage"
OUTSIDE_HASH = hashlib.sha256(OUTSIDE).hexdigest()


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under `folder`: file bytes, None for folders."""
    return {
        path.relative_to(folder).as_posix(): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


async def _hostile_round(storage: Storage, db: Database, index: int) -> None:
    """Run every operation once on paths through the folder `d` that is being swapped."""
    data = f"inside {index}".encode()
    calls = [
        write_bytes(storage, "d/a.txt", data),
        write_bytes(storage, f"d/new/deeper{index % 3}/n.txt", data),
        read_bytes(storage, "d/a.txt"),
        info(storage, "d/a.txt"),
        copy(storage, "d/a.txt", "d/b.txt"),
        copy(storage, "top.txt", "d/c.txt"),
        move(storage, "d/b.txt", "d/m.txt"),
        move(storage, "d/m.txt", "top_moved.txt"),
        write_bytes(storage, "d/del.txt", data),
        delete(storage, "d/del.txt"),
        backup(storage, "d/a.txt", keep=2),
        list_backups(storage, "d/a.txt"),
        prune_backups(storage, "d/a.txt", keep=1),
        clean_temp(storage, older_than_hours=0),
        verify(storage, db),
        list_files(storage, "*", recursive=True),
    ]
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, PersistenceError):
            raise outcome
        assert outcome != OUTSIDE
        assert getattr(outcome, "sha256", None) != OUTSIDE_HASH
        if isinstance(outcome, list):
            assert all(getattr(entry, "sha256", None) != OUTSIDE_HASH for entry in outcome)


async def test_a_folder_swapped_for_a_symlink_never_leads_out(
    tmp_path: Path, sqlite_db: Database
) -> None:
    """While another process swaps folders for symlinks out, no outside file is touched."""
    storage = await open_storage(tmp_path / "root")
    root = storage.root
    await write_bytes(storage, "top.txt", b"top")
    await write_bytes(storage, "d/a.txt", b"inside")
    await backup(storage, "d/a.txt")
    (root / ".tmp/d").mkdir()
    outside = tmp_path / "outside"
    names = ["a.txt", "b.txt", "m.txt", "del.txt", "a.txt.20200101T000000000000Z.bak", "x"]
    for name in names:
        (outside / "files" / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / "files" / name).write_bytes(OUTSIDE)
        (outside / "backups" / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / "backups" / name).write_bytes(OUTSIDE)
    (outside / "files/new").mkdir()
    os.utime(outside / "backups/x", (0, 0))
    before = _snapshot(outside)
    swapper = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_symlink_swapper.py"),
        str(root),
        "2.5",
        f"d={outside / 'files'}",
        f".backups/d={outside / 'backups'}",
        f".tmp/d={outside / 'backups'}",
        stdout=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )
    assert swapper.stdout is not None
    try:
        assert await swapper.stdout.readline() == b"ready\n"
        rounds = 0
        while swapper.returncode is None:
            await _hostile_round(storage, sqlite_db, rounds)
            rounds += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(swapper.wait(), 0.001)
        swaps = int(await swapper.stdout.readline())
    finally:
        await _stop(swapper)
    assert swaps > 100
    assert rounds > 10
    assert _snapshot(outside) == before


@pytest.mark.parametrize("kind", ["file", "folder"])
async def test_a_partial_file_swapped_for_a_link_puts_nothing_outside_in_the_root(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A backup's partial file swapped for a symlink to an outside file just before it is named.

    link(2) followed the symlink: the backup was a hard link to the outside file, which every
    read then gave, and a copy brought into the store. To a folder, link failed, the fallback
    renamed the symlink itself in place, and the backup given was a link leading out.
    """
    await write_text(storage, "a.txt", "inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("outside")
    aimed = secret if kind == "file" else outside
    commit_new = content.Partial.commit_new

    def swapped(partial: content.Partial, folder: int, names: Iterable[str]) -> str:
        os.rename(
            partial.name,
            f"stolen-{partial.name}",
            src_dir_fd=partial.dir_fd,
            dst_dir_fd=partial.dir_fd,
        )
        os.symlink(aimed, partial.name, dir_fd=partial.dir_fd)
        return commit_new(partial, folder, names)

    monkeypatch.setattr(content.Partial, "commit_new", swapped)
    with pytest.raises(StorageError, match="its partial file was replaced by another"):
        await backup(storage, "a.txt")
    monkeypatch.undo()
    assert secret.stat().st_nlink == 1
    assert await list_backups(storage, "a.txt") == []
    assert not any(path.is_symlink() for path in (storage.root / ".backups").rglob("*"))
    assert (await backup(storage, "a.txt")).name.startswith("a.txt.")  # and the next one goes


async def test_a_file_made_a_symlink_as_it_is_listed_is_listed_as_it_is_now(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the listing's look at an entry and its open, the file becomes a symlink.

    The open, which follows no symlink, failed with a bare ELOOP, and the whole listing with it.
    """
    await write_text(storage, "d/target.txt", "target")
    await write_text(storage, "d/flip.txt", "flip")
    os_open = os.open
    flipped: list[str] = []

    def flipping(name: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if name == "flip.txt" and flags & os.O_NOFOLLOW and not flipped:
            flipped.append(name)  # looked at as a file; opened as the symlink it is now
            os.unlink(name, dir_fd=dir_fd)
            os.symlink("target.txt", name, dir_fd=dir_fd)
        return os_open(name, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", flipping)
    listed = await list_files(storage, "d/*")
    assert flipped
    assert [(entry.path, entry.size) for entry in listed] == [
        ("d/flip.txt", len("target")),
        ("d/target.txt", len("target")),
    ]


async def test_a_move_between_two_links_keeps_its_aside_name_from_clean_temp(
    storage: Storage, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`clean_temp` in the moment a move between two hard links holds the source aside.

    The move renames the source's name aside, to a partial-file name, before it unlinks it:
    `clean_temp` took that name for an abandoned write and removed it, so the move failed
    (`FileMissingError`) though it took effect, its record left on the source; where the
    target changed meanwhile, the name aside was the content's only copy.
    """
    await write_text(storage, "src.txt", "content", track=db)
    os.link(storage.root / "src.txt", storage.root / "dst.txt")
    real_lstat = paths.lstat  # as content.py imports it
    swept: list[list[Path]] = []

    def sweep_then_lstat(dir_fd: int, name: str) -> os.stat_result | None:
        aside = any(map(is_partial_name, os.listdir(dir_fd)))
        if aside and not swept:  # once the name is aside: the move's look at its target
            swept.append(tree.clean_temp_files(storage.root, cutoff=float("inf")))
        return real_lstat(dir_fd, name)

    monkeypatch.setattr(content, "lstat", sweep_then_lstat)
    await move(storage, "src.txt", "dst.txt", track=db)
    monkeypatch.undo()
    assert swept == [[]]  # the name aside was held: nothing swept
    assert sorted(p.name for p in storage.root.iterdir() if not p.name.startswith(".")) == [
        "dst.txt"
    ]
    assert [record.path for record in await all_file_records(db)] == ["dst.txt"]
    assert await verify(storage, db) == VerifyReport()


async def test_clean_temp_holds_a_partial_files_lock_through_its_unlink(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweep keeps the lock it took on a partial file until the file is unlinked.

    It took a shared lock to look, let it go, then unlinked: a write that took its own lock in
    between (as `hold` does, just after making its file) lost its partial file, and failed at
    its rename. Here each unlink of a partial name is checked to be under the sweep's lock.
    """
    partial = storage.root / partial_name("a.txt")
    partial.write_bytes(b"left by a killed write")
    real_unlink = os.unlink
    unlocked_at_unlink: list[str] = []

    def unlink(path: Any, *, dir_fd: int | None = None) -> None:  # noqa: ANN401  # as os.unlink's
        name = os.fsdecode(path)
        if is_partial_name(Path(name).name):
            fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                unlocked_at_unlink.append(name)  # another could lock it: the sweep held none
            except BlockingIOError:
                pass
            finally:
                os.close(fd)
        real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    removed = await clean_temp(storage, older_than_hours=0)
    monkeypatch.undo()
    assert [path.name for path in removed] == [partial.name]
    assert not partial.exists()
    assert unlocked_at_unlink == []
