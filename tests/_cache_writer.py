"""Write a setting from a child process, one value at a time, for the staleness tests.

`python _cache_writer.py URL COUNT` prints `ready`; then, for each line it reads on stdin,
it sets cache.value to the next number, from 1 to COUNT, and prints the number once the
write has returned. With a third argument, a Redis URL, it also keeps a Redis cache open,
as a worker would; the readers learn of its writes from the database's change feed.
"""

from __future__ import annotations

import asyncio
import sys

from persistence import connect, set_config
from persistence.cache import open_redis_cache


async def write(url: str, times: int, redis: str | None) -> None:
    """Set the value `times` times, each after a line on stdin."""
    async with connect(url) as db:
        cache = None if redis is None else await open_redis_cache(db, redis, heartbeat=0.2)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for number in range(1, times + 1):
            await asyncio.to_thread(sys.stdin.readline)
            await set_config(db, "cache", "value", number)
            sys.stdout.write(f"{number}\n")
            sys.stdout.flush()
        if cache is not None:
            await cache.close()


if __name__ == "__main__":
    asyncio.run(write(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
