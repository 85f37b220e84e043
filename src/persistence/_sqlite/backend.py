"""SQLite: short statements on the event loop, anything that can take long off it.

Crossing to a driver thread costs about as much as a short SQLite statement, so `sqlite3` is
called from the loop; worker threads take commits, bulk and long statements, and reads past
the loop budget. A database is used on one loop at a time: it moves once the last has closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import queue
import sqlite3
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final, TypeVar

from persistence._backend import Engine, ScriptError
from persistence._cancelling import finish_then_cancel, kept_if_cancelled, stopped_if_cancelled
from persistence._sqlite.adapter import SqliteSession
from persistence._sqlite.changes import (
    ChangeStamp,
    WalIndex,
    abandon_wal_indexes,
    map_wal_index,
    release_wal_indexes,
)
from persistence._sqlite.errors import sqlite_error, translate_sqlite
from persistence._sqlite.identity import OpenedFile
from persistence._sqlite.reads import Readers
from persistence._sqlite.scripts import (
    check_foreign_keys,
    check_no_temporary_objects,
)
from persistence._sqlite.statements import CLOSED, COUNT, ROWS, plan_query
from persistence._sqlite.writer import Writer
from persistence._sqlite.writes import Job
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.queries import Queries


_T = TypeVar("_T")

# Copies of a whole SQLite file: the online backup API, and the AUTOINCREMENT counters.

_STOP_CHECK_STEPS: Final = 100_000  # steps between a migration's looks at its stop: a few ms
_LIST_COUNTERS: Final = plan_query("list_id_counters", "SELECT name, seq FROM sqlite_sequence")
"""The highest id each AUTOINCREMENT table has handed out."""

_INTEGRITY_CHECK: Final = plan_query(
    "integrity_check", "SELECT * FROM pragma_integrity_check(20)", runs_long=True
)
"""Every page and index of the file checked, in a thread: about 1 s a gigabyte."""

_LIST_TABLES: Final = plan_query(
    "list_tables",
    "SELECT name FROM sqlite_schema "
    "WHERE type = 'table' AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name",
)
"""Every table of the database but SQLite's own (`sqlite_sequence`, `sqlite_stat1`, ...)."""

_RAISE_COUNTER: Final = plan_query(
    "raise_id_counter", "UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :name"
)
_ADD_COUNTER: Final = plan_query(
    "add_id_counter",
    "INSERT INTO sqlite_sequence (name, seq) SELECT :name, :seq "
    "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :name)",
)
"""With _RAISE_COUNTER: a table's counter becomes at least `seq`, whether it had one or not."""


