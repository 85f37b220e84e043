"""On SQLite, a stored time names an instant: its date and time exist, in the years 1 to 9999.

The CHECKs of 0013, 0014 and 0016 hold SQLite's times to the package's form by the shape of
their digits alone, so plain SQL could store `2026-02-30`, an hour of 24, a month of 00 or the
year 0000, which PostgreSQL's timestamptz and Python's datetime cannot hold. The run-history
questions compare the text without reading it and mis-answered; `list_test_history` refused the
row on read. Migration 0018's triggers refuse such a time in every time column; a database
already holding one stops the migration, named by its column and rows' ids, and nothing changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _migration_helpers import package_versions_from
from persistence import (
    Database,
    FileRecord,
    MigrationError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    get_config_entry_by_key,
    get_file_record,
    get_run,
    list_results,
    migrate,
    migration_status,
    save_file_record,
    save_result,
    save_results,
    save_run,
    set_config,
)
from test_json_stored_as_text import _plain
from test_stored_numbers import package_through

NOW: Final = "2026-05-01T00:00:00.000000+00:00"
NO_INSTANT: Final = (
    "2026-02-30T00:00:00.000000+00:00",  # SQLite's date functions carry it into March
    "2023-02-29T12:00:00.000000+00:00",  # not a leap year
    "2026-05-01T24:00:00.000000+00:00",  # carried into the next day
    "2026-00-00T00:00:00.000000+00:00",
    "0000-01-01T00:00:00.000000+00:00",  # Python's datetime has no year 0
    "2026-13-01T00:00:00.000000+00:00",
    "2026-05-01T23:60:00.000000+00:00",
    "2026-05-01T23:59:60.000000+00:00",
)
INSTANTS: Final = (
    "2024-02-29T23:59:59.999999+00:00",
    "2000-02-29T00:00:00.000000+00:00",
    "0001-01-01T00:00:00.000000+00:00",
    "9999-12-31T23:59:59.999999+00:00",
)

_INSERT: Final = {
    # column: an insert of a row whose other columns are valid, the time as its parameter
    "test_results.created_at": (
        "INSERT INTO test_results (test_type, status, created_at) VALUES ('unit', 'passed', ?)"
    ),
    "runs.started_at": "INSERT INTO runs (started_at) VALUES (?)",
    "runs.ended_at": (
        "INSERT INTO runs (started_at, ended_at) VALUES ('2026-05-01T00:00:00.000000+00:00', ?)"
    ),
    "file_records.created_at": (
        "INSERT INTO file_records (path, created_at, accessed_at)"
        " VALUES ('/plain/' || random(), ?, '2026-05-01T00:00:00.000000+00:00')"
    ),
    "file_records.accessed_at": (
        "INSERT INTO file_records (path, created_at, accessed_at)"
        " VALUES ('/plain/' || random(), '2026-05-01T00:00:00.000000+00:00', ?)"
    ),
    "config_entries.updated_at": (
        "INSERT INTO config_entries (section, key, value, type, updated_at)"
        " VALUES ('plain', 'k' || random(), '1', 'int', ?)"
    ),
}
COLUMNS: Final = list(_INSERT)


def _update(column: str) -> str:
    table, name = column.split(".")
    return f"UPDATE {table} SET {name} = ?"  # noqa: S608  # the schema's own names


async def _save_one_of_each(db: Database) -> None:
    """A result, a run, a file record and a config entry, through the package's own saves."""
    t0 = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC)
    run = await save_run(db, Run(started_at=t0, ended_at=t0 + dt.timedelta(microseconds=1)))
    assert run.id is not None
    assert (await get_run(db, run.id)).ended_at == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    result = TestResult(
        test_type=TestType.UNIT, status=TestStatus.PASSED, created_at=t0, run_id=run.id, test_id="a"
    )
    await save_result(db, result)
    batch = [
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.FAILED, created_at=t0, test_id=f"b{i}"
        )
        for i in range(3)
    ]
    assert await save_results(db, batch) == len(batch)
    assert [r.created_at for r in (await list_results(db)).items] == [t0] * 4
    record = await save_file_record(db, FileRecord(path="/a", created_at=t0, accessed_at=t0))
    assert record.id is not None
    assert (await get_file_record(db, record.id)).accessed_at == t0
    await set_config(db, "app", "n", 1)
    entry = await get_config_entry_by_key(db, "app", "n")
    assert entry.updated_at.tzinfo is dt.UTC


@pytest.mark.parametrize("column", COLUMNS)
async def test_plain_sql_cannot_store_a_time_that_names_no_instant(
    sqlite_db: Database, column: str
) -> None:
    """Each insert and update is refused by its trigger, naming the column; saves still work.

    A valid time is taken, and one in another form is still refused by the CHECK of 0013.
    """
    await _save_one_of_each(sqlite_db)
    path = Path(sqlite_db.url)
    for written in NO_INSTANT:
        for statement in (_INSERT[column], _update(column)):
            with pytest.raises(sqlite3.IntegrityError, match=f"{column} must name an instant"):
                _plain(path, (statement, (written,)))
    for written in INSTANTS:
        _plain(path, (_INSERT[column], (written,)), (_update(column), (written,)))
    if column == "runs.ended_at":
        _plain(path, (_INSERT[column], (None,)), (_update(column), (None,)))
    if column != "config_entries.updated_at":  # another form is still the CHECK's to name
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            _plain(path, (_INSERT[column], ("2026-02-30 00:00:00",)))


