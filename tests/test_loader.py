"""The loader: sqlc's form in, aiosql's form out, and clear errors for what it cannot read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import persistence
from persistence import TestResult, TestStatus, TestType, connect, get_result, migrate, save_result
from persistence._loader import load_queries, parse_query_text, read_queries, sql_root, to_aiosql
from persistence._postgres import PostgresAdapter
from persistence._sqlite import SqliteAdapter
from persistence.exceptions import QueryFileError, QueryInterfaceError

GOOD = """\
-- name: GetThing :one
-- One thing by id.
SELECT * FROM things WHERE id = @id AND name = sqlc.arg(name) AND x = sqlc.narg(x) AND y = @id;

-- name: ListThings :many
-- Things, with a string that looks like a parameter and a cast.
SELECT '@not_a_param', ":nor_this", id::text FROM things -- @comment
WHERE kind = :kind;
"""


def test_translates_names_commands_and_parameters() -> None:
    """Names become snake_case, commands suffixes, and each parameter one :name."""
    first, second = parse_query_text(GOOD, path="things.sql")
    assert (first.method, first.command, first.parameters) == (
        "get_thing",
        ":one",
        ("id", "name", "x"),
    )
    assert first.sql.endswith("id = :id AND name = :name AND x = :x AND y = :id;")
    assert first.doc == "One thing by id."
    assert second.parameters == ("kind",)
    assert "'@not_a_param'" in second.sql
    assert '":nor_this"' in second.sql
    assert "id::text" in second.sql
    text = to_aiosql([first, second])
    assert "-- name: get_thing(id, name, x)^" in text
    assert "-- name: list_things(kind)^\n" in text  # a :many query gives its rows in one await


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("SELECT 1;\n", 1, "before the first"),
        ("-- name: get_thing :one\n-- Doc.\nSELECT 1;\n", 1, "expected '-- name: QueryName"),
        ("-- name: GetThing :maybe\n-- Doc.\nSELECT 1;\n", 1, "unknown command :maybe"),
        ("-- name: GetThing :one\nSELECT 1;\n", 1, "needs a '--' comment"),
        ("-- name: GetThing :one\n-- Doc.\n\n-- name: Other :one\n-- D.\nSELECT 1;\n", 1, "no SQL"),
        (
            "-- x\n\n-- name: A :one\n-- D.\nSELECT @a;\n-- name: A :many\n-- D.\nSELECT 1;\n",
            3,
            "twice",
        ),
        (
            "-- name: A :many\n-- D.\nSELECT * FROM t WHERE id IN (sqlc.slice(ids));\n",
            1,
            "sqlc.slice",
        ),
    ],
)
def test_errors_name_file_line_and_reason(text: str, line: int, reason: str) -> None:
    """A query the loader cannot translate is an error naming the file, the line and why."""
    with pytest.raises(QueryFileError, match=reason) as raised:
        parse_query_text(text, path="bad.sql")
    assert raised.value.path == "bad.sql"
    assert raised.value.line == line
    assert str(raised.value).startswith(f"bad.sql:{line}:")


def test_the_same_name_in_two_files_is_refused(tmp_path: Path) -> None:
    """One query name in two files is an error naming both places."""
    for name in ("a.sql", "b.sql"):
        (tmp_path / name).write_text("-- name: Same :one\n-- D.\nSELECT 1;\n", encoding="utf-8")
    with pytest.raises(QueryFileError, match=r"b.sql:1: .*also defined at .*a.sql:1"):
        read_queries(tmp_path)


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_project_queries_load_and_match_the_interface(engine: str) -> None:
    """The project's own query files load for each engine, and match the generated interface."""
    queries = load_queries(SqliteAdapter, engine=engine)
    assert callable(queries.get_test_result)
    assert callable(queries.search_test_results)


def copy_queries(tmp_path: Path) -> Path:
    """A copy of the project's query files to change."""
    folder = tmp_path / "queries"
    shutil.copytree(sql_root() / "queries", folder)
    return folder


def test_a_query_missing_from_the_interface_is_drift(tmp_path: Path) -> None:
    """A query that the generated interface does not know stops the load."""
    folder = copy_queries(tmp_path)
    with (folder / "extra.sql").open("w", encoding="utf-8") as extra:
        extra.write("-- name: Extra :one\n-- D.\nSELECT 1;\n")
    with pytest.raises(
        QueryInterfaceError, match="extra is in sql/queries but not in the generated"
    ):
        load_queries(SqliteAdapter, folder, engine="sqlite")


def test_a_renamed_parameter_is_drift(tmp_path: Path) -> None:
    """A parameter renamed in SQL but not regenerated stops the load, naming the query."""
    folder = copy_queries(tmp_path)
    path = folder / "test_results.sql"
    path.write_text(path.read_text().replace("WHERE id = @id;", "WHERE id = @result_id;", 1))
    with pytest.raises(
        QueryInterfaceError, match=r"get_test_result: .*parameters \('id',\).*'result_id'"
    ):
        load_queries(SqliteAdapter, folder, engine="sqlite")


