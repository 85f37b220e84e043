"""The command line: `persistence migrate|status|history|new`, also run as `python -m persistence`.

Exit codes: 0 done; 1 `status` found pending or drifted migrations; 2 bad usage; 3 could not
run (bad URL, unusable path, unreachable server, or any other PersistenceError), with one
line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from persistence import __version__
from persistence._cli_history import HISTORY_COMMANDS, WRITING_COMMANDS, add_history_commands
from persistence._loader import sql_root
from persistence.backup import CopyReport, backup_database, copy_database, restore_database
from persistence.database import (
    DEFAULT_DATABASE,
    Database,
    Engine,
    close_database,
    create_database,
    engine_of,
    open_database,
    redact_url,
)
from persistence.exceptions import DatabaseError, PersistenceError
from persistence.migrations import (
    Chain,
    discover_migrations,
    migrate,
    migration_status,
    migrations_folder,
    pending_migrations,
    user_migrations_folder,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Sequence

    from persistence.migrations import AppliedMigration, Drift, Migration, MigrationStatus

EXIT_OK: Final = 0
EXIT_PENDING: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it

_SLUG: Final = re.compile(r"[a-z][a-z0-9_]*")
_NUMBERED: Final = re.compile(r"(?P<version>\d{4,})_[a-z0-9_]+\.sql")
_ENGINE_FOLDERS: Final = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
_TEMPLATE: Final = """\
-- {stem} ({engine}): its statements run in one transaction, with its history row.
-- Do not write BEGIN or COMMIT here: the runner refuses them.
"""
_CONNECT_TIMEOUT: Final = 10.0
_RETRY_DELAY: Final = (0.1, 1.0)  # first and longest pause between connection attempts
_LOCK_TIMEOUT: Final = 60.0
_QUIET: Final = 1.0  # how long `migrate` works before it says what it may be waiting for
_T = TypeVar("_T")


class _CannotRunError(Exception):
    """A reason the command cannot run that is not the database's: printed as one line."""


def _slug(text: str) -> str:
    if not _SLUG.fullmatch(text) or len(text) > 60:  # noqa: PLR2004  # a file name, not an essay
        msg = f"{text!r} is not a lower-case slug such as add_index (a-z, 0-9, _; at most 60)"
        raise argparse.ArgumentTypeError(msg)
    return text


def _database(text: str) -> str:
    if not text.strip():
        msg = "an empty URL names no database: leave --database out for the default"
        raise argparse.ArgumentTypeError(msg)
    return text


def _version(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        msg = f"{text!r} is not a migration version, such as 3 for 0003_*.sql"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        msg = f"{text!r} is not a number of seconds, 0 or more"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _parser() -> argparse.ArgumentParser:
    connects = argparse.ArgumentParser(add_help=False)
    connects.add_argument(
        "--database",
        type=_database,
        metavar="URL",
        help="postgresql://... URL, sqlite:///path or a file path "
        f"(default: $DATABASE_URL, else {DEFAULT_DATABASE})",
    )
    connects.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="retry the connection until the database answers or SECONDS have passed",
    )
    reports = argparse.ArgumentParser(add_help=False)
    reports.add_argument("--json", action="store_true", help="print JSON (keys in the README)")
    chains = argparse.ArgumentParser(add_help=False)
    chains.add_argument(
        "--migrations",
        "--folder",
        dest="folder",
        type=Path,
        metavar="DIR",
        help="your own migrations, in DIR/sqlite/ and DIR/postgres/ "
        "(as `new --migrations DIR` writes them), applied after the package's",
    )

    parser = argparse.ArgumentParser(
        prog="persistence", description="Migrate a database and report where it stands."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "migrate", parents=[connects, chains], help="apply every pending migration"
    )
    run.add_argument(
        "--accept",
        type=_version,
        nargs="+",
        action="extend",
        default=[],
        metavar="VERSION",
        help="accept that the applied migrations' files were edited or deleted",
    )
    run.add_argument(
        "--create",
        action="store_true",
        help="create the PostgreSQL database first if it does not exist (a SQLite file is "
        "always created)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the SQL that would run, and write nothing",
    )
    run.add_argument("--json", action="store_true", help="print JSON (keys in the README)")
    run.add_argument(
        "--accept-user",
        type=_version,
        nargs="+",
        action="extend",
        default=[],
        metavar="VERSION",
        help="the same, for your own migrations (--migrations DIR)",
    )
    run.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="give up when another migration runner holds the lock for SECONDS "
        f"(default: {_LOCK_TIMEOUT:g})",
    )
    commands.add_parser(
        "status",
        parents=[connects, reports, chains],
        help="list applied, pending and drifted migrations; exit 1 unless up to date",
    )
    commands.add_parser(
        "history",
        parents=[connects, reports, chains],
        help="list the applied migrations, with when each ran and how long it took",
    )
    new = commands.add_parser("new", help="write the next numbered migration, once per engine")
    new.add_argument("name", type=_slug, metavar="NAME", help="a lower-case slug, e.g. add_index")
    new.add_argument(
        "--migrations",
        "--folder",
        dest="folder",
        type=Path,
        metavar="DIR",
        help="your migrations folder, holding sqlite/ and postgres/ "
        "(default: the checkout's sql/migrations)",
    )
    add_history_commands(commands, connects, reports)
    _add_copy_commands(commands, connects, reports)
    return parser


