"""A number column holds a number on SQLite too, so that every answer's numbers are numbers.

SQLite's type affinity keeps text that reads as no number, and any blob, in an INTEGER or REAL
column, and the schema's `>= 0` CHECKs took them, as SQLite orders text and blobs above every
number. `get_result` refused such a row, but the run-history answers, computed in SQL, passed
the value through: `slowest_tests` gave bytes as `p50`. Migration 0016 makes SQLite refuse
them, and stops on one stored before it, naming the row. PostgreSQL's columns are typed: the
same tests pass there, with the same answers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sqlite3
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import asyncpg
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from persistence import (
    Database,
    Engine,
    FileRecord,
    MigrationError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_file_records,
    all_results,
    compare_runs,
    connect,
    counterexamples,
    duration_figures,
    flaky_tests,
    list_test_history,
    migrate,
    migration_status,
    result_stats,
    save_file_record,
    save_results,
    save_run,
    search_results,
    slowest_tests,
)
from persistence.migrations import discover_migrations, migrations_folder
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
SHA: Final = "ab" * 32


@attrs.frozen
class Column:
    """A number column of the schema, and the row that the tests write into."""

    table: str
    name: str
    integer: bool
    row: str
    """A WHERE clause that picks one seeded row."""

    @property
    def constraint(self) -> str:
        """The name of the CHECK that refuses a value of another type on SQLite."""
        kind = "an_integer" if self.integer else "a_number"
        return f"{self.table}_{self.name}_is_{kind}"


FIRST_RESULT: Final = "id = (SELECT min(id) FROM test_results)"
COLUMNS: Final = [
    Column("test_results", "execution_time", integer=False, row=FIRST_RESULT),
    Column("test_results", "memory_usage", integer=True, row=FIRST_RESULT),
    Column("test_results", "test_cases_passed", integer=True, row=FIRST_RESULT),
    Column("test_results", "test_cases_total", integer=True, row=FIRST_RESULT),
    Column("test_results", "run_id", integer=True, row=FIRST_RESULT),
    Column("file_records", "size", integer=True, row="path = 'f'"),
    Column("result_artifacts", "result_id", integer=True, row="role = 'input'"),
    Column("result_artifacts", "size", integer=True, row="role = 'input'"),
]


def _stored_type(integer: bool, literal: str) -> str:  # noqa: FBT001  # a column's kind
    """The type SQLite stores `literal` as in a column of that kind, before any CHECK."""
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        probe.execute(f"CREATE TABLE probe (value {'INTEGER' if integer else 'REAL'})")
        probe.execute(f"INSERT INTO probe VALUES ({literal})")  # noqa: S608  # the test's own
        return str(probe.execute("SELECT typeof(value) FROM probe").fetchone()[0])


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _blob(value: bytes, *, postgres: bool) -> str:
    return f"'\\x{value.hex()}'::bytea" if postgres else f"x'{value.hex()}'"


def _number_like(value: str) -> bool:
    """Whether PostgreSQL may read `value` as a float; NaN and Infinity are left out here."""
    try:
        float(value)
    except ValueError:
        return False
    return True


@st.composite
def bad_values(draw: st.DrawFn, column: Column, *, postgres: bool) -> str:
    """SQL for a value that SQLite would store in `column` as another type than its own."""
    wanted = "integer" if column.integer else "real"
    kinds = ["text", "blob"] + (["real"] if column.integer else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "blob":
        return _blob(draw(st.binary(max_size=16)), postgres=postgres)
    if kind == "real":
        number = draw(
            st.floats(min_value=0, allow_infinity=False).filter(
                lambda f: not f.is_integer() or f >= 2.0**63
            )
        )
        return repr(number)
    text = draw(
        st.text(
            st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
        ).filter(lambda t: not _number_like(t) and _stored_type(column.integer, _text(t)) != wanted)
    )
    return _text(text)


async def seed_two_runs(db: Database, database_url: str) -> tuple[int, int]:
    """Seed two runs of one commit, and a file record; give the runs' ids.

    Test `t` passes in both, `f` fails then passes, `s` is a failing stress test with an input.
    """
    runs = []
    for hour, f_status in enumerate((TestStatus.FAILED, TestStatus.PASSED)):
        run = await save_run(
            db, Run(started_at=T0 + dt.timedelta(hours=hour), labels={"commit": "c"})
        )
        assert run.id is not None
        runs.append(run.id)
        when = T0 + dt.timedelta(hours=hour)
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT if test_id != "s" else TestType.STRESS,
                    status=status,
                    execution_time=0.25 + hour + len(test_id),
                    memory_usage=1000 + hour,
                    test_cases_passed=1,
                    test_cases_total=3,
                    created_at=when,
                    output=f"{test_id} wrote words",
                    test_id=test_id,
                    run_id=run.id,
                )
                for test_id, status in (
                    ("t", TestStatus.PASSED),
                    ("f", f_status),
                    ("s", TestStatus.FAILED),
                )
            ],
        )
    await plain_sql(
        database_url,
        "INSERT INTO result_artifacts (result_id, role, sha256, size) "  # noqa: S608  # constants
        f"SELECT max(id), 'input', '{SHA}', 12 FROM test_results WHERE test_id = 's'",
    )
    await save_file_record(
        db, FileRecord(path="f", size=10, hash=SHA, created_at=T0, accessed_at=T0)
    )
    return runs[0], runs[1]


@pytest.fixture(name="seeded")
async def seeded_fixture(db: Database, database_url: str) -> tuple[int, int]:
    """The migrated database, seeded once for all examples of a test: the runs' ids."""
    return await seed_two_runs(db, database_url)


