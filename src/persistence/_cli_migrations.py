"""The migration commands: `migrate` (and its dry run), `status`, `history` and `new`.

`__main__` registers them; each takes its parsed arguments and returns the exit code. Their
`--json` shapes are here too, as the README lists them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from persistence._cli_common import (
    EXIT_OK,
    EXIT_PENDING,
    CannotRunError,
    opened,
    picked,
    print_json,
    retrying,
    say,
    telling_what_was_done,
    write_utf8,
)
from persistence._files.locks import hold
from persistence._files.paths import owned
from persistence._loader import sql_root
from persistence._migration_files import LAST_VERSION
from persistence.database import Engine, create_database, database_url, engine_of, redact_url
from persistence.migrations import (
    Chain,
    history_ddl,
    migrate,
    migration_status,
    pending_migrations,
    read_migrations,
)

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine

    from persistence.migrations import AppliedMigration, Migration, MigrationStatus

_NUMBERED: Final = re.compile(r"(?P<version>[0-9]{4,})_[a-z0-9_]+\.sql")
_ENGINE_FOLDERS: Final = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
_TEMPLATE: Final = """\
-- {stem} ({engine}): its statements run in one transaction, with its history row.
-- Do not write BEGIN or COMMIT here: the runner refuses them.
"""
LOCK_TIMEOUT: Final = 60.0
"""How long `migrate` waits for another runner's lock by default (--lock-timeout)."""
_NEWER: Final = {
    Chain.PACKAGE: "applied by a newer version of this package: upgrade it",
    Chain.USER: "applied, but newer than every file of your migrations folder",
}
"""What `status` says of an applied migration newer than every file of its chain."""
_QUIET: Final = 1.0  # how long `migrate` works before it says what it may be waiting for
_T = TypeVar("_T")


async def migrate_command(arguments: argparse.Namespace) -> int:
    url = database_url(arguments.database)
    engine, target = engine_of(url)
    # Every file is read and checked first, so that a bad folder leaves no new database behind.
    files = await asyncio.to_thread(read_migrations, engine, arguments.folder)
    created = arguments.create and await retrying(
        lambda timeout: create_database(url, connect_timeout=timeout, dry_run=arguments.dry_run),
        url,
        arguments.wait,
    )
    # A SQLite file that does not exist yet is one that migrate creates: this run, if it is the
    # one that applies the package's first migration (two at once both found no file).
    missing = engine is Engine.SQLITE and not await asyncio.to_thread(Path(target).exists)
    if arguments.dry_run:
        return await _dry_run(arguments, url, created=created or missing, files=files)
    async with opened(
        url, create=True, wait=arguments.wait, command_timeout=arguments.command_timeout
    ) as db:
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
    first = min((m.version for m in files if m.chain is Chain.PACKAGE), default=None)
    created = created or (
        missing and any(m.chain is Chain.PACKAGE and m.version == first for m in applied)
    )
    said = f"{redact_url(url)}: {len(applied)} migration(s) applied, up to date"
    with telling_what_was_done(said, "the migrations it applied are kept"):
        if arguments.json:
            print_json(
                _migrate_json(url, dry_run=False, created=created, applied=applied, pending=[])
            )
            return EXIT_OK
        if created:
            print(f"created the database {redact_url(url)}")
        for migration in applied:
            print(f"applied {migration.chain.label}{migration.path.name}")
        print(said)
    return EXIT_OK


