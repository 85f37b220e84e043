"""The event loop stays free while the package handles large values or answers, on both engines.

`test_loop_lag.py` measures calls over many rows; here the rows are large (the models put no
bound on a text's or a JSON value's size), or an answer or a report holds what no page bounds
(a comparison's changes, a CTRF document's members, a cached answer's results), and the work
that grows with them is done in slices, the loop given back between them. Each workload runs
beside the benchmark's lag probe, as there, the collector off (`_lag.within`). In conftest's
TIMED_MODULES: `make test` runs these alone, so that no worker steals their CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from _lag import MAX_LAG, within
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    get_result,
    list_results,
    save_result,
    save_results,
    save_run,
)
from persistence._interface import JsonObject
from persistence.cache import open_memory_cache, open_redis_cache
from persistence.report_json import export_ctrf, import_ctrf
from persistence.run_history import compare_runs
from test_plain_ids import plain_sql

_LOUD_LINES: Final = 650_000
"""Lines of the output, and of stderr, of the one result that the CTRF export writes."""


async def test_exporting_a_result_of_a_million_lines_as_ctrf_shares_the_loop(
    db: Database,
) -> None:
    """A result whose output and stderr hold many lines each is written a slice at a time.

    CTRF writes them as arrays of lines, by `json`'s Python encoder (the one that indents):
    written in one go, one result of a million lines each held the loop for half a second;
    this one, of 650,000, would hold it about 325 ms.
    """
    run = await save_run(db, Run())
    lines = "\n".join(["x"] * _LOUD_LINES)
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.FAILED,
                output=lines,
                metadata={"system_err": lines},
                run_id=run.id,
                test_id="tests::test_loud",
            )
        ],
    )
    assert run.id is not None
    run_id = run.id
    text = await within(MAX_LAG, "the export", lambda: export_ctrf(db, run_id))
    (test,) = json.loads(text)["results"]["tests"]
    assert test["stdout"] == test["stderr"] == ["x"] * _LOUD_LINES


_HEAVY_ROWS = 32
"""Results of `_heavy`: each takes about 10 ms to encode or decode, so 32 of them hundreds."""


def _heavy() -> list[TestResult]:
    """Results whose metadata holds 50,000 numbers each: 200 kB of JSON, legal as any."""
    return [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            metadata={"numbers": [0.5] * 50_000, "index": index},
        )
        for index in range(_HEAVY_ROWS)
    ]


async def test_saving_and_reading_results_with_large_metadata_shares_the_loop(
    db: Database,
) -> None:
    """Rows are encoded, and decoded, a few at a time when each takes milliseconds.

    A slice of 250 rows takes well under 1 ms for most rows; these 32, all in one slice, held
    the loop 250 to 400 ms when saved, on both engines, and 500 ms when read on SQLite.
    """
    rows = _heavy()
    saved = await within(MAX_LAG, "saving", lambda: save_results(db, rows))
    assert saved == _HEAVY_ROWS
    page = await within(MAX_LAG, "reading", lambda: list_results(db, limit=_HEAVY_ROWS))
    assert [result.metadata["index"] for result in page.items] == list(range(_HEAVY_ROWS))[::-1]


def _wide() -> TestResult:
    """A result whose metadata holds 100,000 small objects: 3 MB of JSON, in one row."""
    wide: JsonObject = {f"k{index}": {"v": index, "s": "abc"} for index in range(100_000)}
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=wide)


async def test_saving_one_result_of_wide_metadata_shares_the_loop(db: Database) -> None:
    """One row's metadata of megabytes is checked and encoded in a worker thread, in pieces.

    Encoded as its parameter was bound, by one C call of `json` that keeps the GIL, on the loop
    or in SQLite's writer thread, it held the loop 120 to 680 ms, on both engines.
    """
    result = _wide()
    saved = await within(MAX_LAG, "one save", lambda: save_result(db, result))
    assert await within(MAX_LAG, "a batch of one", lambda: save_results(db, [result])) == 1
    assert saved.id is not None
    stored = await get_result(db, saved.id)
    assert stored.metadata == result.metadata
    assert list(stored.metadata) == sorted(result.metadata, key=lambda key: (len(key), key))


async def test_saving_many_results_of_metadata_just_under_the_limit_shares_the_loop(
    db: Database,
) -> None:
    """Each row's metadata is looked at again on the loop up to 32 kB: the loop is shared by time.

    Shared every 250 rows, as before that look, rows of 31 kB each held it 120 to 400 ms.
    """
    rows = [
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"n": list(range(3_900))}
        )
        for _ in range(300)
    ]
    assert await within(MAX_LAG, "saving", lambda: save_results(db, rows)) == 300


async def test_saving_a_result_of_a_long_list_shares_the_loop(db: Database) -> None:
    """The look at a save counts a container's items before it walks them, and stops early.

    It walked every item, then compared the size: a list of a million numbers, 130 ms.
    """
    result = TestResult(
        test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"n": list(range(1_000_000))}
    )
    saved = await within(MAX_LAG, "one save", lambda: save_result(db, result))
    assert saved.id is not None


_ADDED: Final = 80_000
"""Tests only the head run holds: each a change that `compare_runs` gives."""
_SQLITE_ADDED: Final = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})
INSERT INTO test_results (test_type, status, execution_time, created_at, run_id, test_id)
SELECT 'unit', 'passed', 1.0, '2026-01-01T00:00:00.000000+00:00', {run}, 'tests::test_' || i
FROM n"""
_POSTGRES_ADDED: Final = """
INSERT INTO test_results (test_type, status, execution_time, created_at, run_id, test_id)
SELECT 'unit', 'passed', 1.0, timestamptz '2026-01-01 00:00:00+00', {run}, 'tests::test_' || i
FROM generate_series(1, {count}) AS i"""


