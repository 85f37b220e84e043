"""Backup, restore, and the copy of a whole database into another, of either engine.

A copy reads one committed state of the source and writes every row of the package's tables
into an empty, migrated target in one transaction, id counters carried over; a backup is a new
SQLite file that appears whole or not at all. docs/BACKUP.md says how each is done and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from persistence._backup_names import file_named, new_backup_file, shown_name
from persistence._cancelling import (
    finish_then_cancel,
    noted_if_cancelled,
    stopped_if_cancelled,
)
from persistence._database_value import backend_of, require_database
from persistence._driver_errors import translate_errors
from persistence._files.content import hash_fd
from persistence._files.locks import locked_folder, working_folder
from persistence._files.paths import (
    NEW_FLAGS,
    NO_FOLLOW_ERRORS,
    kind_of,
    open_regular,
    owned,
    truncate,
)
from persistence._guards import MAX_INT, argument, at_least
from persistence._loans import borrow
from persistence._transfer import (
    COPIED_TABLES,
    ID_TABLES,
    LEFT_TABLES,
    PACKAGE_COLUMNS,
    PACKAGE_TABLES,
    PAGE_SIZE,
    check_moved,
    move_rows,
    package_columns,
    sizes_of,
)
from persistence.database import Database, Engine, connect, read_file_as_is, transaction
from persistence.exceptions import DatabaseError, NotAFileError, ValidationError
from persistence.migrations import migrate, migration_status

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence._interface import Connection

__all__ = [
    "COPIED_TABLES",
    "LEFT_TABLES",
    "PACKAGE_COLUMNS",
    "PACKAGE_TABLES",
    "CopyReport",
    "backup_database",
    "copy_database",
    "restore_database",
]


@attrs.frozen
class CopyReport:
    """What a copy, a backup or a restore moved: the rows of each table, and its time."""

    source: str
    """The database or backup file read, its password hidden."""
    target: str
    """The database or backup file written, its password hidden."""
    runs: int
    test_results: int
    result_artifacts: int
    """The links from results to their counterexamples' files (input, expected, actual)."""
    config_entries: int
    file_records: int
    seconds: float

    @property
    def rows(self) -> int:
        """Every row moved."""
        return sum(self.tables().values())

    def tables(self) -> dict[str, int]:
        """Give the rows moved, by table, in the order they were written."""
        return {table: getattr(self, table) for table in COPIED_TABLES}


async def copy_database(
    source: Database,
    target: Database,
    *,
    page_size: int = PAGE_SIZE,
    skip_user_tables: bool = False,
) -> CopyReport:
    """Copy every row of the package's tables from `source` into the empty `target`.

    Both must be migrated to this package's version; the target must hold no row. The copy
    is one transaction of the target: all of it or none. A source holding tables of the
    user's own (made by their own migrations) is refused, naming them, unless
    `skip_user_tables` says to leave them behind. See the module's docstring.
    """
    _check_database("source", source)
    _check_database("target", target)
    page_size = at_least("copy", "page_size", page_size, 1, MAX_INT)
    argument("copy", "skip_user_tables", bool, skip_user_tables)
    with noted_if_cancelled() as kept:
        return await _copy(source, target, page_size, skip_user_tables=skip_user_tables, kept=kept)


async def _copy(
    source: Database,
    target: Database,
    page_size: int,
    *,
    skip_user_tables: bool,
    before_copy: Callable[[Connection], Awaitable[None]] | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
    checked: bool = True,
    kept: list[str] | None = None,
) -> CopyReport:
    """`copy_database` once its arguments are checked; `before_commit` may still undo it.

    `before_copy` looks at the source's snapshot, once the target is known to take the copy.

    Unless `checked` is False (a backup keeps what the database holds, as SQLite's page copy
    does), every row passes a read's checks before it is written.
    """
    started = time.perf_counter()
    await _require_migrated(source, "the source")
    await _require_migrated(target, "the target")
    await _require_two(source, target)
    if not skip_user_tables:
        await _refuse_user_tables(source)
    await _require_empty(target)
    noted = [] if kept is None else kept  # what a cancellation from here on says was kept
    # Read one committed state of the source, its errors translated.
    async with translate_errors(source), backend_of(source).snapshot() as reading:
        if before_copy is not None:
            await before_copy(reading)
        counters = await backend_of(source).id_counters(reading, ID_TABLES)
        expected = sizes_of(await source.queries.copy_table_sizes(reading))
        async with transaction(target) as tx:
            async with borrow(tx) as conn:
                await backend_of(tx).hold_against_writers(conn, COPIED_TABLES)
            await _require_empty(tx)  # again, now that the tables are held against writers
            # Indexes are built again over the rows, after them: cheaper than row by row.
            async with borrow(tx) as conn:
                indexes = await backend_of(tx).drop_indexes(conn, COPIED_TABLES)
            moved, last_ids = await move_rows(source, reading, tx, page_size, checked=checked)
            check_moved(moved, expected)
            async with borrow(tx) as conn:
                rows = sum(moved.values())
                await backend_of(tx).create_indexes(conn, indexes, rows=rows)
                await backend_of(tx).set_id_counters(
                    conn, {t: max(counters.get(t, 0), last_ids[t]) for t in ID_TABLES}
                )
            if before_commit is not None:
                await before_commit()
            noted.append(
                f"the cancellation met the commit of the copy into {target.url}, which may "
                "have taken effect: the target holds every row or none"
            )
        noted.append(f"the copy into {target.url} had committed: it holds every row")
    return _report(source.url, target.url, moved, started)