async def _dry_run(
    arguments: argparse.Namespace, url: str, *, created: bool, files: list[Migration]
) -> int:
    """Print what `migrate` would run, SQL and all, reading the database at most."""
    engine = engine_of(url)[0]
    if created:  # nothing is there yet, so everything would run
        if arguments.accept or arguments.accept_user:
            msg = "cannot accept drift: the database does not exist, so nothing was applied"
            raise CannotRunError(msg)
        pending = files
    else:
        async with opened(url, create=False, wait=arguments.wait) as db:
            pending = await pending_migrations(
                db, arguments.folder, accept=arguments.accept, accept_user=arguments.accept_user
            )
    if arguments.json:
        print_json(_migrate_json(url, dry_run=True, created=created, applied=[], pending=pending))
        return EXIT_OK
    lines = [f"-- dry run: nothing was written to {redact_url(url)}"]
    if created:
        lines.append(f"-- would create the database {redact_url(url)}")
    # each made in its chain's first migration's transaction, if it is not there yet
    lines.extend(
        f"\n{history_ddl(engine, chain).read_text(encoding='utf-8').rstrip()}"
        for chain in Chain
        if any(m.chain is chain for m in pending)
    )
    for migration in pending:
        lines.append(
            f"\n-- {migration.chain.label}{migration.path.name}: one transaction, with its"
        )
        lines.append(f"-- row in {migration.chain.history}\n{migration.sql.rstrip()}")
    lines.append(f"\n-- {len(pending)} migration(s) would be applied")
    write_utf8("".join(f"{line}\n" for line in lines))  # the files' SQL, byte for byte
    return EXIT_OK


def _migrate_json(
    url: str, *, dry_run: bool, created: bool, applied: list[Migration], pending: list[Migration]
) -> dict[str, object]:
    """Give what `migrate --json` prints: the run's (or, dry, the plan's) migrations."""
    return {
        "database": redact_url(url),
        "engine": engine_of(url)[0].value,
        "dry_run": dry_run,
        "created": created,
        "applied": [{"chain": m.chain.value, **_pending_json(m)} for m in applied],
        "pending": [{"chain": m.chain.value, **_pending_json(m), "sql": m.sql} for m in pending],
    }


async def _saying_after(quiet: float, work: Coroutine[object, object, _T], line: str) -> _T:
    """Await `work`; if it takes longer than `quiet` seconds, say `line` on stderr once.

    Awaited in this task, `work` ends before a cancellation of it goes on, and raises it with
    its notes (what it kept): a task of its own was left running, and its notes unheard.
    """
    said = asyncio.get_running_loop().call_later(quiet, say, line)
    try:
        return await work
    finally:
        said.cancel()


async def _read_status(arguments: argparse.Namespace) -> tuple[str, str, MigrationStatus]:
    """Read where the database stands without creating or changing it: URL, engine, status."""
    url = database_url(arguments.database)
    async with opened(url, create=False, wait=arguments.wait) as db:
        return url, db.engine.value, await migration_status(db, arguments.folder)


async def status_command(arguments: argparse.Namespace) -> int:
    url, engine, status = await _read_status(arguments)
    if arguments.json:
        _print_chains(arguments, url, engine, status, _chain_json)
    else:
        for chain in status.chains:
            label = chain.chain.label
            for done in chain.applied:
                print(f"applied  {label}{done.name}  at {done.applied_at.isoformat()}")
            for migration in chain.pending:
                late = migration in chain.out_of_order  # which `migrate` refuses
                said = "  numbered below one applied: migrate cannot apply it" if late else ""
                print(f"pending  {label}{migration.path.name}{said}")
            for drift in chain.drifted:
                # named after the label, as the lines above: `user/0002_b was applied but ...`
                print(f"drifted  {label}{drift.describe().removeprefix('migration ')}")
            for done in chain.newer:
                print(f"newer    {label}{done.name}  {_NEWER[chain.chain]}")
    return EXIT_OK if status.up_to_date else EXIT_PENDING


def _print_chains(
    arguments: argparse.Namespace,
    url: str,
    engine: str,
    status: MigrationStatus,
    shape: Callable[[MigrationStatus], dict[str, object]],
) -> None:
    """Print `status --json` or `history --json`: each chain as `shape` gives it."""
    user = None if status.user is None else {"folder": str(arguments.folder), **shape(status.user)}
    print_json({"database": redact_url(url), "engine": engine, **shape(status), "user": user})


