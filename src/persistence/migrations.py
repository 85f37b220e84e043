"""A tiny migration runner: numbered SQL files, applied once each, in order, with a history.

Each migration commits with its history row under the runners' lock; a checksum per file stops
a run on an edited, deleted or out-of-order file until accepted. A user's own chain
(`FOLDER/<engine>/NNNN_slug.sql`) follows the package's, with its own history table.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from persistence._database_value import backend_of, require_database
from persistence._driver_errors import translate_errors
from persistence._guards import argument, finite_amount, whole_numbers
from persistence._loader import sql_root
from persistence._loans import announce_every_table, borrow
from persistence._loop import off_loop
from persistence._migration_files import (
    HISTORY_TABLE,
    LAST_VERSION,
    USER_HISTORY_TABLE,
    Chain,
    Migration,
    checksum,
    discover_migrations,
    migrations_folder,
    packaged_migrations,
    user_migrations_folder,
)
from persistence._migration_scripts import checked_statements, run_statements
from persistence.database import Database, Engine, split_script
from persistence.exceptions import (
    MigrationError,
    PersistenceError,
    ValidationError,
)

if TYPE_CHECKING:
    from persistence._backend import ScriptStatement
    from persistence._interface import Connection

__all__ = [
    "HISTORY_TABLE",
    "USER_HISTORY_TABLE",
    "AppliedMigration",
    "Chain",
    "Drift",
    "Migration",
    "MigrationStatus",
    "checksum",
    "discover_migrations",
    "migrate",
    "migration_status",
    "migrations_folder",
    "pending_migrations",
    "read_migrations",
    "user_migrations_folder",
]

_LEGACY_HISTORY: Final = "schema_migrations"
"""The history table's name before 0.2, adopted (renamed) when its columns are this runner's."""

_HISTORY_COLUMNS: Final = ("version", "name", "checksum", "applied_at", "duration_ms")


@attrs.frozen
class AppliedMigration:
    """One row of the history."""

    version: int
    name: str
    checksum: str
    applied_at: dt.datetime
    duration_ms: float
    chain: Chain = Chain.PACKAGE


@attrs.frozen
class Drift:
    """An applied migration whose file was edited or renamed (`migration` set) or deleted (None).

    `copy`, for a deleted file: a pending file of its very text, most likely the same migration
    renamed (renumbered), which `migrate` would run again.
    """

    applied: AppliedMigration
    migration: Migration | None
    copy: Migration | None = None

    @property
    def change(self) -> str:
        """`deleted`, `renamed` (under its version, maybe edited too) or `edited`."""
        if self.migration is None:
            return "deleted"
        return "renamed" if self.migration.name != self.applied.name else "edited"

    def describe(self) -> str:
        """Say what changed, naming the file, and the name it was applied by if another."""
        if self.migration is None:
            gone = f"migration {self.applied.name} was applied but its file is gone"
            if self.copy is None:
                return gone
            return (
                f"{gone}: {self.copy.path.name} holds its very text, as if renamed, and migrate "
                "would run it again"
            )
        file = self.migration.path.name
        if self.change == "edited":
            return f"{file} was edited after it was applied (checksum differs)"
        if self.migration.checksum == self.applied.checksum:
            return f"{file} was renamed after it was applied as {self.applied.name}.sql"
        return (
            f"{file} was renamed and edited after it was applied as {self.applied.name}.sql "
            "(checksum differs)"
        )


@attrs.frozen
class MigrationStatus:
    """Where a database stands against the migration files."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    drifted: tuple[Drift, ...]
    newer: tuple[AppliedMigration, ...] = ()
    """Applied migrations newer than every file: the database is newer than this code."""
    out_of_order: tuple[Migration, ...] = ()
    """Pending files older than a migration already applied: they cannot run in order."""
    notes: tuple[str, ...] = ()
    chain: Chain = Chain.PACKAGE
    user: MigrationStatus | None = None
    """The user's own chain, when its folder was given; the fields above are the package's."""

    @property
    def up_to_date(self) -> bool:
        """Nothing pending, drifted, newer or out of order, in this chain or the user's."""
        mine = not (self.pending or self.drifted or self.newer or self.out_of_order)
        return mine and (self.user is None or self.user.up_to_date)

    @property
    def chains(self) -> list[MigrationStatus]:
        """This chain, then the user's when its folder was given."""
        return [self] if self.user is None else [self, self.user]

    def problems(self, accepted: Iterable[int] = ()) -> list[str]:
        """Say what stops `migrate` in this chain, each problem naming its migration."""
        allowed = set(accepted)
        package = self.chain is Chain.PACKAGE
        option = "--accept" if package else "--accept-user"  # the command's option
        problems = [d.describe() for d in self.drifted if d.applied.version not in allowed]
        if problems:
            problems[-1] += f". Restore the file, or accept the change with {option} VERSION"
        newer = (
            "migration {} applied, newer than every migration of this code: it was migrated by "
            "a newer version, so upgrade the code"
            if package
            else "your migration {} applied, newer than every file of your migrations folder: "
            "pass the folder that holds it"
        )
        problems += [
            f"the database has {newer.format(a.name)} (if its file was deleted on purpose, "
            f"accept that with {option} {a.version})"
            for a in self.newer
            if a.version not in allowed
        ]
        problems += [
            f"{m.path.name} is pending but a later migration is already applied: "
            "it cannot run in order; give it a version after the last applied one"
            for m in self.out_of_order
        ]
        return problems


