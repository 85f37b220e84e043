"""Storage backups (made, listed, pruned) and the clean-up of temporary files."""

import asyncio
import os
import shutil
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Self

import pytest

from _storage_helpers import (
    DAY,
    PARTIAL,
    age,
    snapshot,
)
from persistence import storage as storage_module
from persistence._files import content, locks
from persistence._files.locks import LockBusyError
from persistence._files.paths import owned
from persistence.storage import (
    Storage,
    backup,
    clean_temp,
    copy,
    list_backups,
    prune_backups,
    read_text,
    write_bytes,
    write_text,
)

# --- backups ---------------------------------------------------------------------------------


async def test_backup_copies_under_the_backups_folder(storage: Storage) -> None:
    """A backup is a timestamped copy under .backups/, mirroring the file's folders."""
    await write_bytes(storage, "docs/a.txt", b"version 1")
    copied = await backup(storage, "docs/a.txt")
    assert copied.parent == storage.root / ".backups/docs"
    assert copied.name.startswith("a.txt.")
    assert copied.name.endswith(".bak")
    assert copied.read_bytes() == b"version 1"
    assert (storage.root / "docs/a.txt").read_bytes() == b"version 1"


async def test_backups_are_listed_oldest_first_and_restorable(storage: Storage) -> None:
    """Backups list oldest first, even within one microsecond, and copying one back restores."""
    copies = []
    for version in range(4):
        await write_text(storage, "a.txt", f"v{version}")
        copies.append(await backup(storage, "a.txt"))
    assert await list_backups(storage, "a.txt") == copies
    await copy(storage, copies[1], "a.txt")
    assert await read_text(storage, "a.txt") == "v1"


async def test_prune_keeps_the_newest_backups(storage: Storage) -> None:
    """Pruning removes all but the newest `keep` backups of that file and returns them."""
    for version in range(5):
        await write_text(storage, "a.txt", f"v{version}")
        await backup(storage, "a.txt")
    everything = await list_backups(storage, "a.txt")
    removed = await prune_backups(storage, "a.txt", keep=2)
    assert removed == everything[:3]
    left = await list_backups(storage, "a.txt")
    assert left == everything[3:]
    assert [path.read_text() for path in left] == ["v3", "v4"]


async def test_backup_with_keep_prunes(storage: Storage) -> None:
    """Backing up with `keep` leaves only that many backups of the file."""
    for version in range(3):
        await write_text(storage, "a.txt", f"v{version}")
        await backup(storage, "a.txt", keep=1)
    left = await list_backups(storage, "a.txt")
    assert [path.read_text() for path in left] == ["v2"]


async def test_prune_leaves_everything_else_alone(storage: Storage, tmp_path: Path) -> None:
    """Pruning one file's backups spares other files' backups, look-alikes and outside files."""
    await write_text(storage, "a.txt", "a")
    await write_text(storage, "sub/a.txt", "sub a")
    await backup(storage, "a.txt")
    await backup(storage, "sub/a.txt")
    backups = storage.root / ".backups"
    planted = {
        backups / "xa.txt.20200101T000000000000Z.bak": "other file",
        backups / "a.txt.old": "not a backup name",
        backups / "a.txt.20200101T000000000000Z.bak.keep": "longer name",
        backups / "a.txt.2020.bak": "short stamp",
        storage.root / "a.txt.20200101T000000000000Z.bak": "at the root, outside .backups",
        tmp_path / "a.txt.20200101T000000000000Z.bak": "outside the storage",
    }
    for path, text in planted.items():
        path.write_text(text)
        age(path, 30 * DAY)
    (backups / "a.txt.20200101T000000000001Z.bak").mkdir()  # a folder with a backup's name
    outside = snapshot(tmp_path, skip=storage.root)
    removed = await prune_backups(storage, "a.txt", keep=0)
    assert len(removed) == 1
    assert all(path.read_text() == text for path, text in planted.items())
    assert (backups / "a.txt.20200101T000000000001Z.bak").is_dir()
    assert len(await list_backups(storage, "sub/a.txt")) == 1
    assert snapshot(tmp_path, skip=storage.root) == outside


