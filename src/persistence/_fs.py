"""Blocking file primitives behind `persistence.storage`: each runs in a worker thread.

Every path is walked one component at a time from a descriptor of the storage root
(`locate`). Each folder is opened relative to the one before it with O_NOFOLLOW and
O_DIRECTORY, and symlinks are read and followed by hand, so a check is never separated
from its use. A symlink swapped in mid-operation is followed inside the root or refused,
never followed out. Files are opened with O_NONBLOCK and checked with fstat, so a FIFO or
a device is refused instead of hanging.

Changes that the database records (writes, copies, moves, deletes, tracked reads) are
staged first, then applied under a lock on their paths that holds across processes
(`Change`, `try_lock`). OS errors become storage errors in one place, `storage_errors`.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import re
import secrets
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

import attrs

from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
    StorageError,
    StoragePermissionError,
)

T = TypeVar("T")

BACKUPS_DIR: Final = ".backups"
"""Folder under the root holding timestamped backups, mirroring the tree of the files."""

TEMP_DIR: Final = ".tmp"
"""Folder under the root for scratch files; `clean_temp` empties it of old ones."""

LOCKS_DIR: Final = ".locks"
"""Folder under the root holding the lock files of `try_lock`; they are never deleted."""

CACHE_DIR: Final = ".cache"
"""Folder under the root holding the artifact cache (`persistence.cache.disk`)."""

RESERVED: Final = frozenset({BACKUPS_DIR, TEMP_DIR, LOCKS_DIR, CACHE_DIR})
_RESERVED_FOLDED: Final = frozenset(name.casefold() for name in RESERVED)

CHUNK_SIZE: Final = 1024 * 1024
"""Hashing and copying stream in chunks of this many bytes: memory stays bounded."""

PARTIAL_SUFFIX: Final = ".storage-partial"
"""Atomic writes go to `.<name>.<16 hex digits>.storage-partial` next to the target first."""

LOCK_STRIPES: Final = 4096
"""Paths hash onto this many lock files: two paths on one file only wait for each other."""

LOCK_TIMEOUT: Final = 60.0
"""Seconds an operation waits for the lock of its paths before it gives up."""

_PARTIAL_RE: Final = re.compile(r"\..*\.[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX), re.DOTALL)
_NAME_KEEP: Final = 100  # bytes of the target's name kept in a partial file's name
_BACKUP_STAMP: Final = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE: Final = r"\.(\d{8}T\d{12}Z)(?:-(\d+))?\.bak"
_BACKUP_STEM_MAX: Final = 200  # bytes of a name kept whole in its backups' names (255 at most)
_SHORTENED_RE: Final = re.compile(r".*~[0-9a-f]{32}", re.DOTALL)
_MAX_LINKS: Final = 40  # symlinks followed on one path, as Linux allows
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_FLAGS: Final = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What opening a symlink with O_NOFOLLOW gives: Linux says ENOTDIR with O_DIRECTORY,
# ELOOP without it, and FreeBSD says EMLINK.
_NO_FOLLOW_ERRORS: Final = frozenset({errno.ENOTDIR, errno.ELOOP, errno.EMLINK})


@attrs.frozen
class FileInfo:
    """A file or folder: path relative to the root (POSIX), size, UTC times and SHA-256.

    `created_at` is the birth time where the system keeps one, else the last metadata
    change. A folder has size 0 and no hash.
    """

    path: str
    size: int
    created_at: datetime
    modified_at: datetime
    sha256: str | None
    is_directory: bool


@attrs.frozen
class Written:
    """Size and SHA-256 of a file just written, copied, moved or read."""

    size: int
    sha256: str


@contextmanager
def storage_errors(path: str) -> Iterator[None]:
    """Turn OS and codec errors into storage errors naming `path`, chained to the cause."""
    try:
        yield
    except FileNotFoundError as exc:
        raise FileMissingError(path, "no such file or folder") from exc
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise NotAFileError(path, "not a regular file") from exc
    except PermissionError as exc:
        raise StoragePermissionError(path, "permission denied") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFileError(path, "is a symbolic link or a symlink loop") from exc
        raise StorageError(path, exc.strerror or str(exc)) from exc
    except UnicodeError as exc:
        raise StorageError(path, f"cannot be encoded or decoded: {exc}") from exc


def is_partial_name(name: str) -> bool:
    """Tell whether `name` is one of the temporary files that atomic writes leave on a crash."""
    return _PARTIAL_RE.fullmatch(name) is not None


def is_reserved(name: str) -> bool:
    """Tell whether a top-level `name` is a reserved folder, ignoring case as some disks do."""
    return name.casefold() in _RESERVED_FOLDED


def check_path(path: object) -> str:
    """Return `path` as a string, refusing what cannot name a file: wrong types, '', NUL."""
    try:
        raw = os.fspath(path)  # type: ignore[call-overload]  # anything may come in: checked here
    except TypeError:
        kind = type(path).__name__
        raise InvalidPathError(repr(path), f"expected a str or os.PathLike, got {kind}") from None
    if not isinstance(raw, str):
        raise InvalidPathError(repr(raw), "expected a str path, got bytes")
    if not raw:
        raise InvalidPathError(raw, "empty path")
    if "\0" in raw:
        raise InvalidPathError(raw, "contains a NUL byte")
    try:
        os.fsencode(raw)
    except UnicodeEncodeError:
        raise InvalidPathError(raw, "cannot be encoded as a file name") from None
    return raw


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _kind(mode: int) -> str:
    """Say what a file that is not a regular one is."""
    kinds = [
        (stat.S_ISDIR, "is a folder"),
        (stat.S_ISLNK, "is a symbolic link"),
        (stat.S_ISFIFO, "is a FIFO (named pipe)"),
        (stat.S_ISSOCK, "is a socket"),
        (stat.S_ISCHR, "is a device"),
        (stat.S_ISBLK, "is a device"),
    ]
    return next((text for test, text in kinds if test(mode)), "is not a regular file")


def _truncate(name: str, limit: int) -> str:
    """Return the longest start of `name` taking at most `limit` bytes, in whole characters."""
    size = 0
    for index, char in enumerate(name):
        size += len(os.fsencode(char))
        if size > limit:
            return name[:index]
    return name


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """Return the status of `name` in the folder `dir_fd`, not following a symlink, or None."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


