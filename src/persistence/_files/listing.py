"""Listing the files under the root, and comparing them with their records (`verify`).

Both walk the tree by folder descriptors with `os.fwalk`, never through a symlink, and
leave out the reserved folders and partial writes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import attrs

from persistence._files.content import describe_at, hash_fd
from persistence._files.paths import (
    FileInfo,
    Written,
    is_partial_name,
    is_reserved,
    locate,
    lstat,
    open_root,
    owned,
    storage_errors,
)
from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
)


def walk_tree(root_fd: int) -> Iterator[tuple[str, list[str], list[str], int]]:
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
            return describe_at(dir_fd, name, path, path)
        with locate(root, path) as spot:
            found = describe_at(spot.dir_fd, spot.require(), spot.path, path)
        return attrs.evolve(found, path=path)
    except (FileNotFoundError, FileMissingError, NotAFileError, OutsideRootError):
        return None  # vanished meanwhile, a FIFO or socket, or a link leading out or nowhere


def list_entries(root: Path, pattern: str, *, recursive: bool) -> list[FileInfo]:
    """Entries whose relative path matches `pattern` (checked), sorted by path.

    Not recursive, the pattern matches the whole relative path; recursive, it matches
    the end of it, as with `Path.rglob`. A symlink is listed under its own name only
    when it leads inside the root; a symlinked folder is never descended into.
    """
    depth = None if recursive else len(PurePosixPath(pattern).parts)
    found: list[FileInfo] = []
    with storage_errors(pattern), open_root(root) as root_fd:
        for folder, dirnames, filenames, dir_fd in walk_tree(root_fd):
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
        with (
            locate(root, path, reserved_ok=True) as spot,
            storage_errors(path),
            owned(spot.open_file()) as fd,
        ):
            return hash_fd(fd)
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
    with storage_errors("."), open_root(root) as root_fd:
        for folder, _, filenames, dir_fd in walk_tree(root_fd):
            for name in filenames:
                info = lstat(dir_fd, name)
                if info is None or not stat.S_ISREG(info.st_mode) or is_partial_name(name):
                    continue
                path = f"{folder}/{name}" if folder else name
                if path not in recorded:
                    new.append(path)
    return changed, missing, sorted(new)
