"""Paths under the storage root: reserved names, checks, errors, and the confined walk.

`storage_errors` turns OS errors into storage errors. `locate` walks a path one component
at a time from a descriptor of the root and never follows a symlink out: docs/STORAGE.md
(*Symlink races*) tells how.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import secrets
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Final

import attrs

from persistence._guards import path_problem
from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
    StorageError,
    StoragePermissionError,
    shown_path,
)

BACKUPS_DIR: Final = ".backups"  # timestamped backups, mirroring the tree of the files
TEMP_DIR: Final = ".tmp"  # scratch files; `clean_temp` empties it of old ones
LOCKS_DIR: Final = ".locks"  # the lock files of `try_lock`, never deleted
CACHE_DIR: Final = ".cache"  # the artifact cache (`persistence.cache.disk`)
RESERVED: Final = frozenset({BACKUPS_DIR, TEMP_DIR, LOCKS_DIR, CACHE_DIR})
_RESERVED_FOLDED: Final = frozenset(name.casefold() for name in RESERVED)

CHUNK_SIZE: Final = 1024 * 1024  # hashing and copying stream in chunks: memory stays bounded

# Atomic writes go to `.<name>.<16 hex digits>.storage-partial` next to the target first.
PARTIAL_SUFFIX: Final = ".storage-partial"
_PARTIAL_RE: Final = re.compile(r"\..*\.[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX), re.DOTALL)
_NAME_KEEP: Final = 100  # bytes of the target's name kept in a partial file's name


@attrs.frozen
class FileInfo:
    """A file or folder: path relative to the root (POSIX), size, UTC times and SHA-256.

    `created_at` is the birth time, else the last metadata change, and never after
    `modified_at`: a write replaces the file, so both are most often the last write's time.
    A folder has no hash.
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
    """Check a path argument (see `_guards.path_problem`); refuse it as an `InvalidPathError`."""
    raw, problem = path_problem(path)
    if problem is not None:
        raise InvalidPathError(raw, problem)
    return raw


def is_plain_path(path: str) -> bool:
    """Tell whether `path` has the form of a `Spot.path`, the one records of the store take.

    Relative, its parts joined by single '/', none of them '.' or '..': not `a/../b`, `./a`,
    `a//b`, `a/` or `/a`, which name a file only once walked.
    """
    return all(part not in {"", ".", ".."} for part in path.split("/"))


def partial_name(target: str) -> str:
    """Return a fresh name for a partial write of `target`, which `is_partial_name` knows."""
    return f".{truncate(target, _NAME_KEEP)}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


def partial_pattern(target: str) -> str:
    """Return the regular expression of the names `partial_name` gives for `target`, whole."""
    head = re.escape(f".{truncate(target, _NAME_KEEP)}.")
    return head + "[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX)


def truncate(name: str, limit: int) -> str:
    """Return the longest start of `name` taking at most `limit` bytes, in whole characters."""
    ends = itertools.accumulate(len(os.fsencode(char)) for char in name)
    return name[: sum(1 for end in ends if end <= limit)]


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


_MAX_LINKS: Final = 40  # symlinks followed on one path, as Linux allows
DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NEW_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What opening a symlink with O_NOFOLLOW gives: Linux says ENOTDIR with O_DIRECTORY,
# ELOOP without it, and FreeBSD says EMLINK.
NO_FOLLOW_ERRORS: Final = frozenset({errno.ENOTDIR, errno.ELOOP, errno.EMLINK})


_KINDS: Final = {
    stat.S_IFREG: "is a regular file",
    stat.S_IFDIR: "is a folder",
    stat.S_IFLNK: "is a symbolic link",
    stat.S_IFIFO: "is a FIFO (named pipe)",
    stat.S_IFSOCK: "is a socket",
    stat.S_IFCHR: "is a device",
    stat.S_IFBLK: "is a device",
}


def kind_of(mode: int) -> str:
    """Say what a file is: "is a FIFO (named pipe)", "is a regular file" and so on."""
    return _KINDS.get(stat.S_IFMT(mode), "is not a regular file")


def no_folder(place: Path) -> str | None:
    """Say what is at `place` when it is there and is no folder, nor a symlink to one."""
    try:
        info = place.lstat()
    except OSError:  # missing, or below something that is no folder: told by a place above
        return None
    if stat.S_ISLNK(info.st_mode):
        try:
            info = place.stat()
        except OSError:
            return "is a symbolic link to nothing"
        if not stat.S_ISDIR(info.st_mode):
            return "is a symbolic link to something that is no folder"
    return None if stat.S_ISDIR(info.st_mode) else kind_of(info.st_mode)


