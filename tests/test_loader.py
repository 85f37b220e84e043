"""The loader: aiosql loads what `make generate` wrote, and the adapters run it as aiosql says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiosql
import pytest

import persistence
from _sqlc_edited import COLUMNS_REORDERED, edited_requests
from persistence import TestResult, TestStatus, TestType, connect, migrate, save_result
from persistence import queries as generated
from persistence._database_value import backend_of
from persistence._loader import load_queries, query_file, sql_root
from persistence._postgres.adapter import PostgresAdapter
from persistence._sqlite import SqliteAdapter
from persistence.database import connection
from persistence.queries import Queries

ROOT = Path(__file__).parents[1]
ADAPTERS = {"sqlite": SqliteAdapter, "postgres": PostgresAdapter}


def interface() -> set[str]:
    """The methods of the generated `Queries` protocol."""
    return {name for name in vars(Queries) if not name.startswith("_")}


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_each_engine_loads_exactly_the_interface(engine: str) -> None:
    """Each engine's file loads into the generated interface's methods, no more, no less.

    aiosql adds a `<name>_cursor` beside each plain select; the interface leaves them out.
    """
    loaded = load_queries(ADAPTERS[engine], engine)
    names = set(vars(loaded)) & {
        *interface(),
        *(f"{name}_cursor" for name in interface()),
        *(name for name in vars(loaded) if not name.startswith("_")),
    }
    methods = {name for name in names if callable(getattr(loaded, name))}
    assert {name for name in methods if not name.endswith("_cursor")} == interface()


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_many_is_aiosql_select_and_one_is_select_one(engine: str) -> None:
    """A :many query runs as aiosql's select, a :one as select_one, each with its row mapper."""
    text = query_file(engine).read_text(encoding="utf-8")
    assert "-- name: list_test_results(" in text
    assert "-- name: list_test_results(created_from, cursor_created_at, cursor_id," in text
    loaded = load_queries(ADAPTERS[engine], engine)
    assert loaded.list_test_results.operation is aiosql.types.SQLOperationType.SELECT  # type: ignore[attr-defined]  # aiosql's query function
    assert loaded.get_test_result.operation is aiosql.types.SQLOperationType.SELECT_ONE  # type: ignore[attr-defined]  # aiosql's query function


async def test_many_gives_a_list_and_one_a_row(database_url: str) -> None:
    """On both engines, a :many call gives a list of rows and a :one call a row or None."""
    async with connect(database_url) as db:
        await migrate(db)
        saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        async with connection(db) as conn:
            one = await db.queries.get_test_result(conn, id=saved.id or 0)
            missing = await db.queries.get_test_result(conn, id=(saved.id or 0) + 1)
            page = await db.queries.list_test_results(
                conn,
                created_from=saved.created_at.replace(year=2000),
                cursor_created_at=saved.created_at.replace(year=3000),
                cursor_id=0,
                page_size=10,
            )
        assert type(one) is generated.TestResultsRow
        assert one.id == saved.id
        assert one.created_at == saved.created_at
        assert missing is None
        assert type(page) is list
        assert [type(row) for row in page] == [generated.TestResultsRow]


async def test_the_adapters_run_the_sql_that_aiosql_gives(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What runs is the generated aiosql file: a change there is what the call does.

    sqlc's files are not read at run time: they are gone from this copy.
    """
    shutil.copytree(sql_root(), tmp_path / "sql", ignore=shutil.ignore_patterns("queries"))
    engine = "sqlite" if "://" not in database_url else "postgres"
    path = tmp_path / "sql" / "aiosql" / f"{engine}.sql"
    text = path.read_text(encoding="utf-8")
    original = "FROM test_results WHERE id = :id;"
    assert original in text
    path.write_text(text.replace(original, "FROM test_results WHERE id = :id + 1;"))
    monkeypatch.setattr("persistence._loader.sql_root", lambda: tmp_path / "sql")
    async with connect(database_url) as db:
        await migrate(db)
        first = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        second = await save_result(
            db, TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED)
        )
        async with connection(db) as conn:
            row = await db.queries.get_test_result(conn, id=first.id or 0)
        assert row is not None
        assert row.id == second.id
        assert backend_of(db).engine.value == engine


@pytest.mark.long  # it runs sqlc for the generator's tests (tests/_sqlc_edited.py): first
def test_sqlc_form_edits_without_generate_are_drift_that_check_generated_reports(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Reordering a SELECT's columns in sql/queries changes both generated outputs together.

    Rows are mapped by position, so the row type and the SQL must come from one run: the
    generator writes both, and `make check-generated` compares both with what is committed.
    The reordering is `COLUMNS_REORDERED`, made in the copy that sqlc runs over once for the
    generator's tests (tests/_sqlc_edited.py).
    """
    requests = [str(path) for path in edited_requests(tmp_path_factory)]
    shutil.copytree(
        ROOT / "codegen", tmp_path / "codegen", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path / "out"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "codegen.queries",
            *requests,
            "--output",
            str(out / "queries.py"),
            "--sql-output",
            str(out / "aiosql"),
        ],
        cwd=tmp_path,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT / 'src'}"},
    )
    generated = (out / "queries.py").read_text(encoding="utf-8")
    sql = (out / "aiosql" / "sqlite.sql").read_text(encoding="utf-8")
    assert "status: str\n    test_type: str" in generated  # a new row type, in the new order
    assert COLUMNS_REORDERED[1] in sql  # the SQL in the new order, from the same run
    assert COLUMNS_REORDERED[1] not in query_file("sqlite").read_text(encoding="utf-8")


MISSING_SQL_PROBE = """\
import asyncio, persistence
assert persistence.__file__.startswith({site!r}), persistence.__file__
try:
    asyncio.run(persistence.open_database("app.db"))
except persistence.PersistenceError as error:
    print(type(error).__name__, error)
"""


def test_missing_sql_files_are_their_own_error(tmp_path: Path) -> None:
    """A package installed without its SQL files says they are missing."""
    site = tmp_path / "site"
    shutil.copytree(
        Path(persistence.__file__).parent,
        site / "persistence",
        ignore=shutil.ignore_patterns("__pycache__", "sql"),
    )
    done = subprocess.run(
        [sys.executable, "-c", MISSING_SQL_PROBE.format(site=str(site))],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("SqlFilesMissingError the SQL files of persistence are missing")
    assert str(site / "persistence" / "sql") in done.stdout
    assert not (tmp_path / "app.db").exists()
