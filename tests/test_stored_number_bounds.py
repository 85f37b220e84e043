"""A stored time is finite and at most MAX_EXECUTION_TIME, so every answer's time is too.

The model refuses a time that is not finite or above MAX_EXECUTION_TIME (1e12 seconds), but
plain SQL could store one: `'NaN'` and `'Infinity'` on PostgreSQL, whose NaN sorts above every
number and so passed `>= 0`; `9e999` (infinity) on SQLite; `1e300` on both. The run-history
answers, computed in SQL, passed it through: `slowest_tests` gave a p50 of nan or inf, and the
CLI's test-history stopped on it. Migration 0016 refuses such a time on both engines by a
CHECK named `test_results_execution_time_finite_up_to_1e12`, and stops on one stored before
it, naming its rows. The integer columns need no such CHECK: their types (bigint, SQLite's 64-bit
integer and 0016's CHECK of the stored type) hold the model's bound, MAX_INT.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from pathlib import Path
from typing import Final

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _migration_helpers import package_versions_from
from persistence import Database, MigrationError, connect, migrate, migration_status
from persistence.__main__ import main
from persistence.models import MAX_EXECUTION_TIME, MAX_INT
from test_plain_ids import plain_sql
from test_stored_numbers import (
    COLUMNS,
    every_answer,
    migrate_before_0016,
    number_fields,
    seed_two_runs,
    stored_table,
)

CHECK: Final = "test_results_execution_time_finite_up_to_1e12"
FIRST: Final = "id = (SELECT min(id) FROM test_results)"
INFINITIES: Final = {
    "postgres": ["'Infinity'", "'inf'", "'+infinity'", "CAST('Infinity' AS DOUBLE PRECISION)"],
    "sqlite": ["9e999", "1e309", "-(-9e999)", "1e308 * 10"],
}
"""Ways plain SQL writes positive infinity into a float column (`'9e999'` is out of range on
PostgreSQL)."""
NANS: Final = ["'NaN'", "'nan'", "CAST('NaN' AS DOUBLE PRECISION)"]
"""Ways plain SQL writes NaN on PostgreSQL; SQLite stores NaN as NULL."""


def _engine(database_url: str) -> str:
    return "postgres" if "://" in database_url else "sqlite"


@st.composite
def out_of_range(draw: st.DrawFn, engine: str) -> str:
    """SQL for a time the model refuses, though not negative: above 1e12, infinite, or NaN."""
    kinds = ["over", "infinity"] + (["nan"] if engine == "postgres" else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "infinity":
        return draw(st.sampled_from(INFINITIES[engine]))
    if kind == "nan":
        return draw(st.sampled_from(NANS))
    seconds = draw(
        st.floats(min_value=MAX_EXECUTION_TIME, exclude_min=True, allow_infinity=False)
        | st.just(math.nextafter(MAX_EXECUTION_TIME, math.inf))
    )
    return draw(st.sampled_from([repr(seconds), f"'{seconds!r}'"]))


async def _refused(database_url: str, statement: str) -> None:
    """Run `statement` by plain SQL and see the CHECK refuse it."""
    if _engine(database_url) == "postgres":
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await plain_sql(database_url, statement)
        assert refused.value.constraint_name == CHECK
    else:
        with pytest.raises(sqlite3.IntegrityError, match=f"CHECK constraint failed: {CHECK}$"):
            await plain_sql(database_url, statement)


def _set_time(value: str, where: str = "TRUE") -> str:
    """SQL that sets the time of the results `where` picks to `value`."""
    return f"UPDATE test_results SET execution_time = {value} WHERE {where}"  # noqa: S608  # the test's own SQL


def _out_of_bounds(answers: list[object]) -> list[tuple[str, object]]:
    """The float fields not finite or above MAX_EXECUTION_TIME, the int ones above MAX_INT."""
    wrong: list[tuple[str, object]] = []
    for where, value, declared in number_fields(answers, "answers"):
        if value is None or not isinstance(value, int | float):
            continue
        if (declared is float and not 0 <= value <= MAX_EXECUTION_TIME) or value > MAX_INT:
            wrong.append((where, value))
    return wrong


@pytest.fixture(name="seeded")
async def seeded_fixture(db: Database, database_url: str) -> tuple[int, int]:
    """The migrated database, seeded once for all examples of a test: the runs' ids."""
    return await seed_two_runs(db, database_url)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_plain_sql_cannot_store_a_time_the_model_refuses(
    db: Database, database_url: str, seeded: tuple[int, int], data: st.DataObject
) -> None:
    """Above 1e12, infinite or NaN: refused by the named CHECK, on update and on insert.

    Every answer's times are then finite and at most MAX_EXECUTION_TIME.
    """
    value = data.draw(out_of_range(_engine(database_url)), label="value")
    insert = data.draw(st.booleans(), label="insert")
    statement = (
        "INSERT INTO test_results (test_type, status, execution_time, created_at, test_id) "  # noqa: S608  # the test's own SQL
        f"SELECT test_type, status, {value}, created_at, 'n' FROM test_results WHERE {FIRST}"
        if insert
        else _set_time(value, FIRST)
    )
    await _refused(database_url, statement)
    assert _out_of_bounds(await every_answer(db, *seeded)) == []


