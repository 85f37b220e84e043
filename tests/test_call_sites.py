"""Renaming a query's parameters in sql/ and regenerating makes mypy fail at its call site."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mypy import api

from _sqlc_edited import sqlc
from codegen.model import snake_case
from persistence.queries import Queries

ROOT = Path(__file__).parents[1]
PARAMETER = re.compile(r"@(\w+)|sqlc\.(n?arg)\((\w+)\)")


def rename_every_parameter(text: str) -> str:
    """Rename every parameter of every query, each query in its own way, as careless edits would."""
    blocks = re.split(r"(?m)^(?=-- name:)", text)

    def rename(block: str, suffix: str) -> str:
        def renamed(match: re.Match[str]) -> str:
            if match[1]:
                return f"@{match[1]}_{suffix}"
            return f"sqlc.{match[2]}({match[3]}_{suffix})"

        return PARAMETER.sub(renamed, block)

    return "".join(rename(block, f"renamed{number}") for number, block in enumerate(blocks))


@pytest.mark.long
def test_every_parameter_rename_breaks_its_call_site(tmp_path: Path) -> None:
    """Each query with parameters gets a mypy error naming it once its parameters change."""
    for part in ("sql", "src", "codegen"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("sqlc.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    if (ROOT / ".mypy_cache").is_dir():
        # What `make test` checked just before: mypy checks again only what the renames
        # changed, and what depends on it (about a third of a cold check's time).
        shutil.copytree(ROOT / ".mypy_cache", tmp_path / ".mypy_cache")
    for path in (tmp_path / "sql" / "queries").rglob("*.sql"):
        path.write_text(rename_every_parameter(path.read_text(encoding="utf-8")), encoding="utf-8")
    subprocess.run([sqlc(), "generate"], cwd=tmp_path, check=True, capture_output=True)
    requests = sorted(str(p) for p in (tmp_path / "build" / "sqlc").glob("*/codegen_request.json"))
    generated = tmp_path / "src" / "persistence" / "queries.py"
    aiosql_files = tmp_path / "sql" / "aiosql"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "codegen.queries",
            *requests,
            "--output",
            str(generated),
            "--sql-output",
            str(aiosql_files),
        ],
        cwd=tmp_path,
        check=True,
    )
    assert "_renamed1" in generated.read_text(encoding="utf-8")
    report, _, status = api.run(
        ["--config-file", str(tmp_path / "pyproject.toml"),
         "--cache-dir", str(tmp_path / ".mypy_cache"), str(tmp_path / "src")]
    )  # fmt: skip
    assert status == 1, report
    queries = json.loads((tmp_path / "build/sqlc/sqlite/codegen_request.json").read_text())
    uncaught = [
        query["name"]
        for query in queries["queries"]
        if query["params"]
        and f'"{snake_case(query["name"])}"' not in report
        and f'"{query["name"]}Params"' not in report
    ]
    assert uncaught == [], report


def test_every_query_is_called_from_the_package() -> None:
    """Every generated query is used by the package's code, so a change to it is checked."""
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "src" / "persistence").rglob("*.py")
        if path.name != "queries.py"
    )
    names = [name for name in vars(Queries) if not name.startswith("_")]
    assert "get_test_result" in names
    used = set(re.findall(r"queries\.(\w+)\b", source))  # called, or handed on to a caller
    unused = [name for name in names if name not in used]
    assert unused == []
