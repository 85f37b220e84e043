"""What a path under the storage root may be, and how OS errors about it are reported.

The reserved folders, the names of partial writes, the checks of a path or a pattern
given by a caller, the values a file operation gives back, and `storage_errors`, the one
place where OS errors become storage errors.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import PurePosixPath
from typing import Final

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

_PARTIAL_RE: Final = re.compile(r"\..*\.[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX), re.DOTALL)
_NAME_KEEP: Final = 100  # bytes of the target's name kept in a partial file's name


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


def partial_name(target: str) -> str:
    """Return a fresh name for a partial write of `target`, which `is_partial_name` knows."""
    return f".{truncate(target, _NAME_KEEP)}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


def truncate(name: str, limit: int) -> str:
    """Return the longest start of `name` taking at most `limit` bytes, in whole characters."""
    size = 0
    for index, char in enumerate(name):
        size += len(os.fsencode(char))
        if size > limit:
            return name[:index]
    return name


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