# --- walking a path from the root's descriptor --------------------------------------------------


@contextmanager
def _open_root(root: Path) -> Iterator[int]:
    """Open the storage root: the one folder trusted by its full path."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@attrs.define
class Spot:
    """Where a path leads: the deepest folder on it that exists, open, and what lies below.

    `folders` names that folder from the root, `missing` the folders still to create below
    it, and `name` the last component (None for the root itself). Every name is a real
    one: symlinks have been followed. Owns both descriptors until `close`.
    """

    root: Path
    shown: str
    root_fd: int
    dir_fd: int
    folders: list[str] = attrs.field(factory=list)
    missing: list[str] = attrs.field(factory=list)
    name: str | None = None

    @property
    def parts(self) -> list[str]:
        """Every component from the root, the last one included."""
        last = [] if self.name is None else [self.name]
        return [*self.folders, *self.missing, *last]

    @property
    def path(self) -> str:
        """The path relative to the root with forward slashes, as records and FileInfo use."""
        return "/".join(self.parts) or "."

    def close(self) -> None:
        """Close both descriptors."""
        os.close(self.dir_fd)
        os.close(self.root_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def move_to(self, fd: int) -> None:
        """Make `fd` the current folder, closing the one before."""
        os.close(self.dir_fd)
        self.dir_fd = fd

    def reopen(self) -> None:
        """Walk again to `folders` from the root, following no symlink: after a '..'."""
        self.move_to(os.dup(self.root_fd))
        for part in self.folders:
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=self.dir_fd)
            except OSError as error:
                if error.errno not in _NO_FOLLOW_ERRORS:
                    raise
                reason = "a folder on the path was replaced while it was being followed"
                raise StorageError(self.shown, reason) from error
            self.move_to(fd)

    def make_folders(self) -> None:
        """Create the missing folders one by one, each opened without following a symlink."""
        while self.missing:
            part = self.missing[0]
            with suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=self.dir_fd)
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=self.dir_fd)
            except OSError as error:
                if error.errno not in _NO_FOLLOW_ERRORS:
                    raise
                where = "/".join([*self.folders, part])
                raise NotAFileError(self.shown, f"{where} is not a folder") from error
            self.move_to(fd)
            self.folders.append(self.missing.pop(0))

    def require(self) -> str:
        """Return the last component, refusing a path whose folders do not exist."""
        if self.missing:
            raise FileMissingError(self.shown, "no such file or folder")
        if self.name is None:
            raise NotAFileError(self.shown, "is the storage root, not a file")
        return self.name

    def open_file(self) -> int:
        """Open the regular file here for reading."""
        return open_regular(self.dir_fd, self.require(), self.shown)

    def regular(self) -> os.stat_result:
        """Return the status of the regular file here, not following a symlink; refuse others."""
        info = os.stat(self.require(), dir_fd=self.dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            raise NotAFileError(self.shown, _kind(info.st_mode))
        return info


def _inside(root: Path, absolute: str) -> list[str] | None:
    """Return the components of an absolute path below the root, or None when it is elsewhere.

    A path spelled through the root is cut there ('..' stays for the walk to refuse); any
    other is resolved, in case a symlink outside the root leads into it.
    """
    pure = PurePosixPath(absolute)
    count = len(root.parts)
    if pure.parts[:count] == root.parts:
        return list(pure.parts[count:])
    real = Path(os.path.realpath(absolute))
    if real.is_relative_to(root):
        return list(real.relative_to(root).parts)
    return None


def _link_target(dir_fd: int, name: str) -> str | None:
    """Return what the symlink `name` holds, or None if it is not a symlink (or not there)."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in {errno.EINVAL, errno.ENOENT}:
            return None
        raise