async def test_prune_refuses_a_negative_keep(storage: Storage) -> None:
    """Keeping a negative number of backups is a ValueError."""
    await write_text(storage, "a.txt", "a")
    with pytest.raises(ValueError, match="keep"):
        await prune_backups(storage, "a.txt", keep=-1)


async def test_a_file_without_backups_has_none(storage: Storage) -> None:
    """Listing or pruning the backups of a file never backed up finds nothing."""
    await write_text(storage, "deep/er/a.txt", "a")
    assert await list_backups(storage, "deep/er/a.txt") == []
    assert await prune_backups(storage, "deep/er/a.txt", keep=0) == []


# --- clean-up --------------------------------------------------------------------------------


async def test_clean_temp_removes_only_old_temporary_files(
    storage: Storage, tmp_path: Path
) -> None:
    """Old files in .tmp/ and old partial writes go; new ones and everything else stay."""
    temp = storage.root / ".tmp"
    (temp / "nested").mkdir()
    old = [temp / "old.txt", temp / "nested/old.log", storage.root / "sub" / PARTIAL]
    young = [temp / "young.txt", storage.root / PARTIAL]
    bystanders = [
        storage.root / "old.tmp",
        storage.root / ".old.tmp",
        storage.root / "tmp/old.txt",
        storage.root / "sub/.x.txt.0123456789abcdeg.storage-partial",
        storage.root / "sub/x.txt.0123456789abcdef.storage-partial",
        storage.root / ".backups/old.txt",
        storage.root / ".backups" / PARTIAL,
        tmp_path / "old.txt",
        tmp_path / PARTIAL,
    ]
    for path in [*old, *young, *bystanders]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    for path in [*old, *bystanders]:
        age(path, 3 * 3600)
    (temp / "link").symlink_to(tmp_path / "old.txt")
    age(temp / "link", 3 * 3600)
    outside = snapshot(tmp_path, skip=storage.root)

    removed = await clean_temp(storage, older_than_hours=2)

    assert removed == sorted([*old, temp / "link"])
    assert not any(path.exists() for path in old)
    assert all(path.read_text() == path.name for path in [*young, *bystanders])
    assert (temp / "nested").is_dir()
    assert snapshot(tmp_path, skip=storage.root) == outside


async def test_clean_temp_without_a_temp_folder_still_removes_partial_writes(
    storage: Storage,
) -> None:
    """With .tmp/ removed, clean-up has nothing there to do and still takes old partial files.

    It raised FileMissingError for .tmp/, and removed no partial file anywhere.
    """
    (storage.root / ".tmp").rmdir()
    partial = storage.root / "sub" / PARTIAL
    partial.parent.mkdir()
    partial.write_bytes(b"x")
    age(partial, 3 * 3600)
    assert await clean_temp(storage, older_than_hours=2) == [partial]
    assert not (storage.root / ".tmp").exists()


async def test_clean_temp_removes_the_old_partial_files_of_the_caches_puts(
    storage: Storage, tmp_path: Path
) -> None:
    """A keep or an artifact put killed mid-write leaves its partial file in .cache/incoming/.

    Only an eviction of the artifact cache removed it, which a program keeping counterexamples
    without that cache never runs. Nothing else of the cache is touched, and a link in the
    place of the folder is not followed.
    """
    incoming = storage.root / ".cache" / "incoming"
    incoming.mkdir(parents=True)
    old, young = incoming / ".artifact.0123456789abcdef.storage-partial", incoming / PARTIAL
    kept = [young, incoming / "new", storage.root / ".cache" / "artifacts" / "ab" / "old"]
    for path in [old, *kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    for path in [old, *kept[1:]]:
        age(path, 3 * 3600)
    assert await clean_temp(storage, older_than_hours=2) == [old]
    assert all(path.read_text() == path.name for path in kept)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / old.name).write_text("not ours")
    age(outside / old.name, 3 * 3600)
    shutil.rmtree(incoming)
    incoming.symlink_to(outside)
    assert await clean_temp(storage, older_than_hours=2) == []
    assert (outside / old.name).read_text() == "not ours"


