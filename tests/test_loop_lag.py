"""The event loop stays free during the package's longest calls, on both engines.

Each workload runs beside the benchmark's lag probe (`_lag.within`): the longest it waited
past its time is the longest the loop was held. The bound is generous, for a loaded machine;
the old code held the loop for seconds in each of them. `make bench` measures the same
workloads at full size against the 20 ms target.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import random
import sqlite3
from pathlib import Path
from typing import Final

import asyncpg
import pytest

from _lag import MAX_IMPORT_LAG, MAX_LAG, MAX_STATEMENT_LAG, assert_lag, held, within
from bench.history import write_junit
from persistence import (
    Database,
    ReportError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    delete_results_before,
    export_junit,
    import_junit,
    migrate,
    save_results,
    save_run,
    search_results,
)
from persistence.report_common import read_run
from persistence.report_json import export_ctrf, export_jsonl, import_ctrf, import_jsonl
from persistence.report_json_export import ctrf_text, jsonl_text

OLD: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NEW: Final = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _texts(count: int, chars: int, seed: int = 17) -> list[str]:
    """Build `count` outputs of about `chars` characters of varied words each."""
    rng = random.Random(seed)  # noqa: S311  # test data
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnop", k=rng.randint(3, 9))) for _ in range(4000)
    ]
    return [" ".join(rng.choices(vocabulary, k=chars // 7))[:chars] for _ in range(count)]


def _results(outputs: list[str], created_at: dt.datetime) -> list[TestResult]:
    return [
        TestResult(
            test_type=TestType.STRESS,
            status=TestStatus.FAILED,
            output=output,
            created_at=created_at + dt.timedelta(milliseconds=index),
        )
        for index, output in enumerate(outputs)
    ]


async def test_retention_over_many_indexed_rows_leaves_the_loop_free(db: Database) -> None:
    """Deleting thousands of indexed rows holds the loop a few ms at a time, not for the whole."""
    old = _results(_texts(1500, 6000), OLD)
    await save_results(db, old)
    await save_results(db, _results(_texts(10, 200, seed=3), NEW))
    deleted = await within(
        MAX_STATEMENT_LAG, "retention", lambda: delete_results_before(db, NEW), collector=True
    )
    assert deleted == len(old)


async def test_the_32_word_query_over_long_outputs_is_quick_and_shares_the_loop(
    db: Database,
) -> None:
    """`a` 32 times, a legal query, over 20 outputs of 8,000 `a`s: bounded work per snippet."""
    await save_results(db, _results(["a " * 8000] * 20, OLD))
    text = " ".join(["a"] * 32)
    search = await held(lambda: search_results(db, text, limit=20), collector=True)
    assert len(search.outcome.items) == 20
    assert all(hit.snippet.highlights for hit in search.outcome.items)
    assert_lag("the search", search.lag, MAX_LAG, search.took)
    assert search.took < 2.0, f"the search took {search.took:.2f} s"  # make bench's: 200 ms


async def test_a_search_of_thousands_of_hits_shares_the_loop(db: Database) -> None:
    """A page of 5,000 ranked hits, each with its snippet, gives the loop back between them."""
    outputs = [f"needle {text}" for text in _texts(5000, 2000, seed=5)]
    await save_results(db, _results(outputs, OLD))
    page = await within(
        MAX_LAG, "the search", lambda: search_results(db, "needle", limit=10_000), collector=True
    )
    assert len(page.items) == 5000


async def test_saving_many_rows_shares_the_loop(db: Database) -> None:
    """`save_results` of 20,000 rows converts and sends them a slice at a time.

    On PostgreSQL, COPY takes its records a slice at a time: given in one list, asyncpg
    built and encoded all of them on the loop in one go, about 200 ms for 20,000 rows.
    """
    rows = _results(["short output"] * 20_000, OLD)
    saved = await within(MAX_LAG, "saving", lambda: save_results(db, rows), collector=True)
    assert saved == len(rows)


async def test_importing_a_junit_report_shares_the_loop(db: Database, tmp_path: Path) -> None:
    """A report of 30,000 cases is parsed a few kB at a time between looks at the budget.

    Fed a MB at a time, as it is read, the parser held the loop for over 100 ms.
    """
    report = tmp_path / "report.xml"
    write_junit(report, 30_000)
    run = await within(
        MAX_IMPORT_LAG, "the import", lambda: import_junit(db, report), collector=True
    )
    assert run.id is not None


async def test_a_tag_that_hides_its_end_in_a_value_holds_the_loop_no_longer(
    db: Database, tmp_path: Path
) -> None:
    """A `>` inside a value ends no tag: the pieces fed while a tag goes on stay small.

    The count of a tag's attributes looks at the piece that may end it up to its first `>`: a
    `>` in a value hid the attributes after it, and the piece, doubled up to a MiB, was parsed
    with all of them in one call (53,000 attributes: 63 ms). Pieces stay at 64 KiB at most while
    a tag goes on, so what the count misses fits in one.
    """
    head, end = '<testsuites pad="', "></testsuites>"
    pad = "x" * ((1 << 19) + 8 - len(head))  # its `>` starts the piece that was doubled to 512 KiB
    attributes = "".join(f' a{i}=""' for i in range(((1 << 19) - 11 - len(end)) // 10))
    report = tmp_path / "report.xml"
    report.write_bytes(f'{head}{pad}>"{attributes}{end}'.encode())

    async def imported() -> object:
        try:
            return await import_junit(db, report)
        except ReportError as refused:
            return refused

    outcome = await within(MAX_IMPORT_LAG, "the import", imported, collector=True)
    assert isinstance(outcome, ReportError), outcome


_EXPORTS: Final = {"junit": export_junit, "ctrf": export_ctrf, "jsonl": export_jsonl}
_IMPORTS: Final = {"ctrf": import_ctrf, "jsonl": import_jsonl}
_REPORT_RESULTS: Final = 30_000
_EXPORTED_RESULTS: Final = {"junit": _REPORT_RESULTS, "ctrf": 10_000, "jsonl": 10_000}
"""Results of the run each export writes: the fault each guards, linearly smaller, still held
the loop over three times MAX_LAG (see `test_exporting_a_run_shares_the_loop`)."""
_IMPORTED_RESULTS: Final = {"ctrf": _REPORT_RESULTS, "jsonl": 10_000}
"""Results of the report each import reads: the same rule, for the JSON imports' faults."""


