"""What the storage tests share: snapshots of folders, and every operation."""

import hashlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from persistence.storage import (
    Storage,
    backup,
    copy,
    delete,
    info,
    list_backups,
    move,
    prune_backups,
    read_bytes,
    read_text,
    write_bytes,
    write_text,
)

Operation = Callable[[Storage, str], Awaitable[object]]

PARTIAL = ".x.txt.0123456789abcdef.storage-partial"
DAY = 24 * 3600


def bound_socket(path: Path) -> socket.socket:
    """Give a Unix socket bound at `path`, however long: through its folder's descriptor.

    A socket's address holds 107 bytes at most, which a test's folder may pass (under a long
    $TMPDIR); /proc/self/fd/N names the folder in a few.
    """
    server = socket.socket(socket.AF_UNIX)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        server.bind(f"/proc/self/fd/{folder}/{path.name}")
    except BaseException:
        server.close()
        raise
    finally:
        os.close(folder)
    return server


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def snapshot(folder: Path, *, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every entry under `folder` (except under `skip`): file bytes, link targets, folders."""
    found: dict[str, bytes | str] = {}
    for here, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(here) / name
            if skip is not None and path.is_relative_to(skip):
                continue
            key = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[key] = f"-> {path.readlink()}"
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = path.read_bytes()
    return found


def age(path: Path, seconds: float) -> None:
    """Set the access and modification times of `path` (not of a symlink's target) back."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


# --- every operation, by name ----------------------------------------------------------------

OPERATIONS: dict[str, Operation] = {
    "read_bytes": read_bytes,
    "read_text": read_text,
    "write_bytes": lambda s, p: write_bytes(s, p, b"written"),
    "write_text": lambda s, p: write_text(s, p, "written"),
    "copy from": lambda s, p: copy(s, p, "copied.txt"),
    "copy to": lambda s, p: copy(s, "inside.txt", p),
    "move from": lambda s, p: move(s, p, "moved.txt"),
    "move to": lambda s, p: move(s, "inside.txt", p),
    "delete": delete,
    "info": info,
    "backup": backup,
    "list_backups": list_backups,
    "prune_backups": lambda s, p: prune_backups(s, p, keep=0),
}
READING = {"read_bytes", "read_text", "copy from", "info"}
MUTATING = sorted(set(OPERATIONS) - READING)


def limit_leaving(free: int) -> int:
    """Give the descriptor limit that leaves this process `free` descriptors to open."""
    used = {int(fd.name) for fd in Path("/proc/self/fd").iterdir()}
    limit = 0
    while free:
        free -= limit not in used
        limit += 1
    return limit
