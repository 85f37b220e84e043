"""The generator over both engines, its output and command line, and the real sql/ through sqlc."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _codegen_helpers import (
    ENGINES,
    Json,
    column,
    error_of,
    every_command,
    one_column,
    param,
    parse,
    query,
    request,
)
from _sqlc_edited import edited_requests
from codegen.queries import generate, generate_sql, main

if TYPE_CHECKING:
    from collections.abc import Sequence


ROOT = Path(__file__).resolve().parent.parent


# --- two engines ------------------------------------------------------------------------------


def pair(sqlite: Sequence[Json], postgres: Sequence[Json]) -> tuple[Json, Json]:
    """Build the two engines' requests from their queries."""
    return request("sqlite", *sqlite), request("postgresql", *postgres)


@pytest.mark.parametrize(
    ("sqlite", "postgres", "named"),
    [
        pytest.param(
            [query("Only", ":exec")], [], ["Only", "postgresql"], id="missing-on-postgresql"
        ),
        pytest.param([], [query("Only", ":exec")], ["Only", "sqlite"], id="missing-on-sqlite"),
        pytest.param(
            [query("Cmd", ":exec")], [query("Cmd", ":execrows")], ["Cmd", ":execrows"], id="command"
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT"), param(2, "b", "TEXT")])],
            [query("P", ":exec", params=[param(1, "b", "text"), param(2, "a", "text")])],
            ["P", "@a", "@b"],
            id="parameter-order",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "text"), param(2, "extra", "text")])],
            ["P", "@extra"],
            id="extra-parameter",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "int8")])],
            ["P", "@a", "str", "int"],
            id="parameter-type",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "text", not_null=False)])],
            ["P", "@a", "str | None"],
            id="parameter-nullability",
        ),
        pytest.param(
            [query("C", ":many", columns=[column("a", "TEXT")])],
            [query("C", ":many", columns=[column("b", "text")])],
            ["C", "(a)", "(b)"],
            id="column-names",
        ),
        pytest.param(
            [query("C", ":many", columns=[column("a", "REAL")])],
            [query("C", ":many", columns=[column("a", "int8")])],
            ["C", "column a", "float", "int"],
            id="column-type",
        ),
        pytest.param(
            [query("C", ":one", columns=[column("a", "TEXT", not_null=False)])],
            [query("C", ":one", columns=[column("a", "text")])],
            ["C", "column a", "str | None"],
            id="column-nullability",
        ),
    ],
)
def test_engine_disagreements_are_errors(
    sqlite: Sequence[Json], postgres: Sequence[Json], named: Sequence[str]
) -> None:
    """Any difference between the engines' views of a query is an error naming what differs."""
    message = error_of(*pair(sqlite, postgres))
    for part in named:
        assert part in message


def test_same_engine_twice_is_an_error() -> None:
    """Two requests for one engine are an error."""
    assert "sqlite" in error_of(request("sqlite"), request("sqlite"))


def test_unsupported_engine_is_an_error() -> None:
    """An engine other than sqlite or postgresql is an error naming it."""
    assert "mysql" in error_of(request("mysql"))


# --- stability and the command line -----------------------------------------------------------


def test_output_is_stable() -> None:
    """The same input gives the same bytes, whatever order the engines are given in."""
    sqlite, postgres = every_command("sqlite"), every_command("postgresql")
    first = generate([sqlite, postgres])
    assert generate([sqlite, postgres]) == first
    assert generate([postgres, sqlite]) == first


def test_main_writes_the_module(tmp_path: Path) -> None:
    """`main` reads the JSON files and writes the module, returning 0."""
    inputs = []
    for engine in ENGINES:
        path = tmp_path / f"{engine}.json"
        path.write_text(json.dumps(every_command(engine)), encoding="utf-8")
        inputs.append(str(path))
    output = tmp_path / "out.py"
    assert main([*inputs, "--output", str(output), "--sql-output", str(tmp_path / "sql")]) == 0
    requests = [every_command(engine) for engine in ENGINES]
    assert output.read_bytes() == generate(requests).encode()
    for name, text in generate_sql(requests).items():
        assert (tmp_path / "sql" / name).read_text(encoding="utf-8") == text


def test_main_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`main` prints a CodegenError to stderr, writes nothing and returns 1."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(one_column("sqlite", "any")), encoding="utf-8")
    output = tmp_path / "out.py"
    assert main([str(path), "--output", str(output)]) == 1
    assert "GetValue" in capsys.readouterr().err
    assert not output.exists()
    assert main([str(tmp_path / "missing.json"), "--output", str(output)]) == 1
    assert "missing.json" in capsys.readouterr().err


# --- end to end on sql/ -----------------------------------------------------------------------


def tool(name: str) -> str | None:
    """Find a command-line tool next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def run_sqlc(workdir: Path) -> list[Json]:
    """Copy sqlc.yaml and sql/ into workdir, run `sqlc generate` and load its output."""
    sqlc = tool("sqlc")
    if sqlc is None:
        pytest.skip("the sqlc binary is not installed")
    shutil.copy(ROOT / "sqlc.yaml", workdir / "sqlc.yaml")
    shutil.copytree(ROOT / "sql", workdir / "sql")
    subprocess.run([sqlc, "generate"], cwd=workdir, check=True, capture_output=True)
    paths = sorted((workdir / "build" / "sqlc").glob("*/codegen_request.json"))
    assert len(paths) == 2
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


@pytest.fixture(scope="module")
def real_requests(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    """Give the codegen requests that sqlc writes for the real sql/ folder."""
    return run_sqlc(tmp_path_factory.mktemp("sqlc"))


def test_real_interface_has_the_expected_shapes(real_requests: list[Json]) -> None:
    """The real queries give the table rows and commands other code relies on."""
    generated = parse(generate(real_requests), generate_sql(real_requests)["sqlite.sql"])
    assert {
        "TestResultsRow",
        "ConfigEntriesRow",
        "FileRecordsRow",
        "PersistenceMigrationsRow",
    } <= set(generated.typed_dicts)
    assert generated.methods["get_test_result"].returns == "TestResultsRow | None"
    assert generated.shapes["insert_test_results"][0] == "*!"
    stats = generated.typed_dicts["TestResultStatsRow"]
    assert stats["max_time"] == "float"  # sqlc's NOT NULL, right only because of GROUP BY


def test_override_comment_reaches_the_generator_through_sqlc(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A `-- type:` line in a real query file passes through sqlc and changes the type.

    The line is `STATS_OVERRIDE`, added in the copy that sqlc runs over once for the
    generator's tests (tests/_sqlc_edited.py).
    """
    requests = [
        json.loads(path.read_text(encoding="utf-8")) for path in edited_requests(tmp_path_factory)
    ]
    generated = parse(generate(requests))
    assert generated.typed_dicts["TestResultStatsRow"]["max_time"] == "float | None"
    assert generated.methods["test_result_stats"].doc is not None
    assert "type:" not in generated.methods["test_result_stats"].doc


def test_generated_typed_dicts_resolve_at_runtime() -> None:
    """The committed module imports and its TypedDicts' annotations resolve at runtime."""
    from persistence import queries as _queries  # noqa: PLC0415 - imported here so a stale file fails one test

    hints = typing.get_type_hints(_queries.ConfigEntriesRow)
    assert hints["description"] == str | None
    rows = {name for name in dir(_queries) if name.endswith("Row")}
    assert set(_queries.ROW_MAPPERS) == {"sqlite", "postgres"}
    for mappers in _queries.ROW_MAPPERS.values():
        assert set(mappers) == rows