def _meaningful(parts: Iterable[str]) -> list[str]:
    return [part for part in parts if part not in {"", "."}]


class _Walk:
    """One walk of a path, component by component, from the root's descriptor."""

    def __init__(self, spot: Spot, parts: list[str]) -> None:
        self.spot = spot
        self.pending = deque(_meaningful(parts))
        self.links = 0

    def run(self) -> Spot:
        spot = self.spot
        while self.pending:
            part = self.pending.popleft()
            if part == "..":
                self.up()
            elif spot.missing:  # below a folder that does not exist: names only
                if self.pending:
                    spot.missing.append(part)
                else:
                    spot.name = part
            elif not self.pending:
                target = _link_target(spot.dir_fd, part)
                if target is None:
                    spot.name = part
                else:
                    self.follow(target)
            else:
                self.enter(part)
        if spot.name is None:  # the path ended in '..' or a link to a folder
            if spot.missing:
                spot.name = spot.missing.pop()
            elif spot.folders:
                spot.name = spot.folders.pop()
                spot.reopen()
        return spot

    def enter(self, part: str) -> None:
        """Step into the folder `part`, or note it missing, or follow it if it is a symlink."""
        spot = self.spot
        try:
            fd = os.open(part, _DIR_FLAGS, dir_fd=spot.dir_fd)
        except FileNotFoundError:
            spot.missing.append(part)
            return
        except OSError as error:
            if error.errno not in _NO_FOLLOW_ERRORS:
                raise
            target = _link_target(spot.dir_fd, part)
            if target is not None:
                self.follow(target)
                return
            info = _lstat(spot.dir_fd, part)
            if info is not None and stat.S_ISDIR(info.st_mode):  # a symlink swapped back
                self.count_link()
                self.pending.appendleft(part)
                return
            where = "/".join([*spot.folders, part])
            raise NotAFileError(spot.shown, f"{where} is not a folder") from error
        spot.move_to(fd)
        spot.folders.append(part)

    def up(self) -> None:
        spot = self.spot
        if spot.missing:
            spot.missing.pop()
        elif spot.folders:
            spot.folders.pop()
            spot.reopen()
        else:
            raise OutsideRootError(spot.shown, f"leads outside the storage root {spot.root}")

    def count_link(self) -> None:
        self.links += 1
        if self.links > _MAX_LINKS:
            raise NotAFileError(self.spot.shown, "is a symbolic link loop, or too many links")

    def follow(self, target: str) -> None:
        """Continue along a symlink's target: relative to its folder, or from the root."""
        self.count_link()
        spot = self.spot
        if target.startswith("/"):
            rest = _inside(spot.root, target)
            if rest is None:
                reason = f"leads outside the storage root through a symbolic link to {target}"
                raise OutsideRootError(spot.shown, reason)
            spot.move_to(os.dup(spot.root_fd))
            spot.folders.clear()
            parts = rest
        else:
            parts = target.split("/")
        self.pending.extendleft(reversed(_meaningful(parts)))


def locate(root: Path, path: str, *, reserved_ok: bool = False, root_ok: bool = False) -> Spot:
    """Walk `path` (relative to `root`, or absolute inside it) from a descriptor of the root.

    Refuses anything leading outside the root, the reserved folders unless `reserved_ok`,
    partial-write names, and the root itself unless `root_ok`. The caller closes the spot.
    """
    raw = check_path(path)
    if raw.startswith("/"):
        parts = _inside(root, raw)
        if parts is None:
            raise OutsideRootError(raw, f"is outside the storage root {root}")
    else:
        parts = raw.split("/")
    with storage_errors(raw):
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            spot = Spot(root, raw, root_fd, os.dup(root_fd))
        except BaseException:
            os.close(root_fd)
            raise
        try:
            _Walk(spot, parts).run()
        except BaseException:
            spot.close()
            raise
    try:
        _check_spot(spot, reserved_ok=reserved_ok, root_ok=root_ok)
    except BaseException:
        spot.close()
        raise
    return spot


def _check_spot(spot: Spot, *, reserved_ok: bool, root_ok: bool) -> None:
    parts = spot.parts
    if not parts:
        if not root_ok:
            raise NotAFileError(spot.shown, "is the storage root, not a file")
        return
    if not reserved_ok and is_reserved(parts[0]):
        raise OutsideRootError(spot.shown, f"is inside the reserved folder {parts[0]}/")
    if spot.name is not None and is_partial_name(spot.name):
        raise OutsideRootError(spot.shown, "is a reserved name for a partial write")


# --- reading ------------------------------------------------------------------------------------


def _must_be_regular(mode: int, shown: str) -> None:
    if not stat.S_ISREG(mode):
        raise NotAFileError(shown, _kind(mode))


