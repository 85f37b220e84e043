"""aiosql parses each engine's file once per process; every database still gets its own adapter."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import aiosql
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import persistence._loader as loader
from persistence import (
    TestResult,
    TestStatus,
    TestType,
    Tracing,
    connect,
    find_result,
    migrate,
    save_result,
)
from persistence._loader import load_queries, query_file, sql_root
from persistence._postgres.adapter import PostgresAdapter
from persistence._sqlite import SqliteAdapter
from persistence.database import connection

ADAPTERS = {"sqlite": SqliteAdapter, "postgres": PostgresAdapter}


def engine_of(url: str) -> str:
    """The engine a test database URL names."""
    return "sqlite" if "://" not in url else "postgres"


@pytest.fixture(name="parses")
def parses_fixture(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Start from no parse kept, and note each file that aiosql parses."""
    monkeypatch.setattr(loader, "_PARSED", {})
    parsed: list[Path] = []
    from_path = aiosql.from_path

    def counted(path: Path, *args: object, **kwargs: object) -> object:
        parsed.append(Path(path))
        return from_path(path, *args, **kwargs)  # type: ignore[arg-type]  # passed on as given

    monkeypatch.setattr(aiosql, "from_path", counted)
    return parsed


async def test_opening_again_does_not_parse_again(database_url: str, parses: list[Path]) -> None:
    """Three opens parse the file once; each database runs its queries on its own adapter."""
    engine = engine_of(database_url)
    saved = []
    for _ in range(3):
        async with connect(database_url) as db:
            await migrate(db)
            saved.append(
                await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
            )
            assert await find_result(db, saved[-1].id or 0) == saved[-1]
    assert parses == [query_file(engine)]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_later_load_gives_its_adapter_what_the_parse_gave(
    engine: str, parses: list[Path]
) -> None:
    """Each adapter sees every `process_sql` call, in order, and the SQL matches the first."""
    seen: list[list[str]] = []

    def adapter() -> SqliteAdapter | PostgresAdapter:
        made: SqliteAdapter | PostgresAdapter = ADAPTERS[engine]()
        calls: list[str] = []
        seen.append(calls)
        process_sql: Callable[[str, object, str], str] = made.process_sql

        def noted(query_name: str, op_type: object, sql: str) -> str:
            calls.append(query_name)
            return process_sql(query_name, op_type, sql)

        made.process_sql = noted  # type: ignore[method-assign]  # noted, then passed on
        return made

    first = load_queries(adapter, engine)
    second = load_queries(adapter, engine)
    assert len(parses) == 1
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert "get_test_result" in seen[0]
    assert first.get_test_result.sql == second.get_test_result.sql  # type: ignore[attr-defined]  # aiosql's query function
    assert first.driver_adapter is not second.driver_adapter  # type: ignore[attr-defined]  # aiosql's queries object


def test_an_edited_file_is_parsed_again(
    tmp_path: Path, parses: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose size changed since the parse kept is read again, and its SQL is what runs."""
    shutil.copytree(sql_root(), tmp_path / "sql", ignore=shutil.ignore_patterns("queries"))
    monkeypatch.setattr(loader, "sql_root", lambda: tmp_path / "sql")
    path = tmp_path / "sql" / "aiosql" / "sqlite.sql"
    before = load_queries(SqliteAdapter, "sqlite")
    text = path.read_text(encoding="utf-8")
    original = "FROM test_results WHERE id = :id;"
    assert original in text
    path.write_text(text.replace(original, "FROM test_results WHERE id = :id + 1;"))
    after = load_queries(SqliteAdapter, "sqlite")
    assert parses == [path, path]
    assert ":id + 1" not in before.get_test_result.sql  # type: ignore[attr-defined]  # aiosql's query function
    assert ":id + 1" in after.get_test_result.sql  # type: ignore[attr-defined]  # aiosql's query function


async def test_a_traced_open_after_an_untraced_one_traces_with_the_query_text(
    database_url: str, parses: list[Path]
) -> None:
    """The parse kept from an untraced open still tells a traced database each query's text."""
    async with connect(database_url) as db:
        await migrate(db)
        saved = await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    try:
        async with connect(database_url, tracing=Tracing(provider)) as db:
            async with connection(db) as conn:
                row = await db.queries.get_test_result(conn, id=saved.id or 0)
            expected = db.queries.get_test_result.sql  # type: ignore[attr-defined]  # aiosql's query function
    finally:
        provider.shutdown()
    assert row is not None
    assert len(parses) == 1
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert span.attributes is not None
    assert span.attributes["db.query.summary"] == "GetTestResult"
    assert span.attributes["db.query.text"] == expected
