"""Run retention on a database until it is done or killed: the crash test's worker.

Run as `python _retention_worker.py PATH CUTOFF`, CUTOFF in ISO form; prints `started`
before it begins and `done N` when it has deleted N rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from persistence import connect, delete_results_before


async def main(path: str, cutoff: str) -> None:
    """Delete every result created before the cut-off, saying when it starts and ends."""
    async with connect(path) as db:
        print("started", flush=True)  # noqa: T201 - the parent waits for this line
        deleted = await delete_results_before(db, dt.datetime.fromisoformat(cutoff))
        print(f"done {deleted}", flush=True)  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