class SqliteBackend:
    """One SQLite file: a writer, a reader on the loop, and readers for worker threads."""

    engine = Engine.SQLITE
    closed_message = CLOSED

    def __init__(
        self,
        queries: Queries,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        open_reader: Callable[[], sqlite3.Connection],
        *,
        busy_timeout: float,
        opened: OpenedFile,
    ) -> None:
        self._path = opened.path
        self._opened = opened  # its name is the database's: no stat on each Redis key
        self.queries = queries
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="persistence-sqlite")
        self._open_reader = open_reader
        self._readers = Readers(reader, open_reader, self._start_in_thread)
        self._writer = Writer(writer, self._start_in_thread, busy_timeout, opened)
        self._wal_indexes: list[WalIndex] = []  # its watches' mappings, released after closing
        self._autocommit = SqliteSession(self._readers, self._writer, in_transaction=False)
        self._transaction = SqliteSession(self._readers, self._writer, in_transaction=True)
        self._lent = contextlib.nullcontext(self._autocommit)
        self.closed = False
        self._closing: asyncio.Future[None] | None = None  # the close under way, if one is
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop last used on, if any yet
        self._moving = threading.Lock()  # held while the database moves to another loop
        self._pid = _PROCESS[0]  # a forked child has none of its threads: it opens its own
        # Never closed, and collected: its threads end, and it says so. Its arguments hold
        # nothing that holds the backend, or it would never be collected.
        self._forgotten = weakref.finalize(
            self, _forgotten, str(self._path), self._writer.jobs, self._executor, self._wal_indexes
        )
        self._forgotten.atexit = False  # at exit the threads, daemons, end with the process

    @property
    def _forked(self) -> bool:
        return self._pid != _PROCESS[0]

    def check_loop(self) -> None:
        """Refuse a closed database; use the running loop, unless the last one used is open.

        The look and the move are one step, under a lock: two threads, each with a loop of
        its own, both saw the last loop closed, and the second took the database from the
        first mid-transaction (its ROLLBACK made the rest of the block autocommit).
        """
        if self.closed:
            raise DatabaseError(CLOSED)
        if self._forked:  # its writer's and readers' threads are the parent's
            raise DatabaseError(
                f"the SQLite database {self._path!r} was opened in process {self._pid}, whose "
                "threads a forked process does not have (its calls would wait for good): open "
                "it again in this process"
            )
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        with self._moving:
            if self.closed:
                raise DatabaseError(CLOSED)
            if loop is self._loop:
                return
            if self._loop is not None and not self._loop.is_closed():
                raise DatabaseError(
                    f"the SQLite database {self._path!r} is in use on another event loop, "
                    "which is still open: use it on one loop at a time (it moves to a new loop "
                    "once the old one has closed), or from synchronous code through "
                    "persistence.sync.SyncRunner"
                )
            if not self._writer.idle:
                self._writer.take_back()  # what the closed loop left: refused while a thread runs
            self._loop = loop

    def lend(self) -> contextlib.nullcontext[SqliteSession]:
        """Lend the session that sends each statement where it belongs: nothing to acquire."""
        self.check_loop()
        return self._lent

    def lend_at_once(self) -> SqliteSession:
        """Give the session `lend()` lends, without a context to enter and leave."""
        if self.closed or self._loop is not asyncio.get_running_loop() or self._forked:
            self.check_loop()  # refuses, or takes this loop: most calls need neither
        return self._autocommit

    def end_loan(self) -> None:
        """Nothing to end: the session is everyone's."""

    async def end_failed_loan(self, error: BaseException) -> None:
        """Nothing to end: the session is everyone's."""

    def lent_to_caller(self, conn: Connection) -> None:
        """Nothing to reset: the session lent runs the generated queries, no SQL of the caller's."""

    def check_block(self, conn: Connection) -> None:
        """Nothing to check: no SQL of the caller's can end a block's transaction."""

    def _start_in_thread(self, function: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        """Start `function` in a worker thread, in the caller's context; give its future."""
        loop = asyncio.get_running_loop()
        run = contextvars.copy_context().run
        try:
            return loop.run_in_executor(self._executor, run, function, *args)
        except RuntimeError:  # "cannot schedule new futures after shutdown": a close stopped them
            if not self.closed:
                raise
            raise DatabaseError(CLOSED) from None

    def begin(self) -> contextlib.AbstractAsyncContextManager[SqliteSession]:
        """Open a transaction that holds the write lock from BEGIN IMMEDIATE to its end."""
        return self._transaction_block(self._busy_timeout, migration=False)

    def migration(
        self, lock_timeout: float
    ) -> contextlib.AbstractAsyncContextManager[SqliteSession]:
        """Open a migration's transaction: the write lock, waited on for `lock_timeout`.

        Foreign keys are off for its length, so that SQLite's table-rebuild recipe keeps
        child rows; `PRAGMA foreign_key_check` must find nothing before it commits.
        """
        return self._transaction_block(lock_timeout, migration=True)

    @contextlib.asynccontextmanager
    async def _transaction_block(
        self, wait: float, *, migration: bool
    ) -> AsyncIterator[SqliteSession]:
        self.check_loop()
        lease = await self._writer.lease()
        writer = self._writer.connection
        try:
            if migration:
                writer.execute("PRAGMA foreign_keys = OFF")
            await self._writer.begin_immediate(wait, lease.queued)
            try:
                yield self._transaction
                if migration:
                    check_foreign_keys(writer)
                    check_no_temporary_objects(writer)
                self._writer.leased()  # refused if SQLite rolled the transaction back
                await finish_then_cancel(self._writer.commit())
            except BaseException:
                if not lease.abandoned() and writer.in_transaction:
                    writer.execute("ROLLBACK")
                raise
        finally:
            if not lease.abandoned():  # else the writer was taken back: a later loop's now
                try:
                    if migration:
                        writer.execute("PRAGMA foreign_keys = ON")
                finally:
                    lease.release()

    async def savepoint(self, _conn: Connection, name: str) -> None:
        """Open a savepoint in the running transaction."""
        self._writer.leased().execute(f'SAVEPOINT "{name}"')

    async def release(self, _conn: Connection, name: str) -> None:
        """Keep what the savepoint's block did."""
        self._writer.leased().execute(f'RELEASE "{name}"')

    async def rollback_to(self, _conn: Connection, name: str) -> None:
        """Undo what the savepoint's block did, and end it: nothing to do if SQLite undid all."""
        if not self._writer.connection.in_transaction:
            return  # the error that made SQLite roll back goes on; later calls are refused
        writer = self._writer.leased()
        writer.execute(f'ROLLBACK TO "{name}"')
        writer.execute(f'RELEASE "{name}"')

    async def run_script(self, _conn: Connection, statements: list[str]) -> None:
        """Run the statements in a thread: a migration may rebuild big tables.

        Cancelled, its statement stops (SQLite's interrupt, lost if it comes between two, and
        the handler's look) and none after starts: a rebuild held a Ctrl-C back to its end.
        """
        writer = self._writer.leased()  # the migration's alone: nothing else is stopped
        stop = threading.Event()

        def run() -> None:
            writer.set_progress_handler(stop.is_set, _STOP_CHECK_STEPS)
            try:
                for index, statement in enumerate(statements):
                    if stop.is_set():
                        raise asyncio.CancelledError
                    try:
                        for _ in writer.execute(statement):  # to its last row: a check may fail
                            pass  # on a later row, where SQLite stopped at the first before
                    except Exception as error:
                        if (failure := sqlite_error(error)) is None:
                            raise
                        raise ScriptError(index) from failure
            finally:
                writer.set_progress_handler(None, 0)

        def stopped() -> None:
            stop.set()
            writer.interrupt()

        await stopped_if_cancelled(self._writer.in_thread(run), stopped)

    async def table_columns(self, table: str, _conn: Connection | None = None) -> tuple[str, ...]:
        """Give the column names of `table` in order; none when there is no such table."""
        rows = self._readers.connection.execute(
            "SELECT name FROM pragma_table_info(?) ORDER BY cid", (table,)
        ).fetchall()
        return tuple(str(row[0]) for row in rows)

    async def migration_problem(self, _conn: Connection) -> str | None:
        return None  # every SQLite file holds what the migrations write

    translate = staticmethod(translate_sqlite)

    def raised_by_driver(self, error: BaseException) -> bool:
        """Tell whether sqlite3 raised `error`: its translations are of its own types alone."""
        return self.translate(error) is not None

    async def backup_file(self, path: str) -> None:
        """Copy the database into a new file at `path` by the online backup API, in a thread.

        One step under one read transaction copies one committed state while writers go on;
        it waits for its thread even when cancelled, so nothing writes to `path` after the call.
        """
        if self.closed:
            raise DatabaseError(CLOSED)
        await finish_then_cancel(self._start_in_thread(_backup_into, self._open_reader, path))

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[SqliteSession]:
        """Lend a session whose reads see one committed state: a reader in a read transaction."""
        self.check_loop()
        async with self._readers.snapshot() as reads:
            yield SqliteSession(reads, self._writer, in_transaction=False, reads_only=True)

    async def database_identity(self, conn: Connection) -> str | None:  # noqa: ARG002  # the protocol's arguments
        """Name the file opened, as its change watch does: see `persistence._sqlite.identity`."""
        return self._opened.name

    async def integrity_problems(self, conn: Connection) -> tuple[str, ...]:
        """Run SQLite's `integrity_check`: what it finds wrong, or () for its `ok`."""
        found = tuple(str(row[0]) for row in await _session(conn).run(_INTEGRITY_CHECK, {}, ROWS))
        return () if found == ("ok",) else found

    async def id_counters(self, conn: Connection, tables: Sequence[str]) -> dict[str, int]:
        """Read `sqlite_sequence`: the highest id each AUTOINCREMENT table handed out."""
        rows = await _session(conn).run(_LIST_COUNTERS, {}, ROWS)
        seen = {str(name): int(seq) for name, seq in rows}
        return {table: seen.get(table, 0) for table in tables}

    async def table_names(self, conn: Connection) -> tuple[str, ...]:
        """Give the name of every table but SQLite's own, sorted."""
        rows = await _session(conn).run(_LIST_TABLES, {}, ROWS)
        return tuple(str(row[0]) for row in rows)

    async def hold_against_writers(self, conn: Connection, tables: Sequence[str]) -> None:
        """Hold nothing more: a transaction holds the file's write lock from its start."""

    async def drop_indexes(self, conn: Connection, tables: Sequence[str]) -> tuple[str, ...]:  # noqa: ARG002  # the protocol's arguments
        """Drop nothing: FTS5's triggers and the B-tree indexes take bulk inserts well enough."""
        return ()

    async def create_indexes(
        self, conn: Connection, definitions: Sequence[str], *, rows: int
    ) -> None:
        """Build nothing: `drop_indexes` dropped nothing."""

    async def set_id_counters(self, conn: Connection, counters: Mapping[str, int]) -> None:
        """Raise each table's `sqlite_sequence` entry to at least the given id."""
        session = _session(conn)
        for table, last_id in counters.items():
            params = {"name": table, "seq": last_id}
            await session.run(_RAISE_COUNTER, params, COUNT)
            await session.run(_ADD_COUNTER, params, COUNT)

    async def watch_changes(self, *, heartbeat: float) -> ChangeStamp:  # noqa: ARG002  # asked on each read, so never silent
        """Watch commits by any connection or process: see `ChangeStamp`."""
        self.check_loop()
        self.data_version()  # the reader has mapped the -shm file
        # Mapped in a thread, held until close even if this call is cancelled meanwhile;
        # a future, not a task, so that the hold does not depend on the loop running on.
        loop = asyncio.get_running_loop()
        mapping = loop.run_in_executor(self._executor, map_wal_index, self._path)
        index = await kept_if_cancelled(mapping, self._keep_wal_index)
        self._keep_wal_index(index)
        return ChangeStamp(
            None if index is None else index.header,
            path=self._path,
            name=self._opened.name,
            data_version=self.data_version,
            closed=lambda: self.closed,
        )

    def _keep_wal_index(self, index: WalIndex | None) -> None:
        """Hold a mapping until close; release it at once if the close came first."""
        if index is not None and self.closed:  # mapped after the close began
            release_wal_indexes([index])
        elif index is not None:
            self._wal_indexes.append(index)

    def data_version(self) -> int | None:
        """Ask the reader's `PRAGMA data_version`, which changes when another connection commits."""
        if self.closed:
            return None
        value: int = self._readers.connection.execute("PRAGMA data_version").fetchone()[0]
        return value

    async def close(self) -> None:
        """Finish queued writes, then close every connection, the threads and the mappings.

        A close cancelled meanwhile still runs to its end, then the cancellation goes on:
        nothing else would close what it left, as a close abandoned halfway did. A second close
        meanwhile waits for the first: both closed the writer, and the second failed on its
        state (`AssertionError`). One that failed is tried again.
        """
        closing = self._closing
        if closing is not None and not closing.done():
            if closing.get_loop() is asyncio.get_running_loop():  # else check_loop says why
                await finish_then_cancel(closing)  # its connections and threads too
                return
        elif self.closed:
            return
        self._closing = asyncio.ensure_future(self._close())
        await finish_then_cancel(self._closing)

    async def _close(self) -> None:
        if self._loop is not None and self._loop.is_closed():  # it may have left a statement
            await asyncio.get_running_loop().run_in_executor(None, self._writer.wait_for_thread)
        self.check_loop()
        await self._writer.close()
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._shutdown)

    def _shutdown(self) -> None:
        self._forgotten.detach()
        self._executor.shutdown(wait=True)
        self._writer.stop_thread()
        self._readers.close()
        self._writer.connection.close()
        release_wal_indexes(self._wal_indexes)  # and any handed back while these were open


