"""What the sweep tests share: hashes of a shard, planted files, descriptors, held locks."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Final

from persistence._files.locks import stripe_of, try_lock
from persistence._files.paths import open_root
from persistence.cache.disk import entry_at
from persistence.counterexample_store import FOLDER


def keys_in(shard: str, count: int, salt: str = "") -> list[str]:
    """Give `count` distinct hashes that live in `shard`, sorted."""
    return sorted(
        shard + hashlib.sha256(f"{salt}{shard}{number}".encode()).hexdigest()[2:]
        for number in range(count)
    )


def locks_free(root: Path, keys: list[str]) -> bool:
    """Tell whether the locks of every key could be taken now, by this process or another."""
    with open_root(root) as root_fd:
        lock = try_lock(root_fd, [f"{FOLDER}/{key[:2]}/{key}" for key in keys])
    if lock is None:
        return False
    lock.release()
    return True


def plant(folder: Path, keys: list[str]) -> None:
    """Make an empty regular file of each key's name in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in keys:
        os.close(os.open(folder / key, os.O_CREAT | os.O_WRONLY, 0o644))


def descriptors_under(root: Path) -> int:
    """Count this process's open descriptors of files and folders under `root` (by /proc).

    Those are what a sweep opens: the root, its folders, lock files. A database may open a
    reader of its own meanwhile, and keep it: that is no descriptor of the sweep's.
    """
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return 0
    found, real = 0, root.resolve()
    for fd in fds.iterdir():
        with suppress(OSError):  # the listing's own descriptor, closed since
            target = fd.readlink()
            found += target == real or real in target.parents
    return found


def lock_file_of(root: Path, key: str) -> Path:
    """Give the lock file that guards the kept file of `key`."""
    return root / ".locks" / f"{stripe_of(entry_at(key, FOLDER)):03x}"


_HOLDER: Final = """
import fcntl, os, sys
fds = [os.open(path, os.O_RDONLY | os.O_CREAT) for path in sys.argv[1:]]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@asynccontextmanager
async def held_elsewhere(root: Path, keys: list[str]) -> AsyncIterator[None]:
    """Hold the locks of the kept files of `keys` from another process until the block ends."""
    (root / ".locks").mkdir(exist_ok=True)
    lock_files = dict.fromkeys(str(lock_file_of(root, key)) for key in keys)  # each once
    holder = subprocess.Popen(  # noqa: ASYNC220  # another process holds the locks
        [sys.executable, "-c", _HOLDER, *lock_files],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.to_thread(holder.stdout.readline) == "held\n"
        yield
    finally:
        await asyncio.to_thread(holder.communicate, timeout=10)
