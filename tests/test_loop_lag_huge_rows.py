"""The event loop stays free while a listing of results reads one of megabytes.

`test_loop_lag_config_listing.py` lists config entries of megabytes; here it is a test result
whose metadata or output is: listings map their rows to models a slice at a time, and no
slice cuts one row, so a row whose stored size is past OFF_LOOP_SIZE is mapped alone in a
worker thread (`_loop.map_slices`'s `stored_of`): SQLite's rows by the size of their JSON
text, PostgreSQL's by the jsonb its codec left undecoded. Each workload runs beside the
benchmark's lag probe, as there; in conftest's TIMED_MODULES.

With the rows mapped on the loop, the 3.5 MB of metadata here held it 250 to 1,180 ms in a
listing, a page, a test's history or a run read for export, on both engines; now 10 to 50 ms.
"""

from __future__ import annotations

import functools
import json
from typing import Final

import pytest

from _lag import HUGE_METADATA_KEYS, MAX_LAG, every_page_within, huge_metadata, within
from persistence import (
    Database,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    list_results,
    save_results,
    save_run,
    to_dict,
)
from persistence.exceptions import ValidationError
from persistence.report_common import read_run
from persistence.report_json_export import jsonl_text
from persistence.run_history import list_test_history
from test_plain_ids import plain_sql

pytestmark = pytest.mark.timed

_OUTPUT_CHARACTERS: Final = 10_000_000
"""Characters of the huge output stored here.

Its mapping costs little (a look for NUL characters); SQLite's own step that reads it does
not, and no budget cuts one step: 40 ms here, 85 ms at 20 MB (docs/GUARANTEES.md)."""

_SMALL: Final = 20
"""Small results around the huge ones, so that they fall mid-page and mid-slice.

Even, so that the two huge ones share a page of 2. The faults held the loop with the huge rows,
whatever the small ones around them: 100 of each made 308 pages, each measured apart."""

_TEST_ID: Final = "tests::test_huge"


def _result(run_id: int | None, **fields: object) -> TestResult:
    return TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.PASSED,
        run_id=run_id,
        test_id=_TEST_ID,
        **fields,  # type: ignore[arg-type]  # the fields of a TestResult
    )


async def _store(db: Database) -> tuple[int, int]:
    """Store a result of huge metadata and one of huge output among small ones; give their runs.

    Each huge one is in a run of its own, as one test's results are; the small ones in none.
    """
    runs = [await save_run(db, Run()) for _ in range(2)]
    assert runs[0].id is not None
    assert runs[1].id is not None
    small = [_result(None, output=f"line {index}") for index in range(_SMALL)]
    await save_results(db, small)
    await save_results(db, [_result(runs[0].id, metadata=huge_metadata(), output="small")])
    await save_results(db, [_result(runs[1].id, output="x" * _OUTPUT_CHARACTERS)])
    await save_results(db, small)
    return runs[0].id, runs[1].id


def _check(results: list[TestResult] | tuple[TestResult, ...]) -> None:
    """Check a listing of every result: the huge ones whole."""
    assert len(results) == 2 * _SMALL + 2
    outputs = sorted((result.output or "" for result in results), key=len)
    assert len(outputs[-1]) == _OUTPUT_CHARACTERS
    assert max(len(result.metadata) for result in results) == HUGE_METADATA_KEYS


async def test_listing_every_result_with_huge_ones_shares_the_loop(db: Database) -> None:
    """Each row of megabytes is mapped to its model in a worker thread, the rest on the loop."""
    await _store(db)
    _check(await within(MAX_LAG, "the listing", lambda: all_results(db)))
    passed = ResultFilter(status=TestStatus.PASSED)
    _check(await within(MAX_LAG, "the filtered listing", lambda: all_results(db, passed)))


async def test_pages_of_results_with_huge_ones_share_the_loop(db: Database) -> None:
    """A page holding a row of megabytes, alone, with another, or among small ones.

    One store, read in pages of each size: storing megabytes took most of each test's time.
    """
    await _store(db)
    for limit in (1, 2, 100):
        read = functools.partial(list_results, db, None, limit=limit)
        _check(await every_page_within(MAX_LAG, f"a page of {limit}", read))


async def test_a_test_history_with_huge_results_shares_the_loop(db: Database) -> None:
    """One test's history reads its results as `list_results` does."""
    await _store(db)
    page = await within(
        MAX_LAG, "the history", lambda: list_test_history(db, _TEST_ID, limit=1_000)
    )
    _check(page.items)


async def test_reading_a_run_with_huge_results_for_export_shares_the_loop(db: Database) -> None:
    """The exports read a run's results a page at a time, mapped as a listing's are."""
    for run_id in await _store(db):
        _, results = await within(MAX_LAG, "reading a run", functools.partial(read_run, db, run_id))
        assert len(results) == 1
        assert len(results[0].metadata) == HUGE_METADATA_KEYS or results[0].output == "x" * (
            _OUTPUT_CHARACTERS
        )


async def test_exporting_results_of_wide_metadata_as_json_lines_shares_the_loop(
    db: Database,
) -> None:
    """Each line was one `json.dumps` call: 3.5 MB of keys (no long text) held the loop 70 ms.

    Two such results in a row, 140 to 400 ms: the loop's turn between lines lets no timer
    run. Each line is the text `json.dumps` gives, written a slice at a time.
    """
    run = await save_run(db, Run())
    assert run.id is not None
    wide = [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            run_id=run.id,
            test_id=f"tests::test_wide_{index}",
            metadata=huge_metadata(),
        )
        for index in range(2)
    ]
    await save_results(db, wide)
    stored, results = await read_run(db, run.id)
    text = await within(MAX_LAG, "the JSON Lines export", lambda: jsonl_text(results))
    expected = [json.dumps(to_dict(result), ensure_ascii=False) + "\n" for result in results]
    assert text == "".join(expected)
    assert stored.id == run.id


async def test_a_huge_row_that_breaks_the_rules_is_refused_as_a_small_one_is(
    db: Database, database_url: str
) -> None:
    """Read in a worker thread, stored metadata holding an int beyond 64 bits is still refused."""
    await save_results(db, [_result(None, metadata=huge_metadata())])
    head = "'{\"bad\":99999999999999999999,'"
    joined = f"{head} || substr(metadata, 2)"
    if "://" in database_url:
        joined = f"({head} || substr(metadata::text, 2))::jsonb"
    await plain_sql(database_url, f"UPDATE test_results SET metadata = {joined}")  # noqa: S608  # the test's own constants
    with pytest.raises(ValidationError, match="99999999999999999999"):
        await all_results(db)
