"""Backup, restore, and the copy of a whole database into another, of either engine.

- `copy_database(source, target)` copies every row of the package's tables (runs,
  test_results, result_artifacts, config_entries, file_records), each with its id or key, from
  one database into another: SQLite or PostgreSQL, either way.
  - The source is read as one committed state while its writers go on: on SQLite, a copy
    made by the online backup API; on PostgreSQL, a REPEATABLE READ snapshot.
  - The target must be migrated to this package's version, as the source is, and must be
    empty: both are checked before anything is written.
  - It is all or nothing: every row is written in one transaction of the target (COPY on
    PostgreSQL, multi-row INSERTs on SQLite), so a copy that fails, is cancelled or is killed
    leaves the target empty.
  - Each id counter is carried over (PostgreSQL's sequences by `setval`, SQLite's
    `sqlite_sequence`), so the target never hands out an id the source had used.
  - The search index fills itself as rows arrive (FTS5's triggers, PostgreSQL's generated
    `search_vector`). The target's migration history is its own, written by its own migrate.
  - On PostgreSQL the target's secondary indexes (the GIN ones above all) are dropped inside
    the copy's transaction and built again after the rows, each in one sorted pass: far
    cheaper than entering each row, and undone with the rest by a rollback.
- `backup_database(db, path)` writes a backup: a new SQLite file of this package's schema,
  holding one committed state of the database and its migration history. A SQLite database
  is copied page by page by the online backup API; a PostgreSQL one is copied, row by row,
  from a REPEATABLE READ snapshot. The file appears whole or not at all: it is written in a
  temporary folder beside `path` and linked into place, never over an existing file.
- `restore_database(db, path)` copies a backup file into an empty, migrated database.

The tables of a user's own migrations are not copied: their SQL is the user's, per engine. A
source holding any is refused, naming them, unless `skip_user_tables=True` says to leave them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, cast

import attrs

from persistence._guards import argument, at_least, of_type
from persistence._loop import map_in_slices
from persistence.database import (
    Database,
    Engine,
    backend_of,
    close_database,
    connection,
    open_database,
    transaction,
    translate_errors,
)
from persistence.exceptions import DatabaseError, ValidationError
from persistence.migrations import migrate, migration_status

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import (
        ConfigEntriesRow,
        CopyTableSizesRow,
        CopyWriteConfigEntriesParams,
        CopyWriteFileRecordsParams,
        CopyWriteResultArtifactsParams,
        CopyWriteRunsParams,
        CopyWriteTestResultsParams,
        FileRecordsRow,
        ResultArtifactsRow,
        RunsRow,
        TestResultsRow,
    )

__all__ = [
    "COPIED_TABLES",
    "LEFT_TABLES",
    "PACKAGE_TABLES",
    "CopyReport",
    "backup_database",
    "copy_database",
    "restore_database",
]

COPIED_TABLES: Final = (
    "runs",
    "test_results",
    "result_artifacts",
    "config_entries",
    "file_records",
)
"""The tables a copy moves, in the order it writes them: runs before the results that name
them, results before the links to their counterexamples' files."""

_ID_TABLES: Final = ("runs", "test_results", "config_entries", "file_records")
"""The copied tables with an id counter: result_artifacts has none, its key is (result_id, role)."""

LEFT_TABLES: Final = frozenset(
    {
        # Each database's own migration history, written by its own migrate.
        "persistence_migrations",
        "persistence_user_migrations",
        # SQLite's FTS5 index of the results, filled by its triggers as the results arrive:
        # the virtual table, its shadow tables, and the text its triggers keep a moment.
        "test_results_fts",
        "test_results_fts_config",
        "test_results_fts_data",
        "test_results_fts_docsize",
        "test_results_fts_idx",
        "test_results_fts_replaced",
    }
)
"""The package's tables that a copy does not move, because the target makes their rows itself."""