def _report_results(run_id: int, keys: int, count: int) -> list[TestResult]:
    """`count` results of run `run_id` with outputs, messages and metadata.

    `keys` more keys in each result's metadata make a report of more JSON values.
    """
    return [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.FAILED if index % 10 == 0 else TestStatus.PASSED,
            execution_time=index / 1000,
            error_message="assert 1 == 2" if index % 10 == 0 else None,
            output="wrote 3 bytes",
            metadata={
                "suite": "pytest",
                "classname": f"tests.test_module_{index // 300}",
                **{f"k{key}": [key] for key in range(keys)},
            },
            run_id=run_id,
            test_id=f"tests.test_module_{index // 300}::test_case_{index:07d}",
        )
        for index in range(count)
    ]


async def _a_run_to_report(db: Database, *, keys: int = 0, count: int = _REPORT_RESULTS) -> int:
    """Save a run of `_report_results`; give its id."""
    run = await save_run(db, Run())
    assert run.id is not None
    await save_results(db, _report_results(run.id, keys, count))
    return run.id


_SQLITE_RUN: Final = "INSERT INTO runs (started_at) VALUES (?)"
_SQLITE_RESULT: Final = """
INSERT INTO test_results
    (test_type, status, execution_time, error_message, output, created_at, metadata, run_id,
     test_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def _sqlite_time(at: dt.datetime) -> str:
    """A time as the layer stores it on SQLite: `2026-01-01T00:00:00.000000+00:00`."""
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _write_run_plainly(path: Path, *, keys: int) -> int:
    """Write the run `_a_run_to_report` saves into a migrated SQLite file, by plain SQL.

    The rows are `_report_results`' own, one microsecond apart: seconds faster than saving
    them through the layer, for a run that is only read after.
    """
    started = dt.datetime.now(dt.UTC)
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        run_id = plain.execute(_SQLITE_RUN, (_sqlite_time(started),)).lastrowid
        assert run_id is not None
        plain.executemany(
            _SQLITE_RESULT,
            (
                (
                    result.test_type.value,
                    result.status.value,
                    result.execution_time,
                    result.error_message,
                    result.output,
                    _sqlite_time(started + dt.timedelta(microseconds=index)),
                    json.dumps(result.metadata, separators=(",", ":")),
                    result.run_id,
                    result.test_id,
                )
                for index, result in enumerate(_report_results(run_id, keys, _REPORT_RESULTS))
            ),
        )
    return run_id


@pytest.mark.parametrize("form", list(_EXPORTS))
async def test_exporting_a_run_shares_the_loop(db: Database, form: str) -> None:
    """Each result of a run is written apart, the loop given back between them.

    Written in one go, 30,000 results held the loop for 100 ms (JUnit) to over a second (CTRF,
    JSON Lines): JUnit's run keeps 30,000, CTRF's and JSON Lines' 10,000 (over 330 ms so).
    The collector is kept out of the measure, as for `all_results`.
    """
    count = _EXPORTED_RESULTS[form]
    run_id = await _a_run_to_report(db, count=count)
    export = _EXPORTS[form]
    text = await within(MAX_LAG, "the export", lambda: export(db, run_id))
    assert f"test_case_{count - 1:07d}" in text


async def _write_json_reports(folder: Path) -> dict[str, Path]:
    """Export one run of 30,000 results with 20 more metadata keys as CTRF and JSON Lines.

    The run is written by plain SQL (`_write_run_plainly`), read once as each export reads
    it (`read_run`), and written by each export's own writer: JSON Lines, one line a result,
    of its first `_IMPORTED_RESULTS["jsonl"]` results only, as `export_jsonl` writes a run of
    those results alone.
    """
    source = folder / "source.db"
    async with connect(source) as db:
        await migrate(db)
    run_id = _write_run_plainly(source, keys=20)
    async with connect(source) as db:
        run, results = await read_run(db, run_id)
    texts = {
        "ctrf": await ctrf_text(run, results),
        "jsonl": await jsonl_text(results[: _IMPORTED_RESULTS["jsonl"]]),
    }
    reports = {form: folder / f"report.{form}" for form in _IMPORTS}
    for form, report in reports.items():
        report.write_text(texts[form], encoding="utf-8")
    return reports


@pytest.fixture(scope="module")
def json_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reports the JSON import tests read, written once for both engines.

    Saving and exporting the run takes several times as long as importing it: the report is
    the same whichever engine it came from, so it is made once, on SQLite, and only read after.
    """
    return asyncio.run(_write_json_reports(tmp_path_factory.mktemp("json-reports")))


