"""File content: reading, hashing and describing it, and changing it atomically.

Each change is staged outside the lock (walking, writing and fsyncing a partial file) and
applied under it with one rename, unlink or read: a crash leaves the old content or the
new one, and at worst a partial file that `clean_temp` removes.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TypeVar

import attrs

from persistence._files.locks import Change, Check, hold, remove_unheld
from persistence._files.paths import (
    CHUNK_SIZE,
    NEW_FLAGS,
    FileInfo,
    Spot,
    Written,
    kind_of,
    locate,
    lstat,
    must_not_be_special,
    open_regular,
    owned,
    partial_name,
    partial_pattern,
    same_file,
    storage_errors,
)
from persistence.exceptions import NotAFileError, StorageError


def write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def write_hashed(data: bytes, fd: int) -> Written:
    """Write all of `data` to `fd`; give its size and hash."""
    write_all(fd, memoryview(data))
    return Written(len(data), hashlib.sha256(data).hexdigest())


def hash_fd(
    fd: int,
    sink: int | None = None,
    *,
    source: str | None = None,
    most: int | None = None,
    stopped: Callable[[], bool] | None = None,
) -> Written:
    """Hash the file `fd` from its start in CHUNK_SIZE pieces, writing each to `sink`.

    Given `source`, an error reading is a storage error naming it; one writing to `sink`
    (a full disk) is left to the caller, to name where the copy goes. Given `most`, it
    stops once past it, with what it has read: a file growing as it is read is not read to
    its end (to a full disk), and the caller refuses the size. Once `stopped()` says so (its
    caller cancelled), it stops between two pieces with InterruptedError.
    """
    digest = hashlib.sha256()
    view = memoryview(bytearray(CHUNK_SIZE))
    size = 0

    def reading() -> AbstractContextManager[None]:
        return nullcontext() if source is None else storage_errors(source)

    with reading():
        os.lseek(fd, 0, os.SEEK_SET)
    with io.FileIO(fd, "rb", closefd=False) as stream:
        while True:
            with reading():
                count = stream.readinto(view)
            if not count:
                break
            if stopped is not None and stopped():
                raise InterruptedError(errno.EINTR, "stopped: its caller was cancelled")
            digest.update(view[:count])
            if sink is not None:
                write_all(sink, view[:count])
            size += count
            if most is not None and size > most:
                break
    return Written(size, digest.hexdigest())


def read_fd(fd: int) -> bytes:
    """Read the whole file; one too large for memory is an OSError, which names its path."""
    try:
        with io.FileIO(fd, "rb", closefd=False) as stream:
            return stream.readall()
    except MemoryError:  # raised bare, out of any storage error (a file planted at 1 TiB)
        size = os.fstat(fd).st_size
        raise OSError(errno.ENOMEM, f"too large to read into memory ({size:,} bytes)") from None


def file_info(path: str, info: os.stat_result, written: Written | None) -> FileInfo:
    """Describe a file (with its size and hash) or, given no `written`, a folder."""
    # Linux's stat gives no birth time: the last change of the inode stands in, which a chmod
    # or a rename moves past the content's time; a file is never made after its content.
    born = min(getattr(info, "st_birthtime", info.st_ctime), info.st_mtime)
    created = datetime.fromtimestamp(born, tz=UTC)
    modified = datetime.fromtimestamp(info.st_mtime, tz=UTC)
    if written is None:
        return FileInfo(path, 0, created, modified, None, is_directory=True)
    return FileInfo(path, written.size, created, modified, written.sha256, is_directory=False)


def describe_at(dir_fd: int, name: str, path: str, shown: str) -> FileInfo:
    """Describe the file or folder `name` in `dir_fd`, hashing a file; refuse other kinds."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        return file_info(path, info, None)
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(shown, f"{kind_of(info.st_mode)}: neither a regular file nor a folder")
    with owned(open_regular(dir_fd, name, shown)) as fd:
        return file_info(path, os.fstat(fd), hash_fd(fd))


def describe(root: Path, path: str) -> FileInfo:
    """Size, times, hash and kind of one file or folder; folders have size 0 and no hash."""
    with locate(root, path, reserved_ok=True, root_ok=True) as spot, storage_errors(path):
        if spot.name is None:
            return file_info(".", os.fstat(spot.dir_fd), None)
        return describe_at(spot.dir_fd, spot.require(), spot.path, path)


_NO_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS})
"""What link(2) says on a disk without hard links."""


