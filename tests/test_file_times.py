"""A file record's time that plain SQL wrote in another form sorts as its instant, on both engines.

SQLite compares its times as text. Migration 0013 held the history tables' times to one form;
0014 does the same for `file_records.created_at` and `accessed_at`, which `all_file_records`
orders by and the `accessed_from` / `accessed_until` window of `list_file_records` compares.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from persistence import (
    Database,
    FileRecordFilter,
    MigrationError,
    all_file_records,
    connect,
    list_file_records,
    migrate,
    migration_status,
)
from persistence.migrations import discover_migrations, migrations_folder
from test_history_times import T0, WRITTEN
from test_plain_ids import plain_sql

FORM: Final = "2026-05-01T00:00:00.000000+00:00"


def _inserts(times: list[str]) -> list[str]:
    return [
        "INSERT INTO file_records (path, created_at, accessed_at) "  # noqa: S608  # the test's own times
        f"VALUES ('f{index}', '{written}', '{written}')"
        for index, written in enumerate(times)
    ]


async def _sorted_by_instant(db: Database) -> None:
    records = await all_file_records(db)
    assert [r.accessed_at for r in records] == sorted(WRITTEN.values(), reverse=True)
    assert all(r.created_at == r.accessed_at for r in records)
    window = FileRecordFilter(
        accessed_from=T0 + dt.timedelta(minutes=40), accessed_until=T0 + dt.timedelta(hours=2)
    )
    assert [r.path for r in (await list_file_records(db, window)).items] == ["f0", "f2"]


async def _before_0014(database_url: str, folder: Path) -> None:
    """Migrate a fresh database up to 0013, from a folder of the migrations before 0014."""
    async with connect(database_url) as db:
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version <= 13:  # the last one before 0014
                (folder / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=folder)


async def test_file_times_stored_in_another_form_sort_as_their_instants(
    database_url: str, tmp_path: Path
) -> None:
    """Records written before 0014 with times in other forms answer by their instants after it."""
    (tmp_path / "early").mkdir()
    await _before_0014(database_url, tmp_path / "early")
    await plain_sql(database_url, *_inserts(list(WRITTEN)))
    async with connect(database_url) as db:
        await migrate(db)
        await _sorted_by_instant(db)


async def test_a_file_time_in_another_form_is_refused_on_sqlite(
    db: Database, database_url: str
) -> None:
    """After 0014, SQLite refuses a file time in any form but its own; PostgreSQL reads it."""
    if "://" in database_url:
        await plain_sql(database_url, *_inserts(list(WRITTEN)))
        await _sorted_by_instant(db)
        return
    for statement in [
        *_inserts(list(WRITTEN)),
        *_inserts(["2026-05-01T00:00:00", f"{FORM} "]),
        f"INSERT INTO file_records (path, created_at, accessed_at) VALUES ('f', 1, '{FORM}')",  # noqa: S608  # the test's own time
        f"INSERT INTO file_records (path, created_at, accessed_at) VALUES ('f', '{FORM}', 1)",  # noqa: S608  # the test's own time
    ]:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            await plain_sql(database_url, statement)
    await plain_sql(database_url, *_inserts([FORM]))
    assert [r.accessed_at for r in await all_file_records(db)] == [T0]


async def test_a_file_time_that_names_no_instant_stops_the_migration(tmp_path: Path) -> None:
    """A file time without its offset stops 0014, naming the record, and nothing changes."""
    path = tmp_path / "app.db"
    (tmp_path / "early").mkdir()
    await _before_0014(str(path), tmp_path / "early")
    await plain_sql(str(path), *_inserts([FORM, "2026-05-01T00:00:00", "2026-05-01T00:30:00Z"]))
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=r"file_records .* ids 2: write it"):
            await migrate(db)
        assert (await migration_status(db)).pending[0].version == 14
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        assert plain.execute("SELECT accessed_at FROM file_records ORDER BY id").fetchall() == [
            (FORM,),
            ("2026-05-01T00:00:00",),
            ("2026-05-01T00:30:00Z",),
        ]