def _add_copy_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connects: argparse.ArgumentParser,
    reports: argparse.ArgumentParser,
) -> None:
    """Add `backup`, `restore` and `copy`."""
    backup = commands.add_parser(
        "backup",
        parents=[connects, reports],
        help="write the database, as one committed state, to a new SQLite file",
    )
    backup.add_argument("file", type=Path, metavar="FILE", help="the new backup file")
    restore = commands.add_parser(
        "restore",
        parents=[connects, reports],
        help="copy a backup file into an empty, migrated database",
    )
    restore.add_argument("file", type=Path, metavar="FILE", help="a file that `backup` wrote")
    copy = commands.add_parser(
        "copy",
        parents=[reports],
        help="copy every row into an empty, migrated database, of either engine",
    )
    copy.add_argument("source", type=_database, metavar="SOURCE", help="the URL or path to read")
    copy.add_argument(
        "target", type=_database, metavar="TARGET", help="the empty, migrated database to fill"
    )
    copy.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="retry each connection until the database answers or SECONDS have passed",
    )
    for command in (backup, restore, copy):
        command.add_argument(
            "--skip-user-tables",
            action="store_true",
            help="leave behind the tables of your own migrations, which are refused otherwise",
        )


def _database_url(given: str | None) -> str:
    """Return the database to use: --database, else $DATABASE_URL, else data/app.db."""
    return given or os.environ.get("DATABASE_URL") or str(DEFAULT_DATABASE)


async def _open(url: str, *, create: bool, wait: float) -> Database:
    """Open the database, retrying for up to `wait` seconds while it cannot be reached."""
    return await _retrying(
        lambda timeout: open_database(url, create=create, connect_timeout=timeout), url, wait
    )


async def _retrying(attempt: Callable[[float], Awaitable[_T]], url: str, wait: float) -> _T:
    """Make attempts, given each one's connect timeout, until one works or `wait` has passed."""
    engine_of(url)  # a bad URL fails at once: waiting would not mend it
    deadline = time.monotonic() + wait
    delay, longest = _RETRY_DELAY
    while True:
        # Within a wait, an attempt may take what is left of it, but at least a second.
        left = deadline - time.monotonic()
        timeout = min(_CONNECT_TIMEOUT, max(left, 1.0)) if wait else _CONNECT_TIMEOUT
        try:
            return await attempt(timeout)
        except DatabaseError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                if wait:
                    raise DatabaseError(f"{error} (gave up after waiting {wait:g}s)") from error
                raise
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, longest)