@attrs.define
class Partial:
    """A partial file, renamed over its target by `commit` or removed by `discard`.

    Made in `dir_fd`, beside its target unless `commit` names another folder, and fsynced
    whole before the rename, it makes the target appear whole or not at all.
    """

    dir_fd: int
    name: str
    target: str
    fd: int
    committed: bool = False

    @classmethod
    def create(cls, dir_fd: int, target: str) -> Partial:
        """Make a new partial file for `target`, locked while it is open (see `replace_whole`)."""
        while True:
            name = partial_name(target)
            fd = os.open(name, NEW_FLAGS, 0o666, dir_fd=dir_fd)
            try:
                if hold(fd):  # not removed as a killed writer's before the lock was taken
                    return cls(dir_fd, name, target, fd)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def commit(self, folder: int | None = None, target: str | None = None) -> os.stat_result:
        """Rename over the target (or `target` in `folder`), flush that folder; give the status."""
        folder = self.dir_fd if folder is None else folder
        os.replace(self.name, target or self.target, src_dir_fd=self.dir_fd, dst_dir_fd=folder)
        self.committed = True
        os.fsync(folder)
        return os.fstat(self.fd)

    def commit_new(self, folder: int, names: Iterable[str]) -> str:
        """Give the file the first of `names` that nothing in `folder` holds; give that name.

        Linked there, never over another file (rename(2) would replace one that appeared
        since it was looked for), then unlinked here; flushes `folder`. Where the disk has no
        hard links, it is renamed to a name found free just before.
        """
        for name in names:
            try:
                # Not following a symlink put in the partial file's place: linked through, it
                # made a hard link to a file outside the root, which no later read can tell.
                os.link(
                    self.name,
                    name,
                    src_dir_fd=self.dir_fd,
                    dst_dir_fd=folder,
                    follow_symlinks=False,
                )
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno not in _NO_LINKS:
                    raise
                if lstat(folder, name) is not None:
                    continue
                os.replace(self.name, name, src_dir_fd=self.dir_fd, dst_dir_fd=folder)
            else:
                with suppress(FileNotFoundError):  # clean_temp took the old name meanwhile
                    os.unlink(self.name, dir_fd=self.dir_fd)
            self._check_placed(folder, name)
            self.committed = True
            os.fsync(folder)
            return name
        raise FileExistsError(errno.EEXIST, "every name is taken")  # pragma: no cover

    def _check_placed(self, folder: int, name: str) -> None:
        """Refuse a new name that is not this file: something was put in the partial's place.

        A symlink or another file that is no regular file, linked there in its place, is
        removed; a regular file is left, as it may be another writer's (a disk without hard
        links renames, and two backups of one instant may pick one name).
        """
        placed, own = lstat(folder, name), os.fstat(self.fd)
        if placed is None or not same_file(placed, own):
            if placed is not None and not stat.S_ISREG(placed.st_mode):
                with suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(name, dir_fd=folder)
            raise StorageError(
                self.target, "its partial file was replaced by another while it was written"
            )

    def discard(self) -> None:
        """Close the file, and remove it unless it was committed."""
        os.close(self.fd)
        if not self.committed:
            with suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)


def replace_whole(folder: int, name: str, data: bytes, mode: int | None) -> None:
    """Replace `name` in `folder` by a file holding `data`, whole, of `mode` if given.

    The partial files of `name` that writers killed before they ended left there go first:
    each is locked while its writer lives, so only those no process holds are removed, and
    only of the exact shape `partial_name` gives.
    """
    remove_unheld(folder, partial_pattern(name), folders=False)
    partial = Partial.create(folder, name)
    try:
        write_all(partial.fd, memoryview(data))
        if mode is not None:
            os.fchmod(partial.fd, mode)
        os.fsync(partial.fd)
        partial.commit()
    finally:
        partial.discard()


T = TypeVar("T")


def _stage_replace(
    stack: ExitStack,
    spot: Spot,
    fill: Callable[[int], Written],
    mode: int | None = None,
    times: tuple[int, int] | None = None,
) -> Change[FileInfo]:
    """Stage replacing the regular file (or nothing) at `spot` by a partial file `fill` writes.

    That takes `mode`, else the replaced file's mode; `times` are set once it is renamed.
    """
    with storage_errors(spot.shown):
        spot.make_folders()
        name = spot.require()
        existing = lstat(spot.dir_fd, name)
        must_not_be_special(existing, spot.shown)
        partial = Partial.create(spot.dir_fd, name)
        stack.callback(partial.discard)
        written = fill(partial.fd)
        if mode is None and existing is not None:
            mode = stat.S_IMODE(existing.st_mode)
        if mode is not None:
            os.fchmod(partial.fd, mode)
        os.fsync(partial.fd)

    def apply() -> FileInfo:
        partial.commit()
        if times is not None:
            # The times come last: a partial file dated like an old source would look
            # abandoned to clean_temp while it waits for the lock.
            os.utime(partial.fd, ns=times)
        return file_info(spot.path, os.fstat(partial.fd), written)

    return Change(spot.root_fd, [spot.path], apply, stack.pop_all(), spot.shown)


def stage_write(
    root: Path, path: str, check: Check, data: Callable[[str], bytes]
) -> Change[FileInfo]:
    """Stage an atomic replacement of `path` by `data(path)`, keeping the replaced file's mode."""
    content = data(path)
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path))
        check(spot.path)
        return _stage_replace(stack, spot, functools.partial(write_hashed, content))


