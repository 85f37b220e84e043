"""A section, key or path past 1,024 bytes, stored by plain SQL, is never passed over.

The listings' unset upper end of a section or a path is 257 times U+10FFFF, after every text
the models hold. On PostgreSQL a longer text that begins with it sorts after it, and plain
SQL could store one: `all_config_entries` and `list_file_records` passed over it without a
word. Migration 0019 refuses such a text when it is written on PostgreSQL, and stops on one
stored before it; on SQLite, whose unset end is a blob, the listings reach it and refuse it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from _migration_helpers import package_versions_from
from persistence import (
    FileRecord,
    MigrationError,
    ValidationError,
    all_config_entries,
    all_file_records,
    connect,
    list_config_entries,
    list_file_records,
    migrate,
    migration_status,
    save_file_record,
    set_config,
)
from test_plain_ids import plain_sql
from test_stored_numbers import package_through

PAST_THE_END: Final = "\U0010ffff" * 257 + "x"
"""1,029 bytes: after the listings' unset upper end, by code point."""


def _past_the_end_sql(table: str, row_id: int) -> str:
    column = "section" if table == "config_entries" else "path"
    return (
        f"UPDATE {table} SET {column} = repeat(chr(1114111), 257) || 'x'"  # noqa: S608  # the test's own SQL
        f" WHERE id = {row_id}"
    )


async def test_postgres_refuses_a_section_key_or_path_past_1024_bytes(
    migrated_postgres_url: str,
) -> None:
    """Plain SQL can no longer store one: the CHECKs of 0019 name the constraint."""
    url = migrated_postgres_url
    async with connect(url) as db:
        entry = await set_config(db, "a", "k", 1)
        record = await save_file_record(db, FileRecord(path="a"))
    for statement, constraint in (
        (_past_the_end_sql("config_entries", entry.id or 0), "config_entries_keys_within"),
        (
            f"UPDATE config_entries SET key = repeat('k', 1025) WHERE id = {entry.id}",  # noqa: S608  # the test's own SQL
            "config_entries_keys_within",
        ),
        (_past_the_end_sql("file_records", record.id or 0), "file_records_path_within"),
    ):
        with pytest.raises(asyncpg.CheckViolationError, match=constraint):
            await plain_sql(url, statement)
    async with connect(url) as db:
        assert [e.id for e in await all_config_entries(db)] == [entry.id]
        await set_config(db, "s" * 1024, "k" * 1024, 2)  # the longest the models hold stays
        await save_file_record(db, FileRecord(path="p" * 1024))
        assert len(await all_config_entries(db)) == 2
        assert len(await all_file_records(db)) == 2


async def test_one_stored_before_0019_stops_it_naming_the_rows(
    postgres_url: str, tmp_path: Path
) -> None:
    """A section or path past the end, stored before 0019, stops it; nothing changes."""
    async with connect(postgres_url) as db:
        await migrate(db, package_folder=package_through(db.engine, tmp_path / "early", 18))
        entries = [await set_config(db, "a", f"k{i}", i) for i in range(3)]
        records = [await save_file_record(db, FileRecord(path=f"p{i}")) for i in range(2)]
    await plain_sql(
        postgres_url,
        _past_the_end_sql("config_entries", entries[1].id or 0),
        _past_the_end_sql("file_records", records[0].id or 0),
    )
    async with connect(postgres_url) as db:
        with pytest.raises(
            MigrationError,
            match=rf"config_entries\.section or key is over 1024 bytes in the entries of ids "
            rf"{entries[1].id}: shorten or delete them",
        ):
            await migrate(db)
        assert [m.version for m in (await migration_status(db)).pending] == package_versions_from(
            19
        )
    await plain_sql(
        postgres_url,
        f"DELETE FROM config_entries WHERE id = {entries[1].id}",  # noqa: S608  # the test's own SQL
    )
    async with connect(postgres_url) as db:
        with pytest.raises(
            MigrationError,
            match=rf"file_records\.path is over 1024 bytes in the records of ids {records[0].id}",
        ):
            await migrate(db)
        await plain_sql(
            postgres_url,
            f"DELETE FROM file_records WHERE id = {records[0].id}",  # noqa: S608  # the test's own SQL
        )
        assert [m.version for m in await migrate(db)] == package_versions_from(19)


async def test_sqlite_listings_reach_one_and_refuse_it(migrated_sqlite: Path) -> None:
    """On SQLite the unset end is a blob, after every text: the listings refuse the row."""
    async with connect(migrated_sqlite) as db:
        await set_config(db, "a", "k", 1)
        entry = await set_config(db, "b", "k", 2)
        await save_file_record(db, FileRecord(path="a"))
        record = await save_file_record(db, FileRecord(path="b"))
    with contextlib.closing(sqlite3.connect(migrated_sqlite)) as plain, plain:
        plain.execute(
            "UPDATE config_entries SET section = ? WHERE id = ?", (PAST_THE_END, entry.id)
        )
        plain.execute("UPDATE file_records SET path = ? WHERE id = ?", (PAST_THE_END, record.id))
    async with connect(migrated_sqlite) as db:
        for read, refused in (
            (lambda: all_config_entries(db), f"config_entries.section: id {entry.id}"),
            (lambda: list_config_entries(db, limit=5), f"config_entries.section: id {entry.id}"),
            (lambda: list_file_records(db, limit=5), f"file_records.path: id {record.id}"),
        ):
            with pytest.raises(ValidationError, match=rf"stored row\.{refused}: "):
                await read()