PACKAGE_TABLES: Final = frozenset({*COPIED_TABLES, *LEFT_TABLES})
"""Every table the package's migrations make, on either engine: any other is the user's."""

PAGE_SIZE: Final = 5000
"""Rows read, and written, at a time."""

_R = TypeVar("_R")
_K = TypeVar("_K")
_I = TypeVar("_I", bound="_Row")
_P = TypeVar("_P")


class _Row(Protocol):
    """A generated row type: a named tuple with an id."""

    @property
    def id(self) -> int: ...


_BEFORE_EVERY_ID: Final = -(2**63)
"""Where paging starts: the least 64-bit id, so that ids of 0 or below written by plain SQL
are copied too. A row at exactly this id is still missed, and the count check refuses it."""


def _id_of(row: _Row) -> int:
    return row.id


def _pipe_by_id(
    source: Database,
    page_size: int,
    read_after: Callable[[int], Awaitable[list[_I]]],
    write: Callable[[list[_I]], Awaitable[None]],
) -> Awaitable[tuple[int, int]]:
    """Copy a table with an id, page after page in id order: `_pipe`."""
    return _pipe(source, read_after, write, key=_id_of, first=_BEFORE_EVERY_ID, page_size=page_size)


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
    started = time.perf_counter()
    _check_database("source", source)
    _check_database("target", target)
    page_size = at_least("copy", "page_size", page_size, 1)
    argument("copy", "skip_user_tables", bool, skip_user_tables)
    await _require_migrated(source, "the source")
    await _require_migrated(target, "the target")
    if not skip_user_tables:
        await _refuse_user_tables(source)
    await _require_empty(target)
    async with _snapshot(source) as reading:
        async with translate_errors(source):
            counters = await backend_of(source).id_counters(reading, _ID_TABLES)
            expected = _sizes(await source.queries.copy_table_sizes(reading))
        async with transaction(target) as tx:
            await _require_empty(tx)  # again, now that the target's write lock is held
            # Indexes are built again over the rows, after them: cheaper than row by row.
            async with connection(tx) as conn:
                indexes = await backend_of(tx).drop_indexes(conn, COPIED_TABLES)
            moved, last_ids = await _move_rows(source, reading, tx, page_size)
            _check_moved(moved, expected)
            async with connection(tx) as conn:
                rows = sum(moved.values())
                await backend_of(tx).create_indexes(conn, indexes, rows=rows)
                await backend_of(tx).set_id_counters(
                    conn, {t: max(counters.get(t, 0), last_ids[t]) for t in _ID_TABLES}
                )
    return _report(source.url, target.url, moved, started)


async def backup_database(
    db: Database, path: str | os.PathLike[str], *, skip_user_tables: bool = False
) -> CopyReport:
    """Write a backup of `db` as a new SQLite file at `path`; see the module's docstring.

    `path` must not exist, and its folder must. Nothing is left behind on failure. A SQLite
    file is copied whole, the user's own tables with it; a PostgreSQL database holding
    tables of the user's is refused, naming them, unless `skip_user_tables` is given.
    """
    started = time.perf_counter()
    _check_database("database", db)
    target = _new_file(path)
    argument("backup", "skip_user_tables", bool, skip_user_tables)
    await _require_migrated(db, "the database")
    if db.engine is Engine.POSTGRES and not skip_user_tables:
        await _refuse_user_tables(db)
    folder = Path(await asyncio.to_thread(_temp_folder, target))
    try:
        made = folder / "backup.db"
        if db.engine is Engine.SQLITE:
            async with translate_errors(db):
                await backend_of(db).backup_file(str(made))
            sizes = await _sizes_of_file(made)
        else:
            working = await open_database(folder / "working.db")
            try:
                await migrate(working)
                copied = await copy_database(db, working, skip_user_tables=True)  # checked above
                sizes = copied.tables()
                async with translate_errors(working):
                    await backend_of(working).backup_file(str(made))
            finally:
                await close_database(working)
        await asyncio.to_thread(_publish, made, target)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
    return _report(db.url, str(target), sizes, started)