def test_a_changed_command_is_drift(tmp_path: Path) -> None:
    """A command changed in SQL but not regenerated stops the load."""
    folder = copy_queries(tmp_path)
    path = folder / "test_results.sql"
    path.write_text(path.read_text().replace("DeleteTestResult :execrows", "DeleteTestResult :one"))
    with pytest.raises(
        QueryInterfaceError, match="delete_test_result: the interface expects :execrows"
    ):
        load_queries(SqliteAdapter, folder, engine="sqlite")


def test_a_query_missing_from_sql_is_drift(tmp_path: Path) -> None:
    """A query removed from SQL but still in the interface stops the load."""
    folder = copy_queries(tmp_path)
    (folder / "file_records.sql").unlink()
    with pytest.raises(QueryInterfaceError, match="get_file_record is in the generated interface"):
        load_queries(SqliteAdapter, folder, engine="sqlite")


def move_to_variants(folder: Path, name: str, postgres_sql: str) -> None:
    """Take one query out of the shared files and give each engine a variant of it."""
    for path in folder.glob("*.sql"):
        text = path.read_text(encoding="utf-8")
        start = text.find(f"-- name: {name} ")
        if start < 0:
            continue
        end = text.find("-- name:", start + 1)
        block = text[start:] if end < 0 else text[start:end]
        path.write_text(text.replace(block, ""), encoding="utf-8")
        for engine, sql in (("sqlite", block), ("postgres", postgres_sql)):
            (folder / engine).mkdir(exist_ok=True)
            (folder / engine / "variants.sql").write_text(sql, encoding="utf-8")
        return
    pytest.fail(f"no query {name} in {folder}")


def test_engine_variants_load_for_their_engine(tmp_path: Path) -> None:
    """A query written once per engine loads each engine's own SQL under the one name."""
    folder = copy_queries(tmp_path)
    postgres = (
        "-- name: GetTestResult :one\n-- By id.\n"
        "SELECT * FROM test_results WHERE id = @id::bigint;\n"
    )
    move_to_variants(folder, "GetTestResult", postgres)
    sqlite = {q.name: q for q in read_queries(folder, engine="sqlite")}
    postgresql = {q.name: q for q in read_queries(folder, engine="postgres")}
    assert "::bigint" not in sqlite["GetTestResult"].sql
    assert postgresql["GetTestResult"].sql.endswith("id = :id::bigint;")
    assert callable(load_queries(SqliteAdapter, folder, engine="sqlite").get_test_result)
    assert callable(load_queries(PostgresAdapter, folder, engine="postgres").get_test_result)


def test_a_variant_must_not_also_be_shared(tmp_path: Path) -> None:
    """A query both in the shared files and in an engine's folder is an error naming both."""
    folder = copy_queries(tmp_path)
    (folder / "sqlite").mkdir(exist_ok=True)
    (folder / "sqlite" / "again.sql").write_text(
        "-- name: GetTestResult :one\n-- Again.\nSELECT * FROM test_results WHERE id = @id;\n",
        encoding="utf-8",
    )
    postgres = [query.path for query in read_queries(folder, engine="postgres")]
    assert not any(path.endswith("again.sql") for path in postgres)  # the other engine loads
    with pytest.raises(QueryFileError, match=r"again\.sql:1: .*also defined at .*test_results"):
        read_queries(folder, engine="sqlite")


MISSING_SQL_PROBE = """\
import asyncio, persistence
assert persistence.__file__.startswith({site!r}), persistence.__file__
try:
    asyncio.run(persistence.open_database("app.db"))
except persistence.PersistenceError as error:
    print(type(error).__name__, error)
"""


def test_missing_sql_files_are_their_own_error(tmp_path: Path) -> None:
    """A package installed without its SQL files says they are missing, not that they drifted."""
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
    assert "drifted" not in done.stdout
    assert not (tmp_path / "app.db").exists()


async def test_a_reordered_select_cannot_swap_fields(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SELECT whose columns were reordered without `make generate` fails, on both engines.

    Rows are decoded by position, so two text columns in swapped places would otherwise
    put the status in `test_type` and the test type in `status`.
    """
    shutil.copytree(sql_root(), tmp_path / "sql")
    queries = tmp_path / "sql" / "queries" / "test_results.sql"
    text = queries.read_text(encoding="utf-8")
    original = (
        "-- One test result by id.\n"
        "SELECT id, test_type, status, execution_time, memory_usage, test_cases_passed,\n"
        "       test_cases_total, error_message, output, created_at, metadata\n"
        "FROM test_results WHERE id = @id;"
    )
    assert original in text
    swapped = original.replace("id, test_type, status,", "id, status, test_type,")
    queries.write_text(text.replace(original, swapped), encoding="utf-8")
    monkeypatch.setattr("persistence._loader.sql_root", lambda: tmp_path / "sql")
    async with connect(database_url) as db:
        await migrate(db)
        saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        with pytest.raises(QueryInterfaceError, match=r"get_test_result returns columns"):
            await get_result(db, saved.id or 0)