async def backup_database(
    db: Database, path: str | os.PathLike[str], *, skip_user_tables: bool = False
) -> CopyReport:
    """Write a backup of `db` as a new SQLite file at `path`; see the module's docstring.

    `path` must not exist, and its folder must. Nothing is left behind on failure. A SQLite
    file is copied whole, the user's own tables with it; given `skip_user_tables`, its rows are
    copied as a PostgreSQL database's are, without them. A PostgreSQL database holding tables
    of the user's is refused, naming them, unless `skip_user_tables` is given.
    """
    started = time.perf_counter()
    _check_database("db", db)
    target = new_backup_file(path)
    argument("backup", "skip_user_tables", bool, skip_user_tables)
    await _require_migrated(db, "the database")
    if db.engine is Engine.POSTGRES and not skip_user_tables:
        await _refuse_user_tables(db)
    with noted_if_cancelled() as kept:
        async with working_folder(functools.partial(_temp_folder, target)) as folder:
            made = folder.absolute() / "backup.db"  # never read as a URI: `./file:d/x.bak`
            if db.engine is Engine.SQLITE and not skip_user_tables:  # the file, page by page
                async with translate_errors(db):
                    await backend_of(db).backup_file(str(made))
                async with connect(made, create=False) as done, borrow(done) as conn:
                    sizes = sizes_of(await done.queries.copy_table_sizes(conn))
            else:  # the package's rows alone, as a copy moves them: no table, view or trigger else
                async with connect(made.with_name("working.db")) as working:
                    with _unnoted():  # what migrate notes is of this database, thrown away
                        await migrate(working)
                    # Arguments checked above; its rows as they are, refused later by a restore
                    copied = await _copy(
                        db, working, PAGE_SIZE, skip_user_tables=True, checked=False
                    )
                    sizes = copied.tables()
                    async with translate_errors(working):
                        await backend_of(working).backup_file(str(made))
            publishing = asyncio.ensure_future(asyncio.to_thread(_publish, made, target))
            placed = f"the backup {shown_name(target)!r} was in place, whole"
            publishing.add_done_callback(functools.partial(_note_if_done, kept, placed))
            await finish_then_cancel(publishing)  # told once done
    return _report(db.url, shown_name(target), sizes, started)


async def restore_database(
    db: Database,
    path: str | os.PathLike[str],
    *,
    page_size: int = PAGE_SIZE,
    skip_user_tables: bool = False,
) -> CopyReport:
    """Copy the backup file at `path` into `db`, which must be migrated and empty.

    All or nothing, as `copy_database`, and like it refuses a file holding tables of the
    user's own unless `skip_user_tables` is given; the file is only read, and no file is
    made beside it (a WAL-mode file, read-only, would get a `-wal` and a `-shm` file). SQLite
    reads a private copy of the file checked, unless a connection has it open: see
    `_checked_source`.
    """
    _check_database("db", db)
    file = Path(file_named("restore", path))
    page_size = at_least("restore", "page_size", page_size, 1, MAX_INT)  # before any file opens
    argument("restore", "skip_user_tables", bool, skip_user_tables)
    with noted_if_cancelled() as kept:  # a cancel at the folder's removal, once committed
        return await _restore(db, file, page_size, skip_user_tables=skip_user_tables, kept=kept)


