"""Reading, hashing and describing files, and publishing new content atomically."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import attrs

from persistence._files.paths import CHUNK_SIZE, FileInfo, Written, partial_name, storage_errors
from persistence._files.walk import NEW_FLAGS, kind_of, locate, open_regular
from persistence.exceptions import NotAFileError


def timestamp(seconds: float) -> datetime:
    """Give a file time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def write_all(fd: int, data: memoryview) -> None:
    """Write all of `data`, however many calls it takes."""
    while data:
        data = data[os.write(fd, data) :]


def hash_fd(fd: int, sink: int | None = None) -> Written:
    """Hash the file `fd` from its start in CHUNK_SIZE pieces, writing each to `sink`."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    with io.FileIO(fd, "rb", closefd=False) as stream:
        while count := stream.readinto(view):
            digest.update(view[:count])
            if sink is not None:
                write_all(sink, view[:count])
            size += count
    return Written(size, digest.hexdigest())


def read_fd(fd: int) -> bytes:
    """Read the rest of the file `fd`."""
    with io.FileIO(fd, "rb", closefd=False) as stream:
        return stream.readall()


def file_info(path: str, info: os.stat_result, written: Written | None) -> FileInfo:
    """Describe a file (with its size and hash) or, given no `written`, a folder."""
    created = getattr(info, "st_birthtime", info.st_ctime)
    return FileInfo(
        path=path,
        size=0 if written is None else written.size,
        created_at=timestamp(created),
        modified_at=timestamp(info.st_mtime),
        sha256=None if written is None else written.sha256,
        is_directory=written is None,
    )


def describe_at(dir_fd: int, name: str, path: str, shown: str) -> FileInfo:
    """Describe the file or folder `name` in `dir_fd`, hashing a file; refuse other kinds."""
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        return file_info(path, info, None)
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(shown, f"{kind_of(info.st_mode)}: neither a regular file nor a folder")
    fd = open_regular(dir_fd, name, shown)
    try:
        return file_info(path, os.fstat(fd), hash_fd(fd))
    finally:
        os.close(fd)


def describe(root: Path, path: str) -> FileInfo:
    """Size, times, hash and kind of one file or folder; folders have size 0 and no hash."""
    with locate(root, path, reserved_ok=True, root_ok=True) as spot, storage_errors(path):
        if spot.name is None:
            return file_info(".", os.fstat(spot.dir_fd), None)
        return describe_at(spot.dir_fd, spot.require(), spot.path, path)


def decode(data: bytes, encoding: str, shown: str) -> str:
    """Decode `data`, naming `shown` when it is not valid in `encoding`."""
    with storage_errors(shown):
        return data.decode(encoding)


def encode(text: str, encoding: str, shown: str) -> bytes:
    """Encode `text`, naming `shown` when `encoding` cannot hold it."""
    with storage_errors(shown):
        return text.encode(encoding)


@attrs.define
class Partial:
    """A partial file, renamed over its target by `commit` or removed by `discard`.

    It is made in `dir_fd`, beside its target unless `commit` names another folder (of
    the same file system). Written and fsynced whole before the rename, it makes the
    target appear whole or not at all: the atomic publish of every write.
    """

    dir_fd: int
    name: str
    target: str
    fd: int
    committed: bool = False

    @classmethod
    def create(cls, dir_fd: int, target: str) -> Partial:
        """Make a new partial file named after `target` in `dir_fd`."""
        name = partial_name(target)
        return cls(dir_fd, name, target, os.open(name, NEW_FLAGS, 0o666, dir_fd=dir_fd))

    def commit(self, folder: int | None = None, target: str | None = None) -> os.stat_result:
        """Rename over the target (or `target` in `folder`), flush that folder; give the status."""
        folder = self.dir_fd if folder is None else folder
        os.replace(self.name, target or self.target, src_dir_fd=self.dir_fd, dst_dir_fd=folder)
        self.committed = True
        os.fsync(folder)
        return os.fstat(self.fd)

    def discard(self) -> None:
        """Close the file, and remove it unless it was committed."""
        os.close(self.fd)
        if not self.committed:
            with suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)