@pytest.mark.parametrize("folder", ["", ".tmp", ".cache/incoming"])
async def test_clean_temp_leaves_the_partial_file_of_a_write_at_work(
    storage: Storage, folder: str
) -> None:
    """A write holds its partial file while it works, however old: only a dead one's goes.

    By its age alone, a write waiting for its path's lock, or a long backup, lost its partial
    file to `clean_temp(older_than_hours=0)`, and failed as if its own file were missing.
    """
    place = storage.root / folder
    place.mkdir(parents=True, exist_ok=True)
    with owned(os.open(place, os.O_RDONLY | os.O_DIRECTORY)) as dir_fd:
        partial = content.Partial.create(dir_fd, "a.txt")
        try:
            age(place / partial.name, 3 * 3600)
            assert await clean_temp(storage, older_than_hours=1) == []
            assert (place / partial.name).is_file()
        finally:
            os.close(partial.fd)  # the writer is killed: its lock goes with it
        assert await clean_temp(storage, older_than_hours=1) == [place / partial.name]


async def test_clean_temp_refuses_negative_ages(storage: Storage) -> None:
    """A negative age is a ValueError."""
    with pytest.raises(ValueError, match="older_than_hours"):
        await clean_temp(storage, older_than_hours=-1)


@pytest.mark.parametrize("keep", [1, 3])
async def test_backups_and_prunes_at_once_each_keep_their_word(storage: Storage, keep: int) -> None:
    """Backups of one file with `keep`, six at once, and prunes beside them, fifty rounds.

    A prune between a backup's link and its check made the backup fail, `its partial file
    was replaced` (5 in 120 at keep=1, 1 in 120 at keep=3), though nothing was replaced.
    """
    await write_bytes(storage, "a.txt", b"x" * 200_000)
    for _ in range(50):
        made = await asyncio.gather(
            *(backup(storage, "a.txt", keep=keep) for _ in range(6)),
            prune_backups(storage, "a.txt", keep=keep),
        )
        assert len(made) == 7
        # A backup named after one of a newer stamp prunes neither: more may stay a while.
        assert keep <= len(await list_backups(storage, "a.txt")) <= keep + 5
    await prune_backups(storage, "a.txt", keep=keep)
    assert len(await list_backups(storage, "a.txt")) == keep


async def test_a_backup_whose_folder_lock_stays_taken_gives_up(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another holder of the lock of a file's backups: the backup waits its bound, not for good.

    The lock was waited for without a bound, in a worker thread no cancel reaches. It is the
    store's own path lock now, waited for as every change's is.
    """
    monkeypatch.setattr(locks, "LOCK_TIMEOUT", 0.3)
    await write_bytes(storage, "a.txt", b"x")
    await backup(storage, "a.txt")
    root_fd = os.open(storage.root, os.O_RDONLY | os.O_DIRECTORY)
    holder = locks.try_lock(root_fd, [".backups/a.txt"])
    assert holder is not None
    try:  # however the file is named: the spelling given was the lock's name, the race back
        for name in ("a.txt", "./a.txt", str(storage.root / "a.txt")):
            with pytest.raises(LockBusyError, match="busy"):
                await asyncio.wait_for(backup(storage, name, keep=1), 10)
            with pytest.raises(LockBusyError, match="busy"):
                await asyncio.wait_for(prune_backups(storage, name, keep=1), 10)
    finally:
        holder.release()
        os.close(root_fd)
    assert len(await list_backups(storage, "a.txt")) == 1  # the refused one left nothing
    made = await backup(storage, "a.txt", keep=1)
    assert await list_backups(storage, "a.txt") == [made]


async def test_a_backup_of_an_older_stamp_named_last_keeps_the_newer_one(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup stamped before another, and named after it (its copy took longer), keeps it.

    Its prune to `keep=1` removed the newer backup, the copy of the newer content, and kept
    its own, older one. Both stay now, until the next prune.
    """
    await write_bytes(storage, "a.txt", b"new")
    newer = await backup(storage, "a.txt", keep=1)
    stamped = datetime.now(UTC) - timedelta(hours=1)

    class _Earlier(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Self:
            return cls.fromtimestamp(stamped.timestamp(), tz)

    monkeypatch.setattr(storage_module, "datetime", _Earlier)
    older = await backup(storage, "a.txt", keep=1)
    assert await list_backups(storage, "a.txt") == [older, newer]
    assert newer.read_bytes() == b"new"
    monkeypatch.undo()
    assert await prune_backups(storage, "a.txt", keep=1) == [older]
    assert await list_backups(storage, "a.txt") == [newer]
