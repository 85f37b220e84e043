"""Blocking file primitives behind `persistence.storage`: each runs in one worker-thread hop.

Every function here takes the resolved storage root and paths already checked by
`resolve`. OS errors become storage errors in one place, `translate_errors`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Final

import attrs

from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
    StorageError,
    StoragePermissionError,
)

BACKUPS_DIR: Final = ".backups"
"""Folder under the root holding timestamped backups, mirroring the tree of the files."""

TEMP_DIR: Final = ".tmp"
"""Folder under the root for scratch files; `clean_temp` empties it of old ones."""

RESERVED: Final = frozenset({BACKUPS_DIR, TEMP_DIR})

CHUNK_SIZE: Final = 1024 * 1024
"""Hashing and copying stream in chunks of this many bytes: memory stays bounded."""

PARTIAL_SUFFIX: Final = ".storage-partial"
"""Atomic writes go to `.<name>.<16 hex digits>.storage-partial` next to the target first."""

_PARTIAL_RE: Final = re.compile(r"\..*\.[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX), re.DOTALL)
_NAME_KEEP: Final = 100  # characters of the target's name kept in a partial file's name
_BACKUP_STAMP: Final = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE: Final = r"\.(\d{8}T\d{12}Z)(?:-(\d+))?\.bak"
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: Final = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


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
def translate_errors(path: str) -> Iterator[None]:
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


def relative(root: Path, path: Path) -> str:
    """Name `path` relative to `root` with forward slashes, as records and FileInfo do."""
    return path.relative_to(root).as_posix()


def resolve(
    root: Path,
    path: str | os.PathLike[str],
    *,
    reserved_ok: bool = False,
    root_ok: bool = False,
) -> Path:
    """Resolve `path` (relative to `root`, or absolute) through every symlink, inside `root`.

    Refuses empty paths, NUL bytes, anything resolving outside the root, the reserved
    folders unless `reserved_ok`, partial-write names, and the root itself unless `root_ok`.
    """
    raw = os.fspath(path)
    if not raw:
        raise InvalidPathError(raw, "empty path")
    if "\0" in raw:
        raise InvalidPathError(raw, "contains a NUL byte")
    with translate_errors(raw):
        real = Path(os.path.realpath(root / raw))
    if not real.is_relative_to(root):
        raise OutsideRootError(raw, f"resolves to {real}, outside the storage root {root}")
    parts = real.relative_to(root).parts
    if not parts:
        if root_ok:
            return real
        raise NotAFileError(raw, "is the storage root, not a file")
    if parts[0] in RESERVED and not reserved_ok:
        raise OutsideRootError(raw, f"is inside the reserved folder {parts[0]}/")
    if is_partial_name(parts[-1]):
        raise OutsideRootError(raw, "is a reserved name for a partial write")
    return real


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _hash_stream(
    stream: io.BufferedIOBase, sink: Callable[[memoryview], object] | None = None
) -> Written:
    """Hash `stream` in CHUNK_SIZE pieces through one buffer, passing each piece to `sink`."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)
    size = 0
    while count := stream.readinto(view):
        digest.update(view[:count])
        if sink is not None:
            sink(view[:count])
        size += count
    return Written(size, digest.hexdigest())