async def _restore(
    db: Database, file: Path, page_size: int, *, skip_user_tables: bool, kept: list[str]
) -> CopyReport:
    """`restore_database` once its arguments are checked; `kept` is `_copy`'s."""
    async with working_folder(_restore_folder) as folder:
        stop = threading.Event()  # a cancel stops the copy between two pieces, then waits
        checking = asyncio.to_thread(_checked_source, file, folder, stop.is_set)
        read, before = await stopped_if_cancelled(checking, stop.set)

        async def unchanged() -> None:
            # Read immutable (no -wal or -shm beside it), the file had no lock to keep a writer
            # out: one that wrote meanwhile changed it, or left its -wal beside it.
            if before[1] == (False, False) and await asyncio.to_thread(_file_state, file) != before:
                raise DatabaseError(
                    f"the backup file {str(file)!r} changed while it was read: nothing was restored"
                )

        async with contextlib.AsyncExitStack() as stack:
            try:  # its folder left as it was
                backup = await stack.enter_async_context(read_file_as_is(read))
            except DatabaseError as error:  # named by the file given, not the private copy
                cause = error.__cause__
                if cause is None or not read.is_relative_to(folder):
                    raise
                raise DatabaseError(
                    f"cannot read the backup file {str(file)!r} as a SQLite database: {cause}"
                ) from cause
            named = attrs.evolve(backup, url=shown_name(file))  # the file given, not the copy

            async def whole(reading: Connection) -> None:
                # A damaged index could hide rows from the paging and from the count alike.
                try:
                    async with translate_errors(backup):
                        damage = await backend_of(backup).integrity_problems(reading)
                except DatabaseError as error:  # damaged past what the check can walk
                    raise DatabaseError(
                        f"the backup file {str(file)!r} is damaged, so nothing was restored: "
                        f"{error}"
                    ) from error
                if damage:
                    raise DatabaseError(
                        f"the backup file {str(file)!r} is damaged, so nothing was restored: "
                        f"SQLite's integrity check says {'; '.join(damage)}"
                    )

            return await _copy(
                named,
                db,
                page_size,
                skip_user_tables=skip_user_tables,
                before_copy=whole,
                before_commit=unchanged,
                kept=kept,
            )


FileState = tuple[tuple[int, int, int, int], tuple[bool, bool]]


def _file_state(file: Path) -> FileState | None:
    """Give the file's identity, size and times, and whether a `-wal` and `-shm` are beside it."""
    real = _real(file)
    seen = _stat_or_none(real)
    return None if seen is None else (_state_of(seen), _sidecars(real))


def _real(file: Path) -> Path:
    """Follow every symlink on the path that can be; one left is a loop (or newly put there)."""
    return Path(os.path.realpath(file))  # Path.resolve raises RuntimeError on a loop


def _state_of(seen: os.stat_result) -> tuple[int, int, int, int]:
    return seen.st_ino, seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns


def _sidecars(real: Path) -> tuple[bool, bool]:
    """Whether a `-wal` and a `-shm` are beside the file: if so, a connection may have it open."""
    try:  # a name too long to look at, or none (`/`): none is there, the open says why
        beside = tuple(real.with_name(f"{real.name}{end}").exists() for end in ("-wal", "-shm"))
    except (OSError, ValueError):
        return False, False
    return beside[0], beside[1]


def _restore_folder() -> tuple[str, int]:
    """Make a private folder (mode 0700, locked while in use) for the copy a restore reads."""
    return locked_folder(tempfile.gettempdir(), ".persistence-restore.", ".partial")


def check_backup_file(file: Path) -> None:
    """Refuse a path that holds no backup file, saying what is there, before a database opens.

    The restore checks it again, as it reads it.
    """
    said = f"no backup file at {str(file)!r}"
    os.close(_open_source(_real(file), said))


def _checked_source(file: Path, folder: Path, stop: Callable[[], bool]) -> tuple[Path, FileState]:
    """Check the backup file, and give the file for SQLite to read: that very file, copied.

    Opened here, no link followed and no wait on a FIFO, checked to be a regular file, then
    copied into `folder` (until `stop()`): whatever is put at the path after the check is
    never read. A file in use (its `-wal` or `-shm` beside it) is read in place, through
    SQLite's locks: closing a descriptor of this process on it would drop theirs.
    """
    real = _real(file)
    said = f"no backup file at {str(file)!r}"
    sidecars = _sidecars(real)
    if sidecars != (False, False):
        seen = _stat_or_none(real)
        if seen is None or not stat.S_ISREG(seen.st_mode):
            raise DatabaseError(
                f"{said}: it {'is missing' if seen is None else kind_of(seen.st_mode)}"
            )
        return real, (_state_of(seen), sidecars)
    with owned(_open_source(real, said)) as fd:
        _refuse_hot_journal(file, real)  # once the file is known to be there
        seen = os.fstat(fd)
        copy = folder / "backup.db"
        try:
            with owned(os.open(copy, NEW_FLAGS, 0o600)) as sink:
                hash_fd(fd, sink, source=str(file), stopped=stop)  # an error names `file`
        except OSError as error:  # writing the copy: a full $TMPDIR, say
            raise DatabaseError(
                f"cannot copy the backup file {str(file)!r} into {str(folder)!r} to read it: "
                f"{error.strerror}"
            ) from error
        if _state_of(os.fstat(fd)) != _state_of(seen):
            raise DatabaseError(
                f"the backup file {str(file)!r} changed while it was read: nothing was restored"
            )
    _refuse_hot_journal(file, real)  # a writer that began meanwhile
    return copy, (_state_of(seen), sidecars)


