"""File records under hostile use: writers between pages, rows and arguments past the rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import persistence.file_records
from persistence import (
    Database,
    FileRecord,
    FileRecordFilter,
    ValidationError,
    all_file_records,
    connect,
    delete_file_record,
    find_file_record,
    find_file_record_by_path,
    list_file_records,
    save_file_record,
)
from persistence._paging import READ_PAGE, page_of
from test_plain_ids import plain_sql

ROWS = READ_PAGE + 10
"""Enough records for two pages of `all_file_records`: the oldest ten on the second."""


def _insert_rows(database_url: str) -> str:
    """One statement that stores ROWS records `f1`..., `f1` accessed first, as plain SQL would."""
    if "://" in database_url:
        return (
            "INSERT INTO file_records (path, created_at, accessed_at) "  # noqa: S608  # the test's own SQL
            "SELECT 'f' || i, '2026-01-01+00', timestamptz '2026-01-01+00' + i * interval '1 s' "
            f"FROM generate_series(1, {ROWS}) AS i"
        )
    return (
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "  # noqa: S608  # the test's own SQL
        "INSERT INTO file_records (path, created_at, accessed_at) "
        "SELECT 'f' || i, '2026-01-01T00:00:00.000000+00:00', "
        "strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2026-01-01', '+' || i || ' seconds') FROM n"
    )


def _touch(database_url: str, path: str) -> str:
    """The statement that marks a record as just used, as a tracked read does."""
    now = "now()" if "://" in database_url else "strftime('%Y-%m-%dT%H:%M:%S.000000+00:00')"
    return f"UPDATE file_records SET accessed_at = {now} WHERE path = '{path}'"  # noqa: S608  # the test's own SQL


async def test_records_used_between_pages_are_still_in_all_file_records(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`all_file_records` pages newest access first, and every tracked read refreshes the access.

    A record used by another process after the first page moved ahead of the cursor, and the
    listing left it out: `verify` then called its file `new`. Here the oldest record not yet
    touched is used after each page; every record is still listed once.
    """
    await plain_sql(database_url, _insert_rows(database_url))
    pages: list[int] = []

    async def touched_after_each_page(rows: list[Any], *args: Any) -> Any:  # noqa: ANN401  # page_of's own
        pages.append(len(rows))
        await plain_sql(database_url, _touch(database_url, f"f{len(pages)}"))
        return await page_of(rows, *args)

    monkeypatch.setattr(persistence.file_records, "page_of", touched_after_each_page)
    records = await all_file_records(db)
    assert max(pages) == READ_PAGE
    assert len(records) == len({record.path for record in records}) == ROWS


@pytest.mark.parametrize("column", ["created_at", "accessed_at"])
@pytest.mark.parametrize("text", ["10000-01-01+00", "4713-01-01 BC", "0001-01-01 00:00:00+14"])
async def test_postgres_times_past_pythons_years_are_refused_as_stored_rows(
    migrated_postgres_url: str, column: str, text: str
) -> None:
    """PostgreSQL's `timestamptz` holds 4713 BC to 294276 AD, Python's datetime 1 to 9999.

    A record whose time plain SQL set outside Python's years made every read of it raise
    asyncpg's bare `OverflowError` ("date value out of range"). It is now a ValidationError on
    `stored row.time`, as a time SQLite holds that does not decode; the other records still read.
    """
    url = migrated_postgres_url
    async with connect(url) as db:
        await save_file_record(db, FileRecord(path="a"))
        bad = await save_file_record(db, FileRecord(path="b"))
        await plain_sql(url, f"UPDATE file_records SET {column} = '{text}' WHERE id = {bad.id}")  # noqa: S608  # the test's own SQL
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: find_file_record(db, bad.id or 0),
            lambda: find_file_record_by_path(db, "b"),
            lambda: all_file_records(db),
            lambda: list_file_records(db),
        ]
        for read in reads:
            with pytest.raises(ValidationError, match=r"^stored row\.time: .*years 1 to 9999"):
                await read()
        assert (await find_file_record_by_path(db, "a")) is not None
        assert await delete_file_record(db, bad.id or 0)


@pytest.mark.parametrize("column", ["path", "hash"])
async def test_sqlite_text_that_is_not_utf8_is_refused_as_a_stored_row(
    sqlite_db: Database, tmp_path: Path, column: str
) -> None:
    """SQLite's TEXT columns keep whatever bytes plain SQL casts to text, UTF-8 or not.

    A record holding such bytes made every read of it a `DatabaseError`, as if the database
    had failed. It is now a ValidationError on `stored row.<column>`, as other stored values
    the models refuse; the other records still read.
    """
    await save_file_record(sqlite_db, FileRecord(path="a"))
    bad = await save_file_record(sqlite_db, FileRecord(path="f"))
    update = f"UPDATE file_records SET {column} = CAST(x'66ff' AS TEXT) WHERE id = {bad.id}"  # noqa: S608  # the test's own SQL
    await plain_sql(str(tmp_path / "test.db"), update)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: find_file_record(sqlite_db, bad.id or 0),
        lambda: all_file_records(sqlite_db),
        lambda: list_file_records(sqlite_db),
        lambda: list_file_records(sqlite_db, FileRecordFilter(path_prefix="f")),
    ]
    for read in reads:
        with pytest.raises(ValidationError, match=rf"^stored row\.{column}: .*UTF-8"):
            await read()
    assert (await find_file_record_by_path(sqlite_db, "a")) is not None
    assert await delete_file_record(sqlite_db, bad.id or 0)


class _Size(int):
    """An int of a subclass, as an `IntEnum` or a library's own int type is."""


async def test_a_size_of_an_int_subclass_is_stored_as_its_int(db: Database) -> None:
    """Ids and floats of a subclass are taken as their value; sizes were refused, wrongly.

    `FileRecord(size=_Size(3))` said "must be at most 9223372036854775807, got 3", and so did
    `FileRecordFilter(min_size=_Size(1))`. Both now take the int's value, on both engines.
    """
    record = await save_file_record(db, FileRecord(path="a", size=_Size(3)))
    assert (record.size, type(record.size)) == (3, int)
    page = await list_file_records(db, FileRecordFilter(min_size=_Size(1), max_size=_Size(3)))
    assert [found.path for found in page.items] == ["a"]
    with pytest.raises(ValidationError, match=r"FileRecord\.size: must not be negative, got -1"):
        FileRecord(path="a", size=_Size(-1))
    with pytest.raises(
        ValidationError, match=r"FileRecord\.size: must be at most \d+, got 9223372036854775808"
    ):
        FileRecord(path="a", size=_Size(2**63))