def _open_regular(path: Path, shown: str) -> io.BufferedReader:
    """Open a regular file for reading without following a final symlink."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotAFileError(shown, "not a regular file")
    return os.fdopen(fd, "rb")


def hash_file(path: Path, shown: str) -> Written:
    """Size and SHA-256 of a regular file, streamed in CHUNK_SIZE pieces."""
    with translate_errors(shown), _open_regular(path, shown) as stream:
        return _hash_stream(stream)


def read_file(path: Path, shown: str) -> tuple[bytes, Written]:
    """Read a regular file whole; return its content with its size and hash."""
    with translate_errors(shown), _open_regular(path, shown) as stream:
        data = stream.read()
    return data, Written(len(data), hashlib.sha256(data).hexdigest())


def decode(data: bytes, encoding: str, shown: str) -> str:
    """Decode `data`, naming `shown` when it is not valid in `encoding`."""
    with translate_errors(shown):
        return data.decode(encoding)


def encode(text: str, encoding: str, shown: str) -> bytes:
    """Encode `text`, naming `shown` when `encoding` cannot hold it."""
    with translate_errors(shown):
        return text.encode(encoding)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries, so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_target(target: Path, shown: str) -> None:
    """Refuse a target that exists and is not a regular file."""
    try:
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise NotAFileError(shown, "exists and is not a regular file")


def _atomic(
    target: Path,
    shown: str,
    fill: Callable[[BinaryIO], Written],
    finish: Callable[[Path], object],
) -> Written:
    """Write `target` through a partial file in its folder: fill, flush, fsync, rename, fsync.

    `finish` sets the partial file's mode (and times) before the fsync.

    A crash leaves the old content or the new one; at worst a partial file stays behind,
    hidden from listings and removed by `clean_temp`.
    """
    with translate_errors(shown):
        _check_target(target, shown)
        target.parent.mkdir(parents=True, exist_ok=True)
        name = f".{target.name[:_NAME_KEEP]}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"
        partial = target.parent / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
        fd = os.open(partial, flags, 0o666)
        try:
            with os.fdopen(fd, "wb") as stream:
                written = fill(stream)
                stream.flush()
                finish(partial)
                os.fsync(stream.fileno())
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
    return written


def write_file(target: Path, data: bytes, shown: str) -> Written:
    """Atomically replace `target` with `data`, keeping the mode of the file it replaces."""

    def fill(stream: BinaryIO) -> Written:
        stream.write(data)
        return Written(len(data), hashlib.sha256(data).hexdigest())

    def finish(partial: Path) -> None:
        with suppress(FileNotFoundError):
            partial.chmod(stat.S_IMODE(target.stat().st_mode))

    return _atomic(target, shown, fill, finish)


def copy_file(source: Path, target: Path, shown_source: str, shown_target: str) -> Written:
    """Atomically copy `source` over `target` in one streamed, hashed pass; keeps mode and times."""
    with translate_errors(shown_source), _open_regular(source, shown_source) as stream:

        def fill(out: BinaryIO) -> Written:
            return _hash_stream(stream, out.write)

        return _atomic(target, shown_target, fill, lambda partial: shutil.copystat(source, partial))


def move_file(source: Path, target: Path, shown_source: str, shown_target: str) -> None:
    """Rename a regular file over `target`, then flush both folders."""
    with translate_errors(shown_source):
        if not stat.S_ISREG(source.lstat().st_mode):
            raise NotAFileError(shown_source, "not a regular file")
    with translate_errors(shown_target):
        _check_target(target, shown_target)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        fsync_dir(target.parent)
        if source.parent != target.parent:
            fsync_dir(source.parent)


def delete_file(path: Path, shown: str) -> None:
    """Remove a regular file, then flush its folder."""
    with translate_errors(shown):
        if not stat.S_ISREG(path.lstat().st_mode):
            raise NotAFileError(shown, "not a regular file")
        path.unlink()
        fsync_dir(path.parent)


def stat_entry(root: Path, path: Path, shown: str, known: Written | None = None) -> FileInfo:
    """Size, times, hash and kind of one file or folder; folders have size 0 and no hash.

    `known` is the size and hash of a file just written, so it is not read again.
    """
    with translate_errors(shown):
        info = path.stat()
        is_directory = stat.S_ISDIR(info.st_mode)
        if not is_directory and not stat.S_ISREG(info.st_mode):
            raise NotAFileError(shown, "neither a regular file nor a folder")
        written = None if is_directory else known or hash_file(path, shown)
    created = getattr(info, "st_birthtime", info.st_ctime)
    return FileInfo(
        path=relative(root, path),
        size=0 if written is None else written.size,
        created_at=_timestamp(created),
        modified_at=_timestamp(info.st_mtime),
        sha256=None if written is None else written.sha256,
        is_directory=is_directory,
    )


def _walk(root: Path, depth: int | None) -> Iterator[Path]:
    """Every entry under `root` below the reserved folders, up to `depth` parts deep.

    Never descends through a symlink; partial-write files are left out.
    """
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(folder)
        level = len(here.relative_to(root).parts) + 1
        if here == root:
            dirnames[:] = [name for name in dirnames if name not in RESERVED]
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            if not is_partial_name(name):
                yield here / name
        if depth is not None and level >= depth:
            dirnames.clear()


def _real_inside(root: Path, path: Path) -> Path | None:
    """Where `path` leads if that stays inside the root and out of the reserved folders."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(root) or real == root:
        return None
    if real.relative_to(root).parts[0] in RESERVED:
        return None
    return real