def _must_not_be_special(info: os.stat_result | None, shown: str) -> None:
    """Refuse a target that exists and is not a regular file."""
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise NotAFileError(shown, f"exists and {_kind(info.st_mode)}")


def open_regular(dir_fd: int, name: str, shown: str) -> int:
    """Open the regular file `name` for reading: never through a symlink, never blocking.

    The type is checked before opening, so a device is never opened, and again on the open
    descriptor, so a FIFO swapped in meanwhile is refused rather than waited on.
    """
    _must_be_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode, shown)
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        _must_be_regular(os.fstat(fd).st_mode, shown)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _hash_fd(fd: int, sink: int | None = None) -> Written:
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
                _write_all(sink, view[:count])
            size += count
    return Written(size, digest.hexdigest())


def _read_fd(fd: int) -> bytes:
    with io.FileIO(fd, "rb", closefd=False) as stream:
        return stream.readall()


def _info(path: str, info: os.stat_result, written: Written | None) -> FileInfo:
    """Describe a file (with its size and hash) or, given no `written`, a folder."""
    created = getattr(info, "st_birthtime", info.st_ctime)
    return FileInfo(
        path=path,
        size=0 if written is None else written.size,
        created_at=_timestamp(created),
        modified_at=_timestamp(info.st_mtime),
        sha256=None if written is None else written.sha256,
        is_directory=written is None,
    )


def _describe_at(dir_fd: int, name: str, path: str, shown: str) -> FileInfo:
    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode):
        return _info(path, info, None)
    if not stat.S_ISREG(info.st_mode):
        raise NotAFileError(shown, f"{_kind(info.st_mode)}: neither a regular file nor a folder")
    fd = open_regular(dir_fd, name, shown)
    try:
        return _info(path, os.fstat(fd), _hash_fd(fd))
    finally:
        os.close(fd)


def describe(root: Path, path: str) -> FileInfo:
    """Size, times, hash and kind of one file or folder; folders have size 0 and no hash."""
    with locate(root, path, reserved_ok=True, root_ok=True) as spot, storage_errors(path):
        if spot.name is None:
            return _info(".", os.fstat(spot.dir_fd), None)
        return _describe_at(spot.dir_fd, spot.require(), spot.path, path)


def decode(data: bytes, encoding: str, shown: str) -> str:
    """Decode `data`, naming `shown` when it is not valid in `encoding`."""
    with storage_errors(shown):
        return data.decode(encoding)


def encode(text: str, encoding: str, shown: str) -> bytes:
    """Encode `text`, naming `shown` when `encoding` cannot hold it."""
    with storage_errors(shown):
        return text.encode(encoding)


# --- locking ------------------------------------------------------------------------------------

_HELD_GUARD: Final = threading.Lock()
_HELD: Final[set[tuple[int, int, int]]] = set()


def _stripe(path: str) -> int:
    """Return the lock file number of `path`, ignoring case as some disks do."""
    digest = hashlib.sha256(path.casefold().encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % LOCK_STRIPES


@attrs.define
class PathLock:
    """Exclusive locks on the lock files of some paths, held until `release`.

    flock(2) excludes other processes, and other open descriptors in this one. A table of
    the stripes held in this process excludes its own threads even where flock is
    emulated with per-process locks (NFS).
    """

    held: list[tuple[int, int, int]]
    fds: list[int] = attrs.field(factory=list)

    def release(self) -> None:
        """Unlock: closing a descriptor drops its flock. Safe to call twice."""
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)
        with _HELD_GUARD:
            _HELD.difference_update(self.held)
        self.held = []


def _reserved_folder(root_fd: int, name: str, *, create: bool) -> int:
    """Open the reserved folder `name`, refusing one that was replaced by a symlink."""
    try:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=root_fd)
        except FileNotFoundError:
            if not create:
                raise
        with suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=root_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=root_fd)
    except OSError as error:
        if error.errno not in _NO_FOLLOW_ERRORS:
            raise
        reason = "the reserved folder is not a real folder (a symlink?)"
        raise OutsideRootError(name, reason) from error


def try_lock(root_fd: int, paths: Iterable[str]) -> PathLock | None:
    """Lock the lock files of `paths` under `.locks/`, all or none; None when one is busy.

    Never waits, so holding one lock while waiting for another cannot deadlock.
    """
    stripes = sorted({_stripe(path) for path in paths})
    root = os.fstat(root_fd)
    wanted = [(root.st_dev, root.st_ino, stripe) for stripe in stripes]
    with _HELD_GUARD:
        if not _HELD.isdisjoint(wanted):
            return None
        _HELD.update(wanted)
    lock = PathLock(wanted)
    try:
        with storage_errors(LOCKS_DIR):
            folder = _reserved_folder(root_fd, LOCKS_DIR, create=True)
            try:
                for stripe in stripes:
                    fd = os.open(f"{stripe:03x}", _LOCK_FLAGS, 0o666, dir_fd=folder)
                    lock.fds.append(fd)
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        reason = "a lock file is not a regular file"
                        raise StorageError(f"{LOCKS_DIR}/{stripe:03x}", reason)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        lock.release()
                        return None
            finally:
                os.close(folder)
    except BaseException:
        lock.release()
        raise
    return lock


