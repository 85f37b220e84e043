"""PostgreSQL lists through an index for every filter combination, under the plan it caches.

After five runs of a prepared statement PostgreSQL may switch to a generic plan, made
without the parameters' values; `col = coalesce($1, col)` cannot use an index there. These
tests capture each statement the layer sends, prepare it, and read the generic plan that
`plan_cache_mode = force_generic_plan` makes it run: `EXPLAIN EXECUTE`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import asyncpg
import pytest

from persistence import (
    Database,
    FileRecord,
    FileRecordFilter,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    connect,
    list_file_records,
    list_results,
    migrate,
    save_file_record,
    save_results,
    search_results,
)

T0: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ROWS: Final = 20_000

FILTERS: Final[dict[str, dict[str, Any]]] = {
    "types": {"test_types": {TestType.UNIT, TestType.STRESS}},
    "statuses": {"statuses": {TestStatus.FAILED, TestStatus.ERROR}},
    "metadata": {"metadata": {"solution": "a7.cpp"}},
    "time": {
        "created_from": T0 + dt.timedelta(hours=1),
        "created_until": T0 + dt.timedelta(hours=3),
    },
}
"""One value of each kind of filter; a combination sets some of them."""

COMBINATIONS: Final = [
    combo for size in range(len(FILTERS) + 1) for combo in itertools.combinations(FILTERS, size)
]


def expected_index(combo: tuple[str, ...]) -> tuple[str, str]:
    """The index that must drive a listing with these filters, and a column its condition uses."""
    if "metadata" in combo:
        return "test_results_metadata_idx", "metadata"
    if "statuses" in combo:
        return "test_results_status_created_idx", "status"
    if "types" in combo:
        return "test_results_type_created_idx", "test_type"
    return "test_results_created_idx", "created_at"


Captured = list[tuple[str, tuple[object, ...]]]


@pytest.fixture(name="sent")
def capture_statements(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Every (SQL, arguments) that the layer fetches rows with, in order."""
    sent: Captured = []
    original = asyncpg.connection.Connection.fetch

    async def fetch(self: Any, query: str, *args: object, **options: Any) -> Any:  # noqa: ANN401  # asyncpg's own signature
        sent.append((query, args))
        return await original(self, query, *args, **options)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetch)
    return sent


def results(count: int) -> list[TestResult]:
    """Many results: every type and status, ten solutions, over five hours."""
    types, statuses = list(TestType), list(TestStatus)
    return [
        TestResult(
            test_type=types[(i // 7) % len(types)],
            status=statuses[(i // 3) % len(statuses)],
            output=f"run {i} of solution a{i % 10}.cpp",
            created_at=T0 + dt.timedelta(seconds=i),
            metadata={"solution": f"a{i % 10}.cpp", "seed": i},
        )
        for i in range(count)
    ]


@pytest.fixture(name="pg")
async def filled_postgres(postgres_url: str) -> AsyncIterator[Database]:
    """A PostgreSQL database holding many results and file records, analysed."""
    async with connect(postgres_url) as db:
        await migrate(db)
        await save_results(db, results(ROWS))
        for i in range(200):
            await save_file_record(db, FileRecord(path=f"reports/{i:03}.txt", size=i))
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute("ANALYZE")
        finally:
            await admin.close()
        yield db


def literal(value: object) -> str:
    """Write a parameter as a SQL literal, for EXECUTE."""
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(value)
    if isinstance(value, dt.datetime):
        return quoted(value.isoformat()) + "::timestamptz"
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(map(literal, value)) + "]::text[]"
    if isinstance(value, dict):
        return quoted(json.dumps(value)) + "::jsonb"
    assert isinstance(value, str)
    return quoted(value)


def quoted(text: str) -> str:
    """A string literal."""
    return "'" + text.replace("'", "''") + "'"


async def generic_plan(url: str, sql: str, args: tuple[object, ...]) -> dict[str, Any]:
    """The plan PostgreSQL runs the statement with once it has switched to a generic plan."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE listing AS {sql}")
        explained = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) EXECUTE listing({', '.join(map(literal, args))})"
        )
    finally:
        await conn.close()
    plan: dict[str, Any] = json.loads(explained)[0]["Plan"]
    return plan


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan, depth first."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def problems_of(plan: dict[str, Any], index: str, column: str) -> list[str]:
    """What is wrong with a plan that must read test_results through `index` on `column`."""
    found = list(nodes(plan))
    problems = [
        f"a sequential scan of {node['Relation Name']}"
        for node in found
        if node["Node Type"] == "Seq Scan"
    ]
    using = [node for node in found if node.get("Index Name") == index]
    if not using:
        names = sorted({str(node.get("Index Name")) for node in found if "Index Name" in node})
        problems.append(f"no scan of {index} (indexes used: {names})")
    elif not any(column in node.get("Index Cond", "") for node in using):
        problems.append(f"{index} is scanned without a condition on {column}")
    elif not any("$" in node.get("Index Cond", "") for node in using):
        problems.append("the plan is not generic: its conditions hold no parameter")
    return problems


async def test_every_result_filter_combination_uses_its_index(
    pg: Database, postgres_url: str, sent: Captured
) -> None:
    """Each of the 16 filter combinations, on a first page and a later one, scans its index."""
    problems: list[str] = []
    for combo, later_page in itertools.product(COMBINATIONS, (False, True)):
        where = ResultFilter(**{k: v for name in combo for k, v in FILTERS[name].items()})
        page = await list_results(pg, where, limit=5)
        if later_page:
            assert page.next_cursor is not None, combo
            sent.clear()
            page = await list_results(pg, limit=5, after=page.next_cursor)
        assert page.items, combo
        sql, args = sent[-1]
        index, column = expected_index(combo)
        plan = await generic_plan(postgres_url, sql, args)
        where_label = f"{' + '.join(combo) or 'no filter'}{' (later page)' if later_page else ''}"
        problems += [f"{where_label}: {problem}" for problem in problems_of(plan, index, column)]
    assert problems == [], "\n".join(problems)


async def test_a_search_uses_the_search_index(
    pg: Database, postgres_url: str, sent: Captured
) -> None:
    """A search, filtered or not, reads the GIN index of search_vector."""
    for where in (None, ResultFilter(statuses={TestStatus.FAILED}, metadata={"seed": 3})):
        sent.clear()
        await search_results(pg, '"solution a7" cpp', where)
        sql, args = sent[-1]
        plan = await generic_plan(postgres_url, sql, args)
        assert problems_of(plan, "test_results_search_idx", "search_vector") == []


async def test_a_file_listing_uses_the_path_index(
    pg: Database, postgres_url: str, sent: Captured
) -> None:
    """A file listing by prefix, glob, size or access time walks the path index."""
    filters = [
        FileRecordFilter(),
        FileRecordFilter(path_prefix="reports/1"),
        FileRecordFilter(path_glob="reports/?5*.txt", min_size=10, max_size=100),
        FileRecordFilter(accessed_from=T0),
    ]
    for where in filters:
        sent.clear()
        await list_file_records(pg, where, limit=5)
        sql, args = sent[-1]
        plan = await generic_plan(postgres_url, sql, args)
        assert problems_of(plan, "file_records_path_key", "path") == [], where