_JOURNAL_MAGIC: Final = bytes.fromhex("d9d505f920a163d7")
"""What a rollback journal starts with while it holds a transaction's pages: SQLite's own."""


def _refuse_hot_journal(file: Path, real: Path) -> None:
    """Refuse a file whose rollback journal holds a transaction: the file has its pages.

    A writer spills its changes into the file itself before it commits, the pages they replace
    kept in FILE-journal. A copy read alone, without its locks or journal, would be a mix of
    committed and uncommitted pages. An empty journal, or one whose header is zeroed (the
    PERSIST journal mode), holds none.
    """
    journal = real.with_name(f"{real.name}-journal")
    try:  # never a wait on a FIFO put there
        with owned(open_regular(None, str(journal), journal.name)) as fd:
            head = os.read(fd, len(_JOURNAL_MAGIC))
    except FileNotFoundError:
        return
    except (OSError, NotAFileError) as error:
        why = error.reason if isinstance(error, NotAFileError) else error.strerror
        raise DatabaseError(
            f"cannot read {str(journal)!r}, the journal beside the backup file {str(file)!r}: "
            f"{why}; nothing was restored"
        ) from error
    if head == _JOURNAL_MAGIC:
        raise DatabaseError(
            f"the backup file {str(file)!r} has changes it never committed: its journal "
            f"{journal.name!r} holds a transaction that a writer began and did not end. Open "
            "the file once with sqlite3, which rolls them back, then restore; nothing was restored"
        )


_LOOP: Final = "is, or leads through, a symbolic link loop (or a link put in its place meanwhile)"


def _open_source(real: Path, said: str) -> int:
    """Open the backup file by `open_regular`, its refusals told as a restore tells them."""
    try:
        return open_regular(None, str(real), str(real))
    except NotAFileError as error:  # a symlink here is one `_real` could not follow
        why = _LOOP if error.reason == kind_of(stat.S_IFLNK) else error.reason
        raise DatabaseError(f"{said}: it {why}") from error
    except FileNotFoundError as error:
        raise DatabaseError(f"{said}: it is missing") from error
    except NotADirectoryError as error:  # `notes.txt/app.db`: told by the stat, before the open
        raise DatabaseError(f"{said}: it is missing: a part of its path is no folder") from error
    except OSError as error:
        looped = error.errno in NO_FOLLOW_ERRORS  # ELOOP, or FreeBSD's EMLINK, on a symlink
        why = _LOOP if looped else f"cannot be opened: {error.strerror}"
        raise DatabaseError(f"{said}: it {why}") from error


def _stat_or_none(file: Path) -> os.stat_result | None:
    try:
        return file.stat()
    except OSError:
        return None


@contextlib.contextmanager
def _unnoted() -> Iterator[None]:
    """Drop the notes of what fails in the block: they tell of a database thrown away.

    A backup's working database is migrated, then filled: a cancellation in its migrate noted
    the migrations "applied and kept", or a commit it met, and the command printed them of a
    backup that kept nothing.
    """
    try:
        yield
    except BaseException as error:
        with contextlib.suppress(AttributeError):
            del error.__notes__
        raise


def _note_if_done(kept: list[str], note: str, done: asyncio.Future[None]) -> None:
    """Put `note` in `kept` once `done` has ended well."""
    if not done.cancelled() and done.exception() is None:
        kept.append(note)


def _report(source: str, target: str, sizes: dict[str, int], started: float) -> CopyReport:
    """Say what moved: the rows of each copied table, and the time since `started`."""
    tables = {table: sizes[table] for table in COPIED_TABLES}
    return CopyReport(source, target, **tables, seconds=time.perf_counter() - started)


