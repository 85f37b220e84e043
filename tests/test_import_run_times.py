"""An imported run's start and end: the report's own times, else the import's; bad ones refused."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Final

import pytest

from _report_helpers import assert_nothing_written, write_report
from persistence import Database, ReportError, Run, get_run, import_junit, to_dict
from persistence.models import TestResult, TestStatus, TestType
from persistence.report_json import import_ctrf, import_jsonl

UTC: Final = dt.UTC
CASE: Final = '<testcase classname="t" name="{name}" time="0.1"/>'


def _junit(*suites: str, root: str = "") -> str:
    """A JUnit report of suites, each `<testsuite {attributes}>` holding one case."""
    body = "".join(
        f'<testsuite name="s{number}" {attributes}>{CASE.format(name=f"c{number}")}</testsuite>'
        for number, attributes in enumerate(suites)
    )
    return f"<testsuites {root}>{body}</testsuites>"


async def _stored(db: Database, run: Run) -> Run:
    """The run as stored, checked to be the one the import gave back."""
    assert run.id is not None
    stored = await get_run(db, run.id)
    assert stored == run
    return stored


async def test_a_junit_timestamp_with_an_offset_and_time_give_the_run_its_times(
    db: Database, tmp_path: Path
) -> None:
    """The offset is read: the run starts at the timestamp in UTC and ends `time` later."""
    path = write_report(tmp_path, _junit('timestamp="2026-03-01T10:00:00+02:00" time="90.5"'))
    run = await _stored(db, await import_junit(db, path))
    assert run.started_at == dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert run.ended_at == dt.datetime(2026, 3, 1, 8, 1, 30, 500000, tzinfo=UTC)


async def test_junit_suites_span_from_the_earliest_start_to_the_latest_end(
    db: Database, tmp_path: Path
) -> None:
    """Suites out of order: the earliest start, the latest start plus time."""
    path = write_report(
        tmp_path,
        _junit(
            'timestamp="2026-03-01T10:00:05Z" time="10"',
            'timestamp="2026-03-01T10:00:00Z" time="2"',
            'time="999"',  # no instant of its own: its time says nothing of when it ended
        ),
    )
    run = await _stored(db, await import_junit(db, path))
    assert run.started_at == dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert run.ended_at == dt.datetime(2026, 3, 1, 10, 0, 15, tzinfo=UTC)


async def test_a_naive_junit_timestamp_names_no_instant_but_its_span_is_kept(
    db: Database, tmp_path: Path
) -> None:
    """Writers disagree on the zone of a time without an offset: the run ends at the import."""
    path = write_report(
        tmp_path,
        _junit(
            'timestamp="2026-03-01T10:00:00" time="3"', 'timestamp="2026-03-01T10:00:01" time="4"'
        ),
    )
    before = dt.datetime.now(UTC)
    run = await _stored(db, await import_junit(db, path))
    assert run.ended_at is not None
    assert before <= run.ended_at <= dt.datetime.now(UTC)
    assert run.ended_at - run.started_at == dt.timedelta(seconds=5)


async def test_a_junit_time_without_a_timestamp_is_the_run_s_duration(
    db: Database, tmp_path: Path
) -> None:
    """The longest `time` (the root's here) is how long the run lasted, ending at the import."""
    path = write_report(tmp_path, _junit('time="1.5"', 'time="2"', root='time="2.5"'))
    before = dt.datetime.now(UTC)
    run = await _stored(db, await import_junit(db, path))
    assert run.ended_at is not None
    assert before <= run.ended_at <= dt.datetime.now(UTC)
    assert run.ended_at - run.started_at == dt.timedelta(seconds=2.5)


async def test_a_report_without_times_starts_and_ends_at_the_import(
    db: Database, tmp_path: Path
) -> None:
    """No time in the report: the run starts and ends at the import, not left unended."""
    before = dt.datetime.now(UTC)
    run = await _stored(db, await import_junit(db, write_report(tmp_path, _junit(""))))
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)