class Change(Generic[T]):
    """A file change staged outside the lock, applied under the lock of its paths.

    Staging does the slow part (resolving, writing a partial file); `try_apply` takes the
    lock without waiting and, if it gets it, makes the change visible (a rename, an unlink,
    a read). The lock is held until `close`, so the caller can record the change first.
    """

    def __init__(
        self,
        root_fd: int,
        paths: list[str],
        apply: Callable[[], T],
        resources: ExitStack,
        shown: str,
    ) -> None:
        self.shown = shown
        self._root_fd = root_fd
        self._paths = paths
        self._apply = apply
        self._resources = resources
        self._lock: PathLock | None = None
        self._done: list[T] = []

    @property
    def applied(self) -> bool:
        """Whether the change has been made."""
        return bool(self._done)

    @property
    def result(self) -> T:
        """What applying the change returned."""
        return self._done[0]

    def try_apply(self) -> bool:
        """Apply the change if its lock is free; return whether it has been applied."""
        if self._done:
            return True
        if self._paths and self._lock is None:
            self._lock = try_lock(self._root_fd, self._paths)
            if self._lock is None:
                return False
        with storage_errors(self.shown):
            self._done.append(self._apply())
        return True

    def close(self) -> None:
        """Release the lock and what staging left: partial file, descriptors. Idempotent."""
        try:
            if self._lock is not None:
                self._lock.release()
        finally:
            self._resources.close()


Check = Callable[[str], object]
"""Called with the path a change will record, before anything on disk changes."""


