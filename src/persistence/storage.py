"""Files under one storage root: confined to it, written atomically, hashed and tracked.

`open_storage(root)` makes a `Storage`; every other function takes it and a path relative
to the root (or absolute inside it). The file work is done by `persistence._files` in
worker threads; given a database as `track`, an operation records the file in
`file_records`. docs/STORAGE.md tells the rules: reserved folders, symlinks, atomicity.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import attrs

from persistence._database_value import check_usable
from persistence._files import content, tree
from persistence._files.locks import Change, perform
from persistence._files.paths import (
    BACKUPS_DIR,
    CHUNK_SIZE,
    LOCKS_DIR,
    TEMP_DIR,
    FileInfo,
    Written,
    check_path,
    check_pattern,
    storage_errors,
)
from persistence._guards import argument, at_least, byte_string, finite_amount
from persistence._loop import map_in_slices
from persistence.database import Database, transaction
from persistence.exceptions import ValidationError
from persistence.file_records import (
    delete_file_record_by_path,
    find_file_record_by_path,
    records_and_refused,
    save_file_record,
)
from persistence.models import FileRecord

__all__ = [
    "BACKUPS_DIR",
    "CHUNK_SIZE",
    "LOCKS_DIR",
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

StoragePath = str | os.PathLike[str]
T = TypeVar("T")


def _real_root(root: object) -> Path:
    """Give a root as open_storage does: absolute, with every symlink and '..' resolved."""
    given = argument("Storage", "root", Path, root, "a Path")
    return Path(os.path.realpath(check_path(given)))


@attrs.frozen
class Storage:
    """A storage root: an absolute folder with every symlink resolved."""

    root: Path = attrs.field(converter=_real_root)

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
    malformed: tuple[str, ...] = ()
    """Recorded paths that no tracked operation writes (`a/../b`, `./a`, `a//b`, `a/`, `/a`),
    written by other means, and those of rows that break the model's rules (a hash in
    capitals; a path that is not text is given as its `repr`): checked against no file."""

    @property
    def clean(self) -> bool:
        """True when every record matches its file and every file has a record."""
        return not (self.changed or self.missing or self.new or self.malformed)


def storage_root(function: str, storage: object) -> Path:
    """Give the root of `storage`, refusing anything but a Storage (for the stores built on it)."""
    return argument(function, "storage", Storage, storage, "a Storage from open_storage()").root


def _encoding(function: str, encoding: object) -> str:
    """Refuse an encoding Python does not know, or one that does not turn text into bytes."""
    name = argument(function, "encoding", str, encoding)
    try:
        "".encode(name)
        b"".decode(name)
    except (LookupError, ValueError):  # ValueError: a NUL, or a codec refusing all text
        raise ValidationError(function, "encoding", f"{name!r} is no text encoding") from None
    return name


def _recordable(path: str) -> bool:
    """Whether a record of `path` can exist: a FileRecord accepts it."""
    try:
        FileRecord(path=path)
    except ValidationError:
        return False
    return True


def _tracked(info: FileInfo, old: FileRecord | None) -> FileRecord:
    """Record a file just changed or read as accessed now, with `old`'s creation and metadata."""
    record = FileRecord(path=info.path, size=info.size, hash=info.sha256 or "")
    if old is None:
        return record
    return attrs.evolve(record, created_at=old.created_at, metadata=old.metadata)


async def _record(db: Database, info: FileInfo) -> None:
    """Record a file just written, read or copied, keeping its recorded creation and metadata.

    Under the path's lock, no other storage operation changes the record between the read
    and the write, which is one statement (SQLite lets it wait for another's).
    """
    old = await find_file_record_by_path(db, info.path)
    await save_file_record(db, _tracked(info, old))


async def _record_read(db: Database, read: tuple[object, FileInfo]) -> None:
    await _record(db, read[1])


async def _record_move(db: Database, moved: tuple[str, FileInfo]) -> None:
    """Move the source's record (if any) to the moved file's path, replacing any record there.

    The moved record keeps its creation time and metadata. Under both paths' locks; the
    transaction starts with a write, so SQLite takes its write lock first.
    """
    old_path, info = moved
    recordable = _recordable(old_path)  # a name no record can have has no record to move
    old = await find_file_record_by_path(db, old_path) if recordable else None
    async with transaction(db) as bound:
        await delete_file_record_by_path(bound, info.path)
        if recordable:
            await delete_file_record_by_path(bound, old_path)
        await save_file_record(bound, _tracked(info, old))


async def _record_move_again(db: Database, moved: tuple[str, FileInfo]) -> None:
    """Write a move's record once more, its first write cancelled: it may have committed.

    A record at the new path that already describes the moved file is the first write's,
    committed: it is kept, with the creation time and metadata that write moved to it.
    """
    old_path, info = moved
    placed = await find_file_record_by_path(db, info.path)
    moved_already = placed is not None and (placed.hash, placed.size) == (info.sha256, info.size)
    if moved_already and (
        not _recordable(old_path) or await find_file_record_by_path(db, old_path) is None
    ):
        return
    await _record_move(db, moved)