async def _migrate(arguments: argparse.Namespace) -> int:
    url = _database_url(arguments.database)
    created = arguments.create and await _retrying(
        lambda timeout: create_database(url, connect_timeout=timeout, dry_run=arguments.dry_run),
        url,
        arguments.wait,
    )
    created = created or await _new_sqlite_file(url)
    if arguments.dry_run:
        return await _dry_run(arguments, url, created=created)
    db = await _open(url, create=True, wait=arguments.wait)
    try:
        applied = await _saying_after(
            _QUIET,
            migrate(
                db,
                arguments.folder,
                accept=arguments.accept,
                accept_user=arguments.accept_user,
                lock_timeout=arguments.lock_timeout,
            ),
            f"still migrating after {_QUIET:g}s: waiting for the migration lock, which another "
            f"runner may hold (giving up after {arguments.lock_timeout:g}s, --lock-timeout), "
            "or for a long migration to finish",
        )
    finally:
        await close_database(db)
    if arguments.json:
        _print_json(_migrate_json(url, dry_run=False, created=created, applied=applied, pending=[]))
        return EXIT_OK
    if created:
        print(f"created the database {redact_url(url)}")
    for migration in applied:
        print(f"applied {_label(migration.chain)}{migration.path.name}")
    print(f"{redact_url(url)}: {len(applied)} migration(s) applied, up to date")
    return EXIT_OK


async def _dry_run(arguments: argparse.Namespace, url: str, *, created: bool) -> int:
    """Print what `migrate` would run, SQL and all, reading the database at most."""
    engine = engine_of(url)[0]
    if created:  # nothing is there yet, so everything would run
        if arguments.accept or arguments.accept_user:
            msg = "cannot accept drift: the database does not exist, so nothing was applied"
            raise _CannotRunError(msg)
        pending = discover_migrations(migrations_folder(engine))
        if arguments.folder is not None:
            user = user_migrations_folder(arguments.folder, engine)
            pending += discover_migrations(user, Chain.USER)
    else:
        db = await _open(url, create=False, wait=arguments.wait)
        try:
            pending = await pending_migrations(
                db, arguments.folder, accept=arguments.accept, accept_user=arguments.accept_user
            )
        finally:
            await close_database(db)
    if arguments.json:
        _print_json(_migrate_json(url, dry_run=True, created=created, applied=[], pending=pending))
        return EXIT_OK
    print(f"-- dry run: nothing was written to {redact_url(url)}")
    if created:
        print(f"-- would create the database {redact_url(url)}")
    history = [f"{engine.value}.sql"] + ([f"{engine.value}_user.sql"] if arguments.folder else [])
    for name in history:  # run first by every migrate; each is a no-op once its table exists
        print(f"\n{(sql_root() / 'history' / name).read_text(encoding='utf-8').rstrip()}")
    for migration in pending:
        print(f"\n-- {_label(migration.chain)}{migration.path.name}: one transaction, with its")
        print(f"-- row in {migration.chain.history}\n{migration.sql.rstrip()}")
    print(f"\n-- {len(pending)} migration(s) would be applied")
    return EXIT_OK


async def _new_sqlite_file(url: str) -> bool:
    """Tell whether `url` names a SQLite file that does not exist yet, which migrate creates."""
    engine, target = engine_of(url)
    return engine is Engine.SQLITE and not await asyncio.to_thread(Path(target).exists)


def _migrate_json(
    url: str, *, dry_run: bool, created: bool, applied: list[Migration], pending: list[Migration]
) -> dict[str, object]:
    """Give what `migrate --json` prints: the run's (or, dry, the plan's) migrations."""
    return {
        "database": redact_url(url),
        "engine": engine_of(url)[0].value,
        "dry_run": dry_run,
        "created": created,
        "applied": [_migration_json(migration) for migration in applied],
        "pending": [_migration_json(migration) | {"sql": migration.sql} for migration in pending],
    }


def _migration_json(migration: Migration) -> dict[str, object]:
    return {
        "chain": migration.chain.value,
        "version": migration.version,
        "name": migration.name,
        "file": migration.path.name,
    }


