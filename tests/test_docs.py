"""The examples in docs/ run as they are written."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from _codegen_helpers import column, error_of, param, query, request
from _sqlc_edited import edited_requests, override_example
from codegen.queries import generate
from conftest import DEFAULT_REDIS_URL
from persistence import TestResult, TestStatus, TestType, connect, migrate, save_result

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"


def block_under(path: Path, heading: str) -> str:
    """The first Python block under a heading of a document."""
    text = path.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"{path.name} has no Python block under {heading!r}"
    return match.group(1)


async def test_calling_a_query_yourself_runs(tmp_path: Path) -> None:
    """docs/QUERY_TYPES.md's example calls a generated query through connection()."""
    source = block_under(DOCS / "QUERY_TYPES.md", "## Calling a query yourself")
    namespace: dict[str, object] = {}
    exec(compile(source, "QUERY_TYPES.md", "exec"), namespace)  # noqa: S102  # our own docs
    newest_id = namespace["newest_id"]
    assert callable(newest_id)
    assert await newest_id(str(tmp_path / "x.db")) == 1


def test_every_test_the_guarantees_name_exists() -> None:
    """Each test that docs/GUARANTEES.md and docs/STORAGE.md cite is a test in tests/."""
    defined = {
        match[1]
        for path in Path(__file__).parent.glob("test_*.py")
        for match in re.finditer(
            r"^(?:async )?def (test_\w+)", path.read_text(encoding="utf-8"), re.MULTILINE
        )
    }
    cited = {
        name
        for doc in ("GUARANTEES.md", "STORAGE.md", "CACHE.md")
        for name in re.findall(r"`(test_\w+)`", (DOCS / doc).read_text(encoding="utf-8"))
    }
    assert len(cited) > 20
    assert cited - defined == set()


# --- the override example of docs/QUERY_TYPES.md ----------------------------------------------


def test_the_override_example_says_where_its_files_go() -> None:
    """One file per engine, in the folders the loader and sqlc read."""
    assert set(override_example()) == {
        "sql/queries/sqlite/longest_run.sql",
        "sql/queries/postgres/longest_run.sql",
    }


def test_the_override_example_generates_one_method(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The generator takes both files as sqlc reads them: one method, typed alike.

    The files are added, as the doc gives them, to the copy of sql/ that sqlc runs over once
    for the generator's tests (tests/_sqlc_edited.py).
    """
    source = generate(
        json.loads(path.read_text(encoding="utf-8")) for path in edited_requests(tmp_path_factory)
    )
    signature = re.search(r"def longest_run\((.*?)\) -> (.*?):", source, re.DOTALL)
    assert signature is not None
    assert "ids: list[int]" in signature[1]
    assert signature[2] == "LongestRunRow | None"
    assert re.search(
        r"class LongestRunRow\(NamedTuple\):(.*?)\n\s+longest: float \| None", source, re.DOTALL
    )


def test_the_generator_refuses_the_shared_form_that_postgresql_rejects() -> None:
    """`@ids str` over postgresql's json_each(json) is refused, naming engine and parameter."""
    longest = [column("longest", "real")]
    comments = [" type: longest float?", " type: @ids str"]
    shared = [
        request(
            engine,
            query(
                "LongestRun",
                ":one",
                params=[param(1, "ids", type_name)],
                columns=longest,
                comments=comments,
            ),
        )
        for engine, type_name in (("sqlite", "any"), ("postgresql", "json"))
    ]
    message = error_of(*shared)
    assert "postgresql" in message
    assert "LongestRun" in message
    assert "@ids" in message
    assert "'json'" in message


async def run_longest(database_url: str, sql: str, ids: list[int]) -> float | None:
    """Run the example's SQL with the plain driver, given `ids` as the package sends a list."""
    if database_url.startswith("postgresql://"):
        connection = await asyncpg.connect(database_url)
        try:
            value = await connection.fetchval(sql.replace("@ids", "$1"), ids)
        finally:
            await connection.close()
    else:
        with sqlite3.connect(database_url) as plain:
            value = plain.execute(sql, {"ids": json.dumps(ids)}).fetchone()[0]
        plain.close()
    assert value is None or isinstance(value, float)
    return value


async def test_the_override_example_runs_on_both_engines(database_url: str) -> None:
    """Each engine's file, as the doc writes it, answers on that engine."""
    engine = "postgres" if database_url.startswith("postgresql://") else "sqlite"
    sql = override_example()[f"sql/queries/{engine}/longest_run.sql"]
    async with connect(database_url) as db:
        await migrate(db)
        ids = [
            (
                await save_result(
                    db,
                    TestResult(
                        test_type=TestType.UNIT, status=TestStatus.PASSED, execution_time=seconds
                    ),
                )
            ).id
            or 0
            for seconds in (1.5, 4.0, 2.5)
        ]
    assert await run_longest(database_url, sql, [ids[0], ids[2]]) == 2.5
    assert await run_longest(database_url, sql, ids) == 4.0
    assert await run_longest(database_url, sql, [max(ids) + 1]) is None
    assert await run_longest(database_url, sql, []) is None


# --- what the tests themselves touch ------------------------------------------------------------


def test_redis_tests_never_default_to_database_0() -> None:
    """The tests, CI and the cache benchmark default to a Redis index other than 0."""
    assert urlsplit(DEFAULT_REDIS_URL).path.strip("/") not in {"", "0"}
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/9}"' in ci
    bench = (ROOT / "bench" / "cache.py").read_text(encoding="utf-8")
    (default,) = re.findall(r'or "(redis://[^"]+)"', bench)
    assert urlsplit(default).path.strip("/") not in {"", "0"}


def test_tests_count_only_their_own_database_connections() -> None:
    """Every query of pg_stat_activity in the tests is narrowed to one database or client."""
    unfiltered = [
        f"{path.name}: {statement}"
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name != Path(__file__).name  # this test's own pattern is no query
        for statement in re.findall(
            r'"[^"\n]*FROM pg_stat_activity[^"\n]*"(?:\s*"[^"\n]*")*',
            path.read_text(encoding="utf-8"),
        )
        if "datname" not in statement and "application_name" not in statement
    ]
    assert unfiltered == []
