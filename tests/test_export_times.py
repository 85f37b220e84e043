"""An exported result's time, in the standard fields another tool reads, and back on import.

CTRF export wrote no test's `start` or `stop` (only the package's own `extra.created_at`),
so a CTRF viewer saw no times, and an import of the file read by another tool, which keeps no
`extra`, put every result at the run's start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Final

import pytest

from _report_helpers import write_report
from persistence import Database, Run, TestResult, all_results, save_results, save_run
from persistence.models import TestStatus, TestType
from persistence.report_json import export_ctrf, import_ctrf
from persistence.report_json_export import ctrf_text

UTC: Final = dt.UTC
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=UTC)
BEGAN: Final = dt.datetime(2026, 3, 1, 10, 0, 0, 123_456, tzinfo=UTC)
"""A run's start, a week before any import the tests run, in microseconds."""
MS: Final = dt.timedelta(milliseconds=1)


def _result(test_id: str, at: dt.datetime, seconds: float, suite: str = "S") -> TestResult:
    return TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.PASSED,
        execution_time=seconds,
        created_at=at,
        metadata={"suite": suite},
        test_id=test_id,
    )


def _ms(at: dt.datetime) -> int:
    """An instant as CTRF writes one: whole milliseconds since 1970, the part below cut off."""
    return (at - EPOCH) // MS


def _to_ms(at: dt.datetime) -> dt.datetime:
    """An instant cut to the millisecond, as a reader of `start` alone takes it."""
    return EPOCH + _ms(at) * MS


SPREAD: Final = [
    _result("a", BEGAN, 0.25),
    _result("b", BEGAN + dt.timedelta(seconds=3, microseconds=999), 1.0005),
    _result("c", BEGAN + dt.timedelta(seconds=1, microseconds=500_700), 0.0),
    _result("d", dt.datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC), 0.0025),
]
"""Results of distinct times out of order, one a half millisecond before 1970."""


def _ctrf_tests(text: str) -> dict[str, dict[str, object]]:
    return {str(test["name"]): test for test in json.loads(text)["results"]["tests"]}


@pytest.mark.parametrize("result", SPREAD, ids=lambda r: str(r.test_id))
def test_a_ctrf_test_gives_its_start_and_stop_in_whole_milliseconds(result: TestResult) -> None:
    """`start` is the result's time in ms since 1970 (cut, never after it), `stop` its end.

    Both integers, as CTRF's schema types them; `stop - start` is the written `duration`
    rounded, and `extra.created_at` stays the exact time.
    """
    run = Run(id=1, started_at=BEGAN, ended_at=BEGAN + dt.timedelta(seconds=9))
    test = _ctrf_tests(asyncio.run(ctrf_text(run, [result])))[str(result.test_id)]
    start, stop, duration = test.get("start"), test.get("stop"), test["duration"]
    assert type(start) is int, test
    assert type(stop) is int, test
    assert start == _ms(result.created_at)
    assert EPOCH + start * MS <= result.created_at < EPOCH + (start + 1) * MS
    assert isinstance(duration, float)
    assert stop - start == round(duration)
    extra = test["extra"]
    assert isinstance(extra, dict)
    assert extra["created_at"] == result.created_at.isoformat()


async def _saved(db: Database, results: list[TestResult], span: tuple[dt.datetime, ...]) -> int:
    """Save a run of this span and these results in it; give its id."""
    run = await save_run(db, Run(started_at=span[0], ended_at=span[1]))
    assert run.id is not None
    await save_results(db, [_in(r, run.id) for r in results])
    return run.id


def _in(result: TestResult, run_id: int) -> TestResult:
    return TestResult(
        test_type=result.test_type,
        status=result.status,
        execution_time=result.execution_time,
        created_at=result.created_at,
        metadata=result.metadata,
        run_id=run_id,
        test_id=result.test_id,
    )


async def _times(db: Database, run: Run) -> dict[str, dt.datetime]:
    """Each result of the run by test id: its time as stored."""
    return {str(r.test_id): r.created_at for r in await all_results(db) if r.run_id == run.id}


async def test_a_ctrf_export_read_without_extra_keeps_each_time_to_the_millisecond(
    db: Database, tmp_path: Path
) -> None:
    """Another tool's reader keeps no `extra`: `start` alone places each result again.

    Without it, every result took the run's start.
    """
    span = (SPREAD[3].created_at, BEGAN + dt.timedelta(seconds=9))
    run_id = await _saved(db, SPREAD, span)
    document = json.loads(await export_ctrf(db, run_id))
    for test in document["results"]["tests"]:
        del test["extra"]
    del document["results"]["extra"]
    run = await import_ctrf(db, write_report(tmp_path, json.dumps(document), "c.json"))
    assert await _times(db, run) == {str(r.test_id): _to_ms(r.created_at) for r in SPREAD}
    assert (run.started_at, run.ended_at) == (_to_ms(span[0]), _to_ms(span[1]))