def lstat(dir_fd: int, name: str) -> os.stat_result | None:
    """Return the status of `name` in the folder `dir_fd`, not following a symlink, or None."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def same_file(one: os.stat_result, other: os.stat_result) -> bool:
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


@contextmanager
def owned(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def open_root(root: Path) -> AbstractContextManager[int]:
    """Open the storage root: the one folder trusted by its full path.

    One removed, or replaced by a file, since the storage was opened is a storage error
    naming the root.
    """
    with storage_errors(str(root)):
        try:
            fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as error:
            raise FileMissingError(root, "the storage root does not exist") from error
        except NotADirectoryError as error:
            raise StorageError(root, "the storage root is not a folder") from error
    return owned(fd)


@attrs.define
class Spot:
    """Where a path leads: the deepest folder on it that exists, open, and what lies below.

    `folders` names that folder from the root, `missing` the folders still to create below
    it, `name` the last component (None for the root). Symlinks have been followed.
    """

    root: Path
    shown: str
    root_fd: int
    dir_fd: int
    folders: list[str] = attrs.field(factory=list)
    missing: list[str] = attrs.field(factory=list)
    name: str | None = None
    pending: deque[str] = attrs.field(factory=deque)  # components still to walk
    follows: bool = True  # symlinks are followed
    links: int = 0  # symlinks followed so far
    folder_link: str | None = None  # the target, ending in '/', of the last symlink followed

    @property
    def parts(self) -> list[str]:
        last = [] if self.name is None else [self.name]
        return [*self.folders, *self.missing, *last]

    @property
    def path(self) -> str:
        """The path relative to the root with forward slashes, as records and FileInfo use."""
        return "/".join(self.parts) or "."

    def move_to(self, fd: int) -> None:
        os.close(self.dir_fd)
        self.dir_fd = fd

    def reopen(self) -> None:
        """Walk again to `folders` from the root, following no symlink: after a '..'."""
        self.move_to(os.dup(self.root_fd))
        for part in self.folders:  # one replaced by a symlink meanwhile is refused
            self.move_to(open_folder(self.dir_fd, part, create=False, shown=self.shown))

    def make_folders(self) -> None:
        """Create the missing folders one by one, each opened without following a symlink."""
        while self.missing:  # one replaced meanwhile by a symlink or a file is refused
            self.move_to(open_folder(self.dir_fd, self.missing[0], create=True, shown=self.shown))
            self.folders.append(self.missing.pop(0))

    def require(self) -> str:
        """Return the last component, refusing a path whose folders do not exist."""
        if self.missing:
            raise FileMissingError(self.shown, "no such file or folder")
        if self.name is None:
            raise NotAFileError(self.shown, "is the storage root, not a file")
        return self.name

    def open_file(self) -> int:
        return open_regular(self.dir_fd, self.require(), self.shown)

    def regular(self) -> None:
        """Refuse anything but a regular file here, not following a symlink."""
        info = os.stat(self.require(), dir_fd=self.dir_fd, follow_symlinks=False)
        must_be_regular(info.st_mode, self.shown)

    def walk(self) -> None:
        """Walk the pending components one by one from the root's descriptor."""
        while self.pending:
            part = self.pending.popleft()
            if part == "..":
                self.up()
            elif self.missing and self.pending:  # below a folder that does not exist: names only
                self.missing.append(part)
            elif self.pending:
                self.enter(part)
            elif self.missing or not self.follows:  # the last component, not followed
                self.name = part
            elif (target := _link_target(self.dir_fd, part)) is not None:
                self.follow(target)
            else:  # not a symlink
                self.name = part
        if self.name is None:  # the path ended in '..' or a link to a folder
            if self.missing:
                self.name = self.missing.pop()
            elif self.folders:
                self.name = self.folders.pop()
                self.reopen()

    def enter(self, part: str) -> None:
        """Step into the folder `part`, or note it missing, or follow it if it is a symlink."""
        try:
            fd = os.open(part, DIR_FLAGS, dir_fd=self.dir_fd)
        except FileNotFoundError:
            self.missing.append(part)
            return
        except OSError as error:
            if error.errno not in NO_FOLLOW_ERRORS:
                raise
            target = _link_target(self.dir_fd, part)
            if target is not None:
                self.follow(target)
                return
            info = lstat(self.dir_fd, part)
            if info is not None and stat.S_ISDIR(info.st_mode):  # a symlink swapped back
                self.count_link()
                self.pending.appendleft(part)
                return
            where = "/".join([*self.folders, part])
            found = "is not a folder" if info is None else f"{kind_of(info.st_mode)}, not a folder"
            raise NotAFileError(self.shown, f"{where} {found}") from error
        self.move_to(fd)
        self.folders.append(part)

    def up(self) -> None:
        if self.missing:
            self.missing.pop()
        elif self.folders:
            self.folders.pop()
            self.reopen()
        else:
            root = shown_path(self.root)
            raise OutsideRootError(self.shown, f"leads outside the storage root {root}")

    def count_link(self) -> None:
        self.links += 1
        if self.links > _MAX_LINKS:
            raise NotAFileError(self.shown, "is a symbolic link loop, or too many links")

    def follow(self, target: str) -> None:
        """Continue along a symlink's target: relative to its folder, or from the root."""
        self.count_link()
        if not self.follows:
            raise OutsideRootError(self.shown, "a folder on the path is a symbolic link")
        if target.startswith("/"):
            parts = _inside(self.root, target)
            if parts is None:
                reason = f"leads outside the storage root through a symbolic link to {target}"
                raise OutsideRootError(self.shown, reason)
            self.move_to(os.dup(self.root_fd))
            self.folders.clear()
        else:
            parts = target.split("/")
        if not self.pending and target.rpartition("/")[2] in {"", "."}:  # as on POSIX
            self.folder_link = target
        self.pending.extendleft(reversed(_meaningful(parts)))


