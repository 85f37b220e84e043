r"""On SQLite, metadata and labels are JSON text, and a run's `commit` label is read by its path.

SQLite's `json_valid` takes a blob of JSON text, so the columns' CHECK let plain SQL store one,
which the package read as bytes. And SQLite reads a key two ways: json_each decodes its
escapes, a path such as `$.commit` does not, so a run whose labels wrote `"comm\u0069t"` was
left out of `flaky_tests` on SQLite, where PostgreSQL's jsonb, json_each and Python read the key
as `commit`. Migration 0017's triggers refuse both; a database already holding either stops
the migration, named by its rows' ids, and nothing changes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from _migration_helpers import package_versions_from
from persistence import MigrationError, Run, connect, migrate, migration_status, save_run
from test_stored_numbers import package_through

NOW: Final = "2026-05-01T00:00:00.000000+00:00"
ESCAPED_COMMIT: Final = '{"comm\\u0069t": "9f2c1e0"}'


def _plain(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        for statement, parameters in statements:
            plain.execute(statement, parameters)


_REFUSED: Final = {
    "a result's metadata as a blob": (
        (
            "INSERT INTO test_results (test_type, status, created_at, metadata)"
            " VALUES ('unit', 'passed', ?, CAST('{}' AS BLOB))"
        ),
        (NOW,),
        "test_results.metadata must be JSON text",
    ),
    "a result's metadata made a blob": (
        "UPDATE test_results SET metadata = CAST(metadata AS BLOB)",
        (),
        "test_results.metadata must be JSON text",
    ),
    "a run's labels as a blob": (
        "INSERT INTO runs (started_at, labels) VALUES (?, CAST('{}' AS BLOB))",
        (NOW,),
        "runs.labels must be JSON text",
    ),
    "a run's commit written with an escape": (
        "INSERT INTO runs (started_at, labels) VALUES (?, ?)",
        (NOW, ESCAPED_COMMIT),
        "its commit key written as commit",
    ),
    "a run's labels changed to that": (
        "UPDATE runs SET labels = ?",
        (ESCAPED_COMMIT,),
        "its commit key written as commit",
    ),
}


@pytest.mark.parametrize("refused", _REFUSED.values(), ids=_REFUSED.keys())
async def test_plain_sql_cannot_store_what_sqlite_reads_otherwise(
    tmp_path: Path, refused: tuple[str, tuple[object, ...], str]
) -> None:
    """Each insert and update is refused by its trigger, naming the column."""
    statement, parameters, said = refused
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_run(db, Run(labels={"commit": "9f2c1e0"}))
    _plain(
        path,
        (
            "INSERT INTO test_results (test_type, status, created_at) VALUES ('unit', 'passed', ?)",
            (NOW,),
        ),
    )
    with pytest.raises(sqlite3.IntegrityError, match=said):
        _plain(path, (statement, parameters))


async def test_other_escaped_keys_and_a_plain_commit_are_taken(tmp_path: Path) -> None:
    """A key that needs its escape (a quote), or is another key, is no `commit` hidden."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
    labels = ['{"a\\"b": 1, "commit": "c"}', '{"br\\u0061nch": "main"}', '{"commit": "c"}']
    _plain(
        path,
        *[("INSERT INTO runs (started_at, labels) VALUES (?, ?)", (NOW, text)) for text in labels],
    )
    with contextlib.closing(sqlite3.connect(path)) as plain:
        assert plain.execute("SELECT count(*) FROM runs").fetchone() == (3,)


async def _before_0017(path: Path, folder: Path) -> None:
    """Migrate a fresh database up to 0016, the last one before 0017."""
    async with connect(path) as db:
        await migrate(db, package_folder=package_through(db.engine, folder, 16))


@pytest.mark.parametrize(
    ("stored", "said"),
    [
        (
            ("UPDATE test_results SET metadata = CAST(metadata AS BLOB) WHERE id IN (2, 3)", ()),
            "test_results.metadata holds a blob, not JSON text, in the results of ids 2, 3",
        ),
        (
            ("UPDATE runs SET labels = CAST(labels AS BLOB) WHERE id = 1", ()),
            "runs.labels holds a blob, not JSON text, in the runs of ids 1",
        ),
        (
            ("UPDATE runs SET labels = ? WHERE id = 1", (ESCAPED_COMMIT,)),
            "runs.labels writes its commit key with an escape",
        ),
    ],
    ids=["metadata", "labels", "commit"],
)
async def test_a_database_holding_one_stops_the_migration_by_ids(
    tmp_path: Path, stored: tuple[str, tuple[object, ...]], said: str
) -> None:
    """No form to choose for them: 0017 names the rows and changes nothing."""
    path = tmp_path / "app.db"
    await _before_0017(path, tmp_path / "early")
    rows = [
        (
            "INSERT INTO test_results (test_type, status, created_at) VALUES ('unit', 'passed', ?)",
            (NOW,),
        )
    ] * 3
    _plain(path, ("INSERT INTO runs (started_at) VALUES (?)", (NOW,)), *rows, stored)
    async with connect(path) as db:
        with pytest.raises(MigrationError, match=said):
            await migrate(db)
        status = await migration_status(db)
        assert [m.version for m in status.pending] == package_versions_from(17)
    with contextlib.closing(sqlite3.connect(path)) as plain:
        triggers = plain.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%_text_%'"
        ).fetchall()
    assert triggers == []