async def _saying_after(quiet: float, work: Coroutine[object, object, _T], line: str) -> _T:
    """Await `work`; if it takes longer than `quiet` seconds, say `line` on stderr once."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=quiet)
        if not done:
            _say(line)
        return await task
    finally:
        task.cancel()  # a no-op once it is done; else interrupted, and it must not linger


async def _read_status(arguments: argparse.Namespace) -> tuple[str, str, MigrationStatus]:
    """Read where the database stands without creating or changing it: URL, engine, status."""
    url = _database_url(arguments.database)
    db = await _open(url, create=False, wait=arguments.wait)
    try:
        return url, db.engine.value, await migration_status(db, arguments.folder)
    finally:
        await close_database(db)


async def _status(arguments: argparse.Namespace) -> int:
    url, engine, status = await _read_status(arguments)
    if arguments.json:
        _print_json(
            {
                "database": redact_url(url),
                "engine": engine,
                "up_to_date": status.up_to_date,
                "applied": [_applied_json(done) for done in status.applied],
                "pending": [_pending_json(migration) for migration in status.pending],
                "drifted": [_drift_json(drift) for drift in status.drifted],
                "user": _user_json(arguments.folder, status.user),
            }
        )
    else:
        for chain in _chains(status):
            label = _label(chain.chain)
            for done in chain.applied:
                print(f"applied  {label}{done.name}  at {done.applied_at.isoformat()}")
            for migration in chain.pending:
                print(f"pending  {label}{migration.path.name}")
            for drift in chain.drifted:
                print(f"drifted  {label}{drift.describe()}")
    return EXIT_OK if status.up_to_date else EXIT_PENDING


def _chains(status: MigrationStatus) -> list[MigrationStatus]:
    """List the package's chain, then the user's when a folder was given."""
    return [status] if status.user is None else [status, status.user]


def _label(chain: Chain) -> str:
    """Give the prefix of a migration's name: none for the package's, `user/` for the user's."""
    return "" if chain is Chain.PACKAGE else "user/"


def _user_json(folder: Path | None, status: MigrationStatus | None) -> dict[str, object] | None:
    if folder is None or status is None:
        return None
    return {
        "folder": str(folder),
        "up_to_date": status.up_to_date,
        "applied": [_applied_json(done) for done in status.applied],
        "pending": [_pending_json(migration) for migration in status.pending],
        "drifted": [_drift_json(drift) for drift in status.drifted],
    }


async def _history(arguments: argparse.Namespace) -> int:
    url, engine, status = await _read_status(arguments)
    if arguments.json:
        _print_json(
            {
                "database": redact_url(url),
                "engine": engine,
                "applied": [_applied_json(done) for done in status.applied],
                "user": (
                    None
                    if status.user is None
                    else {
                        "folder": str(arguments.folder),
                        "applied": [_applied_json(done) for done in status.user.applied],
                    }
                ),
            }
        )
        return EXIT_OK
    if not status.applied:
        print(f"{redact_url(url)}: no migration applied yet")
    for chain in _chains(status):
        label = _label(chain.chain)
        for done in chain.applied:
            print(
                f"{label}{done.name}  applied {done.applied_at.isoformat()}  "
                f"in {done.duration_ms:.1f} ms"
            )
    return EXIT_OK


def _applied_json(done: AppliedMigration) -> dict[str, object]:
    return {
        "version": done.version,
        "name": done.name,
        "checksum": done.checksum,
        "applied_at": done.applied_at.isoformat(),
        "duration_ms": done.duration_ms,
    }


def _pending_json(migration: Migration) -> dict[str, object]:
    return {"version": migration.version, "name": migration.name, "file": migration.path.name}


def _drift_json(drift: Drift) -> dict[str, object]:
    return {
        "version": drift.applied.version,
        "name": drift.applied.name,
        "change": "deleted" if drift.migration is None else "edited",
        "message": drift.describe(),
    }


def _print_json(value: dict[str, object]) -> None:
    print(json.dumps(value, indent=2))


def _new(arguments: argparse.Namespace) -> int:
    folder: Path = arguments.folder or _checkout_migrations()
    folders = [folder / engine for engine in _ENGINE_FOLDERS]
    versions = [
        int(match["version"])
        for engine_folder in folders
        if engine_folder.is_dir()
        for path in engine_folder.iterdir()
        if (match := _NUMBERED.fullmatch(path.name))
    ]
    stem = f"{max(versions, default=0) + 1:04d}_{arguments.name}"
    for engine_folder, engine in zip(folders, _ENGINE_FOLDERS.values(), strict=True):
        engine_folder.mkdir(parents=True, exist_ok=True)
        path = engine_folder / f"{stem}.sql"
        with path.open("x", encoding="utf-8", newline="\n") as file:
            file.write(_TEMPLATE.format(stem=stem, engine=engine))
        print(f"created {path}")
    return EXIT_OK