def stage_copy(root: Path, source: str, target: str, check: Check) -> Change[FileInfo]:
    """Stage an atomic copy of `source` over `target` in one hashed pass; keeps mode and times."""
    with ExitStack() as stack:
        origin = stack.enter_context(locate(root, source, reserved_ok=True))
        spot = stack.enter_context(locate(root, target))
        check(spot.path)
        with storage_errors(source):
            source_fd = stack.enter_context(owned(origin.open_file()))
            info = os.fstat(source_fd)
        # A failing read is named by the source, a failing write (a full disk) by the target.
        fill = functools.partial(hash_fd, source_fd, source=source)
        times = (info.st_atime_ns, info.st_mtime_ns)
        return _stage_replace(stack, spot, fill, stat.S_IMODE(info.st_mode), times)


def _drop_link(origin: Spot, spot: Spot, source: str, target: str) -> None:
    """Remove the source's name when it and the target are two links of one file.

    rename(2) does nothing then. The name is first renamed aside to a partial-write name,
    so only the file known to be the target's is unlinked; if the target changed
    meanwhile, the file is renamed over it as a plain move would.
    """
    aside = partial_name(source)
    # Locked first, as a write's partial file is: `clean_temp` removes a partial name that no
    # process holds, and took this one mid-move (the move failed, the record left behind),
    # where the target changed meanwhile, its only copy. A lock held elsewhere keeps it too.
    with ExitStack() as lock:
        with suppress(OSError, NotAFileError):  # unreadable: moved as before, unlocked
            locked = lock.enter_context(owned(open_regular(origin.dir_fd, source, source)))
            fcntl.flock(locked, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(source, aside, src_dir_fd=origin.dir_fd, dst_dir_fd=origin.dir_fd)
        moved = os.stat(aside, dir_fd=origin.dir_fd, follow_symlinks=False)
        now = lstat(spot.dir_fd, target)
        if now is not None and same_file(moved, now):
            os.unlink(aside, dir_fd=origin.dir_fd)
        else:
            os.rename(aside, target, src_dir_fd=origin.dir_fd, dst_dir_fd=spot.dir_fd)


def _one_name(dir_fd: int, source: str, target: str) -> bool:
    """Tell whether `source` and `target`, one file in the folder `dir_fd`, are one name there.

    They are when spelled alike, or alike but for case on a disk that ignores case, where
    the folder lists only one of them; where case tells names apart, `a.txt` and `A.txt`
    are two links of the file.
    """
    if source == target:
        return True
    if source.casefold() != target.casefold():
        return False
    names = os.listdir(dir_fd)  # a descriptor, not a path
    return not (source in names and target in names)


def _move(origin: Spot, spot: Spot) -> FileInfo:
    """Rename the source over the target, flush both folders, and describe the moved file."""
    source, target = origin.require(), spot.require()
    with storage_errors(origin.shown):
        fd = origin.open_file()
    with owned(fd):
        moving = os.fstat(fd)
        there = lstat(spot.dir_fd, target)
        must_not_be_special(there, spot.shown)
        same_folder = same_file(os.fstat(origin.dir_fd), os.fstat(spot.dir_fd))
        one_name = same_folder and _one_name(spot.dir_fd, source, target)
        if there is not None and same_file(moving, there) and not one_name:
            _drop_link(origin, spot, source, target)
        elif not (same_folder and source == target):
            os.rename(source, target, src_dir_fd=origin.dir_fd, dst_dir_fd=spot.dir_fd)
        os.fsync(spot.dir_fd)
        if not same_folder:
            os.fsync(origin.dir_fd)
        return file_info(spot.path, os.fstat(fd), hash_fd(fd))


def stage_move(root: Path, source: str, target: str, check: Check) -> Change[tuple[str, FileInfo]]:
    """Stage renaming a regular file over `target`, both locked; gives the source's path too."""
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


def stage_delete(root: Path, path: str, _check: Check) -> Change[str]:
    """Stage removing a regular file, whatever its name (`_check` is not called)."""
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
    root: Path, path: str, check: Check, *, convert: Callable[[bytes], T], lock: bool
) -> Change[tuple[T, FileInfo]]:
    """Stage reading a whole file, converted by `convert`; locked if `lock`, for its record.

    Backups can be read, but not so: a reserved folder's file has no record, and one made
    went missing once retention pruned the backup.
    """
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path, reserved_ok=not lock))
        check(spot.path)

        def apply() -> tuple[T, FileInfo]:
            with owned(spot.open_file()) as fd:
                data = read_fd(fd)
                info = os.fstat(fd)
            written = Written(len(data), hashlib.sha256(data).hexdigest())
            return convert(data), file_info(spot.path, info, written)

        paths = [spot.path] if lock else []
        return Change(spot.root_fd, paths, apply, stack.pop_all(), path)
