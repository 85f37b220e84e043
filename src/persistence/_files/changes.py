"""The file store's changes, staged outside the lock and applied under it.

Staging does the slow part (walking, writing and fsyncing a partial file); applying makes
the change visible with one rename, unlink or read. A crash leaves the old content or the
new one, and at worst a partial file that `clean_temp` removes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from persistence._files.content import Partial, file_info, hash_fd, read_fd, write_all
from persistence._files.locks import Change, Check
from persistence._files.paths import FileInfo, Written, partial_name, storage_errors
from persistence._files.walk import Spot, locate, lstat, must_not_be_special, same_file

T = TypeVar("T")


def _partial_for(stack: ExitStack, spot: Spot) -> tuple[Partial, int | None]:
    """Create the target's folders and a partial file beside it; give the target's mode.

    Refuses a target that exists and is not a regular file.
    """
    spot.make_folders()
    name = spot.require()
    existing = lstat(spot.dir_fd, name)
    must_not_be_special(existing, spot.shown)
    partial = Partial.create(spot.dir_fd, name)
    stack.callback(partial.discard)
    return partial, None if existing is None else stat.S_IMODE(existing.st_mode)


def stage_write(root: Path, path: str, data: bytes, check: Check) -> Change[FileInfo]:
    """Stage an atomic replacement of `path` by `data`, keeping the mode of the file replaced.

    The partial file is written and fsynced now; applying renames it over the target and
    fsyncs the folder. A crash leaves the old content or the new one.
    """
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path))
        check(spot.path)
        with storage_errors(path):
            partial, mode = _partial_for(stack, spot)
            write_all(partial.fd, memoryview(data))
            if mode is not None:
                os.fchmod(partial.fd, mode)
            os.fsync(partial.fd)
        written = Written(len(data), hashlib.sha256(data).hexdigest())

        def apply() -> FileInfo:
            return file_info(spot.path, partial.commit(), written)

        return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), path)


def stage_copy(root: Path, source: str, target: str, check: Check) -> Change[FileInfo]:
    """Stage an atomic copy of `source` over `target` in one hashed pass; keeps mode and times."""
    with ExitStack() as stack:
        origin = stack.enter_context(locate(root, source, reserved_ok=True))
        spot = stack.enter_context(locate(root, target))
        check(spot.path)
        with storage_errors(source):
            source_fd = origin.open_file()
            stack.callback(os.close, source_fd)
            info = os.fstat(source_fd)
        with storage_errors(target):
            partial, _ = _partial_for(stack, spot)
            written = hash_fd(source_fd, partial.fd)
            os.fchmod(partial.fd, stat.S_IMODE(info.st_mode))
            os.fsync(partial.fd)

        def apply() -> FileInfo:
            partial.commit()
            # The times come last: a partial file dated like an old source would look
            # abandoned to clean_temp while it waits for the lock.
            os.utime(partial.fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            return file_info(spot.path, os.fstat(partial.fd), written)

        return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), target)


def _drop_link(origin: Spot, spot: Spot, source: str, target: str) -> None:
    """Remove the source's name when it and the target are two links of one file.

    rename(2) does nothing then. The name is first renamed aside to a partial-write name,
    so only the file known to be the target's is unlinked; if the target changed
    meanwhile, the file is renamed over it as a plain move would.
    """
    aside = partial_name(source)
    os.rename(source, aside, src_dir_fd=origin.dir_fd, dst_dir_fd=origin.dir_fd)
    moved = os.stat(aside, dir_fd=origin.dir_fd, follow_symlinks=False)
    now = lstat(spot.dir_fd, target)
    if now is not None and same_file(moved, now):
        os.unlink(aside, dir_fd=origin.dir_fd)
    else:
        os.rename(aside, target, src_dir_fd=origin.dir_fd, dst_dir_fd=spot.dir_fd)


def _move(origin: Spot, spot: Spot) -> FileInfo:
    """Rename the source over the target, flush both folders, and describe the moved file."""
    source, target = origin.require(), spot.require()
    with storage_errors(origin.shown):
        fd = origin.open_file()
    try:
        moving = os.fstat(fd)
        there = lstat(spot.dir_fd, target)
        must_not_be_special(there, spot.shown)
        same_folder = same_file(os.fstat(origin.dir_fd), os.fstat(spot.dir_fd))
        one_name = same_folder and source.casefold() == target.casefold()
        if there is not None and same_file(moving, there) and not one_name:
            _drop_link(origin, spot, source, target)
        elif not (same_folder and source == target):
            os.rename(source, target, src_dir_fd=origin.dir_fd, dst_dir_fd=spot.dir_fd)
        os.fsync(spot.dir_fd)
        if not same_folder:
            os.fsync(origin.dir_fd)
        return file_info(spot.path, os.fstat(fd), hash_fd(fd))
    finally:
        os.close(fd)


def stage_move(root: Path, source: str, target: str, check: Check) -> Change[tuple[str, FileInfo]]:
    """Stage a rename of a regular file over `target`; applying gives the source's path too.

    Both paths are locked. Between two hard links of one file, the source's name is
    removed and the target stays: the move happens, where rename(2) would do nothing.
    """
    with ExitStack() as stack:
        origin = stack.enter_context(locate(root, source))
        spot = stack.enter_context(locate(root, target))
        check(spot.path)
        with storage_errors(source):
            origin.regular()
        with storage_errors(target):
            spot.make_folders()
            must_not_be_special(lstat(spot.dir_fd, spot.require()), target)

        def apply() -> tuple[str, FileInfo]:
            return origin.path, _move(origin, spot)

        return Change(spot.root_fd, [origin.path, spot.path], apply, stack.pop_all(), target)


def stage_delete(root: Path, path: str) -> Change[str]:
    """Stage the removal of a regular file; applying unlinks it and gives its path."""
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path))
        with storage_errors(path):
            spot.regular()

        def apply() -> str:
            spot.regular()
            os.unlink(spot.require(), dir_fd=spot.dir_fd)
            os.fsync(spot.dir_fd)
            return spot.path

        return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), path)


def stage_read(
    root: Path, path: str, convert: Callable[[bytes], T], check: Check, *, lock: bool
) -> Change[tuple[T, FileInfo]]:
    """Stage reading a whole file (backups too), converted by `convert`; locked if `lock`."""
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path, reserved_ok=True))
        check(spot.path)

        def apply() -> tuple[T, FileInfo]:
            fd = spot.open_file()
            try:
                data = read_fd(fd)
                info = os.fstat(fd)
            finally:
                os.close(fd)
            written = Written(len(data), hashlib.sha256(data).hexdigest())
            return convert(data), file_info(spot.path, info, written)

        paths = [spot.path] if lock else []
        return Change(spot.root_fd, paths, apply, stack.pop_all(), path)
