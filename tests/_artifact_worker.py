"""Put and read artifacts from a child process, for the artifact cache's crash and race tests.

`python _artifact_worker.py ROOT BUDGET COUNT SIZE` puts COUNT random blobs of SIZE bytes,
reading back earlier keys as it goes, and prints each key once its put has returned. A
read that gives content whose SHA-256 is not its key exits with status 3.

`python _artifact_worker.py ROOT BUDGET COUNT SIZE FILE` instead writes SIZE random bytes to
FILE once, then puts that file COUNT times, streamed, printing `putting` before each put: a
put then lasts long enough for a kill to land inside it.

`python _artifact_worker.py ROOT BUDGET COUNT SIZE --same` puts one content of SIZE bytes,
the same in every process, COUNT times, each time with a random blob of that size and an
eviction, reading it back; it ends with one more put of that content.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

from persistence.cache import open_artifact_cache
from persistence.storage import open_storage


async def put_a_file(root: str, budget: int, count: int, size: int, file: str) -> None:
    """Put one big file `count` times, saying when each put starts."""
    cache = await open_artifact_cache(await open_storage(root), budget=budget)
    with open(file, "wb") as out:  # noqa: ASYNC230, PTH123  # set up once, before any put
        out.write(os.urandom(size))
    for _ in range(count):
        sys.stdout.write("putting\n")
        sys.stdout.flush()
        await cache.put_file(file)


async def work(root: str, budget: int, count: int, size: int) -> None:
    """Put `count` blobs and read earlier ones back."""
    cache = await open_artifact_cache(await open_storage(root), budget=budget)
    keys: list[str] = []
    for _ in range(count):
        keys.append(await cache.put(os.urandom(size)))
        sys.stdout.write(keys[-1] + "\n")
        sys.stdout.flush()
        for key in keys[-3:]:
            data = await cache.get(key)
            if data is not None and hashlib.sha256(data).hexdigest() != key:
                sys.exit(3)


async def put_the_same(root: str, budget: int, count: int, size: int) -> None:
    """Put and evict the content every process puts, `count` times, then put it once more."""
    cache = await open_artifact_cache(await open_storage(root), budget=budget)
    same = b"s" * size
    key = hashlib.sha256(same).hexdigest()
    for _ in range(count):
        if await cache.put(same) != key:
            sys.exit(4)
        await cache.put(os.urandom(size))
        await cache.evict()
        data = await cache.get(key)
        if data is not None and data != same:
            sys.exit(3)
    await cache.put(same)


if __name__ == "__main__":
    numbers = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if sys.argv[5:] == ["--same"]:
        asyncio.run(put_the_same(sys.argv[1], *numbers))
    elif len(sys.argv) > 5:
        asyncio.run(put_a_file(sys.argv[1], *numbers, sys.argv[5]))
    else:
        asyncio.run(work(sys.argv[1], *numbers))
