"""Open one SQLite path from a child process, at a signal, for the concurrent-open tests.

`python _opener_worker.py open PATH` prints `ready`, waits for a line on stdin, then opens
PATH (creating it if need be), reads from it and closes it, and prints `done`.
`python _opener_worker.py migrate PATH` does the same through `persistence migrate
--database PATH`, without `--wait`, and exits with its code. An open that fails exits 3
with the error on stderr.
"""

from __future__ import annotations

import asyncio
import sys

from persistence import DatabaseError, connect, migration_status
from persistence.__main__ import main


async def _open(path: str) -> int:
    try:
        async with connect(path) as db:
            await migration_status(db)
    except DatabaseError as error:
        sys.stderr.write(f"{error}\n")
        return 3
    return 0


def run(mode: str, path: str) -> int:
    """Wait for the signal, then open `path` the way `mode` says; give the exit code."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    code = main(["migrate", "--database", path]) if mode == "migrate" else asyncio.run(_open(path))
    if code == 0:
        sys.stdout.write("done\n")
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2]))