async def _record_delete(db: Database, deleted: str) -> None:
    """Remove the record of a deleted file, if a record can have its name."""
    if _recordable(deleted):
        await delete_file_record_by_path(db, deleted)


async def _change(
    function: str,
    storage: object,
    track: object,
    stage: Callable[..., Change[T]],
    record: Callable[[Database, T], Awaitable[None]],
    *paths: object,
) -> T:
    """Check the arguments, then `perform` `stage(root, *paths, check)` and `record` it."""
    root = storage_root(function, storage)
    raw = [check_path(path) for path in paths]
    if track is None:
        return await perform(functools.partial(stage, root, *raw, lambda _: None))
    db = argument(function, "track", Database, track, "a Database or None")
    # A database this task may not write here (closed, a snapshot's) is refused before the
    # disk: a tracked call, a read too, writes its record.
    check_usable(db, writes=True)
    # The records `record` reads, read once before the disk: one that plain SQL stored
    # against the rules (a hash in capitals) is refused now, where the file was changed first.
    read = {_record_move: raw[:1], _record_delete: []}.get(record, raw[-1:])
    for path in filter(_recordable, read):
        await find_file_record_by_path(db, path)
    # A record states what the disk holds: written once more if a handler cancels its task.
    again = _record_move_again if record is _record_move else record
    return await perform(  # the check refuses a path no record can hold, before the disk
        functools.partial(stage, root, *raw, lambda path: FileRecord(path=path)),
        functools.partial(record, db),
        record_again=functools.partial(again, db),
    )


async def _read(
    function: str, storage: object, path: object, convert: Callable[[bytes], T], track: object
) -> T:
    """Read a whole file through `convert`; a tracked read takes the lock and is recorded."""
    stage = functools.partial(content.stage_read, convert=convert, lock=track is not None)
    read, _ = await _change(function, storage, track, stage, _record_read, path)
    return read


async def open_storage(root: Path | str) -> Storage:
    """Create `root` with its reserved folders, and return the storage."""
    return Storage(await asyncio.to_thread(tree.make_storage_dirs, root))


async def read_bytes(
    storage: Storage, path: StoragePath, *, track: Database | None = None
) -> bytes:
    """Read a whole file. Backups under `.backups/` can be read too."""
    return await _read("read_bytes", storage, path, bytes, track)


async def read_text(
    storage: Storage, path: StoragePath, *, encoding: str = "utf-8", track: Database | None = None
) -> str:
    """Read a whole file decoded with `encoding`; undecodable content is a StorageError."""
    encoding = _encoding("read_text", encoding)

    def convert(data: bytes) -> str:
        with storage_errors(os.fspath(path)):
            return data.decode(encoding)

    return await _read("read_text", storage, path, convert, track)


async def write_bytes(
    storage: Storage, path: StoragePath, data: bytes, *, track: Database | None = None
) -> FileInfo:
    """Atomically replace a file with `data`, creating its folders; return what was written."""
    data = byte_string("write_bytes", "data", data)
    stage = functools.partial(content.stage_write, data=lambda _: data)
    return await _change("write_bytes", storage, track, stage, _record, path)


async def write_text(
    storage: Storage,
    path: StoragePath,
    text: str,
    *,
    encoding: str = "utf-8",
    track: Database | None = None,
) -> FileInfo:
    """Atomically replace a file with `text` encoded with `encoding`."""
    text = argument("write_text", "text", str, text)
    encoding = _encoding("write_text", encoding)

    def encode(raw: str) -> bytes:
        del raw  # the text is at fault, not the file: refused before the file is touched
        try:
            return text.encode(encoding)
        except UnicodeEncodeError as error:
            reason = f"cannot be written in {encoding!r}: {error.reason} at {error.start}"
            raise ValidationError("write_text", "text", reason) from None
        except UnicodeError as error:  # a codec's own refusal, such as idna's of a long label
            reason = f"cannot be written in {encoding!r}: {error}"
            raise ValidationError("write_text", "text", reason) from None

    stage = functools.partial(content.stage_write, data=encode)
    return await _change("write_text", storage, track, stage, _record, path)


async def copy(
    storage: Storage, source: StoragePath, target: StoragePath, *, track: Database | None = None
) -> FileInfo:
    """Atomically copy a file over `target`, keeping its mode and times; return the copy.

    The source may be a backup: copying one back restores it. `track` records the copy.
    """
    return await _change("copy", storage, track, content.stage_copy, _record, source, target)


