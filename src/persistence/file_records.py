"""File records: which files the tool tracks, with their size, hash and last access."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

import attrs
from attrs.converters import optional
from attrs.validators import optional as optional_check

from persistence._blocks import every_item_in_one_state
from persistence._database_value import require_database
from persistence._guards import (
    MAX_INT,
    as_utc,
    count,
    instance_of,
    key_id,
    key_text,
    nonempty_key,
    nonempty_text,
    of_type,
)
from persistence._loans import run_query
from persistence._paging import (
    AFTER_EVERY_KEY,
    END_OF_TIME,
    READ_PAGE,
    START_OF_TIME,
    Page,
    continued_filter,
    page_limit,
    page_of,
    prefix_range,
    stored_id,
)
from persistence._rows import file_record_from_row, file_record_params, found, saved_params
from persistence.database import Database
from persistence.exceptions import NotFoundError, ValidationError
from persistence.models import FileRecord
from persistence.queries import FileRecordsRow

__all__ = [
    "TABLE",
    "FileRecordCursor",
    "FileRecordFilter",
    "all_file_records",
    "delete_file_record",
    "delete_file_record_by_path",
    "find_file_record",
    "find_file_record_by_path",
    "get_file_record",
    "get_file_record_by_path",
    "list_file_records",
    "save_file_record",
]

TABLE = "file_records"
"""The table these functions read and write; caches key their invalidation on it."""


def _short_text(instance: object, field: attrs.Attribute[str | None], value: str | None) -> None:
    """Validate a path pattern: text of at most MAX_KEY_BYTES, like the paths it matches."""
    if value is not None:
        key_text(type(instance).__name__, field.name, value)


@attrs.frozen(kw_only=True)
class FileRecordFilter:
    """Which file records to list: each field that is set narrows the listing, in SQL."""

    path_prefix: str | None = attrs.field(default=None, validator=_short_text)
    """Paths that start with this text, character for character (`reports/` or `rep`)."""
    path_glob: str | None = attrs.field(default=None, validator=_short_text)
    """Paths the whole of which match this glob, case-sensitively.

    `*` matches any run of characters, `/` included; `?` one character; any other, `[` too, itself.
    """
    min_size: int | None = attrs.field(default=None, validator=optional_check(count))
    """Inclusive lower bound on `size`, in bytes."""
    max_size: int | None = attrs.field(default=None, validator=optional_check(count))
    """Inclusive upper bound on `size`, in bytes."""
    accessed_from: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Inclusive lower bound on `accessed_at`."""
    accessed_until: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Exclusive upper bound on `accessed_at`."""


@attrs.frozen
class FileRecordCursor:
    """Where the next page of file records starts: after this path, with its filter."""

    path: str = attrs.field(validator=nonempty_key)
    where: FileRecordFilter = attrs.field(
        factory=FileRecordFilter, validator=instance_of(FileRecordFilter)
    )


async def find_file_record(db: Database, record_id: int) -> FileRecord | None:
    """Return the record with this id, or None."""
    record_id = key_id("FileRecord", record_id)
    row = await run_query(db, lambda conn: db.queries.get_file_record(conn, id=record_id))
    return None if row is None else file_record_from_row(row)


async def get_file_record(db: Database, record_id: int) -> FileRecord:
    """Return the record with this id, or raise NotFoundError."""
    return found("FileRecord", record_id, await find_file_record(db, record_id))


async def find_file_record_by_path(db: Database, path: str) -> FileRecord | None:
    """Return the record of this path, or None."""
    path = nonempty_text("FileRecord", "path", path)
    row = await run_query(db, lambda conn: db.queries.get_file_record_by_path(conn, path=path))
    return None if row is None else file_record_from_row(row)


async def get_file_record_by_path(db: Database, path: str) -> FileRecord:
    """Return the record of this path, or raise NotFoundError."""
    return found("FileRecord", path, await find_file_record_by_path(db, path))


async def all_file_records(db: Database) -> list[FileRecord]:
    """Return every record, most recently accessed first, READ_PAGE rows a query.

    More than a page is read again in one snapshot: each use of a file moves its record to the
    front, past the cursor, so a record used meanwhile by another process was left out. One
    page is one statement, which needs none (a snapshot costs SQLite some thread hops).
    """
    return await _every_record(db, file_record_from_row)


async def records_and_refused(db: Database) -> tuple[list[FileRecord], list[FileRecordsRow]]:
    """Give every record the model takes, as `all_file_records` does, and apart the rows it refuses.

    `verify` names such a row (plain SQL wrote it against the rules) as malformed: one of them
    failed it whole, and the changes on disk it was asked about went unseen. A row whose time
    or metadata cannot be decoded still fails the read of its page.
    """
    read = await _every_record(db, _record_or_row)
    return [r for r in read if isinstance(r, FileRecord)], [
        r for r in read if not isinstance(r, FileRecord)
    ]


def _record_or_row(row: FileRecordsRow) -> FileRecord | FileRecordsRow:
    try:
        return file_record_from_row(row)
    except ValidationError:
        return row


_Read = TypeVar("_Read", FileRecord, FileRecord | FileRecordsRow)


async def _every_record(db: Database, read: Callable[[FileRecordsRow], _Read]) -> list[_Read]:
    """Read every row through `read`, in pages; more than one page in one snapshot."""
    return await every_item_in_one_state(db, lambda seen, after: _accessed_page(seen, after, read))


_AccessCursor = tuple[dt.datetime, int]
"""The (accessed_at, id) of the last record of a page in access order."""


async def _accessed_page(
    db: Database, after: _AccessCursor | None, read: Callable[[FileRecordsRow], _Read]
) -> Page[_Read, _AccessCursor]:
    """Give one page of READ_PAGE records in access order, after the cursor `after`."""
    cursor_at, cursor_id = (END_OF_TIME, MAX_INT) if after is None else after
    queries = require_database(db).queries
    rows = await run_query(
        db,
        lambda conn: queries.list_file_records(
            conn, cursor_accessed_at=cursor_at, cursor_id=cursor_id, page_size=READ_PAGE
        ),
    )
    return await page_of(rows, read, READ_PAGE, lambda last: (last.accessed_at, stored_id(last)))


async def save_file_record(db: Database, record: FileRecord) -> FileRecord:
    """Store a record and return it as stored.

    Without an id, the record of the same path is refreshed (its creation time stays) or made.
    With an id, it is overwritten: NotFoundError if missing, ConflictError if its path is taken.
    """
    record = of_type(FileRecord, record, "record")
    params = await saved_params(record, file_record_params, record.metadata)
    if record.id is None:
        row = await run_query(db, lambda conn: db.queries.upsert_file_record(conn, **params))
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always gives the row
        return file_record_from_row(row)
    record_id = record.id
    changed = await run_query(
        db, lambda conn: db.queries.update_file_record(conn, id=record_id, **params)
    )
    if changed == 0:
        raise NotFoundError("FileRecord", record.id)
    return record


async def delete_file_record(db: Database, record_id: int) -> bool:
    """Delete the record with this id; return whether there was one."""
    record_id = key_id("FileRecord", record_id)
    return await run_query(db, lambda conn: db.queries.delete_file_record(conn, id=record_id)) > 0


async def delete_file_record_by_path(db: Database, path: str) -> bool:
    """Delete the record of this path; return whether there was one."""
    path = nonempty_text("FileRecord", "path", path)
    deleted = await run_query(
        db, lambda conn: db.queries.delete_file_record_by_path(conn, path=path)
    )
    return deleted > 0


async def list_file_records(
    db: Database,
    where: FileRecordFilter | None = None,
    *,
    limit: int = 100,
    after: FileRecordCursor | None = None,
) -> Page[FileRecord, FileRecordCursor]:
    """Return one page of file records in path order (by code point), filtered in SQL.

    Pass the page's `next_cursor` as `after` for the next page; the cursor keeps the filter,
    so `where` may be left out, and refuses another.
    """
    limit = page_limit("FileRecordFilter", limit)
    cursor_where = None if after is None else of_type(FileRecordCursor, after, "after").where
    where = continued_filter(FileRecordFilter, "FileRecordCursor", where, cursor_where)
    low, high = _path_range(where)
    cursor_path = "" if after is None else after.path
    rows = await run_query(
        db,
        lambda conn: (
            db.queries.list_file_records_page
            if where.path_glob is None  # a glob's runs off the loop on SQLite: ms a path in a step
            else db.queries.list_file_records_glob_page
        )(
            conn,
            # The tighter lower bound twice: SQLite's scan starts from the first (see upper_bounds).
            path_from=max(low, cursor_path),
            path_until=high,
            cursor_path=cursor_path,
            path_glob=where.path_glob,
            size_from=0 if where.min_size is None else where.min_size,
            size_until=MAX_INT if where.max_size is None else where.max_size,
            accessed_from=START_OF_TIME if where.accessed_from is None else where.accessed_from,
            accessed_until=where.accessed_until,
            page_size=limit,
        ),
    )
    return await page_of(
        rows, file_record_from_row, limit, lambda last: FileRecordCursor(last.path, where)
    )


def _path_range(where: FileRecordFilter) -> tuple[str, str]:
    """Give [low, high), the paths the prefix and the glob's leading literal text allow."""
    low: str = ""
    high: str = AFTER_EVERY_KEY
    heads = [where.path_prefix or ""]
    if where.path_glob is not None:
        end = min((i for i in map(where.path_glob.find, "*?") if i >= 0), default=None)
        heads.append(where.path_glob[:end])
    for head in heads:
        if head:
            head_low, head_high = prefix_range(head)
            low, high = max(low, head_low), min(high, head_high)
    return low, high