async def every_answer(db: Database, base: int, head: int) -> list[object]:
    """Every answer that reads the number columns, the run-history ones above all."""
    return [
        await all_results(db),
        await slowest_tests(db),
        await duration_figures(db, "t"),
        await compare_runs(db, base, head),
        await flaky_tests(db, T0),
        (await list_test_history(db, "t")).items,
        await counterexamples(db, "s"),
        await result_stats(db),
        await all_file_records(db),
        (await search_results(db, "words")).items,
    ]


def number_fields(answer: object, where: str) -> Iterator[tuple[str, object, type]]:
    """Each int or float field in `answer`, nested ones too: (where, value, type declared)."""
    if isinstance(answer, list | tuple):
        for index, item in enumerate(answer):
            yield from number_fields(item, f"{where}[{index}]")
    elif isinstance(answer, dict):
        for key, item in answer.items():
            yield from number_fields(item, f"{where}[{key!r}]")
    elif attrs.has(kind := type(answer)):
        hints = typing.get_type_hints(kind)
        for field in attrs.fields(kind):
            value = getattr(answer, field.name)
            hint = hints[field.name]
            union = typing.get_origin(hint) in {typing.Union, types.UnionType}
            declared = {int, float} & set(typing.get_args(hint) if union else [hint])
            if declared:
                yield f"{where}.{field.name}", value, declared.pop()
            else:
                yield from number_fields(value, f"{where}.{field.name}")


def _not_numbers(answers: list[object]) -> list[tuple[str, object]]:
    """The fields declared int or float whose value is another type (None aside)."""
    wrong = []
    for where, value, declared in number_fields(answers, "answers"):
        if value is None or (type(value) is declared) or (declared is float and type(value) is int):
            continue
        wrong.append((where, value))
    return wrong


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(data=st.data())
async def test_plain_sql_cannot_store_another_type_in_a_number_column(
    db: Database, database_url: str, seeded: tuple[int, int], data: st.DataObject
) -> None:
    """Text, a blob, or in an integer column a real: refused by the column's CHECK.

    PostgreSQL refuses them by its types (it rounds a fraction written into an integer column,
    as it always has). On both, every answer's numbers are then numbers.
    """
    postgres = "://" in database_url
    column = data.draw(st.sampled_from(COLUMNS), label="column")
    value = data.draw(bad_values(column, postgres=postgres), label="value")
    update = f"UPDATE {column.table} SET {column.name} = {value} WHERE {column.row}"  # noqa: S608  # the test's own SQL
    if postgres:
        with contextlib.suppress(asyncpg.PostgresError):
            await plain_sql(database_url, update)
    else:
        with pytest.raises(
            sqlite3.IntegrityError, match=f"CHECK constraint failed: {column.constraint}$"
        ):
            await plain_sql(database_url, update)
    assert _not_numbers(await every_answer(db, *seeded)) == []


async def migrate_before_0016(database_url: str, folder: Path) -> None:
    """Migrate a fresh database up to 0015, from a folder of the migrations before 0016."""
    async with connect(database_url) as db:
        await migrate(db, package_folder=package_through(db.engine, folder, 15))


def package_through(engine: Engine, folder: Path, last: int) -> Path:
    """Make `folder` hold the package's migrations up to `last`: migrating from it stops there.

    A test of one migration compares the schema before and after it alone, not later ones'.
    """
    folder.mkdir()
    for migration in discover_migrations(migrations_folder(engine)):
        if migration.version <= last:
            (folder / migration.path.name).write_text(migration.sql, encoding="utf-8")
    return folder