def read_migrations(engine: Engine, folder: Path | None = None) -> list[Migration]:
    """Read and check the package's files, then those of the user's `folder`, for `engine`.

    Everything that `migrate` refuses before it runs any file is refused here, with no database:
    names, text and statements. The command line calls it before it creates a database.
    """
    found = packaged_migrations(engine)
    if folder is not None:
        found += discover_migrations(user_migrations_folder(folder, engine), Chain.USER)
    for migration in found:
        _statements(engine, migration)
    return found


def _statements(engine: Engine, migration: Migration) -> tuple[ScriptStatement, ...]:
    """Split one file and refuse statements that would end or start a transaction."""
    return checked_statements(engine, migration.sql, migration.path.name, migration.name)


async def migration_status(
    db: Database, folder: Path | None = None, *, package_folder: Path | None = None
) -> MigrationStatus:
    """Compare the history with the files: what is applied, pending, drifted and out of order.

    The user's chain in `folder` gives the result's `user`; `package_folder` stands in for the
    packaged migrations (tools, tests). Only reads: a database never migrated has all pending.
    """
    plans = await _plans(db, folder, package_folder)
    statuses = [await _chain_status(db, chain, migrations) for chain, migrations in plans]
    package, *user = statuses
    return attrs.evolve(package, user=user[0] if user else None)


async def pending_migrations(
    db: Database,
    folder: Path | None = None,
    *,
    accept: Iterable[int] = (),
    accept_user: Iterable[int] = (),
    package_folder: Path | None = None,
) -> list[Migration]:
    """Return what `migrate` would apply, in order, checking as it does and changing nothing."""
    accepted = _accepted(folder, accept, accept_user)
    plans = await _plans(db, folder, package_folder)
    async with translate_errors(db), borrow(db) as conn:
        await _refuse_unmigratable(db, conn)  # as migrate refuses it: a dry run said it would run
    pending: list[Migration] = []
    for chain, migrations in plans:
        await _split(db.engine, migrations)
        status = await _chain_status(db, chain, migrations)
        _refuse(status, accepted[chain])
        pending += status.pending
    return pending


def _accepted(
    folder: Path | None, accept: Iterable[int], accept_user: Iterable[int]
) -> dict[Chain, set[int]]:
    accepted = {
        Chain.PACKAGE: whole_numbers("migrate", "accept", accept, LAST_VERSION),
        Chain.USER: whole_numbers("migrate", "accept_user", accept_user, LAST_VERSION),
    }
    if accepted[Chain.USER] and folder is None:
        raise ValidationError("migrate", "accept_user", "needs the folder of your migrations")
    return accepted


async def _plans(
    db: Database, folder: Path | None, package_folder: Path | None
) -> list[tuple[Chain, list[Migration]]]:
    """Read each chain's files, the package's first: every file is checked before any runs.

    In a worker thread: a user's migration of tens of MB, read and decoded on the loop, held
    it 0.4 s for `migration_status`.
    """
    if package_folder is not None:
        argument("migrate", "package_folder", Path, package_folder, "a pathlib.Path")
    engine = require_database(db).engine

    def read() -> list[tuple[Chain, list[Migration]]]:
        packaged = (
            packaged_migrations(engine)
            if package_folder is None
            else discover_migrations(package_folder)
        )
        plans = [(Chain.PACKAGE, packaged)]
        if folder is not None:
            user_folder = user_migrations_folder(folder, engine)
            plans.append((Chain.USER, discover_migrations(user_folder, Chain.USER)))
        return plans

    return await off_loop(read)


