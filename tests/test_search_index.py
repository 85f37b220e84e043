"""SQLite's search index holds a document for exactly the results that have text.

A result with no output and no error message matches no search, so migration 0009 keeps it
out of the FTS5 index: no document size, no trigger work. Whoever writes (this package,
plain SQL, a REPLACE, an UPDATE that empties or fills a field, a migration), the index's
documents are the rows with text, and FTS5's own check finds it consistent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Final

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _early_rows import insert_early_results
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    migrate,
    save_result,
    save_results,
    save_run,
    search_results,
)
from persistence.migrations import discover_migrations, migrations_folder

T0: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
_TEXTS: Final = (None, "", "word", "other word")


def result(output: str | None, error: str | None = None) -> TestResult:
    """A failed unit result with this output and error message."""
    return TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.FAILED,
        output=output,
        error_message=error,
        created_at=T0,
    )


def indexed_and_expected(path: Path) -> tuple[list[int], list[int]]:
    """The ids that the index holds a document for, and the ids of the rows with text.

    Raises if FTS5 finds its index inconsistent with what its triggers gave it.
    """
    with closing(sqlite3.connect(path)) as plain:
        plain.execute("INSERT INTO test_results_fts(test_results_fts) VALUES ('integrity-check')")
        indexed = [row[0] for row in plain.execute("SELECT id FROM test_results_fts_docsize")]
        expected = [
            row[0]
            for row in plain.execute(
                "SELECT id FROM test_results WHERE coalesce(output, '') <> ''"
                " OR coalesce(error_message, '') <> '' ORDER BY id"
            )
        ]
    return sorted(indexed), expected


async def found(db: Database, text: str) -> list[int]:
    """The ids of every result a search finds, smallest first."""
    page = await search_results(db, text, limit=10_000)
    return sorted(hit.result.id or 0 for hit in page.items)


async def test_rows_without_text_have_no_document(sqlite_db: Database, tmp_path: Path) -> None:
    """Saved singly or in bulk, only the results with text get a document."""
    saved = await save_result(sqlite_db, result("word"))
    await save_result(sqlite_db, result(None))
    await save_results(sqlite_db, [result(None), result("", ""), result(None, "boom")])
    indexed, expected = indexed_and_expected(tmp_path / "test.db")
    assert indexed == expected
    assert len(expected) == 2
    assert await found(sqlite_db, "word") == [saved.id]


async def test_a_replace_by_run_and_test_takes_the_replaced_result_out(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """A REPLACE that deletes another result of the same run and test takes its words out.

    The unique index on (run_id, test_id) made `INSERT OR REPLACE` and `UPDATE OR REPLACE`
    delete the other result without a delete trigger: its document stayed, and plain SQL that
    gave its id to another row made that row found by the old words.
    """
    run = await save_run(sqlite_db, Run())
    keyed = [("t::a", "segfault in solve"), ("t::b", "overflow in parse")]
    saved = [
        await save_result(sqlite_db, attrs.evolve(result(text), run_id=run.id, test_id=test))
        for test, text in keyed
    ]
    with closing(sqlite3.connect(tmp_path / "test.db")) as plain, plain:
        plain.execute(
            "INSERT OR REPLACE INTO test_results (test_type, status, output, created_at, run_id,"
            " test_id) VALUES ('unit', 'passed', 'all good', ?, ?, 't::a')",
            (T0.isoformat(timespec="microseconds"), run.id),
        )
        plain.execute("UPDATE OR REPLACE test_results SET test_id = 't::b' WHERE test_id = 't::a'")
        plain.execute(  # the first result's id, given to a row of other words
            "INSERT INTO test_results (id, test_type, status, output, created_at)"
            " VALUES (?, 'unit', 'passed', 'fine', ?)",
            (saved[0].id, T0.isoformat(timespec="microseconds")),
        )
    indexed, expected = indexed_and_expected(tmp_path / "test.db")
    assert indexed == expected
    assert len(expected) == 2
    assert await found(sqlite_db, "segfault") == []
    assert await found(sqlite_db, "overflow") == []
    assert await found(sqlite_db, "good") != []


_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["insert", "update", "replace", "delete", "renumber"]),
        st.integers(0, 5),
        st.sampled_from(_TEXTS),
        st.sampled_from(_TEXTS),
    ),
    max_size=12,
)


@pytest.mark.long
@settings(max_examples=40, deadline=None)
@given(steps=_STEPS)
def test_plain_sql_writes_keep_the_index_to_the_rows_with_text(
    steps: list[tuple[str, int, str | None, str | None]],
) -> None:
    """Any mix of inserts, updates, REPLACEs, deletes and id changes by plain SQL.

    Each example has a database of its own, as it starts from three saved results.
    """

    async def run(path: Path) -> None:
        async with connect(path) as db:
            await migrate(db)
            for number in range(3):
                await save_result(db, result("word" if number else None))
            with closing(sqlite3.connect(path)) as plain, plain:
                for action, row, output, error in steps:
                    row_id = row + 1
                    if action == "insert":
                        plain.execute(
                            "INSERT INTO test_results (test_type, status, output, error_message,"
                            " created_at) VALUES ('unit', 'failed', ?, ?, ?)",
                            (output, error, T0.isoformat(timespec="microseconds")),
                        )
                    elif action == "update":
                        plain.execute(
                            "UPDATE test_results SET output = ?, error_message = ? WHERE id = ?",
                            (output, error, row_id),
                        )
                    elif action == "replace":
                        plain.execute(
                            "INSERT OR REPLACE INTO test_results (id, test_type, status, output,"
                            " error_message, created_at) VALUES (?, 'unit', 'failed', ?, ?, ?)",
                            (row_id, output, error, T0.isoformat(timespec="microseconds")),
                        )
                    elif action == "delete":
                        plain.execute("DELETE FROM test_results WHERE id = ?", (row_id,))
                    else:
                        plain.execute(
                            "UPDATE OR REPLACE test_results SET id = ? WHERE id = ?",
                            (row_id, (row_id % 6) + 1),
                        )
            indexed, expected = indexed_and_expected(path)
            assert indexed == expected
            with closing(sqlite3.connect(path)) as plain:
                holding = sorted(
                    row[0]
                    for row in plain.execute(
                        "SELECT id FROM test_results WHERE output LIKE '%word%'"
                        " OR error_message LIKE '%word%'"
                    )
                )
            assert await found(db, "word") == holding

    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(Path(folder) / "test.db"))


async def test_migration_0009_takes_rows_without_text_out(tmp_path: Path) -> None:
    """Rows saved before 0009, each with a document, keep one only if they have text."""
    path = tmp_path / "test.db"
    async with connect(path) as db:
        early = tmp_path / "early"
        early.mkdir()
        later = []
        for migration in discover_migrations(migrations_folder(db.engine)):
            if migration.version < 9:
                (early / migration.path.name).write_text(migration.sql, encoding="utf-8")
            else:
                later.append(migration.version)
        await migrate(db, package_folder=early)
        await insert_early_results(
            db.url, [result("word"), result(None), result("", None), result(None, "word two")]
        )
        indexed, expected = indexed_and_expected(path)
        assert len(indexed) == 4  # 0005's triggers indexed every row
        assert [m.version for m in await migrate(db)] == later
        indexed, expected = indexed_and_expected(path)
        assert indexed == expected
        assert len(expected) == 2
        assert await found(db, "word") == expected
        with closing(sqlite3.connect(path)) as plain, plain:
            plain.execute("DELETE FROM test_results")
        assert indexed_and_expected(path) == ([], [])
