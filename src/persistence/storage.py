"""Files under one storage root: confined to it, written atomically, hashed and tracked.

`open_storage(root)` makes a `Storage`; every other function takes it and a path relative
to the root (an absolute path inside the root works too). Each path is resolved through
its symlinks and refused when it leads outside the root. The root holds two reserved
folders that file operations cannot write to: `.backups/` (see `backup`) and `.tmp/`
(see `clean_temp`).

Each operation does its file work in one worker-thread hop. Given a database as `track`,
it also records the file in `file_records`, by its path relative to the root with
forward slashes.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import attrs

from persistence import _fs
from persistence._fs import FileInfo
from persistence.database import Database, transaction
from persistence.file_records import (
    all_file_records,
    delete_file_record_by_path,
    find_file_record_by_path,
    save_file_record,
)
from persistence.models import FileRecord

__all__ = [
    "BACKUPS_DIR",
    "CHUNK_SIZE",
    "TEMP_DIR",
    "FileInfo",
    "Storage",
    "VerifyReport",
    "backup",
    "clean_temp",
    "copy",
    "delete",
    "info",
    "list_backups",
    "list_files",
    "move",
    "open_storage",
    "prune_backups",
    "read_bytes",
    "read_text",
    "verify",
    "write_bytes",
    "write_text",
]

BACKUPS_DIR = _fs.BACKUPS_DIR
TEMP_DIR = _fs.TEMP_DIR
CHUNK_SIZE = _fs.CHUNK_SIZE

StoragePath = str | os.PathLike[str]


@attrs.frozen
class Storage:
    """A storage root: an absolute folder with every symlink resolved."""

    root: Path

    @property
    def backups_dir(self) -> Path:
        """The folder of backups, `<root>/.backups`."""
        return self.root / BACKUPS_DIR

    @property
    def temp_dir(self) -> Path:
        """The folder for scratch files, `<root>/.tmp`, emptied of old ones by `clean_temp`."""
        return self.root / TEMP_DIR


@attrs.frozen
class VerifyReport:
    """How the files on disk differ from their records: relative paths, each tuple sorted."""

    changed: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    new: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when every record matches its file and every file has a record."""
        return not (self.changed or self.missing or self.new)


async def open_storage(root: Path | str) -> Storage:
    """Create `root` with its `.backups/` and `.tmp/` folders, and return the storage."""
    return Storage(await asyncio.to_thread(_fs.make_storage_dirs, root))


def _resolve(storage: Storage, path: StoragePath, *, reserved_ok: bool = False) -> tuple[Path, str]:
    """Resolve `path` inside the root; return it with the name that errors should show.

    Resolving reads the disk (symlinks), so it runs in the operation's worker thread.
    """
    return _fs.resolve(storage.root, path, reserved_ok=reserved_ok), os.fspath(path)


async def _record(db: Database, record: FileRecord, *, old_path: str | None = None) -> None:
    """Save `record` by its path, keeping the creation time and metadata already recorded.

    With `old_path`, the record of that path moves to `record.path`, replacing any there.
    """
    async with transaction(db) as bound:
        old = await find_file_record_by_path(bound, old_path or record.path)
        if old_path is not None:
            await delete_file_record_by_path(bound, old_path)
            await delete_file_record_by_path(bound, record.path)
        if old is not None:
            record = attrs.evolve(record, created_at=old.created_at, metadata=old.metadata)
        await save_file_record(bound, record)


def _tracked(info: FileInfo) -> FileRecord:
    """Describe a file just written, read, copied or moved as a record accessed now."""
    return FileRecord(path=info.path, size=info.size, hash=info.sha256 or "")


async def _track(track: Database | None, info: FileInfo) -> FileInfo:
    """Record the file when tracking; return its description."""
    if track is not None:
        await _record(track, _tracked(info))
    return info


async def read_bytes(
    storage: Storage, path: StoragePath, *, track: Database | None = None
) -> bytes:
    """Read a whole file. Backups under `.backups/` can be read too."""

    def work() -> tuple[bytes, FileInfo]:
        real, shown = _resolve(storage, path, reserved_ok=True)
        data, written = _fs.read_file(real, shown)
        return data, _fs.stat_entry(storage.root, real, shown, written)

    data, described = await asyncio.to_thread(work)
    await _track(track, described)
    return data


async def read_text(
    storage: Storage,
    path: StoragePath,
    *,
    encoding: str = "utf-8",
    track: Database | None = None,
) -> str:
    """Read a whole file decoded with `encoding`; undecodable content is a StorageError."""
    codecs.lookup(encoding)  # an unknown encoding is the caller's LookupError, before any I/O

    def work() -> tuple[str, FileInfo]:
        real, shown = _resolve(storage, path, reserved_ok=True)
        data, written = _fs.read_file(real, shown)
        text = _fs.decode(data, encoding, shown)
        return text, _fs.stat_entry(storage.root, real, shown, written)

    text, described = await asyncio.to_thread(work)
    await _track(track, described)
    return text


async def write_bytes(
    storage: Storage, path: StoragePath, data: bytes, *, track: Database | None = None
) -> FileInfo:
    """Atomically replace a file with `data`, creating its folders; return what was written."""

    def work() -> FileInfo:
        real, shown = _resolve(storage, path)
        written = _fs.write_file(real, data, shown)
        return _fs.stat_entry(storage.root, real, shown, written)

    return await _track(track, await asyncio.to_thread(work))


async def write_text(
    storage: Storage,
    path: StoragePath,
    text: str,
    *,
    encoding: str = "utf-8",
    track: Database | None = None,
) -> FileInfo:
    """Atomically replace a file with `text` encoded with `encoding`."""
    codecs.lookup(encoding)

    def work() -> FileInfo:
        real, shown = _resolve(storage, path)
        written = _fs.write_file(real, _fs.encode(text, encoding, shown), shown)
        return _fs.stat_entry(storage.root, real, shown, written)

    return await _track(track, await asyncio.to_thread(work))


