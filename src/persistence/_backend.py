"""The protocol each engine's backend fulfils, and the pieces both share.

`database.py` knows only this protocol; everything engine-specific lives in `_sqlite/` or
`_postgres/`.
"""

from __future__ import annotations

import enum
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

import attrs

from persistence.exceptions import MigrationError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.exceptions import PersistenceError
    from persistence.queries import Queries


Params: TypeAlias = Mapping[str, Any]
"""A statement's named parameters, each value as the engine's driver takes it."""


class Engine(enum.Enum):
    """The database engines this package runs on, with the same SQL."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


SQLITE_SIDECARS: Final = ("-journal", "-wal", "-shm")
"""The suffixes SQLite adds to a database's name for its journal, WAL and shared memory."""


@attrs.frozen
class ScriptStatement:
    """One statement of a migration script, and where it stands in the script's text."""

    text: str
    """What the engine is sent."""
    start: int
    """Where its first word starts: comments and blank lines before it are not its own."""
    end: int
    """Where it ends: at its `;`, or at the script's end."""


EXPLAINED: Final = re.compile(r"EXPLAIN(?:\s+QUERY\s+PLAN)?\b\s*", re.IGNORECASE)
"""A prefix that kept a statement's first word from a migration's checks: what it explains is
refused alike, since SQLite prepares it, and a prepared flag PRAGMA takes effect."""


def line_at(script: str, offset: int) -> int:
    """Give the line of `script` that `offset` is on, counted from 1.

    A CRLF ends one line and a lone CR one, as in the file `migrate` reads, which makes each an LF.
    """
    breaks = script.count("\n", 0, offset) + script.count("\r", 0, offset)
    return breaks - script.count("\r\n", 0, offset) + 1


def refuse_nul(script: str) -> None:
    """Refuse a script holding a NUL character, naming its line: no engine takes one in SQL.

    SQLite's statement check raised a bare ValueError for it; PostgreSQL's server refused it.
    """
    nul = script.find("\x00")
    if nul >= 0:
        line = line_at(script, nul)
        raise MigrationError("a NUL character is here, which no engine takes in SQL", line=line)


def never_closed(script: str, opening: int, what: str) -> MigrationError:
    """Refuse a script in which `what` opens at `opening` and nothing closes it.

    The engine would read the rest of the file into it, or fail naming another place.
    """
    return MigrationError(f"{what} opened here is never closed", line=line_at(script, opening))


class ScriptError(Exception):
    """The statement `index` of a script failed: the driver's error is the `__cause__`.

    Only `run_script` raises it, and `database.py` translates it as its cause.
    """

    def __init__(self, index: int) -> None:
        super().__init__(f"statement {index + 1} of the script failed")
        self.index = index


class ChangeWatch(Protocol):
    """Tells a cache whether committed writes, from any process, may have changed a table."""

    def version(self, table: str) -> int | None:
        """Give a number that each commit to `table` changes; None if unknown: trust no cache."""

    def stamp(self, table: str) -> str | None:
        """Name the committed state of `table` alike in all processes, never a later one.

        None while unknown: then no shared cache is trusted.
        """

    def identity(self) -> str | None:
        """Name the database itself, not the URL that reached it; None while unknown."""

    async def sync(self) -> bool:
        """Return once every earlier commit shows; False if not made sure within the heartbeat."""

    async def close(self) -> None:
        """Stop watching."""