async def _split(engine: Engine, migrations: list[Migration]) -> list[tuple[ScriptStatement, ...]]:
    """Split and check the files' statements in a worker thread (`_statements`).

    A user's migration of 35,000 statements held the loop 0.5 s on SQLite, 1.2 s on
    PostgreSQL, and one of 57 MB 5 to 10 s.
    """
    return await off_loop(lambda: [_statements(engine, migration) for migration in migrations])


async def _refuse_unmigratable(db: Database, conn: Connection) -> None:
    """Refuse a database that no migration may run on (PostgreSQL's, in another encoding)."""
    if (problem := await backend_of(db).migration_problem(conn)) is not None:
        raise MigrationError(f"cannot migrate: {problem}")


async def _chain_status(db: Database, chain: Chain, migrations: list[Migration]) -> MigrationStatus:
    notes: tuple[str, ...] = ()
    applied: list[AppliedMigration] = []
    async with translate_errors(db):
        has_history = bool(await backend_of(db).table_columns(chain.history))
    if has_history:
        async with borrow(db) as conn:
            applied = await _applied(db, conn, chain)
    elif chain is Chain.PACKAGE and await _legacy_history(db):
        notes = (
            (
                f"the history is in the table {_LEGACY_HISTORY} of an earlier version of this "
                f"package: the next migrate renames it to {HISTORY_TABLE}"
            ),
        )
    return attrs.evolve(_compare(migrations, applied, chain), notes=notes)


async def _legacy_history(db: Database, conn: Connection | None = None) -> bool:
    async with translate_errors(db):
        return await backend_of(db).table_columns(_LEGACY_HISTORY, conn) == _HISTORY_COLUMNS


def _compare(
    migrations: list[Migration], applied: list[AppliedMigration], chain: Chain
) -> MigrationStatus:
    by_version = {m.version: m for m in migrations}
    done = {a.version for a in applied}
    latest_file = max(by_version, default=0)
    newer = tuple(a for a in applied if a.version > latest_file)
    pending = tuple(m for m in migrations if m.version not in done)
    copies = {m.checksum: m for m in reversed(pending)}  # a deleted file's text, renumbered
    drifted = tuple(
        Drift(a, file, copies.get(a.checksum) if file is None else None)
        for a in applied
        if a.version <= latest_file
        and (
            (file := by_version.get(a.version)) is None
            or (file.checksum, file.name) != (a.checksum, a.name)
        )
    )
    latest_applied = max(done, default=0)
    out_of_order = tuple(m for m in pending if m.version < latest_applied)
    return MigrationStatus(tuple(applied), pending, drifted, newer, out_of_order, chain=chain)


