"""How a copy moves rows: each package table, page by page, from one database into another.

`backup.py` checks and runs a copy; this module moves its rows. Each table is read in key order
from a snapshot of the source, the next page read while one is written. Each row becomes the
parameters of its write by a generated function, field by field: a renamed column is a type error.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from persistence._backend import Engine
from persistence._cancelling import refuse_cancel_from_outside
from persistence._driver_errors import translate_errors
from persistence._loans import borrow
from persistence._loop import map_in_slices
from persistence._rows import (
    config_from_row,
    file_record_from_row,
    finite_time,
    refused_row,
    result_from_row,
)
from persistence.exceptions import DatabaseError, ValidationError
from persistence.queries import (
    ConfigEntriesRow,
    FileRecordsRow,
    ResultArtifactsRow,
    RunsRow,
    TestResultsRow,
    copy_write_config_entries_params,
    copy_write_file_records_params,
    copy_write_result_artifacts_params,
    copy_write_runs_params,
    copy_write_test_results_params,
)
from persistence.runs import run_from_row

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.database import Database
    from persistence.queries import CopyTableSizesRow

COPIED_TABLES: Final = (
    "runs",
    "test_results",
    "result_artifacts",
    "config_entries",
    "file_records",
)
"""The tables a copy moves, in the order it writes them: runs before the results that name
them, results before the links to their counterexamples' files."""

ID_TABLES: Final = ("runs", "test_results", "config_entries", "file_records")
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

PACKAGE_COLUMNS: Final = {
    table: frozenset(row._fields)
    for table, row in (
        ("runs", RunsRow),
        ("test_results", TestResultsRow),
        ("result_artifacts", ResultArtifactsRow),
        ("config_entries", ConfigEntriesRow),
        ("file_records", FileRecordsRow),
    )
}
"""The columns of each copied table that the package's migrations make on both engines: the
fields of its generated row, which sqlc reads off the migrations; see `package_columns` for one
engine's."""

_POSTGRES_COLUMNS: Final = {"test_results": frozenset({"search_vector"})}
"""PostgreSQL's own: generated, so that the target computes it again."""


def package_columns(engine: Engine, table: str) -> frozenset[str]:
    """Give the columns of copied `table` that the package's migrations make on `engine`.

    Any other was added by the user's own, and its values are not copied.
    """
    own = _POSTGRES_COLUMNS.get(table, frozenset()) if engine is Engine.POSTGRES else frozenset()
    return PACKAGE_COLUMNS[table] | own


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


_CONFIG_VALUE: Final = operator.attrgetter("value")

_TIMES: Final = {
    "runs": ("started_at", "ended_at"),
    "test_results": ("created_at",),
    "config_entries": ("updated_at",),
    "file_records": ("created_at", "accessed_at"),
}
"""Each table's times: a backup, which checks nothing else, cannot write one naming no instant."""


def _instants(table: str) -> Callable[[Any], None]:
    """Check only that a row's times name instants, naming its table, column and id if not.

    PostgreSQL's infinities read as naive times, which no SQLite file takes: its writer
    refused one, naming neither the row nor its table.
    """
    fields = _TIMES[table]

    def check(row: Any) -> None:  # noqa: ANN401  # any of the tables' generated rows
        for field in fields:
            stored = getattr(row, field)
            if stored is not None and stored.tzinfo is None:
                raise refused_row(table, row.id, lambda: finite_time(table, field, stored))  # noqa: B023  # called at once

    return check


def _read_alike(check: Callable[[_R], object], params: Callable[[_R], _P]) -> Callable[[_R], _P]:
    """Give a row's parameters once `check`, the mapping that reads it, takes it.

    A row that plain SQL stored against the models' rules (a NUL in a text, a path past 1,024
    bytes, a run that ends before it starts) is refused by every read of it: a copy that moved
    it would make a database that the package refuses to read.
    """

    def checked(row: _R) -> _P:
        check(row)
        return params(row)

    return checked


_FIRST_ID: Final = -(2**63)
"""Where paging starts: the least 64-bit id, so that ids of 0 or below written by plain SQL
are copied too, that one included."""
_LAST_ID: Final = 2**63 - 1


def _from_id(
    read_from: Callable[[int, int], Awaitable[list[_I]]],
) -> Callable[[int | None, int], Awaitable[list[_I]]]:
    """Read the page after the id given (`None`: the first), from the next id on.

    The reads take the first id of a page, not the last of the one before: no id lies before
    the least 64-bit one, and a row there was missed. None lies after the greatest either.
    """

    async def after(last: int | None, size: int) -> list[_I]:
        if last is None:
            return await read_from(_FIRST_ID, size)
        return [] if last == _LAST_ID else await read_from(last + 1, size)

    return after


def check_moved(moved: dict[str, int], expected: dict[str, int]) -> None:
    """Refuse a copy that moved other than every row of the source's snapshot; it rolls back."""
    wrong = [
        f"{t}: {moved[t]:,} of {expected[t]:,}" for t in COPIED_TABLES if moved[t] != expected[t]
    ]
    if wrong:
        raise DatabaseError(
            "copy: the rows copied differ from the source's, so nothing was copied "
            f"({'; '.join(wrong)})"
        )


def sizes_of(row: CopyTableSizesRow | None) -> dict[str, int]:
    """Give the rows of each copied table, in the order a copy writes them."""
    if row is None:  # pragma: no cover  # a SELECT without FROM gives one row
        return dict.fromkeys(COPIED_TABLES, 0)
    sizes = row._asdict()
    return {table: int(sizes[table]) for table in COPIED_TABLES}


