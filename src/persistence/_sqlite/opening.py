"""Opening a SQLite file: its writer and first reader set up, or a refusal that says why.

Apart from the backend it makes: which file is opened, and how, is settled here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from persistence._loader import load_queries
from persistence._sqlite.adapter import SqliteAdapter
from persistence._sqlite.backend import SqliteBackend
from persistence._sqlite.errors import sqlite_error
from persistence._sqlite.identity import OpenedFile, file_identity, refuse_odd_sidecars
from persistence._sqlite.statements import is_busy, lock_poll
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._tracing import Observer
    from persistence.queries import Queries


async def open_sqlite(
    path: str,
    *,
    busy_timeout: float,
    create: bool,
    observer: Observer | None = None,
    as_is: bool = False,
) -> SqliteBackend:
    """Open (or create) a SQLite file in WAL mode, a full sync on commit, traced by `observer`.

    `as_is` (with `create=False`): read the file without adding any file beside it, if no
    connection has it open; see `_read_only_uri`.
    """
    queries = load_queries(functools.partial(SqliteAdapter, observer), "sqlite")
    if path == ":memory:" or path.startswith("file:"):
        raise DatabaseError(
            f"{path!r}: give a file path; an in-memory database cannot be shared by the "
            "reader and writer connections (use a temporary file in tests)"
        )
    opening = asyncio.get_running_loop().run_in_executor(
        None,
        functools.partial(
            _open_files, path, busy_timeout, create=create, queries=queries, as_is=as_is
        ),
    )
    try:
        backend = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # The thread goes on to open the files: close what it opened, then give up.
        with contextlib.suppress(Exception):  # an open that failed has nothing to close
            await (await opening).close()
        raise
    backend.check_loop()  # the opening loop's, as PostgreSQL's: not the first caller's
    return backend


def _open_files(
    path: str, busy_timeout: float, *, create: bool, queries: Queries, as_is: bool
) -> SqliteBackend:
    refuse_odd_sidecars(path)
    target = path if create else _read_only_uri(path, as_is=as_is)
    if create:
        _make_folder_of(path)
    # Setting up waits up to busy_timeout for another process's lock, in this worker thread:
    # a new file's switch to WAL needs it alone a moment. Then both connections stop waiting:
    # on the loop, a read that must wait moves to a thread, and BEGIN IMMEDIATE is retried.
    connect = functools.partial(
        sqlite3.connect,
        timeout=busy_timeout,
        isolation_level=None,  # this package opens and ends every transaction itself
        check_same_thread=False,  # shared by the loop and worker threads, one at a time
        cached_statements=256,
    )
    try:
        writer = connect(target, uri=not create)
    except Exception as error:
        if (failure := sqlite_error(error)) is None:
            raise
        raise DatabaseError(f"cannot open SQLite database {path!r}: {failure}") from failure
    real = Path(path).resolve()
    # Readers open the file the writer opened, never a new one (mode=rw), and check that it is.
    readers_target = target if not create else f"file:{quote(str(real))}?mode=rw"
    opened = OpenedFile(str(real), file_identity(real), path)
    open_reader = functools.partial(
        _open_reader, functools.partial(connect, readers_target, uri=True), opened
    )

    reader: sqlite3.Connection | None = None
    # A read-only connection keeps the file's journal mode: setting one would write.
    pragmas = ("PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON")
    try:
        if create:
            _switch_to_wal(writer, busy_timeout)
        for pragma in pragmas:
            writer.execute(pragma)
        reader = open_reader()
        reader.execute("SELECT count(*) FROM sqlite_schema").fetchall()  # the first read
        for connection in (writer, reader):
            connection.execute("PRAGMA busy_timeout = 0")
    except BaseException as error:  # nothing is left open, whatever the failure
        writer.close()
        if reader is not None:
            reader.close()
        if (failure := sqlite_error(error)) is None:
            raise
        raise _set_up_failure(path, real, failure, create=create) from failure
    return SqliteBackend(
        queries, writer, reader, open_reader, busy_timeout=busy_timeout, opened=opened
    )


def _open_reader(
    connect: Callable[[], sqlite3.Connection], opened: OpenedFile
) -> sqlite3.Connection:
    """Open a reader on the file the database opened, and check that it is that file.

    The writer and the loop's reader go on with the file they opened; a reader opened later on
    another file would read another database, and one on no file would make an empty one.
    """
    try:
        connection = connect()
    except sqlite3.OperationalError:
        opened.check()  # "unable to open": say why, if it is this
        raise
    try:
        connection.execute("PRAGMA query_only = ON")
        opened.check()
    except BaseException:
        connection.close()
        raise
    return connection


def _switch_to_wal(writer: sqlite3.Connection, wait: float) -> None:
    """Put the file in WAL mode, trying again for up to `wait` while another connection holds it.

    The switch reads the file, then asks for the write lock. SQLite refuses that step at once,
    without waiting, when another connection holds the lock (as many processes opening one new
    file at once do), since a reader that waits there could deadlock with the holder.
    """
    deadline = time.monotonic() + wait
    for attempt in itertools.count():
        try:
            writer.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            if not is_busy(error) or time.monotonic() >= deadline:
                raise
            time.sleep(lock_poll(attempt))
        else:
            return


def _set_up_failure(path: str, real: Path, failure: Exception, *, create: bool) -> DatabaseError:
    """Say why a file could not be set up: a hot journal, which a read-only open cannot undo."""
    journal, why = real.with_name(f"{real.name}-journal"), ""
    if not create and "readonly" in str(failure) and journal.exists():
        why = (
            f": {journal.name} beside it holds a transaction another program left unfinished, "
            "which a read-only open cannot roll back; open it once with write access "
            "(`persistence migrate`, or any write), and SQLite rolls it back"
        )
    return DatabaseError(f"cannot set up SQLite database {path!r}: {failure}{why}")


def _read_only_uri(path: str, *, as_is: bool = False) -> str:
    """Return the URI that opens an existing SQLite file read-only; a missing file is an error.

    A file in WAL mode with no `-wal` file, where this process may not make one, is opened
    immutable: only a writer could change it, and a writer would have made the `-wal` file.
    So it is `as_is` when there is neither a `-wal` nor a `-shm` file, which every connection
    to a WAL-mode file keeps while it is open: a read-only connection would make both, and
    could not remove them (a restore left them beside the backup it read). A file in rollback
    mode is never opened immutable: its writer makes no `-wal`, and an immutable open takes no
    lock and passes over a hot `-journal`, reading a transaction that never committed; opened
    read-only as it is, it makes no file beside it.
    """
    file = Path(path)
    try:
        if not file.exists():
            raise DatabaseError(f"no SQLite database at {path!r}: the file does not exist")
        if not file.is_file():
            raise DatabaseError(f"no SQLite database at {path!r}: it is not a file")
        real = file.resolve()  # SQLite names the files beside it after the real one, links followed
        in_use = [real.with_name(f"{real.name}{end}").exists() for end in ("-wal", "-shm")]
    except OSError as error:  # a name too long (for its `-wal`, too), a folder it may not search
        raise DatabaseError(f"cannot open SQLite database {path!r}: {error.strerror}") from error
    uri = f"file:{quote(str(real))}?mode=ro"
    may_be_immutable = (not os.access(file.parent, os.W_OK) and not in_use[0]) or (
        as_is and not any(in_use)
    )
    if may_be_immutable and _in_wal_mode(real):  # the header read only where it decides
        uri += "&immutable=1"
    return uri


def _in_wal_mode(file: Path) -> bool:
    """Tell whether a SQLite file's header says WAL mode (its read and write versions are 2)."""
    try:
        with file.open("rb") as stream:
            header = stream.read(20)
    except OSError:
        return False  # the open that follows says what is wrong
    return header[18:20] == b"\x02\x02"


def _make_folder_of(path: str) -> None:
    """Create the folders a new SQLite file goes in, or say which part of the path is in the way."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((p for p in (folder, *folder.parents) if _is_file(p)), None)
        reason = f"{str(blocking)!r} is a file, not a folder" if blocking else error.strerror
        raise DatabaseError(f"cannot create SQLite database {path!r}: {reason}") from error


def _is_file(path: Path) -> bool:
    """Tell whether `path` is a file; not if it cannot be looked at (its name too long)."""
    try:
        return path.is_file()
    except OSError:
        return False