async def migrate(
    db: Database,
    folder: Path | None = None,
    *,
    accept: Iterable[int] = (),
    accept_user: Iterable[int] = (),
    lock_timeout: float = 60.0,
    package_folder: Path | None = None,
) -> list[Migration]:
    """Apply every pending migration in order; return the ones this call applied.

    The package's chain runs first, then the user's from `folder/<engine>/` if given. `accept`
    and `accept_user` list each chain's versions whose drift is accepted: an edited file's new
    checksum is recorded, a deleted file's row removed. `lock_timeout` bounds the wait for
    another runner; `package_folder` stands in for the packaged migrations (tools, tests).
    """
    if require_database(db).in_transaction:
        raise MigrationError("migrate() opens its own transactions: call it outside transaction()")
    lock_timeout = finite_amount("migrate", "lock_timeout", lock_timeout, "a number of seconds")
    accepted = _accepted(folder, accept, accept_user)
    plans = await _plans(db, folder, package_folder)
    backend = backend_of(db)
    engine = db.engine
    scripts = {
        (chain, migration.version): statements
        for chain, found in plans
        for migration, statements in zip(found, await _split(engine, found), strict=True)
    }
    # What is applied stays applied (accepting drift only records it), so a migration applied
    # at this first look is never taken again: an open of an up-to-date database locks once.
    pending: set[tuple[Chain, int]] = set()
    taken: list[str] = []  # the drift accepted, recorded before any migration runs
    async with translate_errors(db), backend.migration(lock_timeout) as conn:
        await _refuse_unmigratable(db, conn)
        for chain, migrations in plans:
            status = _compare(migrations, await _history(db, conn, chain) or [], chain)
            _refuse(status, accepted[chain])
            pending.update((chain, m.version) for m in status.pending)
            drifted = sorted(d.applied.version for d in status.drifted)
            taken += [f"{chain.label}{v}" for v in drifted if v in accepted[chain]]
        for chain, migrations in plans:
            await _accept(db, conn, chain, migrations, accepted[chain])
    applied: list[Migration] = []
    to_apply = [
        (migrations, migration)
        for chain, migrations in plans
        for migration in migrations
        if (chain, migration.version) in pending
    ]
    committing: list[Migration] = []  # each one whose COMMIT was sent
    try:
        for migrations, migration in to_apply:
            statements = scripts[migration.chain, migration.version]
            if await _apply_pending(
                db, migrations, migration, statements, lock_timeout, committing=committing
            ):
                applied.append(migration)  # kept as each one commits
    except BaseException as error:  # an error, a cancellation, Ctrl-C: each told alike
        _note_kept(error, taken, applied, committing)
        raise
    finally:  # a migration's SQL may change any table, and a cancelled COMMIT may have taken
        if to_apply:  # effect: the caches must not wait for the feed's notification
            announce_every_table(db)
    return applied


def _note_kept(
    error: BaseException, taken: list[str], applied: list[Migration], committing: list[Migration]
) -> None:
    """Note on what stopped `migrate` what it kept: drift accepted, migrations applied.

    The drift is recorded with the first look, in a transaction of its own; each migration
    commits in its own. A COMMIT ends before a cancellation goes on: one it met may have
    taken effect.
    """
    if taken:
        error.add_note(f"this run recorded, before it, the drift accepted of {', '.join(taken)}")
    if applied:
        names = ", ".join(f"{m.chain.label}{m.name}" for m in applied)
        error.add_note(f"this run applied and kept, before it: {names}")
    if not isinstance(error, Exception) and committing and committing[-1] not in applied:
        met = committing[-1]
        error.add_note(
            f"the cancellation met the commit of {met.chain.label}{met.name}, which may have "
            "taken effect: migration_status (`persistence status`) tells"
        )


async def _apply_pending(
    db: Database,
    migrations: list[Migration],
    migration: Migration,
    statements: tuple[ScriptStatement, ...],
    lock_timeout: float,
    *,
    committing: list[Migration],
) -> bool:
    """Apply one migration under the lock unless another runner did: say whether this one did.

    It is put in `committing` as its COMMIT is sent. An error at its commit (a deferred
    constraint) is a `MigrationError` naming it too.
    """
    chain, run = migration.chain, False
    try:
        async with translate_errors(db), backend_of(db).migration(lock_timeout) as conn:
            applied = await _history(db, conn, chain)
            status = _compare(migrations, applied or [], chain)
            _refuse(status, set())
            if migration not in status.pending:
                return False
            if applied is None:  # the chain's first: its table is undone if it fails
                await _make_history(db, conn, chain)
            await _apply(db, conn, migration, statements)
            run = True
            committing.append(migration)
    except MigrationError as error:
        if error.migration is not None:
            raise
        raise MigrationError(f"{migration.path.name}: {error}", migration=migration.name) from error
    except PersistenceError as error:
        if not run:
            raise
        # a deferred constraint, checked at the commit
        message = f"{migration.path.name}: at its commit: {error}"
        raise MigrationError(message, migration=migration.name) from error
    return True


def _refuse(status: MigrationStatus, accepted: set[int]) -> None:
    """Refuse what stops `migrate` in this chain, and accepting a version never applied."""
    problems = status.problems(accepted)
    if problems:
        first = (
            [d.applied.name for d in status.drifted if d.applied.version not in accepted]
            + [a.name for a in status.newer if a.version not in accepted]
            + [m.name for m in status.out_of_order]
        )
        raise MigrationError("; ".join(problems), migration=first[0] if first else None)
    unknown = accepted - {a.version for a in status.applied}
    if unknown:
        which = "" if status.chain is Chain.PACKAGE else "your "
        raise MigrationError(f"cannot accept {which}migration {min(unknown)}: it was never applied")


