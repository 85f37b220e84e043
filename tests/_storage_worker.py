"""Tracked storage operations on a few shared paths, from tasks or a child process.

`python _storage_worker.py URL ROOT SEED COUNT` prints `ready`, then for each line read on
stdin runs a burst of COUNT operations in each of four tasks at once, chosen by SEED, and
prints `done`; it ends with stdin. Its record writes are slowed at random (`jittery`). The
race tests run the same bursts in their own process.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final

from persistence import Database, FileRecord, connect, save_file_record
from persistence import storage as storage_module
from persistence.exceptions import FileMissingError
from persistence.storage import Storage, copy, move, open_storage, write_text

PATHS: Final = ("a.txt", "b.txt", "sub/c.txt")
"""The paths every worker writes, copies and moves among."""


def jittery(seed: int) -> Callable[[Database, FileRecord], Coroutine[Any, Any, FileRecord]]:
    """Wrap a record write to take 0 to 4 ms more at random, as on a busy database.

    That widens any gap between a change on disk and its record, so a missing lock shows.
    """
    rng = random.Random(seed)  # noqa: S311  # picks delays, not secrets

    async def save_slowly(db: Database, record: FileRecord) -> FileRecord:
        await asyncio.sleep(rng.random() * 0.004)
        return await save_file_record(db, record)

    return save_slowly


async def operation(storage: Storage, db: Database, rng: random.Random, label: str) -> None:
    """Run one tracked write, copy or move among PATHS; a source moved away meanwhile is fine."""
    kind = rng.choice(("write", "write", "copy", "move"))
    source, target = rng.sample(PATHS, 2)
    try:
        if kind == "write":
            await write_text(storage, target, f"{label}\n" * rng.randint(1, 300), track=db)
        elif kind == "copy":
            await copy(storage, source, target, track=db)
        else:
            await move(storage, source, target, track=db)
    except FileMissingError:
        pass


async def operations(storage: Storage, db: Database, seed: int, count: int) -> None:
    """Run `count` operations chosen by `seed`, one after another."""
    rng = random.Random(seed)  # noqa: S311  # picks operations, not secrets
    for index in range(count):
        await operation(storage, db, rng, f"{seed}-{index}")


async def burst(storage: Storage, db: Database, seed: int, count: int) -> None:
    """Run `count` operations in each of four tasks at once."""
    await asyncio.gather(*(operations(storage, db, seed * 10 + task, count) for task in range(4)))


async def main(url: str, root: str, seed: int, count: int) -> None:
    """Say ready, then run a burst for each line read, saying done after each."""
    vars(storage_module)["save_file_record"] = jittery(seed)  # as the tests' monkeypatch does
    storage = await open_storage(root)
    async with connect(url) as db:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while await asyncio.to_thread(sys.stdin.readline):
            await burst(storage, db, seed, count)
            seed += 1000
            sys.stdout.write("done\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