@attrs.define
class _Partial:
    """A partial file beside its target, renamed over it by `commit` or removed by `discard`."""

    dir_fd: int
    name: str
    target: str
    fd: int
    committed: bool = False

    @classmethod
    def create(cls, dir_fd: int, target: str) -> _Partial:
        name = f".{_truncate(target, _NAME_KEEP)}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        return cls(dir_fd, name, target, os.open(name, _NEW_FLAGS, 0o666, dir_fd=dir_fd))

    def commit(self) -> os.stat_result:
        """Rename over the target, flush the folder; return the file's status."""
        os.replace(self.name, self.target, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self.committed = True
        os.fsync(self.dir_fd)
        return os.fstat(self.fd)

    def discard(self) -> None:
        os.close(self.fd)
        if not self.committed:
            with suppress(FileNotFoundError):
                os.unlink(self.name, dir_fd=self.dir_fd)


def _partial_for(stack: ExitStack, spot: Spot) -> tuple[_Partial, int | None]:
    """Create the target's folders and a partial file beside it; give the target's mode.

    Refuses a target that exists and is not a regular file.
    """
    spot.make_folders()
    name = spot.require()
    existing = _lstat(spot.dir_fd, name)
    _must_not_be_special(existing, spot.shown)
    partial = _Partial.create(spot.dir_fd, name)
    stack.callback(partial.discard)
    return partial, None if existing is None else stat.S_IMODE(existing.st_mode)


def stage_write(root: Path, path: str, data: bytes, check: Check) -> Change[FileInfo]:
    """Stage an atomic replacement of `path` by `data`, keeping the mode of the file replaced.

    The partial file is written and fsynced now; applying renames it over the target and
    fsyncs the folder. A crash leaves the old content or the new one.
    """
    stack = ExitStack()
    try:
        spot = stack.enter_context(locate(root, path))
        check(spot.path)
        with storage_errors(path):
            partial, mode = _partial_for(stack, spot)
            _write_all(partial.fd, memoryview(data))
            if mode is not None:
                os.fchmod(partial.fd, mode)
            os.fsync(partial.fd)
        written = Written(len(data), hashlib.sha256(data).hexdigest())

        def apply() -> FileInfo:
            return _info(spot.path, partial.commit(), written)

        return Change(spot.root_fd, [spot.path], apply, stack, path)
    except BaseException:
        stack.close()
        raise


def stage_copy(root: Path, source: str, target: str, check: Check) -> Change[FileInfo]:
    """Stage an atomic copy of `source` over `target` in one hashed pass; keeps mode and times."""
    stack = ExitStack()
    try:
        origin = stack.enter_context(locate(root, source, reserved_ok=True))
        spot = stack.enter_context(locate(root, target))
        check(spot.path)
        with storage_errors(source):
            source_fd = origin.open_file()
            stack.callback(os.close, source_fd)
            info = os.fstat(source_fd)
        with storage_errors(target):
            partial, _ = _partial_for(stack, spot)
            written = _hash_fd(source_fd, partial.fd)
            os.fchmod(partial.fd, stat.S_IMODE(info.st_mode))
            os.fsync(partial.fd)

        def apply() -> FileInfo:
            partial.commit()
            # The times come last: a partial file dated like an old source would look
            # abandoned to clean_temp while it waits for the lock.
            os.utime(partial.fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            return _info(spot.path, os.fstat(partial.fd), written)

        return Change(spot.root_fd, [spot.path], apply, stack, target)
    except BaseException:
        stack.close()
        raise


def _drop_link(origin: Spot, spot: Spot, source: str, target: str) -> None:
    """Remove the source's name when it and the target are two links of one file.

    rename(2) does nothing then. The name is first renamed aside to a partial-write name,
    so only the file known to be the target's is unlinked; if the target changed
    meanwhile, the file is renamed over it as a plain move would.
    """
    aside = f".{_truncate(source, _NAME_KEEP)}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
    os.rename(source, aside, src_dir_fd=origin.dir_fd, dst_dir_fd=origin.dir_fd)
    moved = os.stat(aside, dir_fd=origin.dir_fd, follow_symlinks=False)
    now = _lstat(spot.dir_fd, target)
    if now is not None and _same_file(moved, now):
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
        there = _lstat(spot.dir_fd, target)
        _must_not_be_special(there, spot.shown)
        same_folder = _same_file(os.fstat(origin.dir_fd), os.fstat(spot.dir_fd))
        one_name = same_folder and source.casefold() == target.casefold()
        if there is not None and _same_file(moving, there) and not one_name:
            _drop_link(origin, spot, source, target)
        elif not (same_folder and source == target):
            os.rename(source, target, src_dir_fd=origin.dir_fd, dst_dir_fd=spot.dir_fd)
        os.fsync(spot.dir_fd)
        if not same_folder:
            os.fsync(origin.dir_fd)
        return _info(spot.path, os.fstat(fd), _hash_fd(fd))
    finally:
        os.close(fd)


def stage_move(root: Path, source: str, target: str, check: Check) -> Change[tuple[str, FileInfo]]:
    """Stage a rename of a regular file over `target`; applying gives the source's path too.

    Both paths are locked. Between two hard links of one file, the source's name is
    removed and the target stays: the move happens, where rename(2) would do nothing.
    """
    stack = ExitStack()
    try:
        origin = stack.enter_context(locate(root, source))
        spot = stack.enter_context(locate(root, target))
        check(spot.path)
        with storage_errors(source):
            origin.regular()
        with storage_errors(target):
            spot.make_folders()
            _must_not_be_special(_lstat(spot.dir_fd, spot.require()), target)

        def apply() -> tuple[str, FileInfo]:
            return origin.path, _move(origin, spot)

        return Change(spot.root_fd, [origin.path, spot.path], apply, stack, target)
    except BaseException:
        stack.close()
        raise


def stage_delete(root: Path, path: str) -> Change[str]:
    """Stage the removal of a regular file; applying unlinks it and gives its path."""
    stack = ExitStack()
    try:
        spot = stack.enter_context(locate(root, path))
        with storage_errors(path):
            spot.regular()

        def apply() -> str:
            spot.regular()
            os.unlink(spot.require(), dir_fd=spot.dir_fd)
            os.fsync(spot.dir_fd)
            return spot.path

        return Change(spot.root_fd, [spot.path], apply, stack, path)
    except BaseException:
        stack.close()
        raise


def stage_read(
    root: Path, path: str, convert: Callable[[bytes], T], check: Check, *, lock: bool
) -> Change[tuple[T, FileInfo]]:
    """Stage reading a whole file (backups too), converted by `convert`; locked if `lock`."""
    stack = ExitStack()
    try:
        spot = stack.enter_context(locate(root, path, reserved_ok=True))
        check(spot.path)

        def apply() -> tuple[T, FileInfo]:
            fd = spot.open_file()
            try:
                data = _read_fd(fd)
                info = os.fstat(fd)
            finally:
                os.close(fd)
            written = Written(len(data), hashlib.sha256(data).hexdigest())
            return convert(data), _info(spot.path, info, written)

        paths = [spot.path] if lock else []
        return Change(spot.root_fd, paths, apply, stack, path)
    except BaseException:
        stack.close()
        raise


# --- listing and verifying ----------------------------------------------------------------------


def _walk_tree(root_fd: int) -> Iterator[tuple[str, list[str], list[str], int]]:
    """Walk the tree below the root by descriptors, never through a symlink, reserved left out.

    Yields the folder's relative path ('' for the root), its sub-folders (to prune in
    place), its other entries and its descriptor.
    """
    for folder, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=root_fd):
        relative = folder.removeprefix(".").removeprefix("/")
        if not relative:
            dirnames[:] = [name for name in dirnames if not is_reserved(name)]
            filenames[:] = [name for name in filenames if not is_reserved(name)]
        yield relative, dirnames, filenames, dir_fd


def _entry(root: Path, dir_fd: int, name: str, path: str) -> FileInfo | None:
    """Describe one listed entry; None for what a listing leaves out.

    A symlink is walked again from the root and listed only when it leads inside it,
    outside the reserved folders.
    """
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            return _describe_at(dir_fd, name, path, path)
        with locate(root, path) as spot:
            found = _describe_at(spot.dir_fd, spot.require(), spot.path, path)
        return attrs.evolve(found, path=path)
    except (FileNotFoundError, FileMissingError, NotAFileError, OutsideRootError):
        return None  # vanished meanwhile, a FIFO or socket, or a link leading out or nowhere


def check_pattern(pattern: object) -> str:
    """Return a glob pattern that stays below the root; refuse '', NUL, '..' and '/'."""
    if not isinstance(pattern, str):
        kind = type(pattern).__name__
        raise InvalidPathError(repr(pattern), f"expected a str pattern, got {kind}")
    if "\0" in pattern:
        raise InvalidPathError(pattern, "contains a NUL byte")
    glob = PurePosixPath(pattern)
    if not glob.parts:
        raise InvalidPathError(pattern, "empty pattern")
    if glob.is_absolute() or ".." in glob.parts:
        raise OutsideRootError(pattern, "a pattern must stay below the root: no '..' or '/'")
    return pattern


def list_entries(root: Path, pattern: str, *, recursive: bool) -> list[FileInfo]:
    """Entries whose relative path matches `pattern` (checked), sorted by path.

    Not recursive, the pattern matches the whole relative path; recursive, it matches
    the end of it, as with `Path.rglob`. A symlink is listed under its own name only
    when it leads inside the root; a symlinked folder is never descended into.
    """
    depth = None if recursive else len(PurePosixPath(pattern).parts)
    found: list[FileInfo] = []
    with storage_errors(pattern), _open_root(root) as root_fd:
        for folder, dirnames, filenames, dir_fd in _walk_tree(root_fd):
            level = len(folder.split("/")) + 1 if folder else 1
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                if is_partial_name(name):
                    continue
                path = PurePosixPath(folder, name)
                if not path.match(pattern) or (not recursive and len(path.parts) != depth):
                    continue
                entry = _entry(root, dir_fd, name, path.as_posix())
                if entry is not None:
                    found.append(entry)
            if depth is not None and level >= depth:
                dirnames.clear()
    return sorted(found, key=lambda entry: entry.path)


def _recorded_hash(root: Path, path: str) -> Written | None:
    """Size and hash of the regular file a record names; None if there is none inside."""
    try:
        with locate(root, path, reserved_ok=True) as spot, storage_errors(path):
            fd = spot.open_file()
            try:
                return _hash_fd(fd)
            finally:
                os.close(fd)
    except (FileMissingError, NotAFileError, OutsideRootError, InvalidPathError):
        return None


def scan(root: Path, recorded: dict[str, Written]) -> tuple[list[str], list[str], list[str]]:
    """Compare regular files on disk with `recorded`: (changed, missing, new), each sorted."""
    changed: list[str] = []
    missing: list[str] = []
    for name, expected in sorted(recorded.items()):
        actual = _recorded_hash(root, name)
        if actual is None:
            missing.append(name)
        elif actual.size != expected.size or expected.sha256 not in {"", actual.sha256}:
            changed.append(name)
    new: list[str] = []
    with storage_errors("."), _open_root(root) as root_fd:
        for folder, _, filenames, dir_fd in _walk_tree(root_fd):
            for name in filenames:
                info = _lstat(dir_fd, name)
                if info is None or not stat.S_ISREG(info.st_mode) or is_partial_name(name):
                    continue
                path = f"{folder}/{name}" if folder else name
                if path not in recorded:
                    new.append(path)
    return changed, missing, sorted(new)


# --- the root's folders, backups and clean-up ---------------------------------------------------


def make_storage_dirs(given: object) -> Path:
    """Create the root and its reserved folders; return the real root."""
    raw = check_path(given)
    root = Path(raw).absolute()
    with storage_errors(raw):
        root.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(root))
        with _open_root(real) as root_fd:
            for name in sorted(RESERVED):
                os.close(_reserved_folder(root_fd, name, create=True))
    return real


