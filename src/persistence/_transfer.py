"""How a copy moves rows: each package table, page by page, from one database into another.

`backup.py` checks and runs a copy; this module holds what moves its rows. Each table is read
in key order from a snapshot of the source, the next page read while one is written, and each
row read becomes the parameters of its write field by field, so that a renamed column or
parameter is a type error here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from persistence._loop import map_in_slices
from persistence.database import connection, translate_errors
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._interface import Connection
    from persistence.database import Database
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
    "ID_TABLES",
    "LEFT_TABLES",
    "PACKAGE_TABLES",
    "PAGE_SIZE",
    "check_moved",
    "move_rows",
    "sizes_of",
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


def check_moved(moved: dict[str, int], expected: dict[str, int]) -> None:
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


def sizes_of(row: CopyTableSizesRow | None) -> dict[str, int]:
    """Give the rows of each copied table, in the order a copy writes them."""
    if row is None:  # pragma: no cover  # a SELECT without FROM gives one row
        return dict.fromkeys(COPIED_TABLES, 0)
    sizes = row._asdict()
    return {table: int(sizes[table]) for table in COPIED_TABLES}


async def move_rows(
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

    runs = writer(_run_params, tx.queries.copy_write_runs)
    results = writer(_result_params, tx.queries.copy_write_test_results)
    links = writer(_link_params, tx.queries.copy_write_result_artifacts)
    config = writer(_config_params, tx.queries.copy_write_config_entries)
    files = writer(_file_params, tx.queries.copy_write_file_records)

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