def _check_database(name: str, db: object) -> None:
    """Refuse what is not an open Database, or one bound to a block of its caller's."""
    block = require_database(db, name).block
    if block is not None:
        reason = f"is bound to a {block} block: a copy opens its own snapshot and transaction"
        raise ValidationError("copy", name, reason)


async def _require_migrated(db: Database, which: str) -> None:
    """Refuse a database whose package migrations are not exactly this version's."""
    try:
        status = await migration_status(db)
    except (DatabaseError, ValidationError) as error:  # a damaged file, a connection lost
        msg = f"{which} {db.url}: reading its history of migrations failed: {error}"
        raise DatabaseError(msg) from error
    if status.newer:
        raise DatabaseError(
            f"{which} {db.url} was migrated by a newer version of this package "
            f"({status.newer[-1].name}): upgrade the package"
        )
    if status.pending or status.out_of_order:
        done = f"{len(status.pending)} migration(s) behind" if status.applied else "not migrated"
        raise DatabaseError(
            f"{which} {db.url} is {done}: run `persistence migrate --database URL` on it first"
        )
    if status.drifted:  # its schema may not be this version's, whatever its versions say
        raise DatabaseError(
            f"{which} {db.url} does not hold this version's migrations: "
            f"{status.drifted[0].describe()}; `persistence status` says what differs"
        )


async def _require_two(source: Database, target: Database) -> None:
    """Refuse a target that is the source (by any URL) before it waits on its own locks."""
    names = []
    for db in (source, target):
        async with borrow(db) as conn:
            names.append(await backend_of(db).database_identity(conn))
    if names[0] is not None and names[0] == names[1]:
        raise DatabaseError(
            f"the source {source.url} and the target {target.url} are one database: a copy "
            "or a restore writes into another one, migrated and empty"
        )


async def _refuse_user_tables(db: Database) -> None:
    """Refuse a source holding tables or columns that the package did not make, naming them.

    A copy moves the package's alone: the user's own, made by their own migrations, would be
    left behind without a word. Their SQL, and so their types, are the user's, per engine.
    """
    backend = backend_of(db)
    async with borrow(db) as conn:
        tables = await backend.table_names(conn)
        added = [
            f"{table}.{column}"
            for table in COPIED_TABLES
            for column in await backend.table_columns(table, conn)
            if column not in package_columns(db.engine, table)
        ]
    theirs = [table for table in tables if table not in PACKAGE_TABLES]
    for what, named in (("tables", theirs), ("columns in the package's tables", added)):
        if named:
            raise DatabaseError(
                f"{db.url} holds {what} of your own migrations, which a copy does not move: "
                f"{', '.join(named)}. Copy them yourself, and pass skip_user_tables=True "
                "(--skip-user-tables) to copy the package's tables without them"
            )


async def _require_empty(db: Database) -> None:
    """Refuse a target that holds any row of the copied tables, naming them."""
    async with borrow(db) as conn:
        sizes = await db.queries.copy_table_sizes(conn)
    full = {t: n for t, n in sizes_of(sizes).items() if n}
    if full:
        held = ", ".join(f"{table} holds {count} rows" for table, count in full.items())
        raise DatabaseError(
            f"the target {db.url} is not empty ({held}): a copy or a restore writes "
            "only into an empty, migrated database"
        )


def _temp_folder(target: Path) -> tuple[str, int]:
    """Make the working folder beside `target`, on its file system, so that a link can publish.

    It is locked while the backup works; the folders of backups killed before they ended are
    removed first.
    """
    # The name's start only: with the random part and the suffix, a long one would not fit.
    try:
        return locked_folder(str(target.parent), f".{truncate(target.name, 100)}.", ".partial")
    except OSError as error:  # named by the backup asked for, not the folder beside it
        raise OSError(error.errno, error.strerror, str(target)) from None


def _publish(made: Path, target: Path) -> None:
    """Put the finished file in place whole: synced, then linked, never over another file."""
    with made.open("rb") as file:
        os.fsync(file.fileno())
    appeared = f"{str(target)!r} appeared meanwhile: a backup never overwrites a file"
    try:
        os.link(made, target, follow_symlinks=False)  # its own file, never a link's target
    except FileExistsError:
        raise ValidationError("backup", "path", appeared) from None
    except OSError as error:
        if error.errno not in {errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV}:
            raise
        # No hard links on this file system: rename, having checked once more.
        if target.exists():
            raise ValidationError("backup", "path", appeared) from None
        made.replace(target)
    with owned(os.open(target.parent, os.O_RDONLY)) as folder:
        os.fsync(folder)