async def copy(
    storage: Storage, source: StoragePath, target: StoragePath, *, track: Database | None = None
) -> FileInfo:
    """Atomically copy a file over `target`, keeping its mode and times; return the copy.

    The source may be a backup, so copying one back restores it. With `track`, the
    copy is recorded.
    """

    def work() -> FileInfo:
        real_source, shown_source = _resolve(storage, source, reserved_ok=True)
        real_target, shown_target = _resolve(storage, target)
        written = _fs.copy_file(real_source, real_target, shown_source, shown_target)
        return _fs.stat_entry(storage.root, real_target, shown_target, written)

    return await _track(track, await asyncio.to_thread(work))


async def move(
    storage: Storage, source: StoragePath, target: StoragePath, *, track: Database | None = None
) -> FileInfo:
    """Rename a file over `target`, creating its folders; return the moved file.

    With `track`, the target is recorded: the source's record, if any, moves to it with
    its creation time and metadata, replacing the record of a file moved over.
    """

    def work() -> tuple[str, FileInfo]:
        real_source, shown_source = _resolve(storage, source)
        real_target, shown_target = _resolve(storage, target)
        _fs.move_file(real_source, real_target, shown_source, shown_target)
        moved = _fs.stat_entry(storage.root, real_target, shown_target)
        return _fs.relative(storage.root, real_source), moved

    old_path, moved = await asyncio.to_thread(work)
    if track is not None:
        await _record(track, _tracked(moved), old_path=old_path)
    return moved


async def delete(storage: Storage, path: StoragePath, *, track: Database | None = None) -> None:
    """Remove a file; with `track`, remove its record too."""

    def work() -> str:
        real, shown = _resolve(storage, path)
        _fs.delete_file(real, shown)
        return _fs.relative(storage.root, real)

    deleted = await asyncio.to_thread(work)
    if track is not None:
        await delete_file_record_by_path(track, deleted)


async def info(storage: Storage, path: StoragePath) -> FileInfo:
    """Size, creation and modification times, SHA-256 and kind of a file or folder.

    `"."` describes the root itself.
    """

    def work() -> FileInfo:
        real = _fs.resolve(storage.root, path, reserved_ok=True, root_ok=True)
        return _fs.stat_entry(storage.root, real, os.fspath(path))

    return await asyncio.to_thread(work)


async def list_files(
    storage: Storage, pattern: str = "*", *, recursive: bool = False
) -> list[FileInfo]:
    """Files and folders whose relative path matches a glob `pattern`, sorted by path.

    Not recursive, `pattern` matches the whole relative path (`"*.txt"`, `"logs/*.log"`);
    recursive, it matches the end of it at any depth, as with `Path.rglob`. The reserved
    folders and partial writes are left out; a symlink is listed only when it leads
    inside the root, and a symlinked folder is never descended into.
    """
    return await asyncio.to_thread(_fs.list_entries, storage.root, pattern, recursive=recursive)


async def backup(storage: Storage, path: StoragePath, *, keep: int | None = None) -> Path:
    """Copy a file to `.backups/<path>.<UTC timestamp>.bak` and return the copy's path.

    With `keep`, then remove all but the newest `keep` backups of that file.
    """
    _check_keep(keep)
    now = datetime.now(UTC)

    def work() -> Path:
        real, shown = _resolve(storage, path)
        copied = _fs.backup_file(storage.root, real, shown, now)
        if keep is not None:
            _fs.prune_backup_files(storage.root, real, shown, keep)
        return copied

    return await asyncio.to_thread(work)


async def list_backups(storage: Storage, path: StoragePath) -> list[Path]:
    """List the backups of a file, oldest first."""

    def work() -> list[Path]:
        real, shown = _resolve(storage, path)
        return _fs.list_backup_files(storage.root, real, shown)

    return await asyncio.to_thread(work)


async def prune_backups(storage: Storage, path: StoragePath, *, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups of a file; return the removed ones.

    Only that file's backups, inside `.backups/`, are ever removed.
    """
    _check_keep(keep)

    def work() -> list[Path]:
        real, shown = _resolve(storage, path)
        return _fs.prune_backup_files(storage.root, real, shown, keep)

    return await asyncio.to_thread(work)


def _check_keep(keep: int | None) -> None:
    if keep is not None and keep < 0:
        raise ValueError(f"keep must be 0 or more, got {keep}")


async def clean_temp(storage: Storage, *, older_than_hours: float) -> list[Path]:
    """Remove temporary files last modified at least `older_than_hours` ago.

    That is every file and symlink under `.tmp/` (never a symlink's target), and the
    partial files that interrupted writes leave next to their target, recognised by
    their reserved name `.<name>.<16 hex digits>.storage-partial`. Nothing else is
    touched. Returns the removed paths.
    """
    if older_than_hours < 0:
        raise ValueError(f"older_than_hours must be 0 or more, got {older_than_hours}")
    cutoff = time.time() - older_than_hours * 3600
    return await asyncio.to_thread(_fs.clean_temp_files, storage.root, cutoff)


async def verify(storage: Storage, db: Database) -> VerifyReport:
    """Compare the files under the root with their records in `db`.

    `changed`: recorded files whose size or hash differ; `missing`: records without a
    regular file inside the root; `new`: files without a record.
    """
    records = {
        record.path: _fs.Written(record.size, record.hash) for record in await all_file_records(db)
    }
    changed, missing, new = await asyncio.to_thread(_fs.scan, storage.root, records)
    return VerifyReport(tuple(changed), tuple(missing), tuple(new))
