"""A tiny migration runner: numbered SQL files, applied once each, in order, with a history.

- Each migration and its history row commit in one transaction; a failing one leaves the
  schema and the history as they were, and the error names the file.
- The history keeps a checksum of each file (line endings normalised). An applied file that
  was edited or deleted stops the run until the change is accepted with `accept=`.
- Two runners started at once apply each migration exactly once: on SQLite each migration
  takes the write lock (BEGIN IMMEDIATE) before it reads the history; on PostgreSQL the
  whole run holds an advisory lock, taken with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import aiosqlite
import asyncpg
import attrs

from persistence._loader import sql_root
from persistence.database import Database, Engine, connection, translate_errors
from persistence.exceptions import DatabaseError, MigrationError, PersistenceError

if TYPE_CHECKING:
    from persistence._sqltypes import Connection

__all__ = [
    "AppliedMigration",
    "Drift",
    "Migration",
    "MigrationStatus",
    "discover_migrations",
    "migrate",
    "migration_status",
    "migrations_folder",
]

_FILE_NAME: Final = re.compile(r"(?P<version>\d{4,})_(?P<slug>[a-z0-9_]+)\.sql")
_LOCK_KEY: Final = 0x70657273  # "pers": the advisory lock every runner of this package takes


@attrs.frozen
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    path: Path
    sql: str
    checksum: str


@attrs.frozen
class AppliedMigration:
    """One row of the history."""

    version: int
    name: str
    checksum: str
    applied_at: dt.datetime
    duration_ms: float


@attrs.frozen
class Drift:
    """An applied migration whose file was edited (`migration` set) or deleted (None)."""

    applied: AppliedMigration
    migration: Migration | None

    def describe(self) -> str:
        """Say what changed, naming the file."""
        if self.migration is None:
            return f"migration {self.applied.name} was applied but its file is gone"
        return f"{self.migration.path.name} was edited after it was applied (checksum differs)"


@attrs.frozen
class MigrationStatus:
    """Where a database stands against the migration files."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]
    drifted: tuple[Drift, ...]

    @property
    def up_to_date(self) -> bool:
        """Nothing pending and nothing drifted."""
        return not self.pending and not self.drifted


def checksum(text: str) -> str:
    """SHA-256 of a file's text with line endings normalised, so a checkout's CRLF is no drift."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode()).hexdigest()


def migrations_folder(engine: Engine) -> Path:
    """Return the folder of one engine's packaged migrations."""
    return sql_root() / "migrations" / engine.value


def discover_migrations(folder: Path) -> list[Migration]:
    """Read every `NNNN_slug.sql` of a folder, in version order."""
    if not folder.is_dir():
        raise MigrationError(f"migrations folder {folder} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name}: migration files are named NNNN_slug.sql (lower-case slug)",
                migration=path.name,
            )
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[version].path.name} share version {version}",
                migration=path.name,
            )
        text = path.read_text(encoding="utf-8")
        migrations[version] = Migration(version, path.stem, path, text, checksum(text))
    return [migrations[version] for version in sorted(migrations)]


async def migration_status(db: Database, folder: Path | None = None) -> MigrationStatus:
    """Compare the history with the files: what is applied, pending and drifted.

    Only reads: a database that was never migrated has everything pending.
    """
    migrations = discover_migrations(folder or migrations_folder(db.engine))
    try:
        async with connection(db) as conn:
            applied = await _applied(db, conn)
    except DatabaseError as error:
        if not _no_history_table(error.__cause__):
            raise
        applied = []
    return _compare(migrations, applied)


def _no_history_table(cause: BaseException | None) -> bool:
    """Tell whether a failed read of the history failed because it has no table yet."""
    if isinstance(cause, asyncpg.UndefinedTableError):
        return True
    return isinstance(cause, sqlite3.OperationalError) and "no such table" in str(cause)


def _compare(migrations: list[Migration], applied: list[AppliedMigration]) -> MigrationStatus:
    by_version = {m.version: m for m in migrations}
    done = {a.version for a in applied}
    drifted = tuple(
        Drift(a, by_version.get(a.version))
        for a in applied
        if a.version not in by_version or by_version[a.version].checksum != a.checksum
    )
    pending = tuple(m for m in migrations if m.version not in done)
    return MigrationStatus(tuple(applied), pending, drifted)


async def migrate(
    db: Database,
    folder: Path | None = None,
    *,
    accept: Iterable[int] = (),
    lock_timeout: float = 60.0,
) -> list[Migration]:
    """Apply every pending migration in order; return the ones this call applied.

    `accept` lists versions whose drift is accepted: an edited file's new checksum is
    recorded without running it again; a deleted file's history row is removed.
    """
    if db.in_transaction:
        raise MigrationError("migrate() opens its own transactions: call it outside transaction()")
    migrations = discover_migrations(folder or migrations_folder(db.engine))
    accepted = set(accept)
    applied_now: list[Migration] = []
    async with connection(db) as conn, _run_lock(db, conn, lock_timeout):
        await _ensure_history(db, conn)
        _refuse_drift(_compare(migrations, await _applied(db, conn)), accepted)
        if accepted:
            async with _migration_transaction(conn, "accepting drift"):
                await _accept(db, conn, migrations, accepted)
        for migration in migrations:
            async with _migration_transaction(conn, migration.path.name):
                status = _compare(migrations, await _applied(db, conn))
                _refuse_drift(status, set())
                if migration not in status.pending:
                    continue
                await _apply(db, conn, migration)
            applied_now.append(migration)
    return applied_now