_PROCESS: Final = [os.getpid()]
"""This process's id, set again in a forked child: a look with no system call on each call."""
os.register_at_fork(after_in_child=lambda: _PROCESS.__setitem__(0, os.getpid()))


def _forgotten(
    path: str,
    writer_jobs: queue.SimpleQueue[Job | None],
    executor: ThreadPoolExecutor,
    wal_indexes: list[WalIndex],
) -> None:
    """End the threads of a database collected unclosed, and say so, as sqlite3 does.

    Its writer's thread and its readers' waited for good, each holding a connection and the
    file's descriptors: a test suite that forgot one per test ran out of them.
    """
    warnings.warn(
        f"the SQLite database {path!r} was never closed: close_database(db), or open it with "
        "`async with connect(...)`; its threads end now",
        ResourceWarning,
        stacklevel=2,
    )
    writer_jobs.put(None)
    executor.shutdown(wait=False)
    abandon_wal_indexes(wal_indexes)  # its caches' mappings: given back at the next release


def _session(conn: Connection) -> SqliteSession:
    """Narrow a connection of either engine to SQLite's: engines never mix."""
    if isinstance(conn, SqliteSession):
        return conn
    raise TypeError(f"a SQLite backend was given {type(conn).__name__}")  # pragma: no cover


def _backup_into(open_reader: Callable[[], sqlite3.Connection], path: str) -> None:
    """Copy the database, read by a reader of its own, into a new file at `path`, as one state.

    One step of the backup API reads under one read transaction, while writers go on; the copy
    leaves WAL mode, to be one self-contained file.
    """
    with (
        contextlib.closing(open_reader()) as reading,
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as copy,
    ):
        reading.backup(copy, pages=-1)  # every page in one step: one read transaction
        copy.execute("PRAGMA journal_mode = DELETE")