def list_entries(root: Path, pattern: str, *, recursive: bool) -> list[FileInfo]:
    """Entries whose relative path matches `pattern`, sorted by path.

    Not recursive, the pattern matches the whole relative path; recursive, it matches
    the end of it, as with `Path.rglob`. A symlink is listed under its own name only
    when it leads inside the root; a symlinked folder is never descended into.
    """
    shown = pattern
    if not PurePosixPath(pattern).parts:
        raise InvalidPathError(pattern, "empty pattern")
    if "\0" in pattern:
        raise InvalidPathError(pattern, "contains a NUL byte")
    glob = PurePosixPath(pattern)
    if glob.is_absolute() or ".." in glob.parts:
        raise OutsideRootError(pattern, "a pattern must stay below the root: no '..' or '/'")
    depth = None if recursive else len(glob.parts)
    found: list[FileInfo] = []
    with translate_errors(shown):
        for path in _walk(root, depth):
            name = PurePosixPath(relative(root, path))
            if not name.match(pattern) or (not recursive and len(name.parts) != depth):
                continue
            real = _real_inside(root, path) if path.is_symlink() else path
            if real is None:
                continue
            try:
                entry = stat_entry(root, real, name.as_posix())
            except (FileMissingError, NotAFileError):
                continue  # vanished meanwhile, or a socket, fifo or dangling link
            found.append(attrs.evolve(entry, path=name.as_posix()))
    return sorted(found, key=lambda entry: entry.path)


def scan(root: Path, recorded: dict[str, Written]) -> tuple[list[str], list[str], list[str]]:
    """Compare regular files on disk with `recorded`: (changed, missing, new), each sorted."""
    changed: list[str] = []
    missing: list[str] = []
    for name, expected in sorted(recorded.items()):
        try:
            path = resolve(root, name, reserved_ok=True)  # a tracked read of a backup
            actual = hash_file(path, name)
        except (FileMissingError, NotAFileError, OutsideRootError):
            missing.append(name)
            continue
        if actual.size != expected.size or expected.sha256 not in {"", actual.sha256}:
            changed.append(name)
    new: list[str] = []
    with translate_errors("."):
        for path in _walk(root, None):
            if path.is_symlink() or not path.is_file():
                continue
            name = relative(root, path)
            if name not in recorded:
                new.append(name)
    return changed, missing, sorted(new)


def _reserved_dir(root: Path, name: str) -> Path:
    """Return the reserved folder `name`, refusing one that was replaced by a symlink."""
    folder = root / name
    with translate_errors(name):
        mode = folder.lstat().st_mode
    if not stat.S_ISDIR(mode):
        raise OutsideRootError(name, "the reserved folder is not a real folder (a symlink?)")
    return folder