def _schema(path: Path) -> list[tuple[str, ...]]:
    """Every object of a SQLite file's schema with its SQL, the tables' aside; the counters."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        objects = plain.execute(
            "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master"
            " WHERE type <> 'table' ORDER BY type, name"
        ).fetchall()
        counters = plain.execute("SELECT name, seq FROM sqlite_sequence ORDER BY name").fetchall()
    return [tuple(map(str, row)) for row in objects + counters]


def stored_table(path: Path, table: str) -> tuple[str, list[tuple[object, ...]]]:
    """A SQLite table's schema and rows, with their types and rowids, as stored."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        sql = plain.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
        columns = [row[1] for row in plain.execute(f"PRAGMA table_info({table})")]
        typed = ", ".join(f"{c}, typeof({c})" for c in columns)
        rows = plain.execute(f"SELECT rowid, {typed} FROM {table} ORDER BY rowid").fetchall()  # noqa: S608  # the schema's own names
    return str(sql[0]), rows


def _types(path: Path, column: Column) -> set[str]:
    """The types of the values stored in a SQLite column."""
    with contextlib.closing(sqlite3.connect(path)) as plain:
        found = plain.execute(f"SELECT DISTINCT typeof({column.name}) FROM {column.table}")  # noqa: S608  # the schema's own names
        return {str(row[0]) for row in found}


NUMERIC_TEXTS: Final = [
    "UPDATE test_results SET execution_time = '1.5' WHERE test_id = 't'",
    "UPDATE test_results SET memory_usage = ' 2048 ', test_cases_total = '+4' WHERE test_id = 'f'",
    "UPDATE file_records SET size = '11'",
    "UPDATE result_artifacts SET size = '13'",
]
"""Numbers written as text by plain SQL: each engine stores them as numbers."""


async def test_every_answer_is_as_it_was_after_the_migration(
    database_url: str, tmp_path: Path
) -> None:
    """A database of numbers, some written as text, answers alike before 0016 and after it.

    On SQLite the migration keeps its triggers, indexes and counters as they were, and every
    number column holds numbers: SQLite's affinity stored the numeric text as numbers.
    """
    await migrate_before_0016(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        base, head = await seed_two_runs(db, database_url)
        await plain_sql(database_url, *NUMERIC_TEXTS)
        before = await every_answer(db, base, head)
    schema = [] if "://" in database_url else _schema(Path(database_url))
    async with connect(database_url) as db:
        through = package_through(db.engine, tmp_path / "through", 16)
        assert [m.version for m in await migrate(db, package_folder=through)] == [16]
        assert await every_answer(db, base, head) == before
    assert _not_numbers(before) == []
    if "://" not in database_url:
        assert _schema(Path(database_url)) == schema
        for column in COLUMNS:
            wanted = {"integer", "null"} if column.integer else {"real"}
            assert _types(Path(database_url), column) <= wanted, column


def _named(column: Column, rows: str) -> str:
    return rf"{column.table}\.{column.name} holds .* {rows}: write"


ORPHAN: Final = "the migration leaves 1 row(s) whose foreign key has no parent"


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (COLUMNS[0], "x'00'", _named(COLUMNS[0], "ids 1")),
        (COLUMNS[0], "'abc'", _named(COLUMNS[0], "ids 1")),
        (COLUMNS[1], "x''", _named(COLUMNS[1], "ids 1")),
        (COLUMNS[2], "1.5", _named(COLUMNS[2], "ids 1")),
        (COLUMNS[3], "'3 cases'", _named(COLUMNS[3], "ids 1")),
        (COLUMNS[4], "x'01'", rf"{re.escape(ORPHAN)}: test_results row 1 -> runs"),
        (COLUMNS[5], "'0x10'", _named(COLUMNS[5], "ids 1")),
        (COLUMNS[6], "x'06'", rf"{re.escape(ORPHAN)}: result_artifacts row 1 -> test_results"),
        (COLUMNS[7], "1e20", _named(COLUMNS[7], r"\(result_id, role\) \(6, input\)")),
    ],
)
async def test_a_stored_value_of_another_type_stops_the_migration(
    tmp_path: Path, column: Column, value: str, message: str
) -> None:
    """Such a value stops 0016, naming table, column and row; the tables stay as they were.

    A foreign key of another type than its parent's key has no parent: the check of foreign
    keys that precedes every migration names its row.
    """
    path = tmp_path / "app.db"
    await migrate_before_0016(str(path), tmp_path / "early")
    async with connect(path) as db:
        await seed_two_runs(db, str(path))
    update = f"UPDATE {column.table} SET {column.name} = {value} WHERE {column.row}"  # noqa: S608  # the test's own SQL
    await plain_sql(str(path), update)
    stored = {table: stored_table(path, table) for table in {c.table for c in COLUMNS}}
    schema = _schema(path)
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=message):
            await migrate(db)
        assert (await migration_status(db)).pending[0].version == 16
    assert {table: stored_table(path, table) for table in stored} == stored
    assert _schema(path) == schema