@pytest.mark.parametrize(
    ("attributes", "line", "words"),
    [
        ('timestamp="yesterday"', 2, "<testsuite> timestamp must be an ISO 8601 time"),
        ('timestamp="2026-02-30T10:00:00Z"', 2, "<testsuite> timestamp must be an ISO 8601"),
        (
            'timestamp="\uff12\uff10\uff12\uff16-03-01T10:00:00Z"',
            2,
            "<testsuite> timestamp must be an ISO",
        ),
        ('time="-1"', 2, "<testsuite> time must be"),
        ('time="nan"', 2, "<testsuite> time must be"),
        ('time="1e13"', 2, "<testsuite> time must be"),
        ('timestamp="9999-12-31T23:59:59Z" time="5"', 2, "<testsuite> timestamp plus time"),
    ],
)
async def test_a_bad_junit_time_is_refused_naming_the_element_and_line(
    db: Database, tmp_path: Path, attributes: str, line: int, words: str
) -> None:
    """Unreadable, negative, NaN, too long, past 9999: refused by element and line, nothing kept."""
    text = f'<testsuites time="1">\n<testsuite name="s" {attributes}>\n{CASE.format(name="c")}'
    path = write_report(tmp_path, text + "</testsuite></testsuites>")
    with pytest.raises(ReportError, match=r"timestamp|time") as raised:
        await import_junit(db, path)
    assert raised.value.line == line
    assert raised.value.reason.startswith(words), raised.value.reason
    await assert_nothing_written(db)


async def test_junit_timestamps_with_and_without_an_offset_together_are_refused(
    db: Database, tmp_path: Path
) -> None:
    """A span between an instant and a naive time means nothing: refused."""
    text = _junit('timestamp="2026-03-01T10:00:00Z"', 'timestamp="2026-03-01T10:00:00"')
    with pytest.raises(ReportError, match=r"without a UTC offset.*with one"):
        await import_junit(db, write_report(tmp_path, text))
    await assert_nothing_written(db)


def _ctrf(summary: object) -> str:
    tests = [{"name": "adds", "status": "passed", "duration": 12}]
    return json.dumps({"results": {"summary": summary, "tests": tests}})


async def test_ctrf_start_and_stop_give_the_run_its_times(db: Database, tmp_path: Path) -> None:
    """`start` and `stop` are milliseconds since 1970 in UTC."""
    summary = {"tests": 1, "start": 1772359200000, "stop": 1772359290500}
    run = await _stored(db, await import_ctrf(db, write_report(tmp_path, _ctrf(summary))))
    assert run.started_at == dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert run.ended_at == dt.datetime(2026, 3, 1, 10, 1, 30, 500000, tzinfo=UTC)


async def test_a_ctrf_report_without_start_and_stop_starts_and_ends_at_the_import(
    db: Database, tmp_path: Path
) -> None:
    """A summary without them: the import's time for both."""
    before = dt.datetime.now(UTC)
    run = await _stored(db, await import_ctrf(db, write_report(tmp_path, _ctrf({"tests": 1}))))
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)


@pytest.mark.parametrize(
    ("summary", "words"),
    [
        ({"start": 2000, "stop": 1000}, "results.summary.stop 1000 is before start 2000"),
        ({"start": "1000", "stop": 2000}, "results.summary.start must be a number of ms"),
        ({"start": True, "stop": 2000}, "results.summary.start must be a number of ms"),
        ({"start": 1000}, "results.summary.stop is missing"),
        ({"start": 1e300, "stop": 1e301}, "results.summary.start must be"),
        ([], "results.summary must be an object"),
    ],
)
async def test_bad_ctrf_times_are_refused_naming_the_member(
    db: Database, tmp_path: Path, summary: object, words: str
) -> None:
    """Each bad start or stop is refused naming the member, nothing kept."""
    with pytest.raises(ReportError) as raised:
        await import_ctrf(db, write_report(tmp_path, _ctrf(summary)))
    assert raised.value.reason.startswith(words), raised.value.reason
    await assert_nothing_written(db)


async def test_a_ctrf_nan_start_is_refused(db: Database, tmp_path: Path) -> None:
    """Python's JSON reads `NaN`: a start of it is no time."""
    text = _ctrf({"start": 0, "stop": 1}).replace('"start": 0', '"start": NaN')
    with pytest.raises(ReportError, match=r"results\.summary\.start must be"):
        await import_ctrf(db, write_report(tmp_path, text))
    await assert_nothing_written(db)


def _line(test_id: str, created_at: dt.datetime) -> str:
    result = TestResult(
        test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=test_id, created_at=created_at
    )
    return json.dumps(to_dict(result)) + "\n"


async def test_json_lines_span_their_results_times(db: Database, tmp_path: Path) -> None:
    """JSON Lines carry no run: it spans its results' `created_at`, in any order."""
    first = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    lines = [_line("b", first + dt.timedelta(seconds=7)), _line("a", first)]
    run = await _stored(db, await import_jsonl(db, write_report(tmp_path, "".join(lines))))
    assert run.started_at == first
    assert run.ended_at == first + dt.timedelta(seconds=7)


async def test_empty_json_lines_start_and_end_at_the_import(db: Database, tmp_path: Path) -> None:
    """No result, no time: the import's time for both."""
    before = dt.datetime.now(UTC)
    run = await _stored(db, await import_jsonl(db, write_report(tmp_path, "\n")))
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)
