"""A JSON object that plain SQL stores with a key twice has one reading, on both engines.

PostgreSQL's jsonb keeps the last value of a key written twice, and Python's json reads the
last. SQLite stores the text, and its json_extract and json_each read the first: `flaky_tests`
and the metadata filter answered by the first value where the model, once read, held the last.
Since migration 0014 SQLite refuses such an object in `test_results.metadata` and `runs.labels`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import sqlite3
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import (
    Database,
    MigrationError,
    ResultFilter,
    all_results,
    connect,
    flaky_tests,
    get_result,
    get_run,
    migrate,
    migration_status,
)
from persistence.database import Engine
from persistence.migrations import discover_migrations, migrations_folder
from strategies import IN_MEMORY
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
AT: Final = "2026-05-01T00:00:00.000000+00:00"


def _result(status: str, metadata: str, run_id: int | None = None) -> str:
    run = "NULL" if run_id is None else str(run_id)
    return (
        "INSERT INTO test_results (test_type, status, created_at, metadata, run_id, test_id) "  # noqa: S608  # the test's own values
        f"VALUES ('unit', '{status}', '{AT}', '{metadata}', {run}, 't')"
    )


def _run(labels: str) -> str:
    return f"INSERT INTO runs (started_at, labels) VALUES ('{AT}', '{labels}')"  # noqa: S608  # the test's own values


DOUBLED: Final = [
    _run('{"commit":"a","commit":"b"}'),
    _run('{"commit":"b"}'),
    _result("passed", '{"solution":"a.cpp","solution":"b.cpp"}', 1),
    _result("failed", "{}", 2),
]
"""Run 1 is on commit b to PostgreSQL and Python, on a to SQLite's json_extract."""


async def _one_reading(db: Database) -> None:
    chosen = await all_results(db, ResultFilter(metadata={"solution": "b.cpp"}))
    assert [r.metadata for r in chosen] == [{"solution": "b.cpp"}]
    assert await all_results(db, ResultFilter(metadata={"solution": "a.cpp"})) == []
    assert (await get_run(db, 1)).labels == {"commit": "b"}
    assert [(f.test_id, f.flaky_commits) for f in await flaky_tests(db, T0)] == [("t", 1)]


REFUSED: Final = [
    '{"a":1,"a":2}',
    '{"a":1,"a":null}',
    '{ "a": 1, "a": 1 }',
    '{"a":"{","a":2}',
    '{"a":1,"\\u0061":2}',
    '{"n":{"b":1,"b":2}}',
    '{"x":[1,{"k":1,"k":2}]}',
    '{"a":[1,2],"b":true,"a":[1,2]}',
]
"""Objects with a key twice: flat, compact or not, escaped, nested in an object or an array."""

TAKEN: Final = [
    "{}",
    '{"a":null}',
    '{"a":1,"b":[1,{"a":2}]}',
    '{ "a" : 1 , "b" : 2 }',
    '{"a\\"b":1,"a":2,"b":"\\u0061"}',
    '{"a":{"a":{"a":1}},"b":"{\\"a\\":1,\\"a\\":2}"}',
]
"""Objects with each key once, whichever way SQLite's look tells."""


async def test_an_object_with_a_key_twice_has_one_reading(db: Database, database_url: str) -> None:
    """PostgreSQL keeps one value of a key written twice; SQLite refuses the object."""
    if "://" in database_url:
        await plain_sql(database_url, *DOUBLED)
        await _one_reading(db)
        return
    await plain_sql(database_url, _run("{}"), _result("passed", "{}", 1))
    for text in REFUSED:
        for statement, column in [
            (_run(text), "runs.labels"),
            (_result("passed", text), "test_results.metadata"),
            (f"UPDATE runs SET labels = '{text}' WHERE id = 1", "runs.labels"),  # noqa: S608  # the test's own text
            (f"UPDATE test_results SET metadata = '{text}' WHERE id = 1", "test_results.metadata"),  # noqa: S608  # the test's own text
        ]:
            with pytest.raises(sqlite3.IntegrityError, match=f"key twice.*: {column}$"):
                await plain_sql(database_url, statement)
    await plain_sql(database_url, *[_run(text) for text in TAKEN])
    await plain_sql(database_url, *[_result("passed", text) for text in TAKEN])
    assert (await get_run(db, 1 + len(TAKEN))).labels["a"] == {"a": {"a": 1}}
    assert (await get_result(db, 2)).metadata == {}


