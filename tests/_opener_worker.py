"""Open new SQLite paths from a child process, at a signal, for the concurrent-open tests.

`python _opener_worker.py open` prints `ready`, then for each line on stdin, a path, opens
that path (creating it if need be), reads from it, closes it, and prints `done` and the
exit code of that open. `python _opener_worker.py migrate` does the same through
`persistence migrate --database PATH`, without `--wait`. An open that fails gives code 3,
with the error on stderr. One child serves every round, so each round costs no start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
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


def run(mode: str) -> int:
    """Open each path read from stdin the way `mode` says; give 0 when every open succeeded."""
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    worst = 0
    for line in sys.stdin:
        path = line.rstrip("\n")
        if mode == "migrate":
            with contextlib.redirect_stdout(io.StringIO()):  # stdout carries only the answers
                code = main(["migrate", "--database", path])
        else:
            code = asyncio.run(_open(path))
        sys.stderr.flush()
        sys.stdout.write(f"done {code}\n")
        sys.stdout.flush()
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