async def restore_database(
    db: Database,
    path: str | os.PathLike[str],
    *,
    page_size: int = PAGE_SIZE,
    skip_user_tables: bool = False,
) -> CopyReport:
    """Copy the backup file at `path` into `db`, which must be migrated and empty.

    All or nothing, as `copy_database`, and like it refuses a file holding tables of the
    user's own unless `skip_user_tables` is given; the file is only read.
    """
    _check_database("database", db)
    if not isinstance(path, str | os.PathLike):
        raise ValidationError("restore", "path", f"must be a str or a path, got {path!r}")
    file = Path(path)
    if not await asyncio.to_thread(file.is_file):
        raise DatabaseError(f"no backup file at {str(file)!r}")
    backup = await open_database(file, create=False)
    try:
        return await copy_database(
            backup, db, page_size=page_size, skip_user_tables=skip_user_tables
        )
    finally:
        await close_database(backup)


def _report(source: str, target: str, sizes: dict[str, int], started: float) -> CopyReport:
    """Say what moved: the rows of each copied table, and the time since `started`."""
    return CopyReport(
        source=source,
        target=target,
        runs=sizes["runs"],
        test_results=sizes["test_results"],
        result_artifacts=sizes["result_artifacts"],
        config_entries=sizes["config_entries"],
        file_records=sizes["file_records"],
        seconds=time.perf_counter() - started,
    )


def _check_database(name: str, db: object) -> None:
    """Refuse what is not an open Database, or one bound to a transaction() block."""
    of_type(Database, db)
    if cast("Database", db).in_transaction:
        raise ValidationError(
            "copy", name, "is inside transaction(): a copy opens its own transaction"
        )


async def _require_migrated(db: Database, which: str) -> None:
    """Refuse a database whose package migrations are not exactly this version's."""
    status = await migration_status(db)
    if status.newer:
        raise DatabaseError(
            f"{which} {db.url} was migrated by a newer version of this package "
            f"({status.newer[-1].name}): upgrade the package"
        )
    if status.pending or status.out_of_order:
        done = (
            "not migrated" if not status.applied else f"{len(status.pending)} migration(s) behind"
        )
        raise DatabaseError(
            f"{which} {db.url} is {done}: run `persistence migrate --database URL` on it first"
        )


async def _refuse_user_tables(db: Database) -> None:
    """Refuse a source holding tables that the package did not make, naming them.

    A copy moves the package's tables only: the user's own tables, made by their own
    migrations, would be left behind without a word. Their SQL, and so their columns' types,
    are the user's, per engine.
    """
    async with connection(db) as conn:
        tables = await backend_of(db).table_names(conn)
    theirs = [table for table in tables if table not in PACKAGE_TABLES]
    if theirs:
        raise DatabaseError(
            f"{db.url} holds tables of your own migrations, which a copy does not move: "
            f"{', '.join(theirs)}. Copy them yourself, and pass skip_user_tables=True "
            "(--skip-user-tables) to copy the package's tables without them"
        )


async def _require_empty(db: Database) -> None:
    """Refuse a target that holds any row of the copied tables, naming them."""
    async with connection(db) as conn:
        sizes = await db.queries.copy_table_sizes(conn)
    full = {t: n for t, n in _sizes(sizes).items() if n}
    if full:
        held = ", ".join(f"{table} holds {count} rows" for table, count in full.items())
        raise DatabaseError(
            f"the target {db.url} is not empty ({held}): a copy or a restore writes "
            "only into an empty, migrated database"
        )