def backup_stem(name: str) -> str:
    """Return the start of the names of `name`'s backups, short enough to add a timestamp.

    A long name keeps its first bytes and gains `~` and 32 hex digits of its hash. Names
    shaped like such a result are hashed too, so two files never share a stem.
    """
    if len(os.fsencode(name)) <= _BACKUP_STEM_MAX and not _SHORTENED_RE.fullmatch(name):
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f"{_truncate(name, _BACKUP_STEM_MAX - 33)}~{digest}"


def _backups_folder(spot: Spot, folders: list[str], *, create: bool) -> int | None:
    """Open `.backups/<folders>`, creating it if `create`; None if it does not exist.

    A symlink anywhere in it is refused: backups are written and pruned only inside.
    """
    try:
        fd = _reserved_folder(spot.root_fd, BACKUPS_DIR, create=create)
    except FileNotFoundError:
        return None
    try:
        for index, part in enumerate(folders):
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                os.close(fd)
                return None
            except OSError as error:
                if error.errno not in _NO_FOLLOW_ERRORS:
                    raise
                shown = "/".join([BACKUPS_DIR, *folders[: index + 1]])
                reason = "a folder of backups is not a real folder: it may lead outside"
                raise OutsideRootError(shown, reason) from error
            os.close(fd)
            fd = next_fd
    except BaseException:
        with suppress(OSError):
            os.close(fd)
        raise
    return fd