def _checkout_migrations() -> Path:
    """Return the checkout's sql/migrations, which the installed package does not have."""
    root = sql_root()
    if not (root.parent / "pyproject.toml").is_file():
        msg = f"the package runs from {root.parent}, not from a checkout: pass --migrations DIR"
        raise _CannotRunError(msg)
    return root / "migrations"


async def _run_history(arguments: argparse.Namespace) -> int:
    """Open the database, then run one of the run-history commands on it."""
    write = arguments.command in WRITING_COMMANDS
    db = await _open(_database_url(arguments.database), create=write, wait=arguments.wait)
    try:
        return await HISTORY_COMMANDS[arguments.command](db, arguments)
    finally:
        await close_database(db)


async def _open_existing(url: str, *, wait: float, write: bool) -> Database:
    """Open a database that must exist already: a missing SQLite file is not created."""
    engine, target = engine_of(url)
    if engine is Engine.SQLITE and not await asyncio.to_thread(Path(target).is_file):
        msg = f"no SQLite database at {target!r}"
        if write:
            msg += f": create and migrate it first (persistence migrate --database {target})"
        raise _CannotRunError(msg)
    return await _open(url, create=write, wait=wait)


async def _backup(arguments: argparse.Namespace) -> int:
    url = _database_url(arguments.database)
    db = await _open_existing(url, wait=arguments.wait, write=False)
    try:
        report = await backup_database(
            db, arguments.file, skip_user_tables=arguments.skip_user_tables
        )
    finally:
        await close_database(db)
    return _copied(arguments, "backed up", report)


async def _restore(arguments: argparse.Namespace) -> int:
    url = _database_url(arguments.database)
    if not await asyncio.to_thread(arguments.file.is_file):
        raise _CannotRunError(f"no backup file at {str(arguments.file)!r}")
    db = await _open_existing(url, wait=arguments.wait, write=True)
    try:
        report = await restore_database(
            db, arguments.file, skip_user_tables=arguments.skip_user_tables
        )
    finally:
        await close_database(db)
    return _copied(arguments, "restored", report)


async def _copy(arguments: argparse.Namespace) -> int:
    engine_of(arguments.target)  # a bad URL fails before the source is opened
    source = await _open_existing(arguments.source, wait=arguments.wait, write=False)
    try:
        target = await _open_existing(arguments.target, wait=arguments.wait, write=True)
        try:
            report = await copy_database(
                source, target, skip_user_tables=arguments.skip_user_tables
            )
        finally:
            await close_database(target)
    finally:
        await close_database(source)
    return _copied(arguments, "copied", report)


def _copied(arguments: argparse.Namespace, done: str, report: CopyReport) -> int:
    """Say what a backup, restore or copy moved, as a line or as JSON."""
    if arguments.json:
        _print_json(
            {
                "source": report.source,
                "target": report.target,
                "rows": report.tables(),
                "seconds": round(report.seconds, 3),
            }
        )
        return EXIT_OK
    tables = ", ".join(f"{table} {count}" for table, count in report.tables().items())
    print(
        f"{done} {report.source} to {report.target}: {report.rows} rows ({tables}) "
        f"in {report.seconds:.1f}s"
    )
    return EXIT_OK


_ASYNC_COMMANDS: Final[
    dict[str, Callable[[argparse.Namespace], Coroutine[object, object, int]]]
] = {
    "migrate": _migrate,
    "status": _status,
    "history": _history,
    **dict.fromkeys(HISTORY_COMMANDS, _run_history),
    "backup": _backup,
    "restore": _restore,
    "copy": _copy,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; a failure is one line on stderr, exit 3."""
    arguments = _parser().parse_args(argv)
    try:
        if arguments.command == "new":
            return _new(arguments)
        return asyncio.run(_ASYNC_COMMANDS[arguments.command](arguments))
    except (PersistenceError, _CannotRunError) as error:
        return _fail(str(error))
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        return _fail(f"{error.strerror or error}{where}")
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED


def _fail(message: str) -> int:
    _say(f"error: {message}")
    return EXIT_FAILED


def _say(message: str) -> None:
    """Print one line on stderr, whatever line breaks the message holds."""
    print(f"persistence: {' '.join(message.split())}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