async def move(
    storage: Storage, source: StoragePath, target: StoragePath, *, track: Database | None = None
) -> FileInfo:
    """Rename a file over `target`, creating its folders; return the moved file.

    Between two hard links of one file, the source's name is removed and the target
    stays. With `track`, the target is recorded: the source's record, if any, moves to it
    with its creation time and metadata, replacing the record of a file moved over.
    """
    stage = content.stage_move
    _, moved = await _change("move", storage, track, stage, _record_move, source, target)
    return moved


async def delete(storage: Storage, path: StoragePath, *, track: Database | None = None) -> None:
    """Remove a file; with `track`, remove its record too."""
    await _change("delete", storage, track, content.stage_delete, _record_delete, path)


async def info(storage: Storage, path: StoragePath) -> FileInfo:
    """Size, created and modified times, SHA-256 and kind of a file or folder (`"."`: the root)."""
    root = storage_root("info", storage)
    return await asyncio.to_thread(content.describe, root, check_path(path))


async def list_files(
    storage: Storage, pattern: str = "*", *, recursive: bool = False
) -> list[FileInfo]:
    """Files and folders whose relative path matches a glob `pattern`, sorted by path.

    Not recursive, `pattern` matches the whole relative path (`"*.txt"`, `"logs/*.log"`);
    recursive, it matches the end of it at any depth, as with `Path.rglob`. `**` as a whole
    part stands for any number of folders, as in `Path.glob`; one ending in `/` or `**`
    matches folders alone. The reserved folders and partial writes are left out; a
    symlink is listed only when it leads inside the root, and a symlinked folder is never
    descended into.
    """
    root = storage_root("list_files", storage)
    pattern = check_pattern(pattern)
    recursive = argument("list_files", "recursive", bool, recursive, "a bool")
    return await asyncio.to_thread(tree.list_entries, root, pattern, recursive=recursive)


async def backup(storage: Storage, path: StoragePath, *, keep: int | None = None) -> Path:
    """Copy a file to `.backups/<path>.<UTC timestamp>.bak` and return the copy's path.

    A name too long to take a timestamp keeps its start and gains a hash instead. With
    `keep` (1 or more: this one is kept), then remove all but the newest `keep` backups of
    that file.
    """
    root, raw = storage_root("backup", storage), check_path(path)
    # 0 would remove the backup just made, and give the path of a file that is not there.
    kept = None if keep is None else at_least("backup", "keep", keep, 1)
    return await perform(functools.partial(tree.stage_backup, root, raw, datetime.now(UTC), kept))


async def list_backups(storage: Storage, path: StoragePath) -> list[Path]:
    """List the backups of a file, oldest first."""
    root = storage_root("list_backups", storage)
    return await asyncio.to_thread(tree.list_backup_files, root, check_path(path))


async def prune_backups(storage: Storage, path: StoragePath, *, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups of a file; return the removed ones.

    Only that file's backups, inside `.backups/`, are ever removed.
    """
    root, raw = storage_root("prune_backups", storage), check_path(path)
    kept = at_least("prune_backups", "keep", keep, 0)
    return await perform(functools.partial(tree.stage_prune, root, raw, kept))


async def clean_temp(storage: Storage, *, older_than_hours: float) -> list[Path]:
    """Remove temporary files last modified at least `older_than_hours` ago; give their paths.

    That is every file and symlink under `.tmp/` (never a symlink's target), and the
    partial files that interrupted writes leave, recognised by their reserved name
    `.<name>.<16 hex digits>.storage-partial` only. Nothing else is touched.
    """
    root = storage_root("clean_temp", storage)
    hours = finite_amount("clean_temp", "older_than_hours", older_than_hours, "a number of hours")
    cutoff = time.time() - hours * 3600
    return await asyncio.to_thread(tree.clean_temp_files, root, cutoff)


def _path_and_content(record: FileRecord) -> tuple[str, Written]:
    return record.path, Written(record.size, record.hash)


async def verify(storage: Storage, db: Database) -> VerifyReport:
    """Compare the files under the root with their records in `db`.

    `changed`: recorded files whose size or hash differ; `missing`: records without a
    regular file inside the root; `new`: files without a record; `malformed`: records whose
    path is not in the form a tracked operation records, or that break the model's rules
    (written by plain SQL), each left unchecked.
    """
    root = storage_root("verify", storage)
    db = argument("verify", "db", Database, db, "a Database")
    stored, refused = await records_and_refused(db)
    # Mapped a slice at a time: 100,000 records in one comprehension held the loop 125 ms.
    records = dict(await map_in_slices(_path_and_content, stored))
    broken = frozenset(row.path if type(row.path) is str else repr(row.path) for row in refused)
    changed, missing, new, malformed = await asyncio.to_thread(tree.scan, root, records, broken)
    return VerifyReport(tuple(changed), tuple(missing), tuple(new), tuple(malformed))