@pytest.mark.parametrize("kind", ["nan", "infinity", "over"])
async def test_the_cli_json_stays_json(
    database_url: str,
    seeded: tuple[int, int],
    kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After a refused time, `test-history --json` and `compare --json` give strict JSON."""
    engine = _engine(database_url)
    value = {"nan": NANS[0], "infinity": INFINITIES[engine][0], "over": "1e300"}[kind]
    if kind == "nan" and engine == "sqlite":
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed"):
            await plain_sql(database_url, _set_time("9e999 - 9e999"))
    else:
        await _refused(database_url, _set_time(value))
    for command in (["test-history", "t"], ["compare", *map(str, seeded)]):
        code = await asyncio.to_thread(main, [*command, "--json", "--database", database_url])
        assert code == 0, capsys.readouterr()
        json.loads(capsys.readouterr().out, parse_constant=pytest.fail)


async def test_the_longest_time_and_the_largest_integers_are_stored_and_answered(
    db: Database, database_url: str, seeded: tuple[int, int]
) -> None:
    """MAX_EXECUTION_TIME and MAX_INT are stored and read back; the next number up is refused.

    The integer columns' types refuse MAX_INT + 1 (bigint; a real on SQLite, which 0016's CHECK
    of the stored type refuses), and no answer sums them.
    """
    counts = [c for c in COLUMNS if c.integer and not c.name.endswith("_id")]
    counts.sort(key=lambda c: c.name == "test_cases_passed")  # at most test_cases_total
    await plain_sql(
        database_url,
        _set_time(repr(MAX_EXECUTION_TIME)),
        *(f"UPDATE {c.table} SET {c.name} = {MAX_INT}" for c in counts),  # noqa: S608  # the test's own SQL
    )
    answers = await every_answer(db, *seeded)
    assert _out_of_bounds(answers) == []
    numbers = [value for _, value, _ in number_fields(answers, "answers")]
    assert MAX_EXECUTION_TIME in numbers
    assert MAX_INT in numbers
    await _refused(database_url, _set_time(repr(math.nextafter(MAX_EXECUTION_TIME, math.inf))))
    for column in counts:
        update = f"UPDATE {column.table} SET {column.name} = {MAX_INT + 1} WHERE {column.row}"  # noqa: S608  # the test's own SQL
        with pytest.raises((asyncpg.NumericValueOutOfRangeError, sqlite3.IntegrityError)):
            await plain_sql(database_url, update)
    assert _out_of_bounds(await every_answer(db, *seeded)) == []


async def _rows_and_checks(database_url: str) -> tuple[list[object], list[object]]:
    """The stored times as the engine writes them, by id; the CHECKs of test_results."""
    if _engine(database_url) == "sqlite":
        path = Path(database_url)
        sql, stored = stored_table(path, "test_results")
        return list(stored), [sql]
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT id, execution_time::text FROM test_results ORDER BY id"
        )
        checks = await connection.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'test_results'::regclass"
            " ORDER BY conname"
        )
    finally:
        await connection.close()
    return [tuple(row) for row in rows], [row[0] for row in checks]


BEFORE: Final = {
    "postgres": ["'NaN'", "'Infinity'", "1e300", "1000000000000.0001"],
    "sqlite": ["9e999", "1e308 * 10", "1e300", "1000000000000.0001"],
}
"""Times the model refuses that plain SQL could store before 0016."""


@pytest.mark.parametrize("index", range(4))
async def test_a_time_stored_out_of_range_stops_the_migration(
    database_url: str, tmp_path: Path, index: int
) -> None:
    """Such a time stops 0016, naming table, column and rows; the database stays as it was."""
    value = BEFORE[_engine(database_url)][index]
    await migrate_before_0016(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        await seed_two_runs(db, database_url)
    await plain_sql(database_url, _set_time(value, "id IN (2, 5)"))
    before = await _rows_and_checks(database_url)
    async with connect(database_url) as db:
        with pytest.raises(
            MigrationError,
            match=r"test_results\.execution_time holds a time that is not finite or is above "
            r"1e12 seconds in the results of ids 2, 5: write",
        ):
            await migrate(db)
        assert (await migration_status(db)).pending[0].version == 16
    assert await _rows_and_checks(database_url) == before


async def test_the_longest_time_stored_before_the_migration_stays(
    database_url: str, tmp_path: Path
) -> None:
    """A time of exactly MAX_EXECUTION_TIME stored before 0016 is kept, and answered."""
    await migrate_before_0016(database_url, tmp_path / "early")
    async with connect(database_url) as db:
        base, head = await seed_two_runs(db, database_url)
    await plain_sql(database_url, _set_time(repr(MAX_EXECUTION_TIME)))
    async with connect(database_url) as db:
        assert [m.version for m in await migrate(db)] == package_versions_from(16)
        answers = await every_answer(db, base, head)
    assert MAX_EXECUTION_TIME in [value for _, value, _ in number_fields(answers, "answers")]
    assert _out_of_bounds(answers) == []