_YEARS: Final = "in the years 1 to 9999"


def _stored(path: Path, column: str, written: str) -> bool:
    """Whether plain SQL may insert `written` into `column`; nothing is kept either way."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        try:
            plain.execute(_INSERT[column], (written,))
        except sqlite3.IntegrityError as refused:
            said = str(refused)
        else:
            said = ""
        finally:
            plain.rollback()
    assert said in {"", f"{column} must name an instant: a date and time that exist, {_YEARS}"}
    return not said


def _an_instant(written: str) -> bool:
    try:
        dt.datetime.fromisoformat(written)
    except ValueError:
        return False
    return True


_FIELDS: Final = st.tuples(
    st.one_of(st.sampled_from([0, 1, 1900, 2000, 2023, 2024, 9999]), st.integers(0, 9999)),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.integers(0, 999_999),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(column=st.sampled_from(COLUMNS), fields=_FIELDS)
@example(column="test_results.created_at", fields=(2026, 2, 30, 0, 0, 0, 0))
@example(column="runs.started_at", fields=(2026, 5, 1, 24, 0, 0, 0))
@example(column="file_records.accessed_at", fields=(0, 1, 1, 0, 0, 0, 0))
@example(column="config_entries.updated_at", fields=(2026, 4, 31, 23, 59, 59, 0))
async def test_a_time_is_taken_when_python_reads_it(
    sqlite_db: Database, column: str, fields: tuple[int, ...]
) -> None:
    """The triggers take a time in the package's form exactly when Python reads it."""
    year, month, day, hour, minute, second, micro = fields
    written = (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}+00:00"
    )
    assert _stored(Path(sqlite_db.url), column, written) is _an_instant(written)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=_FIELDS,
    separator=st.sampled_from("T "),
    seconds=st.booleans(),
    zone=st.sampled_from(["+00:00", "Z", "+05:30", "-02:00"]),
)
async def test_a_config_time_in_another_form_is_held_alike(
    sqlite_db: Database,
    fields: tuple[int, ...],
    separator: str,
    seconds: bool,  # noqa: FBT001  # drawn by hypothesis
    zone: str,
) -> None:
    """`config_entries.updated_at` has no CHECK of its form: each form is held to an instant."""
    year, month, day, hour, minute, second, _ = fields
    written = f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}"
    written += f":{second:02d}{zone}" if seconds else zone
    stored = _stored(Path(sqlite_db.url), "config_entries.updated_at", written)
    assert stored is _an_instant(written)


_NOUNS: Final = {
    "test_results": "results",
    "runs": "runs",
    "file_records": "records",
    "config_entries": "entries",
}


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as plain:
        return {
            table: plain.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608  # the schema's own names
            for table in _NOUNS
        }


async def _before_0018(path: Path, folder: Path) -> None:
    """Migrate a fresh database up to 0017, the last one before 0018."""
    async with connect(path) as db:
        await migrate(db, package_folder=package_through(db.engine, folder, 17))


async def _stops(path: Path, said: str) -> None:
    """Migrating stops on 0018 with `said`, leaving the rows and the schema as they were."""
    before = _rows(path)
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=said):
            await migrate(db)
        assert [m.version for m in (await migration_status(db)).pending] == package_versions_from(
            18
        )
    assert _rows(path) == before
    with contextlib.closing(sqlite3.connect(path)) as plain:
        triggers = plain.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_instant_%'"
        ).fetchall()
    assert triggers == []


@pytest.mark.parametrize("column", COLUMNS)
async def test_a_database_holding_one_stops_the_migration_by_ids(
    tmp_path: Path, column: str
) -> None:
    """No instant to choose for it: 0018 names the column and rows, changes nothing."""
    path = tmp_path / "app.db"
    await _before_0018(path, tmp_path / "early")
    table, name = column.split(".")
    _plain(path, *[(_INSERT[column], (NOW,))] * 4)
    bad = f"UPDATE {table} SET {name} = ? WHERE id = ?"  # noqa: S608  # the schema's own names
    _plain(path, (bad, (NO_INSTANT[0], 2)), (bad, (NO_INSTANT[2], 4)))
    await _stops(
        path, f"{column} holds a time that names no instant in the {_NOUNS[table]} of ids 2, 4:"
    )
    _plain(path, (bad, (NOW, 2)), (bad, (INSTANTS[0], 4)))
    async with connect(path) as db:
        assert [m.version for m in await migrate(db)] == package_versions_from(18)


async def test_the_stop_names_the_first_20_rows(tmp_path: Path) -> None:
    """Many such rows: the first 20 ids are named, as 0014 and 0017 name theirs."""
    path = tmp_path / "app.db"
    await _before_0018(path, tmp_path / "early")
    insert = _INSERT["test_results.created_at"]
    _plain(path, *[(insert, (NOW,))] * 30)
    _plain(path, ("UPDATE test_results SET created_at = ? WHERE id > 5", (NO_INSTANT[4],)))
    ids = ", ".join(str(i) for i in range(6, 26))
    await _stops(path, f"in the results of ids {ids}: write the instant it meant")