async def test_comparing_runs_of_many_changes_shares_the_loop(
    db: Database, database_url: str
) -> None:
    """Each change of a comparison is made a slice at a time: 80,000 took 120 to 200 ms at once."""
    base, head = (await save_run(db, Run())).id, (await save_run(db, Run())).id
    assert base is not None
    assert head is not None
    added = _POSTGRES_ADDED if "://" in database_url else _SQLITE_ADDED
    # The two numbers are this test's own; plain SQL is seconds faster than the package.
    await plain_sql(database_url, added.format(count=_ADDED, run=head))
    comparison = await within(MAX_LAG, "the comparison", lambda: compare_runs(db, base, head))
    assert len(comparison.changes) == _ADDED


async def test_importing_a_ctrf_report_of_many_members_shares_the_loop(
    db: Database, tmp_path: Path
) -> None:
    """The document's members and `results`' are read one at a time, the loop given back.

    CTRF's objects may hold members of any name, which import reads past: 100,000 in the
    document and as many in `results` (3 MB) were read in one go, 700 ms; 45,000 and as many
    here (1.3 MB), about 315 ms.
    """
    members = ",".join(f'"member{index}":{index}' for index in range(45_000))
    report = tmp_path / "report.json"
    tests = '"tests":[{"name":"adds","status":"passed"}]'
    report.write_text(f'{{{members},"results":{{{members},{tests}}}}}', encoding="utf-8")
    run = await within(MAX_LAG, "the import", lambda: import_ctrf(db, report))
    assert run.id is not None


async def _save_junit_like(db: Database) -> None:
    """Save 10,000 results with the metadata a JUnit import keeps."""
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                metadata={"suite": "pytest", "classname": f"tests.test_module_{index // 300}"},
            )
            for index in range(10_000)
        ],
    )


async def test_a_cache_hit_of_many_results_shares_the_loop(db: Database) -> None:
    """Each result of a cached answer is copied for the caller a slice at a time.

    `recent_results` may hold 10,000 results: with metadata, each copied apart for its
    caller, they held the loop 300 ms on every hit, and 400 ms on the miss that loaded them.
    """
    await _save_junit_like(db)
    cache = await open_memory_cache(db)
    try:
        for read in ("miss", "hit"):
            hits = cache.stats().hits
            recent = await within(MAX_LAG, f"a {read}", lambda: cache.recent_results(limit=10_000))
            assert len(recent) == 10_000
            assert cache.stats().hits - hits == (read == "hit")
    finally:
        await cache.close()


async def test_a_redis_cache_miss_of_many_results_shares_the_loop(
    db: Database, redis_url: str, namespace: str
) -> None:
    """The Redis tier writes an answer's results as JSON a slice at a time, and reads them so.

    The 10,000 results of one `recent_results`, written in one go, held the loop 200 ms on
    each miss (the entry, over `max_entry_bytes`, is then not even stored).
    """
    await _save_junit_like(db)
    cache = await open_redis_cache(db, redis_url, namespace=namespace)
    try:
        recent = await within(MAX_LAG, "the miss", lambda: cache.recent_results(limit=10_000))
        assert len(recent) == 10_000
    finally:
        await cache.close()
