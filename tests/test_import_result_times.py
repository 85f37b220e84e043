"""An imported result's time: the report's own for it, within the run's span, else the import's.

Each result kept the import's time as its `created_at`, so a week-old report's results were
placed at today by every window, listing order and retention cut-off.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from _report_helpers import write_report
from persistence import Database, Run, TestResult, all_results
from persistence.report_json import import_ctrf

UTC: Final = dt.UTC
WEEK_AGO: Final = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
"""A report's time, long before any import the tests run."""
MS: Final = int(WEEK_AGO.timestamp() * 1000)


async def _times(db: Database, run: Run) -> dict[str, dt.datetime]:
    """Each result of the run by test id: its time as stored."""
    found: list[TestResult] = [r for r in await all_results(db) if r.run_id == run.id]
    return {str(r.test_id): r.created_at for r in found}


def _ctrf(tests: list[dict[str, object]], summary: Mapping[str, object] | None = None) -> str:
    results: dict[str, object] = {"tests": tests}
    if summary is not None:
        results["summary"] = summary
    return json.dumps({"results": results})


async def test_a_ctrf_test_s_start_is_its_time(db: Database, tmp_path: Path) -> None:
    """`start` is milliseconds since 1970 in UTC; a test without one takes the run's start."""
    tests: list[dict[str, object]] = [
        {"name": "a", "status": "passed", "duration": 10, "start": MS + 1500},
        {"name": "b", "status": "failed", "duration": 10, "start": MS + 2250},
        {"name": "c", "status": "passed", "duration": 10},
    ]
    summary = {"tests": 3, "start": MS, "stop": MS + 5000}
    run = await import_ctrf(db, write_report(tmp_path, _ctrf(tests, summary), "r.json"))
    assert run.started_at == WEEK_AGO
    assert await _times(db, run) == {
        "a": WEEK_AGO + dt.timedelta(milliseconds=1500),
        "b": WEEK_AGO + dt.timedelta(milliseconds=2250),
        "c": WEEK_AGO,
    }


async def test_ctrf_tests_times_without_a_summary_span_the_run(
    db: Database, tmp_path: Path
) -> None:
    """No `summary.start` and `stop`: the run spans its tests' times, as JSON Lines' does."""
    tests: list[dict[str, object]] = [
        {"name": "a", "status": "passed", "start": MS + 4000},
        {"name": "b", "status": "passed", "start": MS},
        {"name": "c", "status": "passed"},
    ]
    run = await import_ctrf(db, write_report(tmp_path, _ctrf(tests), "r.json"))
    assert (run.started_at, run.ended_at) == (WEEK_AGO, WEEK_AGO + dt.timedelta(seconds=4))
    assert await _times(db, run) == {
        "a": WEEK_AGO + dt.timedelta(seconds=4),
        "b": WEEK_AGO,
        "c": WEEK_AGO,
    }


async def test_a_ctrf_test_s_time_outside_the_summary_widens_the_run(
    db: Database, tmp_path: Path
) -> None:
    """A test's time is the report's own word: the run is widened to hold it, not moved."""
    tests: list[dict[str, object]] = [
        {"name": "a", "status": "passed", "start": MS - 1000},
        {"name": "b", "status": "passed", "start": MS + 9000},
    ]
    summary = {"start": MS, "stop": MS + 5000}
    run = await import_ctrf(db, write_report(tmp_path, _ctrf(tests, summary), "r.json"))
    first, last = WEEK_AGO - dt.timedelta(seconds=1), WEEK_AGO + dt.timedelta(seconds=9)
    assert (run.started_at, run.ended_at) == (first, last)
    assert await _times(db, run) == {"a": first, "b": last}


async def test_an_unusable_ctrf_test_start_is_read_past(db: Database, tmp_path: Path) -> None:
    """A `start` that names no time was never read, and is not refused now: the run's start."""
    tests: list[dict[str, object]] = [
        {"name": "a", "status": "passed", "start": "yesterday"},
        {"name": "b", "status": "passed", "start": 1e300},
        {"name": "c", "status": "passed", "start": True},
        {"name": "d", "status": "passed", "start": -62135596800000},  # 0001-01-01: reserved
    ]
    summary = {"start": MS, "stop": MS + 5000}
    run = await import_ctrf(db, write_report(tmp_path, _ctrf(tests, summary), "r.json"))
    assert await _times(db, run) == dict.fromkeys("abcd", WEEK_AGO)


async def test_a_ctrf_report_of_no_times_keeps_the_import_s(db: Database, tmp_path: Path) -> None:
    """Nothing says when: the results' time is the import's, the run's start and end."""
    before = dt.datetime.now(UTC)
    run = await import_ctrf(
        db, write_report(tmp_path, _ctrf([{"name": "a", "status": "passed"}]), "r.json")
    )
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)
    assert await _times(db, run) == {"a": run.started_at}
