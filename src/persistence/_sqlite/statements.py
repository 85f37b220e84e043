"""How one query runs on a SQLite connection: its plan, its parameters, and its rows.

Plain and synchronous: the backend decides where and when a plan runs.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from persistence._backend import Params, key_detail, row_picker
from persistence._codecs import (
    EncodedJson,
    encode_datetime,
    encode_json_as_jsonb,
    encode_key_bound,
    encode_time_bound,
)
from persistence._loop import LOOP_SLICE
from persistence._paging import KeyBound, TimeBound
from persistence.queries import QUERY_WRITES

if TYPE_CHECKING:
    from persistence._interface import RowMapper


CLOSED: Final = "the SQLite database is closed"
"""What a call on a closed database is told: `closed_message`, and the backend's own refusals."""
PROGRESS_STEPS: Final = 1000  # SQLite virtual-machine steps between two looks at the loop budget

_ROWS_PER_INSERT: Final = 2000
"""The most rows one statement of a bulk insert writes. Not one per row: at each statement's
savepoint FTS5 writes out what it has indexed, a segment per row."""


class Mode(enum.Enum):
    """What a call gives: every row, the first row, its first value, a count, a bulk count."""

    ROWS = "rows"
    ROW = "row"
    VALUE = "value"
    COUNT = "count"
    MANY = "many"


ROWS, ROW, VALUE, COUNT, MANY = Mode.ROWS, Mode.ROW, Mode.VALUE, Mode.COUNT, Mode.MANY
"""The modes under plain names, for the code that runs per call: on Python 3.11 reading a
member off its class runs a descriptor (about 150 ns), and one call compares its mode often."""


# Parameters sqlite3 cannot store become text here, by their type: sqlite3's adapter and
# converter registries are process-wide, so they stay untouched.
_ENCODERS: Final[dict[type, Callable[[Any], object]]] = {
    dt.datetime: encode_datetime,
    TimeBound: encode_time_bound,
    KeyBound: encode_key_bound,
    dict: encode_json_as_jsonb,
    list: encode_json_as_jsonb,
    EncodedJson: encode_json_as_jsonb,
}


_PLAIN: Final = frozenset({str, int, float, bool, bytes, type(None)})
"""Types that sqlite3 stores as they are: most parameters, passed over at once."""


_Shared = dict[str, tuple[object, object]]
"""Each parameter's last value that needed encoding, kept beside its text: only the last, so
that rows with a value each keep nothing alive for the garbage collector to walk."""


def encode_params(params: Params, shared: _Shared | None = None) -> Params:
    """Give the parameters as sqlite3 takes them: datetimes, dicts and lists as text.

    With `shared`, a value that is the very object of the row before is not encoded again.
    """
    encoded: dict[str, object] | None = None
    for name, value in params.items():
        if type(value) in _PLAIN:
            continue
        met = shared.get(name) if shared is not None else None
        if met is not None and met[0] is value:
            text = met[1]
        else:
            encoder = _ENCODERS.get(type(value)) or next(
                (e for t, e in _ENCODERS.items() if isinstance(value, t)), None
            )
            if encoder is None:
                continue
            text = encoder(value)
            if shared is not None:
                shared[name] = (value, text)
        if encoded is None:
            encoded = dict(params)
        encoded[name] = text
    return params if encoded is None else encoded


def rows_encoder() -> Callable[[Params], Params]:
    """Give `encode_params` for one bulk write's rows: an object they share is encoded once."""
    shared: _Shared = {}
    return lambda params: encode_params(params, shared)


@attrs.define(slots=True)
class _RowsInsert:
    """A plain `INSERT INTO t (cols) VALUES (:a, :b, ...)`, written for many rows at once."""

    head: str
    names: tuple[str, ...]
    _sql: dict[int, str] = attrs.field(factory=dict)

    def sql(self, rows: int) -> str:
        """Give the statement that inserts `rows` rows, with positional parameters."""
        sql = self._sql.get(rows)
        if sql is None:
            row = "(" + ", ".join("?" * len(self.names)) + ")"
            sql = self._sql[rows] = self.head + ", ".join([row] * rows)
        return sql


@attrs.frozen
class Plan:
    """How to run one query on SQLite: its SQL, and where it may run."""

    name: str
    sql: str
    writes: bool  # it may change the database, so it goes to the writer
    rows_insert: _RowsInsert | None = None  # the multi-row form of a plain INSERT, for bulk writes
    runs_long: bool = False
    """Marked `-- runs: long`: it runs in a worker thread, never on the loop, since some steps
    (FTS5 merging segments, bm25 ranking many terms) no progress handler can interrupt, and an
    interrupted write would roll back its whole transaction."""