@pytest.mark.parametrize("form", list(_IMPORTS))
async def test_importing_a_json_report_shares_the_loop(
    db: Database, json_reports: dict[str, Path], form: str
) -> None:
    """A report of many tests is read and checked one test at a time, the loop given back.

    Checked in one go, a JSON Lines file of 30,000 results held the loop for about a second
    (the one here holds 10,000: about 330 ms); a CTRF document of that run (37 MB, 1.5
    million JSON values), read by one `json.loads`, for 300 ms or more (kept at 30,000).
    """
    read = _IMPORTS[form]
    run = await within(MAX_LAG, "the import", lambda: read(db, json_reports[form]))
    assert run.id is not None


_SQLITE_ROWS: Final = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO test_results (test_type, status, output, created_at)
SELECT 'stress', 'failed', 'short output',
       strftime('%Y-%m-%dT%H:%M:%f', '2026-01-01', '+' || i || ' seconds') || '000+00:00'
FROM n"""
_POSTGRES_ROWS: Final = """
INSERT INTO test_results (test_type, status, output, created_at)
SELECT 'stress', 'failed', 'short output', timestamptz '2026-01-01 00:00:00+00' + i * interval '1 s'
FROM generate_series(1, $1) AS i"""


async def _write_plainly(url: str, count: int) -> None:
    """Write `count` small results by one plain SQL statement: seconds faster than the layer."""
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(_POSTGRES_ROWS, count)
        finally:
            await conn.close()
        return
    with contextlib.closing(sqlite3.connect(url)) as plain, plain:
        plain.execute(_SQLITE_ROWS, (count,))


async def test_reading_many_rows_into_models_shares_the_loop(
    db: Database, database_url: str
) -> None:
    """`all_results` over 30,000 rows maps them to models a slice at a time, on both engines.

    Mapped in one go, 30,000 results hold the loop 100 ms or more. The collector is kept out
    of the measure: a full collection holds the loop as long as the whole heap takes to walk,
    whoever's code triggered it (`make bench` reports it apart).
    """
    count = 30_000
    await _write_plainly(database_url, count)
    read = await within(MAX_LAG, "the listing", lambda: all_results(db))
    assert len(read) == count