async def move_rows(
    source: Database, reading: Connection, tx: Database, page_size: int, *, checked: bool = True
) -> tuple[dict[str, int], dict[str, int]]:
    """Copy each table a page at a time: give the rows of each, and the last id of each with one.

    With `checked`, each row first passes the checks a read makes of it (see `_read_alike`);
    a backup, which keeps what the database holds, is written unchecked.
    """
    moved: dict[str, int] = {}
    last_ids: dict[str, int] = {}

    def params_of(
        check: Callable[[_R], object], table: str, params: Callable[[_R], _P]
    ) -> Callable[[_R], _P]:
        return _read_alike(check if checked else _instants(table), params)

    async def by_id(
        table: str,
        read_from: Callable[[int, int], Awaitable[list[_I]]],
        convert: Callable[[_I], _P],
        write: Callable[[Connection, list[_P]], Awaitable[None]],
        stored_of: Callable[[_I], object] | None = None,
    ) -> None:
        moved[table], last = await _pipe(
            source,
            tx,
            _from_id(read_from),
            convert,
            write,
            key=lambda row: row.id,
            first=None,
            page_size=page_size,
            stored_of=stored_of,
            table=table,
        )
        last_ids[table] = _FIRST_ID if last is None else last

    queries = source.queries  # read on `reading`, the source's snapshot
    await by_id(
        "runs",
        lambda first, size: queries.copy_read_runs(reading, from_id=first, page_size=size),
        params_of(run_from_row, "runs", copy_write_runs_params),
        tx.queries.copy_write_runs,
    )
    await by_id(
        "test_results",
        lambda first, size: queries.copy_read_test_results(reading, from_id=first, page_size=size),
        params_of(result_from_row, "test_results", copy_write_test_results_params),
        tx.queries.copy_write_test_results,
    )
    moved["result_artifacts"], _ = await _pipe(
        source,
        tx,
        lambda after, size: queries.copy_read_result_artifacts(
            reading, after_result_id=after[0], after_role=after[1], page_size=size
        ),
        copy_write_result_artifacts_params,
        tx.queries.copy_write_result_artifacts,
        key=lambda row: (row.result_id, row.role),
        first=(_FIRST_ID, ""),
        page_size=page_size,
        table="result_artifacts",
    )
    await by_id(
        "config_entries",
        lambda first, size: queries.copy_read_config_entries(
            reading, from_id=first, page_size=size
        ),
        params_of(config_from_row, "config_entries", copy_write_config_entries_params),
        tx.queries.copy_write_config_entries,
        _CONFIG_VALUE,  # a value of megabytes is decoded in a worker thread, as reads do
    )
    await by_id(
        "file_records",
        lambda first, size: queries.copy_read_file_records(reading, from_id=first, page_size=size),
        params_of(file_record_from_row, "file_records", copy_write_file_records_params),
        tx.queries.copy_write_file_records,
    )
    return moved, last_ids


def _page_reader(
    source: Database,
    read_after: Callable[[_K, int], Awaitable[list[_R]]],
    *,
    key: Callable[[_R], _K],
    first: _K,
    page_size: int,
    table: str,
) -> Callable[[_K], Awaitable[list[_R]]]:
    """Read the page after a key; a row that does not decode is a `DatabaseError` naming it."""

    async def decoded(after: _K, size: int) -> list[_R]:
        async with translate_errors(source):
            return await read_after(after, size)

    async def last_decoded(after: _K) -> _K:
        """Read on a row at a time, within one page: the key of the last row that decodes."""
        with contextlib.suppress(ValueError, TypeError):
            for _ in range(page_size):
                rows = await decoded(after, 1)
                if not rows:
                    break
                after = key(rows[0])
        return after

    async def read(after: _K) -> list[_R]:
        try:
            return await decoded(after, page_size)
        except (ValueError, TypeError) as error:  # stored bytes that no longer decode
            # The driver's decoding fails before any row is built, so the row is named by the
            # one before it. A text not in UTF-8 is the driver's own error, translated.
            found = await last_decoded(after)
            named = "(result_id, role)" if isinstance(found, tuple) else "id"
            where = "the first row" if found == first else f"the row after {named} {found}"
            raise DatabaseError(
                f"copy: {where} of {table}, read from {source.url}, cannot be decoded, so "
                f"nothing was copied ({type(error).__name__}: {error})"
            ) from error

    return read


async def _pipe(
    source: Database,
    tx: Database,
    read_after: Callable[[_K, int], Awaitable[list[_R]]],
    convert: Callable[[_R], _P],
    write: Callable[[Connection, list[_P]], Awaitable[None]],
    *,
    key: Callable[[_R], _K],
    first: _K,
    page_size: int,
    stored_of: Callable[[_R], object] | None = None,
    table: str,
) -> tuple[int, _K]:
    """Write page after page into `tx`, reading the next page while one is written.

    Pages follow the key of the last row read, from `first` on (which is before any row): a
    page shorter than `page_size` is the last. Give the rows written, and the last row's key
    (`first` when there was none).
    """
    read = _page_reader(source, read_after, key=key, first=first, page_size=page_size, table=table)
    count = 0
    last = first
    page = await read(first)
    while page:
        last = key(page[-1])
        following = asyncio.ensure_future(read(last)) if len(page) == page_size else None
        try:
            try:
                params = await map_in_slices(convert, page, stored_of)
            except ValidationError as error:
                raise DatabaseError(
                    f"copy: a row read from {source.url} breaks the models' rules, so nothing "
                    f"was copied ({error})"
                ) from error
            async with borrow(tx) as conn:
                await write(conn, params)
        except BaseException:
            if following is not None:
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
            raise
        count += len(page)
        if following is None:
            break
        try:
            page = await following
        except asyncio.CancelledError:  # the read's, cancelled from outside: a DatabaseError
            refuse_cancel_from_outside(following)
            raise
    return count, last
