"""The command line: `python -m persistence migrate|status [--database URL]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from persistence.database import DEFAULT_DATABASE, connect
from persistence.exceptions import PersistenceError
from persistence.migrations import migrate, migration_status


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database",
        default=os.environ.get("DATABASE_URL") or str(DEFAULT_DATABASE),
        help="postgresql://... URL, sqlite:///path or a file path "
        "(default: $DATABASE_URL, else %(default)s)",
    )
    parser = argparse.ArgumentParser(prog="persistence", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("migrate", parents=[common], help="apply every pending migration")
    run.add_argument(
        "--accept",
        type=int,
        action="append",
        default=[],
        metavar="VERSION",
        help="accept that an applied migration's file was edited or deleted (repeatable)",
    )
    commands.add_parser(
        "status",
        parents=[common],
        help="list applied, pending and drifted migrations; exit 1 unless up to date",
    )
    return parser


async def _migrate(url: str, accept: list[int]) -> int:
    async with connect(url) as db:
        applied = await migrate(db, accept=accept)
    for migration in applied:
        print(f"applied {migration.path.name}")
    print(f"{url}: {len(applied)} migration(s) applied, up to date")
    return 0


async def _status(url: str) -> int:
    async with connect(url) as db:
        status = await migration_status(db)
    for done in status.applied:
        print(f"applied  {done.name}  at {done.applied_at.isoformat()}")
    for migration in status.pending:
        print(f"pending  {migration.path.name}")
    for drift in status.drifted:
        print(f"drifted  {drift.describe()}")
    return 0 if status.up_to_date else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors print one line and exit 2."""
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "migrate":
            return asyncio.run(_migrate(arguments.database, arguments.accept))
        return asyncio.run(_status(arguments.database))
    except PersistenceError as error:
        print(f"persistence: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