_INSERT = re.compile(
    r"^\s*(?P<head>INSERT\s+INTO\s+\w+\s*\([^)]*\)\s*VALUES)\s*\((?P<values>[^)]*)\)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_LEADING_WORD = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(\w+)", re.DOTALL)
_WRITE_WORDS = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def plan_query(query_name: str, sql: str, *, runs_long: bool = False) -> Plan:
    """Work out where a query runs from its SQL, as aiosql hands it over, and its mark.

    It may change the database, so it goes to the writer, unless it is a plain SELECT.
    """
    match = _LEADING_WORD.match(sql)
    first = match[1].upper() if match else ""
    writes = first != "SELECT" and (first != "WITH" or _WRITE_WORDS.search(sql) is not None)
    return Plan(query_name, sql, writes, _rows_insert(sql), runs_long)


def _rows_insert(sql: str) -> _RowsInsert | None:
    """Read a plain INSERT whose values are all parameters; None for any other statement."""
    match = _INSERT.match(sql)
    if match is None:
        return None
    values = [value.strip() for value in match["values"].split(",")]
    if not all(value.startswith(":") and value[1:].isidentifier() for value in values):
        return None
    return _RowsInsert(" ".join(match["head"].split()) + " ", tuple(v[1:] for v in values))


def _insert_rows(
    conn: sqlite3.Connection,
    cursor: sqlite3.Cursor,
    insert: _RowsInsert,
    rows: Sequence[Params],
    query: str,
) -> int:
    """Insert the rows of `query`, already encoded, in a few multi-row statements; give how many."""
    names = insert.names
    pick = row_picker(names)
    per_statement = max(
        1, min(_ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(names))
    )
    inserted = 0
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values: list[object] = []
        for row in chunk:
            try:
                values += pick(row)
            except KeyError as missing:
                msg = f"You did not supply a value for binding parameter :{missing.args[0]}."
                raise sqlite3.ProgrammingError(msg) from None
        try:
            cursor.execute(insert.sql(len(chunk)), values)
        except sqlite3.IntegrityError as error:
            note_key(conn, query, chunk, error)
            raise
        inserted += cursor.rowcount
    return inserted


def execute(
    conn: sqlite3.Connection, plan: Plan, params: Any, mode: Mode, rows_as: RowMapper | None = None
) -> Any:
    """Run one query to its end and give what its command returns.

    `MANY` takes parameters already encoded. Rows come mapped by `rows_as`, else as sqlite3's
    tuples, for the loop to map in slices.
    """
    cursor = conn.cursor()
    try:
        if mode is MANY:
            if plan.rows_insert is not None:
                return _insert_rows(conn, cursor, plan.rows_insert, params, plan.name)
            cursor.executemany(plan.sql, params)
            return cursor.rowcount
        params = encode_params(params)
        cursor.execute(plan.sql, params)
        if mode is COUNT:
            return cursor.rowcount
        rows = cursor.fetchall()
        if rows_as is not None and mode is not VALUE:
            rows = rows_as(rows)
        if mode is ROWS:
            return rows
        if not rows:
            return None
        return rows[0] if mode is ROW else rows[0][0]
    except sqlite3.IntegrityError as error:
        if mode is not MANY:  # a bulk insert noted its own rows; executemany's, some stored, not
            note_key(conn, plan.name, [params], error)
        raise
    finally:
        cursor.close()


def note_key(
    conn: sqlite3.Connection, query: str, rows: Sequence[Params], error: sqlite3.IntegrityError
) -> None:
    """Note on `error` the key of `rows` that broke a constraint, as PostgreSQL says it.

    SQLite names a unique key's columns but not its values, and a foreign key not at all. Of
    the statement's rows, rolled back by its failure, the first whose key another of them or a
    stored row holds, or whose reference no stored row has, is named. A look-up that fails
    notes nothing: the error stays as SQLite gave it. A reference is looked for in the tables
    the generator says `query` writes.
    """
    message = str(error)
    try:
        if message.startswith("UNIQUE constraint failed: "):
            found = _taken_key(conn, message.partition(": ")[2].split(", "), rows)
        elif message.startswith("FOREIGN KEY"):
            found = next(
                (
                    missing
                    for table in sorted(QUERY_WRITES.get(query, ()))
                    if (missing := _missing_reference(conn, table, rows)) is not None
                ),
                None,
            )
        else:
            return
    except (sqlite3.Error, KeyError, TypeError):  # TypeError: a value that cannot be hashed
        return
    if found is not None:
        columns, key, outcome = found
        error.add_note(key_detail(", ".join(columns), ", ".join(map(str, key)), outcome))