async def test_a_key_stored_twice_stops_the_migration(tmp_path: Path) -> None:
    """Stored objects with a key twice stop 0014, named by id, and nothing changes."""
    path = tmp_path / "app.db"
    early = tmp_path / "early"
    early.mkdir()
    async with connect(path) as db:
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version <= 13:  # the last one before 0014
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
        await migrate(db, package_folder=early)
    kept = '{"n":{"a":null},"x":[{"k":1}]}'
    await plain_sql(
        str(path),
        _run(kept),
        _result("passed", kept, 1),
        _result("passed", '{"a":1,"a":2}'),
        _result("passed", '{"n":{"b":1,"b":2}}'),
    )
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=r"test_results\.metadata .* ids 2, 3: keep one"):
            await migrate(db)
        assert (await migration_status(db)).pending[0].version == 14
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        stored = plain.execute("SELECT metadata FROM test_results ORDER BY id").fetchall()
        assert stored == [(kept,), ('{"a":1,"a":2}',), ('{"n":{"b":1,"b":2}}',)]
        plain.execute("""UPDATE test_results SET metadata = '{"a":2}' WHERE id > 1""")
        plain.execute("""UPDATE runs SET labels = '{"c":1,"c":1}'""")
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=r"runs\.labels .* ids 1: keep one"):
            await migrate(db)
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        plain.execute(f"UPDATE runs SET labels = '{kept}'")  # noqa: S608  # the test's own text
    async with connect(path) as db:
        await migrate(db)
        assert (await get_result(db, 1)).metadata == {"n": {"a": None}, "x": [{"k": 1}]}
        assert (await get_run(db, 1)).labels == {"n": {"a": None}, "x": [{"k": 1}]}


_SPACE: Final = st.sampled_from(["", "", " ", "\n"])
_KEY: Final = st.sampled_from(['"a"', '"a"', '"b"', '"\\u0061"', '"a b"', '"{"', '"\\""'])
"""Few keys, so that one comes twice; `"\u0061"` is `"a"` escaped."""


@st.composite
def _texts(draw: st.DrawFn, depth: int = 2) -> str:
    """A JSON object's text, compact or spaced, its keys often written twice."""
    members = []
    for _ in range(draw(st.integers(0, 4))):
        space = draw(_SPACE)
        inner = st.just("{}") if depth == 0 else _texts(depth - 1)
        value = draw(
            st.one_of(
                st.sampled_from(["1", "null", '"x"', '"a\\":"', "[]", '"{\\"a\\":1,\\"a\\":2}"']),
                inner,
                inner.map(lambda text: f"[1,{text}]"),
            )
        )
        members.append(f"{space}{draw(_KEY)}{space}:{draw(_SPACE)}{value}")
    return "{" + ",".join(members) + draw(_SPACE) + "}"


def _holds_a_key_twice(text: str) -> bool:
    twice = False

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal twice
        twice = twice or len({key for key, _ in items}) < len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return twice


@functools.cache
def _migrated_in_memory() -> sqlite3.Connection:
    """One SQLite database in memory with every migration, for examples that roll back."""
    plain = sqlite3.connect(":memory:")
    for migration in discover_migrations(migrations_folder(Engine.SQLITE)):
        plain.executescript(migration.sql)
    return plain


@given(text=_texts())
@IN_MEMORY
def test_sqlite_refuses_exactly_the_objects_with_a_key_twice(text: str) -> None:
    """SQLite's triggers refuse an object with a key twice at any depth, and only such."""
    plain = _migrated_in_memory()
    insert = "INSERT INTO runs (started_at, labels) VALUES (?, ?)"
    try:
        if _holds_a_key_twice(text):
            with pytest.raises(sqlite3.IntegrityError, match=r"key twice.*: runs\.labels$"):
                plain.execute(insert, (AT, text))
        else:
            plain.execute(insert, (AT, text))
    finally:
        plain.rollback()


def _steps_to_insert(plain: sqlite3.Connection, keys: int) -> int:
    """Count the SQLite VM steps (in thousands) of inserting a run whose labels hold `keys` keys."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    labels = json.dumps({f"key {index}": index for index in range(keys)})
    plain.set_progress_handler(count, 1000)
    try:
        plain.execute("INSERT INTO runs (started_at, labels) VALUES (?, ?)", (AT, labels))
    finally:
        plain.set_progress_handler(None, 0)
        plain.rollback()
    return steps


def test_the_key_check_grows_in_step_with_the_object() -> None:
    """Twice the keys cost about twice the work: an object of many keys saves in good time.

    Each member compared with every one before it took 4.9 s for 5,000 keys, holding the
    write lock, and a four times longer wait for twice as many.
    """
    plain = _migrated_in_memory()
    small, large = _steps_to_insert(plain, 2_000), _steps_to_insert(plain, 4_000)
    assert small > 0
    assert large < 2.5 * small