class Backend(Protocol):
    """One open database of one engine, and its queries, bound to its engine's adapter."""

    engine: Engine
    queries: Queries
    closed_message: str
    """What a call is told once the database is closed: the backend's own refusal."""

    @property
    def closed(self) -> bool:
        """Whether the close has begun (PostgreSQL) or ended (SQLite): no new call is taken."""

    def lend(self) -> AbstractAsyncContextManager[Connection]:
        """Lend a connection for one statement, which is atomic and durable on its own."""

    def lend_at_once(self) -> Connection | None:
        """Give the connection `lend()` lends, if lending waits for nothing; else None: `lend()`.

        SQLite's session always; PostgreSQL's lane when it is free. `end_loan` (the statement
        succeeded) or `end_failed_loan` ends the loan.
        """

    def end_loan(self) -> None:
        """End a loan of `lend_at_once` whose statement succeeded."""

    async def end_failed_loan(self, error: BaseException) -> None:
        """End a loan of `lend_at_once` whose statement failed with `error`, or was cancelled."""

    def lent_to_caller(self, conn: Connection) -> None:
        """Have `conn`, which `connection()` lent to the caller's own SQL, reset when it goes back.

        The session state that SQL may set would otherwise outlive the loan.
        """

    def check_block(self, conn: Connection) -> None:
        """Raise `DatabaseError` if a block's `conn` is out of the block's transaction.

        The caller's SQL, lent it by `connection()`, ended it: PostgreSQL's COMMIT or ROLLBACK.
        """

    def begin(self) -> AbstractAsyncContextManager[Connection]:
        """Open a transaction holding the write lock from its start; commit or roll back."""

    def migration(self, lock_timeout: float) -> AbstractAsyncContextManager[Connection]:
        """Like `begin`, under the runners' lock, with the engine's checks of a migration."""

    async def savepoint(self, conn: Connection, name: str) -> None:
        """Open a savepoint in the transaction of `conn`."""

    async def release(self, conn: Connection, name: str) -> None:
        """Keep what was done since the savepoint, and end it."""

    async def rollback_to(self, conn: Connection, name: str) -> None:
        """Undo what was done since the savepoint, and end it."""

    async def run_script(self, conn: Connection, statements: list[str]) -> None:
        """Run a migration's statements inside the transaction of `conn`.

        A statement's error is raised as `ScriptError` from the driver's, naming the statement
        when the engine tells which (see each engine's); a lost connection is raised as it is.
        """

    async def table_columns(self, table: str, conn: Connection | None = None) -> tuple[str, ...]:
        """Give the column names of `table` in order; none when there is no such table."""

    async def migration_problem(self, conn: Connection) -> str | None:
        """Say what in the database keeps the package's migrations from running, if anything."""

    def translate(self, error: BaseException) -> PersistenceError | None:
        """Map one of this engine's driver errors to this package's; None for other errors."""

    def raised_by_driver(self, error: BaseException) -> bool:
        """Tell whether the driver raised `error`, not the caller's own code around its calls.

        `translate` knows most of the driver's errors by their type; not a `TimeoutError` or an
        `OSError`, which the caller's code in a `connection()` block may raise itself.
        """

    # Copies of the whole database (`persistence.backup`).

    def snapshot(self) -> AbstractAsyncContextManager[Connection]:
        """Lend a connection that reads one committed state for the block, writers going on."""

    async def backup_file(self, path: str) -> None:
        """Write a consistent copy as a new SQLite file at `path`: SQLite only (its backup API)."""

    async def database_identity(self, conn: Connection) -> str | None:
        """Name the database `conn` reaches, alike by any URL, path or link; None if unknown."""

    async def integrity_problems(self, conn: Connection) -> tuple[str, ...]:
        """Give what the engine's own check of every page finds wrong, the first 20; () for none.

        SQLite's `integrity_check`, for a backup before a restore reads it; PostgreSQL has none.
        """

    async def id_counters(self, conn: Connection, tables: Sequence[str]) -> dict[str, int]:
        """Give the highest id that each table's counter has handed out; 0 for none."""

    async def set_id_counters(self, conn: Connection, counters: Mapping[str, int]) -> None:
        """Set each table's counter so that its next id comes after the given one."""

    async def table_names(self, conn: Connection) -> tuple[str, ...]:
        """Give the name of every table, sorted; not the engine's own (SQLite's `sqlite_*`)."""

    async def hold_against_writers(self, conn: Connection, tables: Sequence[str]) -> None:
        """Keep other writers off `tables` until `conn`'s transaction ends.

        It waits for the writers under way to commit: a check made after it sees their rows.
        """

    async def drop_indexes(self, conn: Connection, tables: Sequence[str]) -> tuple[str, ...]:
        """Drop the secondary indexes of the empty `tables` before a bulk load; give their SQL.

        Inside `conn`'s transaction, so a rollback brings them back.
        """

    async def create_indexes(
        self, conn: Connection, definitions: Sequence[str], *, rows: int
    ) -> None:
        """Build again what `drop_indexes` dropped, allowed time for each of the `rows` there."""

    async def watch_changes(self, *, heartbeat: float) -> ChangeWatch:
        """Start watching for commits; `heartbeat` bounds how long a silent watch is trusted."""

    async def close(self) -> None:
        """Close every connection; wait for work in flight to end."""


def row_picker(names: Sequence[str]) -> Callable[[Params], tuple[Any, ...]]:
    """Pick `names`' values from a row, in order, as a tuple for one name or none too."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        (name,) = names
        return lambda row: (row[name],)
    return operator.itemgetter(*names)


KEY_SHOWN = 200
"""The most characters of a conflicting key's values that an error message shows."""


def key_detail(columns: str, values: str, outcome: str) -> str:
    """Say which key broke a constraint, in PostgreSQL's words, on either engine.

    "Key (path)=(a.xml) already exists.": values past KEY_SHOWN characters are cut, and the
    cut is said, so that a long path or test id does not fill the message.
    """
    if len(values) > KEY_SHOWN:
        values = f"{values[:KEY_SHOWN]}... (cut from {len(values)} characters)"
    return f"Key ({columns})=({values}) {outcome}."
