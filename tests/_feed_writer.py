"""A writer killed right after its commit, for the change-feed tests.

`python _feed_writer.py DATABASE_URL REDIS_URL NAMESPACE VALUE` opens the database and a
Redis cache, then sets runner.workers to VALUE. The first thing told of the committed write
(before the cache could publish anything) kills the process with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from persistence import connect, set_config
from persistence.cache import open_redis_cache
from persistence.database import watch_writes


def die(_tables: frozenset[str]) -> None:
    """Kill this process at once: the commit is done, nothing after it runs."""
    os.kill(os.getpid(), signal.SIGKILL)


async def main(url: str, redis: str, namespace: str, value: int) -> None:
    """Write once, and die right after the commit."""
    async with connect(url) as db:
        watch_writes(db, die)  # told before anything the cache watches
        await open_redis_cache(db, redis, namespace=namespace, heartbeat=0.2)
        await set_config(db, "runner", "workers", value)
    sys.exit(3)  # never reached: the write's announcement kills the process


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
