"""File records: which files the tool tracks, with their size, hash and last access."""

from __future__ import annotations

from persistence._guards import key_id, key_text, of_type
from persistence._rows import file_record_from_row, file_record_params, map_in_slices
from persistence.database import Database, connection, wrote
from persistence.exceptions import NotFoundError
from persistence.models import FileRecord

__all__ = [
    "TABLE",
    "all_file_records",
    "delete_file_record",
    "delete_file_record_by_path",
    "find_file_record",
    "find_file_record_by_path",
    "get_file_record",
    "get_file_record_by_path",
    "save_file_record",
]

TABLE = "file_records"
"""The table these functions read and write; caches key their invalidation on it."""


async def find_file_record(db: Database, record_id: int) -> FileRecord | None:
    """Return the record with this id, or None."""
    record_id = key_id("FileRecord", record_id)
    async with connection(db) as conn:
        row = await db.queries.get_file_record(conn, id=record_id)
    return None if row is None else file_record_from_row(row)


async def get_file_record(db: Database, record_id: int) -> FileRecord:
    """Return the record with this id, or raise NotFoundError."""
    record = await find_file_record(db, record_id)
    if record is None:
        raise NotFoundError("FileRecord", record_id)
    return record


async def find_file_record_by_path(db: Database, path: str) -> FileRecord | None:
    """Return the record of this path, or None."""
    path = key_text("FileRecord", "path", path)
    async with connection(db) as conn:
        row = await db.queries.get_file_record_by_path(conn, path=path)
    return None if row is None else file_record_from_row(row)


async def get_file_record_by_path(db: Database, path: str) -> FileRecord:
    """Return the record of this path, or raise NotFoundError."""
    record = await find_file_record_by_path(db, path)
    if record is None:
        raise NotFoundError("FileRecord", path)
    return record


async def all_file_records(db: Database) -> list[FileRecord]:
    """Return every record, most recently accessed first."""
    async with connection(db) as conn:
        rows = [row async for row in db.queries.list_file_records(conn)]
    return await map_in_slices(file_record_from_row, rows)


async def save_file_record(db: Database, record: FileRecord) -> FileRecord:
    """Store a record and return it as stored.

    Without an id, the record of the same path is refreshed (size, hash, access time,
    metadata; its creation time stays) or a new one made. With an id, that record is
    overwritten: NotFoundError if it does not exist, ConflictError if its new path
    belongs to another record.
    """
    params = file_record_params(of_type(FileRecord, record))
    async with connection(db) as conn:
        if record.id is None:
            row = await db.queries.upsert_file_record(conn, **params)
        else:
            changed = await db.queries.update_file_record(conn, id=record.id, **params)
    await wrote(db, TABLE)
    if record.id is None:
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always gives the row
        return file_record_from_row(row)
    if changed == 0:
        raise NotFoundError("FileRecord", record.id)
    return record


async def delete_file_record(db: Database, record_id: int) -> bool:
    """Delete the record with this id; return whether there was one."""
    record_id = key_id("FileRecord", record_id)
    async with connection(db) as conn:
        deleted = await db.queries.delete_file_record(conn, id=record_id)
    await wrote(db, TABLE)
    return deleted > 0


async def delete_file_record_by_path(db: Database, path: str) -> bool:
    """Delete the record of this path; return whether there was one."""
    path = key_text("FileRecord", "path", path)
    async with connection(db) as conn:
        deleted = await db.queries.delete_file_record_by_path(conn, path=path)
    await wrote(db, TABLE)
    return deleted > 0
