"""Which SQLite database a path reaches: its file's device and inode, by any path or link.

One name serves the Redis tier's default namespace (through the change watch), a copy's
refusal of a target that is its own source, and the readers' check that the file they open
is still the one the database opened.
"""

from __future__ import annotations

from pathlib import Path


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """Name the file at `path` by its device and inode; None if there is none."""
    try:
        found = Path(path).stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def database_identity(path: str | Path) -> str | None:
    """Name the database at `path` as every use of it does; None if there is no file."""
    found = file_identity(path)
    return None if found is None else f"sqlite:{found[0]}:{found[1]}"