def _check_moved(moved: dict[str, int], expected: dict[str, int]) -> None:
    """Refuse a copy that moved other than every row of the source's snapshot; it rolls back."""
    wrong = [
        f"{t}: {moved[t]:,} of {expected[t]:,}" for t in COPIED_TABLES if moved[t] != expected[t]
    ]
    if wrong:
        raise DatabaseError(
            "copy: the rows copied differ from the source's, so nothing was copied ("
            + "; ".join(wrong)
            + ")"
        )


def _sizes(row: CopyTableSizesRow | None) -> dict[str, int]:
    """Give the rows of each copied table, in the order a copy writes them."""
    if row is None:  # pragma: no cover  # a SELECT without FROM gives one row
        return dict.fromkeys(COPIED_TABLES, 0)
    sizes = row._asdict()
    return {table: int(sizes[table]) for table in COPIED_TABLES}


@contextlib.asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[Connection]:
    """Lend a connection reading one committed state of `db`, its errors translated."""
    async with translate_errors(db), backend_of(db).snapshot() as conn:
        yield conn


async def _move_rows(
    source: Database, reading: Connection, tx: Database, page_size: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Copy each table a page at a time: give the rows of each, and the last id of each with one."""

    def writer(
        convert: Callable[[_R], _P], write: Callable[[Connection, list[_P]], Awaitable[None]]
    ) -> Callable[[list[_R]], Awaitable[None]]:
        async def write_page(rows: list[_R]) -> None:
            params = await map_in_slices(convert, rows)
            async with connection(tx) as conn:
                await write(conn, params)

        return write_page

    writes = tx.queries
    runs = writer(_run_params, writes.copy_write_runs)
    results = writer(_result_params, writes.copy_write_test_results)
    links = writer(_link_params, writes.copy_write_result_artifacts)
    config = writer(_config_params, writes.copy_write_config_entries)
    files = writer(_file_params, writes.copy_write_file_records)

    def runs_after(after: int) -> Awaitable[list[RunsRow]]:
        return source.queries.copy_read_runs(reading, after_id=after, page_size=page_size)

    def results_after(after: int) -> Awaitable[list[TestResultsRow]]:
        return source.queries.copy_read_test_results(reading, after_id=after, page_size=page_size)

    def links_after(after: tuple[int, str]) -> Awaitable[list[ResultArtifactsRow]]:
        result_id, role = after
        return source.queries.copy_read_result_artifacts(
            reading, after_result_id=result_id, after_role=role, page_size=page_size
        )

    def config_after(after: int) -> Awaitable[list[ConfigEntriesRow]]:
        return source.queries.copy_read_config_entries(reading, after_id=after, page_size=page_size)

    def files_after(after: int) -> Awaitable[list[FileRecordsRow]]:
        return source.queries.copy_read_file_records(reading, after_id=after, page_size=page_size)

    moved: dict[str, int] = {}
    last_ids: dict[str, int] = {}
    moved["runs"], last_ids["runs"] = await _pipe_by_id(source, page_size, runs_after, runs)
    moved["test_results"], last_ids["test_results"] = await _pipe_by_id(
        source, page_size, results_after, results
    )
    moved["result_artifacts"], _ = await _pipe(
        source, links_after, links, key=_link_key, first=(_BEFORE_EVERY_ID, ""), page_size=page_size
    )
    moved["config_entries"], last_ids["config_entries"] = await _pipe_by_id(
        source, page_size, config_after, config
    )
    moved["file_records"], last_ids["file_records"] = await _pipe_by_id(
        source, page_size, files_after, files
    )
    return moved, last_ids


async def _pipe(
    source: Database,
    read_after: Callable[[_K], Awaitable[list[_R]]],
    write: Callable[[list[_R]], Awaitable[None]],
    *,
    key: Callable[[_R], _K],
    first: _K,
    page_size: int,
) -> tuple[int, _K]:
    """Write page after page, reading the next page while one is written.

    Pages follow the key of the last row read, from `first` on (which is before any row): a
    page shorter than `page_size` is the last. Give the rows written, and the last row's key
    (`first` when there was none).
    """

    async def read(after: _K) -> list[_R]:
        async with translate_errors(source):
            return await read_after(after)

    count = 0
    last = first
    page = await read(first)
    while page:
        last = key(page[-1])
        following = asyncio.ensure_future(read(last)) if len(page) == page_size else None
        try:
            await write(page)
        except BaseException:
            if following is not None:
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
            raise
        count += len(page)
        page = await following if following is not None else []
    return count, last


# A row read becomes the parameters of its write, field by field: a renamed column or
# parameter is a type error here.


def _run_params(row: RunsRow) -> CopyWriteRunsParams:
    return {
        "id": row.id,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "labels": row.labels,
    }


def _result_params(row: TestResultsRow) -> CopyWriteTestResultsParams:
    return {
        "id": row.id,
        "test_type": row.test_type,
        "status": row.status,
        "execution_time": row.execution_time,
        "memory_usage": row.memory_usage,
        "test_cases_passed": row.test_cases_passed,
        "test_cases_total": row.test_cases_total,
        "error_message": row.error_message,
        "output": row.output,
        "created_at": row.created_at,
        "metadata": row.metadata,
        "run_id": row.run_id,
        "test_id": row.test_id,
    }


def _link_key(row: ResultArtifactsRow) -> tuple[int, str]:
    return row.result_id, row.role


def _link_params(row: ResultArtifactsRow) -> CopyWriteResultArtifactsParams:
    return {"result_id": row.result_id, "role": row.role, "sha256": row.sha256, "size": row.size}


def _config_params(row: ConfigEntriesRow) -> CopyWriteConfigEntriesParams:
    return {
        "id": row.id,
        "section": row.section,
        "key": row.key,
        "value": row.value,
        "type": row.type,
        "description": row.description,
        "updated_at": row.updated_at,
    }


def _file_params(row: FileRecordsRow) -> CopyWriteFileRecordsParams:
    return {
        "id": row.id,
        "path": row.path,
        "size": row.size,
        "hash": row.hash,
        "created_at": row.created_at,
        "accessed_at": row.accessed_at,
        "metadata": row.metadata,
    }


def _new_file(path: object) -> Path:
    """Check where a backup goes: a new file in an existing folder."""
    if not isinstance(path, str | os.PathLike):
        raise ValidationError("backup", "path", f"must be a str or a path, got {path!r}")
    target = Path(path)
    if not str(path):
        raise ValidationError("backup", "path", "is empty: name the backup file")
    if target.exists() or target.is_symlink():
        raise ValidationError(
            "backup", "path", f"{str(target)!r} exists: a backup never overwrites a file"
        )
    if not target.parent.is_dir():
        raise ValidationError("backup", "path", f"the folder {str(target.parent)!r} does not exist")
    return target


def _temp_folder(target: Path) -> str:
    """Make the working folder beside `target`, on its file system, so that a link can publish."""
    return tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)


def _publish(made: Path, target: Path) -> None:
    """Put the finished file in place whole: synced, then linked, never over another file."""
    with made.open("rb") as file:
        os.fsync(file.fileno())
    try:
        os.link(made, target)
    except FileExistsError:
        raise ValidationError(
            "backup",
            "path",
            f"{str(target)!r} appeared meanwhile: a backup never overwrites a file",
        ) from None
    except OSError as error:
        if error.errno not in {errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV}:
            raise
        # No hard links on this file system: rename, having checked once more.
        if target.exists():
            raise ValidationError(
                "backup",
                "path",
                f"{str(target)!r} appeared meanwhile: a backup never overwrites a file",
            ) from None
        made.replace(target)
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


async def _sizes_of_file(path: Path) -> dict[str, int]:
    """Count the rows of each copied table in a backup file."""
    db = await open_database(path, create=False)
    try:
        async with connection(db) as conn:
            return _sizes(await db.queries.copy_table_sizes(conn))
    finally:
        await close_database(db)