def backup_file(root: Path, path: str, now: datetime) -> Path:
    """Copy a file to `.backups/<its path>.<UTC timestamp>.bak`; return the copy's path."""
    with locate(root, path) as spot, storage_errors(path):
        source_fd = spot.open_file()
        try:
            info = os.fstat(source_fd)
            folder = _backups_folder(spot, spot.folders, create=True)
            if folder is None:  # pragma: no cover  # made just now; removed meanwhile
                raise FileMissingError(BACKUPS_DIR, "the backups folder vanished")
            try:
                stem = backup_stem(spot.require())
                stamp = now.astimezone(UTC).strftime(_BACKUP_STAMP)
                target = f"{stem}.{stamp}.bak"
                counter = 0
                while _lstat(folder, target) is not None:
                    counter += 1
                    target = f"{stem}.{stamp}-{counter}.bak"
                partial = _Partial.create(folder, target)
                try:
                    _hash_fd(source_fd, partial.fd)
                    os.fchmod(partial.fd, stat.S_IMODE(info.st_mode))
                    os.utime(partial.fd, ns=(info.st_atime_ns, info.st_mtime_ns))
                    os.fsync(partial.fd)
                    partial.commit()
                finally:
                    partial.discard()
            finally:
                os.close(folder)
        finally:
            os.close(source_fd)
        return root.joinpath(BACKUPS_DIR, *spot.folders, target)


def _backups_of(spot: Spot, folder: int) -> list[str]:
    """Names of the backups of the spot's file in `folder`, oldest first."""
    pattern = re.compile(re.escape(backup_stem(spot.require())) + _BACKUP_RE, re.DOTALL)
    found: list[tuple[str, int, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not entry.is_dir(follow_symlinks=False):
                found.append((match[1], int(match[2] or 0), entry.name))
    return [name for _, _, name in sorted(found)]


def list_backup_files(root: Path, path: str) -> list[Path]:
    """Backups of a file (which need not exist any more), oldest first."""
    with locate(root, path) as spot, storage_errors(path):
        folders = [*spot.folders, *spot.missing]
        folder = _backups_folder(spot, folders, create=False)
        if folder is None:
            return []
        try:
            names = _backups_of(spot, folder)
        finally:
            os.close(folder)
        return [root.joinpath(BACKUPS_DIR, *folders, name) for name in names]


def prune_backup_files(root: Path, path: str, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups of a file; return the removed paths."""
    with locate(root, path) as spot, storage_errors(path):
        folders = [*spot.folders, *spot.missing]
        folder = _backups_folder(spot, folders, create=False)
        if folder is None:
            return []
        try:
            names = _backups_of(spot, folder)
            doomed = names[: max(len(names) - keep, 0)]
            for name in doomed:
                with suppress(FileNotFoundError):  # another prune took it
                    os.unlink(name, dir_fd=folder)  # a symlink goes itself, never its target
            if doomed:
                os.fsync(folder)
        finally:
            os.close(folder)
        return [root.joinpath(BACKUPS_DIR, *folders, name) for name in doomed]


def _unlink_if_old(folder: Path, name: str, dir_fd: int, cutoff: float) -> Path | None:
    """Unlink `name` (a file or a symlink, never a folder) if last changed by `cutoff`.

    A file that another clean-up removed meanwhile is simply gone: nothing to do.
    """
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) or info.st_mtime > cutoff:
            return None
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    return folder / name


def clean_temp_files(root: Path, cutoff: float) -> list[Path]:
    """Remove files under `.tmp/`, and partial writes anywhere, last changed before `cutoff`.

    Partial writes are recognised by their reserved name only; nothing else outside
    `.tmp/` is touched. Both walks go by folder descriptors and never through a symlink.
    """
    removed: list[Path | None] = []
    with storage_errors(TEMP_DIR), _open_root(root) as root_fd:
        temp = _reserved_folder(root_fd, TEMP_DIR, create=False)
        try:
            for folder, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=temp):
                here = root / TEMP_DIR / folder
                removed += (_unlink_if_old(here, name, dir_fd, cutoff) for name in dirnames)
                removed += (_unlink_if_old(here, name, dir_fd, cutoff) for name in filenames)
        finally:
            os.close(temp)
        for folder, _, filenames, dir_fd in _walk_tree(root_fd):
            partials = filter(is_partial_name, filenames)
            removed += (_unlink_if_old(root / folder, name, dir_fd, cutoff) for name in partials)
    return sorted(path for path in removed if path is not None)