def _inside(root: Path, absolute: str) -> list[str] | None:
    """Return the components of an absolute path below the root, or None when elsewhere.

    One spelled through the root is cut there ('..' stays for the walk to refuse); any
    other is resolved, in case a symlink outside the root leads into it.
    """
    pure = PurePosixPath(absolute)
    count = len(root.parts)
    if pure.parts[:count] == root.parts:
        return list(pure.parts[count:])
    real = Path(os.path.realpath(absolute))
    return list(real.relative_to(root).parts) if real.is_relative_to(root) else None


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


@contextmanager
def locate(
    root: Path, path: str, *, reserved_ok: bool = False, root_ok: bool = False, links: bool = True
) -> Iterator[Spot]:
    """Walk `path` (relative to `root`, or absolute inside it) from a descriptor of the root.

    Refuses anything leading outside the root, the reserved folders unless `reserved_ok`,
    partial-write names, and the root itself unless `root_ok`. Without `links`, a symlink
    among the folders is refused and one at the end is left for the caller to refuse (an
    O_NOFOLLOW open fails on it). The spot's descriptors are closed on leaving.
    """
    raw = check_path(path)
    if raw.startswith("/"):
        parts = _inside(root, raw)
        if parts is None:
            raise OutsideRootError(raw, f"is outside the storage root {shown_path(root)}")
    else:
        parts = raw.split("/")
    with open_root(root) as root_fd, storage_errors(raw):
        _names_fit(raw, parts, root_fd)  # before a folder of the path is made
        first = os.dup(root_fd)
        try:  # out of descriptors at the second: the first was left open for good
            second = os.dup(root_fd)
        except BaseException:
            os.close(first)
            raise
        spot = Spot(root, raw, first, second, follows=links)
    try:
        spot.pending.extend(_meaningful(parts))
        with storage_errors(raw):
            spot.walk()
        if not spot.parts and not root_ok:
            raise NotAFileError(raw, "is the storage root, not a file")
        if spot.parts and not reserved_ok and is_reserved(spot.parts[0]):
            raise OutsideRootError(raw, f"is inside the reserved folder {spot.parts[0]}/")
        if spot.name is not None and is_partial_name(spot.name):
            raise OutsideRootError(raw, "is a reserved name for a partial write")
        if raw.rpartition("/")[2] in {"", "."}:  # `docs/` or `docs/.`: a folder, as on POSIX
            _must_be_folder(spot, "ends in '/'")
        elif spot.folder_link is not None:  # a link to `docs/` leads to a folder alone too
            _must_be_folder(spot, f"leads through a symbolic link to {spot.folder_link!r}")
        yield spot
    finally:
        os.close(spot.dir_fd)
        os.close(spot.root_fd)