def _refuse_drift(status: MigrationStatus, accepted: set[int]) -> None:
    drifted = [d for d in status.drifted if d.applied.version not in accepted]
    if drifted:
        raise MigrationError(
            "; ".join(d.describe() for d in drifted)
            + ". Restore the file, or accept the change with --accept VERSION.",
            migration=drifted[0].applied.name,
        )


async def _accept(
    db: Database, conn: Connection, migrations: list[Migration], accepted: set[int]
) -> None:
    by_version = {m.version: m for m in migrations}
    applied = {a.version for a in await _applied(db, conn)}
    for version in sorted(accepted):
        if version not in applied:
            raise MigrationError(f"cannot accept migration {version}: it was never applied")
        migration = by_version.get(version)
        if migration is None:
            await db.queries.forget_migration(conn, version=version)
        else:
            await db.queries.accept_migration_checksum(
                conn, version=version, name=migration.name, checksum=migration.checksum
            )


async def _apply(db: Database, conn: Connection, migration: Migration) -> None:
    started = time.perf_counter()
    try:
        if isinstance(conn, aiosqlite.Connection):
            for statement in split_sqlite_statements(migration.sql):
                await conn.execute(statement)
        else:
            await conn.execute(migration.sql)
    except (sqlite3.Error, asyncpg.PostgresError, PersistenceError) as error:
        raise MigrationError(f"{migration.path.name}: {error}", migration=migration.name) from error
    await db.queries.record_migration(
        conn,
        version=migration.version,
        name=migration.name,
        checksum=migration.checksum,
        applied_at=dt.datetime.now(dt.UTC),
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def split_sqlite_statements(script: str) -> list[str]:
    """Split a script into statements, so they can run inside one transaction.

    sqlite3's executescript() commits first, which would break the one-transaction rule.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if _has_code(pending):
                statements.append(pending.strip())
            pending = ""
    if _has_code(pending):
        raise MigrationError(
            f"the script ends in an incomplete statement: {pending.strip()[:80]!r}"
        )
    return statements


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


async def _ensure_history(db: Database, conn: Connection) -> None:
    """Create the history table if it is missing (its DDL is in sql/history/)."""
    ddl = (sql_root() / "history" / f"{db.engine.value}.sql").read_text(encoding="utf-8")
    async with translate_errors():
        if isinstance(conn, aiosqlite.Connection):
            for statement in split_sqlite_statements(ddl):
                await conn.execute(statement)
        else:
            await conn.execute(ddl)


async def _applied(db: Database, conn: Connection) -> list[AppliedMigration]:
    return [
        AppliedMigration(
            version=row["version"],
            name=row["name"],
            checksum=row["checksum"],
            applied_at=row["applied_at"],
            duration_ms=row["duration_ms"],
        )
        async for row in db.queries.list_applied_migrations(conn)
    ]


@contextlib.asynccontextmanager
async def _migration_transaction(conn: Connection, name: str) -> AsyncIterator[None]:
    """One transaction, holding the write lock from its start on SQLite."""
    if isinstance(conn, aiosqlite.Connection):
        async with translate_errors():
            await conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        async with translate_errors():
            await conn.execute("COMMIT")
        return
    async with translate_errors():
        transaction = conn.transaction()
        await transaction.start()
    try:
        yield
    except BaseException:
        await transaction.rollback()
        raise
    try:
        await transaction.commit()
    except asyncpg.PostgresError as error:
        raise MigrationError(f"{name}: {error}", migration=name) from error


@contextlib.asynccontextmanager
async def _run_lock(db: Database, conn: Connection, wait: float) -> AsyncIterator[None]:
    """On PostgreSQL, hold the runners' advisory lock for the whole run."""
    if db.engine is not Engine.POSTGRES or isinstance(conn, aiosqlite.Connection):
        yield
        return
    pg: asyncpg.Connection[asyncpg.Record] = conn  # type: ignore[assignment]  # a pooled proxy acts as one
    deadline = time.monotonic() + wait
    async with translate_errors():
        while not await pg.fetchval("SELECT pg_try_advisory_lock($1)", _LOCK_KEY):
            if time.monotonic() > deadline:
                raise DatabaseError(f"another migration runner held the lock for over {wait:g}s")
            await asyncio.sleep(0.05)
    try:
        yield
    finally:
        async with translate_errors():
            await pg.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
