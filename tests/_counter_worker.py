"""Add to a shared counter from a child process, for the concurrency tests.

`python _counter_worker.py URL COUNT` prints `ready`, waits for a line on stdin, then runs
COUNT transactions that each read the counter and write it back plus one, and prints
`done`. A lost update or a failed transaction shows in the final count.
"""

from __future__ import annotations

import asyncio
import sys

from persistence import connect, get_config_value, set_config, transaction


async def count(url: str, times: int) -> None:
    """Read, then write, in one transaction, `times` times."""
    async with connect(url) as db:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.readline)
        for _ in range(times):
            async with transaction(db) as tx:
                value = await get_config_value(tx, "counter", "value", int, 0)
                await set_config(tx, "counter", "value", value + 1)
    sys.stdout.write("done\n")


if __name__ == "__main__":
    asyncio.run(count(sys.argv[1], int(sys.argv[2])))