def _deepest(parts: list[str]) -> int:
    """Give the most folders below the root that walking `parts` passes through."""
    depth = deepest = 0
    for part in _meaningful(parts[:-1]):  # the last names what the path leads to
        depth = max(depth - 1, 0) if part == ".." else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _names_fit(raw: str, parts: list[str], root_fd: int) -> None:
    """Refuse a path with a name longer than the root's disk takes: no file can have it.

    Found by the open of its file, it was refused after the write had made its folders. A
    path through more than `FOLDER_DEPTH` folders is refused too: the walks stop there.
    """
    if (depth := _deepest(parts)) > FOLDER_DEPTH:
        reason = f"passes through {depth} folders, more than the {FOLDER_DEPTH} it may"
        raise InvalidPathError(raw, reason)
    if max(map(len, parts), default=0) * 4 <= _SHORTEST_NAME_MAX:  # 4 bytes a character at most
        return
    most = os.fpathconf(root_fd, "PC_NAME_MAX")
    for part in parts:
        if (size := len(os.fsencode(part))) > most:
            reason = f"has a name of {size} bytes, where its disk takes at most {most}"
            raise InvalidPathError(raw, reason)


FOLDER_DEPTH: Final = 256
"""The most folders a path of the store may pass through: the walks of listings, `verify` and
the clean-up hold a descriptor for each folder on their way down."""
_SHORTEST_NAME_MAX: Final = 255
"""The bytes a name may have on the common disks: a path of shorter names is never looked at."""


def _must_be_folder(spot: Spot, why: str) -> None:
    """Refuse a path that names a folder where no folder is: `why` says how it names one.

    A path ends in '/' (or '/.'), or the last symlink on it holds a target that does.
    """
    if spot.name is None:  # the root
        return
    with storage_errors(spot.shown):
        found = None if spot.missing else lstat(spot.dir_fd, spot.name)
    if found is None:
        raise FileMissingError(spot.shown, f"{why}, so it names a folder, and none is there")
    if not stat.S_ISDIR(found.st_mode):
        reason = f"{why}, so it names a folder, but {spot.path} {kind_of(found.st_mode)}"
        raise NotAFileError(spot.shown, reason)


def must_be_regular(mode: int, shown: str) -> None:
    if not stat.S_ISREG(mode):
        raise NotAFileError(shown, kind_of(mode))


def must_not_be_special(info: os.stat_result | None, shown: str) -> None:
    """Refuse a target that exists and is not a regular file."""
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise NotAFileError(shown, f"exists and {kind_of(info.st_mode)}")


def open_regular(dir_fd: int | None, name: str, shown: str, *, follow: bool = False) -> int:
    """Open the regular file `name` for reading: never blocking, through a symlink if `follow`.

    The type is checked before opening, so a device is never opened, and again on the open
    descriptor, so a FIFO swapped in meanwhile is refused rather than waited on.
    """
    must_be_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=follow).st_mode, shown)
    fd = os.open(name, FILE_FLAGS & ~os.O_NOFOLLOW if follow else FILE_FLAGS, dir_fd=dir_fd)
    try:
        must_be_regular(os.fstat(fd).st_mode, shown)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_folder(dir_fd: int, name: str, *, create: bool, shown: str | None = None) -> int:
    """Open the real folder `name` in `dir_fd`, made first if `create`; never a symlink.

    Missing and not created, it raises FileNotFoundError. A symlink in its place is an
    OutsideRootError naming `shown` (by default `name`); a regular file, a FIFO or another
    file that is no folder is a NotAFileError saying which. Neither is removed: the package
    did not make it. The open never waits: a FIFO opened as a folder fails at once.
    """
    try:
        try:
            return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            if not create:
                raise
        with suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=dir_fd)
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno not in NO_FOLLOW_ERRORS:
            raise
        found = lstat(dir_fd, name)  # told apart only for the message: a link is refused anyway
        if found is None or stat.S_ISDIR(found.st_mode) or stat.S_ISLNK(found.st_mode):
            reason = "is not a real folder (a symlink?): it may lead outside"
            raise OutsideRootError(shown or name, reason) from error
        reason = f"{kind_of(found.st_mode)}, not a folder: move it away, a folder belongs there"
        raise NotAFileError(shown or name, reason) from error


def open_folders(stack: ExitStack, dir_fd: int, names: list[str], *, create: bool) -> int | None:
    """Open the real folders `names` one inside the other below `dir_fd`, closed with `stack`.

    Gives the last one, or None when one is missing. A symlink in the place of one is an
    OutsideRootError naming the path to it, never followed; another file, a NotAFileError.
    """
    for index, name in enumerate(names):
        try:
            dir_fd = open_folder(dir_fd, name, create=create, shown="/".join(names[: index + 1]))
        except FileNotFoundError:
            return None
        stack.callback(os.close, dir_fd)
    return dir_fd
