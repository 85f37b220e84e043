"""A time that plain SQL wrote in another form is one instant to every question, on both engines.

PostgreSQL stores an instant whatever offset a time is written with. SQLite stores the text and
compares it as text, so a time written with another offset, a `Z` or a space sorted by its
digits: retention deleted a result an hour newer than its cut-off, and windows left it out.
Since migration 0013 SQLite's history columns hold one form: the migration rewrites the times
already stored, and the schema refuses any other form.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from persistence import Database, MigrationError, connect, delete_results_before, get_run, migrate
from persistence.migrations import discover_migrations, migrations_folder
from persistence.run_history import list_test_history, slowest_tests
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
WRITTEN: Final = {
    # as written by plain SQL: the UTC instant it names
    "2026-04-30T23:00:00.250001-02:00": T0 + dt.timedelta(hours=1, microseconds=250_001),
    "2026-05-01T00:30:00Z": T0 + dt.timedelta(minutes=30),
    "2026-05-01 06:15:00.5+05:30": T0 + dt.timedelta(minutes=45, milliseconds=500),
}
"""Each later than T0 by its instant, and earlier than T0 by its digits but for the second."""


def _inserts(times: list[str]) -> list[str]:
    return [
        "INSERT INTO test_results (test_type, status, execution_time, created_at, test_id) "  # noqa: S608  # the test's own times
        f"VALUES ('unit', 'passed', {index + 1}, '{written}', 't')"
        for index, written in enumerate(times)
    ]


async def _answers_by_instant(db: Database) -> None:
    history = (await list_test_history(db, "t")).items
    assert [r.created_at for r in history] == sorted(WRITTEN.values(), reverse=True)
    assert all(r.created_at.tzinfo is dt.UTC for r in history)
    window = await slowest_tests(
        db, created_from=T0 + dt.timedelta(minutes=40), created_until=T0 + dt.timedelta(hours=2)
    )
    assert [(s.test_id, s.results) for s in window] == [("t", 2)]
    assert (await get_run(db, 1)).started_at == T0 + dt.timedelta(hours=1)
    assert await delete_results_before(db, T0) == 0
    assert len((await list_test_history(db, "t")).items) == len(WRITTEN)


async def test_times_stored_in_another_form_are_read_as_their_instants(
    database_url: str, tmp_path: Path
) -> None:
    """Rows written before 0013 in other forms answer by their instants after it."""
    early = tmp_path / "early"
    early.mkdir()
    async with connect(database_url) as db:
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version <= 12:  # the last one before 0013
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=early)
    await plain_sql(
        database_url,
        "INSERT INTO runs (started_at) VALUES ('2026-04-30T23:00:00-02:00')",
        *_inserts(list(WRITTEN)),
    )
    async with connect(database_url) as db:
        await migrate(db)
        await _answers_by_instant(db)


async def test_a_time_in_another_form_is_refused_on_sqlite(db: Database, database_url: str) -> None:
    """After 0013, SQLite's schema refuses a time in any form but its own; PostgreSQL reads it."""
    if "://" in database_url:
        await plain_sql(
            database_url,
            "INSERT INTO runs (started_at) VALUES ('2026-04-30T23:00:00-02:00')",
            *_inserts(list(WRITTEN)),
        )
        await _answers_by_instant(db)
        return
    statements = [
        *_inserts(list(WRITTEN)),
        *_inserts(["2026-05-01T00:00:00", "2026-05-01T00:00:00.000000+00:00 "]),
        "INSERT INTO test_results (test_type, status, created_at) VALUES ('unit', 'passed', 1)",
        "INSERT INTO runs (started_at) VALUES ('2026-04-30T23:00:00-02:00')",
        (
            "INSERT INTO runs (started_at, ended_at) "
            "VALUES ('2026-05-01T00:00:00.000000+00:00', '2026-05-01T01:00:00Z')"
        ),
    ]
    for statement in statements:
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            await plain_sql(database_url, statement)
    await plain_sql(
        database_url,
        "INSERT INTO runs (started_at, ended_at) VALUES ('2026-05-01T00:00:00.000000+00:00', NULL)",
    )


async def test_a_time_that_names_no_instant_stops_the_migration(tmp_path: Path) -> None:
    """A time without its offset names no instant: 0013 stops on it, and changes nothing."""
    path = tmp_path / "app.db"
    early = tmp_path / "early"
    early.mkdir()
    async with connect(path) as db:
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version <= 12:  # the last one before 0013
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=early)
    await plain_sql(str(path), *_inserts(["2026-05-01T00:00:00"]))
    async with connect(path) as db:
        with pytest.raises(MigrationError, match="CHECK constraint failed"):
            await migrate(db)
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        assert plain.execute("SELECT created_at FROM test_results").fetchall() == [
            ("2026-05-01T00:00:00",)
        ]