def _history_json(status: MigrationStatus) -> dict[str, object]:
    """Give one chain's applied migrations, as `history --json` prints them."""
    return {"applied": [_applied_json(done) for done in status.applied]}


def _chain_json(status: MigrationStatus) -> dict[str, object]:
    """Give where one chain stands, as `status --json` prints it."""
    return {
        "up_to_date": status.up_to_date,
        "applied": [_applied_json(done) for done in status.applied],
        "pending": [_pending_json(migration) for migration in status.pending],
        "drifted": [
            picked(d.applied, "version", "name") | {"change": d.change, "message": d.describe()}
            for d in status.drifted
        ],
        "newer": [_applied_json(done) for done in status.newer],
        "out_of_order": [_pending_json(migration) for migration in status.out_of_order],
    }


async def history_command(arguments: argparse.Namespace) -> int:
    url, engine, status = await _read_status(arguments)
    if arguments.json:
        _print_chains(arguments, url, engine, status, _history_json)
        return EXIT_OK
    if not status.applied:
        print(f"{redact_url(url)}: no migration applied yet")
    for chain in status.chains:
        label = chain.chain.label
        for done in chain.applied:
            print(
                f"{label}{done.name}  applied {done.applied_at.isoformat()}  "
                f"in {done.duration_ms:.1f} ms"
            )
    return EXIT_OK


def _applied_json(done: AppliedMigration) -> dict[str, object]:
    return picked(done, "version", "name", "checksum", "applied_at", "duration_ms")


def _pending_json(migration: Migration) -> dict[str, object]:
    return {"version": migration.version, "name": migration.name, "file": migration.path.name}


_ENDING_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def new_command(arguments: argparse.Namespace) -> int:
    folder: Path = arguments.folder or _checkout_migrations()
    folders = [folder / engine for engine in _ENGINE_FOLDERS]
    for engine_folder in (folder, *folders):  # looked at first: no folder made for nothing
        if engine_folder.exists() and not engine_folder.is_dir():
            msg = f"{engine_folder} is not a folder: it must hold each engine's migrations"
            raise CannotRunError(msg)
    for engine_folder in folders:
        engine_folder.mkdir(parents=True, exist_ok=True)
    # The number is taken under a lock on the folder: two `new` at once, seeing the same
    # highest number, both took the next. flock(2) on the folder itself leaves no lock file.
    with owned(os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)) as held:
        hold(held)
        versions = [
            int(match["version"])
            for engine_folder in folders
            for path in engine_folder.iterdir()
            if (match := _NUMBERED.fullmatch(path.name))
        ]
        number = max(versions, default=0) + 1
        if number > LAST_VERSION:  # which `migrate` would refuse
            msg = f"the next number, {number}, is over {LAST_VERSION}, more than the history holds"
            raise CannotRunError(msg)
        stem = f"{number:04d}_{arguments.name}"
        written: list[Path] = []  # both files or neither: a chain without its twin numbers apart
        # A signal (Ctrl-C, SIGTERM, SIGHUP) comes once both are written or removed: one raised
        # between a file's open and its note, or during the removal, left one file alone.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _ENDING_SIGNALS)
        try:
            for engine_folder, engine in zip(folders, _ENGINE_FOLDERS.values(), strict=True):
                path = engine_folder / f"{stem}.sql"
                with path.open("x", encoding="utf-8", newline="\n") as file:
                    written.append(path)
                    file.write(_TEMPLATE.format(stem=stem, engine=engine))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for path in written:
        print(f"created {path}")
    return EXIT_OK


def _checkout_migrations() -> Path:
    """Return the checkout's sql/migrations, which the installed package does not have."""
    root = sql_root()
    if not (root.parent / "pyproject.toml").is_file():
        msg = f"the package runs from {root.parent}, not from a checkout: pass --migrations DIR"
        raise CannotRunError(msg)
    return root / "migrations"