_Found = tuple[list[str], tuple[object, ...], str]
"""A key's columns, its values, and what is wrong with it."""


def _exists(table: str, columns: Sequence[str]) -> str:
    """Write a look-up of a row by `columns`: names SQLite's own message or schema gave."""
    where = " AND ".join(f'"{column}" = ?' for column in columns)
    return f'SELECT 1 FROM "{table}" WHERE {where}'  # noqa: S608  # names from SQLite, values bound


def _taken_key(conn: sqlite3.Connection, names: list[str], rows: Sequence[Params]) -> _Found | None:
    """Find the first key on `names` (table.column) that an earlier row, or a stored one, holds."""
    columns = [name.partition(".")[2] for name in names]
    look = _exists(names[0].partition(".")[0], columns)
    seen: set[tuple[object, ...]] = set()
    for row in rows:
        key = tuple(row[column] for column in columns)
        if len(rows) == 1 or (
            None not in key and (key in seen or conn.execute(look, key).fetchone() is not None)
        ):
            return columns, key, "already exists"
        seen.add(key)
    return None


def _missing_reference(
    conn: sqlite3.Connection, table: str, rows: Sequence[Params]
) -> _Found | None:
    """Find the first reference of `rows`, by `table`'s foreign keys, that no stored row has."""
    references: dict[int, list[tuple[str, str, str]]] = {}
    for number, _, parent, column, target, *_ in conn.execute(
        f'PRAGMA foreign_key_list("{table}")'
    ):
        references.setdefault(number, []).append((parent, column, target))
    for pairs in references.values():
        parent = pairs[0][0]
        columns = [column for _, column, _ in pairs]
        look = _exists(parent, [target for _, _, target in pairs])
        for row in rows:
            key = tuple(row[column] for column in columns)
            if None not in key and conn.execute(look, key).fetchone() is None:
                return columns, key, f'is not present in table "{parent}"'
    return None


@attrs.define(eq=False)
class Budget:
    """The progress handler that interrupts a statement once the loop's slice has passed.

    Disarmed, the connection has no handler: a statement in a worker thread never stops to take
    the GIL for it, which the loop's thread holds. A `resident` budget keeps its handler, never
    due while disarmed: for a connection used only on the loop, whose thread holds the GIL
    already, it saves two calls into sqlite3 a statement.
    """

    connection: sqlite3.Connection
    resident: bool = attrs.field(default=False, kw_only=True)
    deadline: float = attrs.field(init=False, default=math.inf)
    tripped: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        if self.resident:
            self.connection.set_progress_handler(self, PROGRESS_STEPS)

    def __call__(self) -> int:
        if time.perf_counter() > self.deadline:
            self.tripped = True
            return 1
        return 0

    def arm(self) -> None:
        self.tripped = False
        self.deadline = time.perf_counter() + LOOP_SLICE
        if not self.resident:
            self.connection.set_progress_handler(self, PROGRESS_STEPS)

    def disarm(self) -> None:
        self.deadline = math.inf
        if not self.resident:
            self.connection.set_progress_handler(None, 0)


def is_busy(error: BaseException) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


_LOCK_POLL: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def lock_poll(attempt: int) -> float:
    """How long to sleep before the next try at a lock another connection holds."""
    return _LOCK_POLL[min(attempt, len(_LOCK_POLL) - 1)]


def savepointed(writer: sqlite3.Connection, plan: Plan, params: Sequence[Params]) -> int:
    """Run a bulk write all or nothing, inside whatever transaction is open."""
    assert writer.in_transaction  # noqa: S101  # a bulk write runs in a batch or a block
    writer.execute('SAVEPOINT "bulk"')
    try:
        count: int = execute(writer, plan, params, MANY)
    except BaseException:
        if writer.in_transaction:
            writer.execute('ROLLBACK TO "bulk"')
            writer.execute('RELEASE "bulk"')
        raise
    writer.execute('RELEASE "bulk"')
    return count
