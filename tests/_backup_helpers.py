"""What the backup tests share: databases filled in every copied table, and their readers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

import persistence.backup
from persistence import (
    ConfigEntry,
    ConfigType,
    Counterexample,
    CounterexampleStore,
    FileRecord,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_config_entries,
    all_file_records,
    all_results,
    all_runs,
    connect,
    counterexamples,
    delete_result,
    keep_counterexample,
    list_results,
    migrate,
    migration_status,
    queries,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    save_run,
    search_results,
    set_config,
)
from persistence.__main__ import main
from persistence._database_value import backend_of
from persistence.database import connection

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from persistence import Database, PageCursor

BASE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
WORDS = ("alpha", "bravo", "charlie", "delta", "echo")
SEARCHES = ("alpha", "bravo charlie", '"echo alpha"', "delt*", "alpha -bravo")
TEST = "solutions/a.cpp#stress"
"""The test whose failing results keep counterexamples."""
KEPT = 3
"""How many results `fill` keeps a counterexample with."""
EMPTY: tuple[list[object], ...] = ([], [], [], [], [], [])
"""What `contents` gives of an empty database."""


async def fill(db: Database, store: CounterexampleStore, n: int = 60) -> None:
    """Put rows in every copied table: runs, results, kept counterexamples, config, files."""
    first = await save_run(db, Run(started_at=BASE, labels={"commit": "9f2c1e0"}))
    second = await save_run(db, Run(started_at=BASE + dt.timedelta(hours=1)))
    await save_results(
        db,
        [
            TestResult(
                test_type=tuple(TestType)[i % 4],
                status=tuple(TestStatus)[i % 6],
                execution_time=i / 7,
                memory_usage=i * 1024,
                test_cases_passed=i % 3,
                test_cases_total=3,
                output=f"{WORDS[i % 5]} {WORDS[(i * 3) % 5]} ünïcode ς {i}",
                error_message=None if i % 4 else f"{WORDS[(i + 1) % 5]} failed",
                created_at=BASE + dt.timedelta(seconds=i // 2, microseconds=i),
                metadata={"i": i, "tags": ["x", i % 2 == 0], "f": 0.1 * i, "none": None},
                run_id=(first.id, second.id, None)[i % 3],
                test_id=f"tests/test_{i}.py::t" if i % 3 != 2 else None,
            )
            for i in range(n)
        ],
    )
    doomed = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="gone")
    )
    assert doomed.id is not None
    await delete_result(db, doomed.id)  # the counter has passed every id left
    for i, (data, expected, actual) in enumerate(
        [(b"3\n1 2 3\n", b"6\n", b"7\n"), (b"5\n", None, None), (b"3\n1 2 3\n", None, b"8\n")]
    ):
        failing = TestResult(
            test_type=TestType.STRESS,
            status=(TestStatus.FAILED, TestStatus.TIMEOUT)[i % 2],
            created_at=BASE + dt.timedelta(days=1, minutes=i),
            test_id=TEST,
            run_id=second.id if i == 0 else None,  # a test has one result in a run
        )
        await keep_counterexample(db, store, failing, input=data, expected=expected, actual=actual)
    for i in range(5):
        await set_config(db, "app", f"key{i}", [i, "x"] if i % 2 else i * 1.5)
    await save_config_entry(
        db, ConfigEntry(section="s", key="k", value="v", type=ConfigType.STR, description="d")
    )
    for i in range(7):
        await save_file_record(
            db, FileRecord(path=f"files/{i}.bin", size=i, created_at=BASE, metadata={"n": i})
        )


async def contents(
    db: Database,
) -> tuple[
    list[Run],
    list[TestResult],
    list[queries.ResultArtifactsRow],
    list[Counterexample],
    list[ConfigEntry],
    list[FileRecord],
]:
    """Every row of every copied table, ids included, and the counterexamples of `TEST`."""
    async with connection(db) as conn:
        links = await db.queries.copy_read_result_artifacts(
            conn, after_result_id=0, after_role="", page_size=1_000_000
        )
    return (
        await all_runs(db),
        await all_results(db),
        links,
        await counterexamples(db, TEST),
        await all_config_entries(db),
        await all_file_records(db),
    )


async def row_counts(db: Database, url: str | Path) -> dict[str, int]:
    """The rows of every table of a database, by plain SQL: SQLite's file, or PostgreSQL's URL."""
    async with connection(db) as conn:
        tables = await backend_of(db).table_names(conn)
    sql = [f'SELECT count(*) FROM "{table}"' for table in tables]  # noqa: S608  # its own names
    if isinstance(url, Path):

        def count() -> list[int]:
            with contextlib.closing(sqlite3.connect(url)) as file:
                return [int(file.execute(query).fetchone()[0]) for query in sql]

        return dict(zip(tables, await asyncio.to_thread(count), strict=True))
    seen = await asyncpg.connect(url)
    try:
        return {
            table: int(await seen.fetchval(query)) for table, query in zip(tables, sql, strict=True)
        }
    finally:
        await seen.close()


async def pages(db: Database, where: ResultFilter | None = None) -> list[list[int | None]]:
    """The ids of every page of a results listing, seven to a page."""
    found: list[list[int | None]] = []
    after: PageCursor | None = None
    while True:
        page = await list_results(db, where, limit=7, after=after)
        found.append([result.id for result in page.items])
        if page.next_cursor is None:
            return found
        after = page.next_cursor


async def hits(db: Database, text: str) -> list[list[int | None]]:
    """The ids of every page of a search, five to a page, in rank order."""
    found: list[list[int | None]] = []
    page = await search_results(db, text, limit=5)
    found.append([hit.result.id for hit in page.items])
    while page.next_cursor is not None:
        page = await search_results(db, text, limit=5, after=page.next_cursor)
        found.append([hit.result.id for hit in page.items])
    return found


async def assert_same(source: Database, target: Database) -> None:
    """Every row, every listing page and every search hit of `target` is as in `source`."""
    assert await contents(target) == await contents(source)
    for where in (
        None,
        ResultFilter(test_type=TestType.UNIT),
        ResultFilter(status=TestStatus.FAILED),
    ):
        assert await pages(target, where) == await pages(source, where)
    for text in SEARCHES:
        mine, theirs = await hits(target, text), await hits(source, text)
        if target.engine is source.engine:
            assert mine == theirs  # the same ranking
        else:  # each engine ranks its own way: the same hits, as many pages
            assert sorted(map(str, chain(*mine))) == sorted(map(str, chain(*theirs)))
            assert [len(page) for page in mine] == [len(page) for page in theirs]
    source_status, target_status = await migration_status(source), await migration_status(target)
    assert target_status.up_to_date
    assert [a.version for a in target_status.applied] == [a.version for a in source_status.applied]


async def indexes(url: str) -> list[tuple[object, ...]]:
    """Each index of the copied tables of a PostgreSQL database, by name, with its SQL.

    And what its SQL leaves out: its comment, tablespace, whether its table is clustered on
    it or names it its replica identity, and its columns' statistics targets.
    """
    seen = await asyncpg.connect(url)
    try:
        rows = await seen.fetch(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),"
            " obj_description(i.indexrelid, 'pg_class'), c.reltablespace, i.indisclustered,"
            " i.indisreplident, ARRAY(SELECT a.attstattarget FROM pg_attribute AS a"
            "  WHERE a.attrelid = i.indexrelid ORDER BY a.attnum)"
            " FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = ANY (SELECT t::regclass FROM unnest($1::text[]) AS t)"
            " ORDER BY 1",
            list(persistence.backup.COPIED_TABLES),
        )
    finally:
        await seen.close()
    return [tuple(row) for row in rows]


async def new_id(db: Database) -> int | None:
    """The id the database gives the next result."""
    return (await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))).id


def names(folder: Path) -> list[str]:
    """The names in a folder, sorted."""
    return sorted(path.name for path in folder.iterdir())


async def run(*args: str) -> int:
    """Run the command line in a thread of its own, as from a shell: its exit code."""
    return await asyncio.to_thread(main, list(args))


async def writing(url: Path, stop: asyncio.Event, written: list[int]) -> None:
    """Save results one by one through a connection of its own until told to stop."""
    async with connect(url) as db:
        i = 0
        while not stop.is_set():
            result = TestResult(
                test_type=TestType.STRESS,
                status=TestStatus.FAILED,
                output=f"live alpha {i}",
                created_at=BASE,
            )
            saved = await save_result(db, result)
            assert saved.id is not None
            written.append(saved.id)
            i += 1
            await asyncio.sleep(0)


@pytest.fixture(name="postgres")
async def migrated_postgres(postgres_url: str) -> AsyncIterator[Database]:
    """A migrated, empty PostgreSQL database."""
    async with connect(postgres_url) as db:
        await migrate(db)
        yield db
