"""An exported result's time, in the standard fields another tool reads, and back on import.

CTRF export wrote no test's `start` or `stop` (only the package's own `extra.created_at`),
so a CTRF viewer saw no times, and an import of the file read by another tool, which keeps no
`extra`, put every result at the run's start. JUnit export wrote no `<testsuite>` a
`timestamp` and `<testsuites>` no `time`: a JUnit dashboard saw no suite's time, and a round
trip put every result at the run's start, and ended the run there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Final

import pytest
from defusedxml.ElementTree import fromstring

from _report_helpers import write_report
from persistence import (
    Database,
    Run,
    TestResult,
    all_results,
    export_junit,
    import_junit,
    save_results,
    save_run,
)
from persistence.models import TestStatus, TestType
from persistence.report_json import export_ctrf, import_ctrf
from persistence.report_json_export import ctrf_text
from persistence.report_junit_export import junit_text

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

    All three integers, as CTRF's schema types them; `stop - start` is the written
    `duration`, and `extra` keeps the exact time and seconds.
    """
    run = Run(id=1, started_at=BEGAN, ended_at=BEGAN + dt.timedelta(seconds=9))
    test = _ctrf_tests(asyncio.run(ctrf_text(run, [result])))[str(result.test_id)]
    start, stop, duration = test.get("start"), test.get("stop"), test["duration"]
    assert type(start) is int, test
    assert type(stop) is int, test
    assert start == _ms(result.created_at)
    assert EPOCH + start * MS <= result.created_at < EPOCH + (start + 1) * MS
    assert type(duration) is int, test
    assert duration == round(result.execution_time * 1000)
    assert stop - start == duration
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


def _at(seconds: float) -> dt.datetime:
    return BEGAN + dt.timedelta(seconds=seconds)


LAID: Final = [
    _result("a1", _at(0), 0.25, "A"),
    _result("a2", _at(0.25), 0.5, "A"),
    _result("a3", _at(0.75), 0.125, "A"),
    _result("b1", _at(2), 1.5, "B"),
    _result("b2", _at(3.5), 0.25, "B"),
    _result("a4", _at(4), 0.5, "A"),
    _result("c1", _at(5), 0.5, "C"),
    _result("c2", _at(6), 0.25, "C"),
    _result("c3", _at(5.5), 0.0, "C"),
]
"""A run's results in the order stored: suites A and B of cases run back to back, then A
again, and C, whose second case began half a second after the first ended, and whose third
began before the second."""
SPAN: Final = (BEGAN, _at(9))


def _suites(text: str) -> list[tuple[str, str | None, list[str]]]:
    """Each `<testsuite>` of a JUnit export: its name, its timestamp, its cases' names."""
    return [
        (
            str(suite.get("name")),
            suite.get("timestamp"),
            [str(case.get("name")) for case in suite.iter("testcase")],
        )
        for suite in fromstring(text).iter("testsuite")
    ]


def test_each_junit_suite_gives_its_earliest_case_s_time_as_its_timestamp() -> None:
    """ISO 8601 with its offset, as import reads it; the run's span is `<testsuites>`' own.

    A new `<testsuite>` begins where a case began before the one before it, as where the
    suite changes, so that each one's first case is its earliest.
    """
    run = Run(id=3, started_at=SPAN[0], ended_at=SPAN[1])
    text = asyncio.run(junit_text(run, LAID))
    assert _suites(text) == [
        ("A", _at(0).isoformat(), ["a1", "a2", "a3"]),
        ("B", _at(2).isoformat(), ["b1", "b2"]),
        ("A", _at(4).isoformat(), ["a4"]),
        ("C", _at(5).isoformat(), ["c1", "c2"]),
        ("C", _at(5.5).isoformat(), ["c3"]),
    ]
    root = fromstring(text)
    assert (root.get("timestamp"), root.get("time")) == (BEGAN.isoformat(), "9.0")
    empty = fromstring(asyncio.run(junit_text(run, [])))
    assert [suite.get("timestamp") for suite in empty.iter("testsuite")] == [BEGAN.isoformat()]


def test_a_junit_export_of_a_run_not_ended_spans_its_results() -> None:
    """Without an end, `<testsuites>` lasts to its latest result's time.

    As CTRF's import spans its tests' times: a round trip holds each result's time.
    """
    run = Run(id=3, started_at=BEGAN)
    root = fromstring(asyncio.run(junit_text(run, LAID)))
    assert (root.get("timestamp"), root.get("time")) == (BEGAN.isoformat(), "6.0")


async def test_a_junit_round_trip_keeps_the_times_of_cases_run_back_to_back(
    db: Database, tmp_path: Path
) -> None:
    """Import places a case at its suite's timestamp plus the `time`s of the cases before it.

    Cases run back to back, and each suite's first, come back at their times, to the
    microsecond, and the run keeps its span; one that began later than the cases before it
    add up to comes back at that sum, after the case before it and before its own time.
    """
    run_id = await _saved(db, LAID, SPAN)
    run = await import_junit(db, write_report(tmp_path, await export_junit(db, run_id)))
    assert (run.started_at, run.ended_at) == SPAN
    expected = {str(r.test_id): r.created_at for r in LAID}
    expected["c2"] = _at(5.5)  # c1's time plus its 0.5 s: c2 began 0.5 s later
    assert await _times(db, run) == expected


PYTEST_SUITES: Final = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
<testsuite name="first" time="1.0" timestamp="2026-03-01T10:00:00.250000{zone}">
<testcase classname="t" name="a" time="0.125"/><testcase classname="t" name="b" time="0.5"/>
</testsuite>
<testsuite name="second" time="1.0" timestamp="2026-03-01T10:00:05{zone}">
<testcase classname="t" name="c" time="0.75"/><testcase classname="t" name="d" time="0.5"/>
<testcase classname="t" name="e" time="0.25"/>
</testsuite>
</testsuites>
"""
"""Two suites of a report; `second`'s cases add up past its time, so `e` took the run's end."""


@pytest.mark.parametrize("zone", ["+02:00", ""], ids=["offset", "naive"])
async def test_a_junit_report_imported_exported_and_imported_keeps_each_time(
    db: Database, tmp_path: Path, zone: str
) -> None:
    """The first import laid each case out by its suite's timestamp and the cases' times.

    The second lays them out alike, and gives the run the same span.
    """
    first = await import_junit(db, write_report(tmp_path, PYTEST_SUITES.format(zone=zone)))
    assert first.id is not None
    again = await import_junit(
        db, write_report(tmp_path, await export_junit(db, first.id), "again.xml")
    )
    assert (again.started_at, again.ended_at) == (first.started_at, first.ended_at)
    times = await _times(db, first)
    assert first.ended_at is not None
    assert times["t::e"] == first.ended_at < times["t::d"] + dt.timedelta(seconds=0.5)
    assert await _times(db, again) == times