def make_storage_dirs(given: Path | str) -> Path:
    """Create the root and its reserved folders; return the real root."""
    root = Path(given).absolute()
    with translate_errors(str(root)):
        root.mkdir(parents=True, exist_ok=True)
        real = Path(os.path.realpath(root))
        if not real.is_dir():
            raise NotAFileError(str(root), "the storage root is not a folder")
        for name in sorted(RESERVED):
            (real / name).mkdir(exist_ok=True)
            _reserved_dir(real, name)
    return real


def _backup_folder(root: Path, source: Path, *, create: bool) -> tuple[Path, str]:
    """Find the folder holding backups of `source`, checked to be inside `.backups/`."""
    backups = _reserved_dir(root, BACKUPS_DIR)
    folder = backups / source.relative_to(root).parent
    real = Path(os.path.realpath(folder))
    if not real.is_relative_to(backups):
        shown = relative(root, folder)
        raise OutsideRootError(shown, "a folder of backups leads outside the backups folder")
    if create:
        real.mkdir(parents=True, exist_ok=True)
    return real, source.name


def backup_file(root: Path, source: Path, shown: str, now: datetime) -> Path:
    """Copy `source` to `.backups/<its path>.<UTC timestamp>.bak`; return the copy's path."""
    with translate_errors(shown):
        folder, name = _backup_folder(root, source, create=True)
    stamp = now.astimezone(UTC).strftime(_BACKUP_STAMP)
    target = folder / f"{name}.{stamp}.bak"
    counter = 0
    while target.exists() or target.is_symlink():
        counter += 1
        target = folder / f"{name}.{stamp}-{counter}.bak"
    copy_file(source, target, shown, relative(root, target))
    return target


def list_backup_files(root: Path, source: Path, shown: str) -> list[Path]:
    """Backups of `source`, oldest first."""
    with translate_errors(shown):
        try:
            folder, name = _backup_folder(root, source, create=False)
        except FileMissingError:
            return []
        pattern = re.compile(re.escape(name) + _BACKUP_RE)
        found: list[tuple[str, int, Path]] = []
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not entry.is_dir(follow_symlinks=False):
                found.append((match[1], int(match[2] or 0), folder / entry.name))
    return [path for _, _, path in sorted(found)]


def prune_backup_files(root: Path, source: Path, shown: str, keep: int) -> list[Path]:
    """Remove all but the newest `keep` backups of `source`; return the removed paths."""
    backups = list_backup_files(root, source, shown)
    doomed = backups[: max(len(backups) - keep, 0)]
    for path in doomed:
        with translate_errors(relative(root, path)):
            path.unlink()  # a symlink is removed itself, never what it points to
    if doomed:
        with translate_errors(shown):
            fsync_dir(doomed[0].parent)
    return doomed


def _unlink_if_old(folder: str, name: str, dir_fd: int, cutoff: float) -> Path | None:
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
    return Path(folder) / name


def clean_temp_files(root: Path, cutoff: float) -> list[Path]:
    """Remove files under `.tmp/`, and partial writes anywhere, last changed before `cutoff`.

    Partial writes are recognised by their reserved name only; nothing else outside
    `.tmp/` is touched.
    """
    with translate_errors(TEMP_DIR):
        temp = _reserved_dir(root, TEMP_DIR)
        removed: list[Path | None] = []
        # fwalk goes by folder descriptors and never through a symlink, even one swapped in.
        for folder, dirnames, filenames, dir_fd in os.fwalk(temp, follow_symlinks=False):
            removed += (_unlink_if_old(folder, name, dir_fd, cutoff) for name in dirnames)
            removed += (_unlink_if_old(folder, name, dir_fd, cutoff) for name in filenames)
        for folder, dirnames, filenames, dir_fd in os.fwalk(root, follow_symlinks=False):
            if Path(folder) == root:
                dirnames[:] = [name for name in dirnames if name not in RESERVED]
            partials = filter(is_partial_name, filenames)
            removed += (_unlink_if_old(folder, name, dir_fd, cutoff) for name in partials)
    return sorted(path for path in removed if path is not None)