async def _accept(
    db: Database, conn: Connection, chain: Chain, migrations: list[Migration], accepted: set[int]
) -> None:
    """Record the accepted drift: an edited file's new checksum, or a deleted file forgotten.

    Each query is called by its name, so that a change to its parameters is a type error here.
    """
    by_version = {m.version: m for m in migrations}
    for version in sorted(accepted):
        migration = by_version.get(version)
        if migration is None and chain is Chain.PACKAGE:
            await db.queries.forget_migration(conn, version=version)
        elif migration is None:
            await db.queries.forget_user_migration(conn, version=version)
        elif chain is Chain.PACKAGE:
            await db.queries.accept_migration_checksum(
                conn, version=version, name=migration.name, checksum=migration.checksum
            )
        else:
            await db.queries.accept_user_migration_checksum(
                conn, version=version, name=migration.name, checksum=migration.checksum
            )


async def _apply(
    db: Database, conn: Connection, migration: Migration, statements: tuple[ScriptStatement, ...]
) -> None:
    started = time.perf_counter()
    await run_statements(
        backend_of(db),
        conn,
        statements,
        sql=migration.sql,
        file_name=migration.path.name,
        name=migration.name,
    )
    applied_at = dt.datetime.now(dt.UTC)
    duration_ms = (time.perf_counter() - started) * 1000
    try:
        # Each query called by name, so that mypy ties each call to its own parameters.
        if migration.chain is Chain.PACKAGE:
            await db.queries.record_migration(
                conn,
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
                applied_at=applied_at,
                duration_ms=duration_ms,
            )
        else:
            await db.queries.record_user_migration(
                conn,
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
                applied_at=applied_at,
                duration_ms=duration_ms,
            )
    except Exception as error:
        said = backend_of(db).translate(error) or error
        # Told "not migrated, run migrate" while migrating, naming no file.
        raise MigrationError(
            f"{migration.path.name}: it ran, but its row in {migration.chain.history} could not "
            f"be written, so nothing of it was kept: {said}. A migration that changes the "
            "session's search_path or role (pg_dump's set_config('search_path', '', false), "
            "a SET ROLE) must set them back before it ends",
            migration=migration.name,
        ) from error


async def _history(db: Database, conn: Connection, chain: Chain) -> list[AppliedMigration] | None:
    """Read the chain's applied migrations: None while its history table is not made.

    A legacy table of our columns is renamed into place first. A table already there is left
    as it is, unwritten: creating one needs the CREATE privilege on the schema (which
    PostgreSQL 15 gives no role but the owner) and a writable transaction, so a role that may
    only read and write rows could not open an up-to-date database.
    """
    backend = backend_of(db)
    if not await backend.table_columns(chain.history, conn):
        if not (chain is Chain.PACKAGE and await _legacy_history(db, conn)):
            return None
        await backend.run_script(conn, [f"ALTER TABLE {_LEGACY_HISTORY} RENAME TO {HISTORY_TABLE}"])
    return await _applied(db, conn, chain)


async def _make_history(db: Database, conn: Connection, chain: Chain) -> None:
    """Create the chain's history table, which `_history` found missing.

    It is made in the transaction of the chain's first migration: a migration that fails (the
    first of another program's database, whose tables are in the way) leaves no table behind.
    """
    path = history_ddl(db.engine, chain)
    try:
        ddl = path.read_text(encoding="utf-8")
    except OSError as error:  # out of descriptors, say: the package's own file is there
        raise MigrationError(f"{path} cannot be read: {error.strerror or error}") from None
    statements = split_script(db.engine, ddl)
    await backend_of(db).run_script(conn, [statement.text for statement in statements])


def history_ddl(engine: Engine, chain: Chain) -> Path:
    """Give the file that creates `chain`'s history table on `engine` (sql/history/)."""
    suffix = "_user" if chain is Chain.USER else ""
    return sql_root() / "history" / f"{engine.value}{suffix}.sql"


async def _applied(db: Database, conn: Connection, chain: Chain) -> list[AppliedMigration]:
    package = chain is Chain.PACKAGE
    listed = (
        db.queries.list_applied_migrations if package else db.queries.list_applied_user_migrations
    )
    return [
        AppliedMigration(r.version, r.name, r.checksum, r.applied_at, r.duration_ms, chain)
        for r in await listed(conn)
    ]
