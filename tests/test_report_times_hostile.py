"""Report times at their edges: the years 1 and 9999, offsets, reserved instants, round trips.

These failed before the fixes they came with: a JUnit timestamp whose offset puts it outside
the years 1 to 9999 in UTC; a CTRF export of a run in year 1's first millisecond, and a JUnit
export of a run of centuries, that import refused or read back off; a time at an instant a
model reserves, refused without naming where it was; a suite of no timestamp, laid out on a
JUnit round trip by its cases' times. The others pin what docs/HISTORY.md now says where it
said otherwise: which JUnit imports move their rows, and which cases a round trip moves.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Final

import pytest
from defusedxml.ElementTree import fromstring
from hypothesis import example, given
from hypothesis import strategies as st

from _report_helpers import assert_nothing_written, write_report
from persistence import (
    Database,
    ReportError,
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
from persistence.report_times import JUnitTimes, Placing
from strategies import ON_DATABASE

UTC: Final = dt.UTC
MICROSECOND: Final = dt.timedelta(microseconds=1)
FIRST: Final = dt.datetime.min.replace(tzinfo=UTC) + MICROSECOND
"""The first instant a model takes: the first of all is reserved."""
LAST: Final = dt.datetime.max.replace(tzinfo=UTC) - MICROSECOND
"""The last instant a model takes."""
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=UTC)
NOW: Final = dt.datetime(2026, 3, 1, 10, 0, 0, 123_456, tzinfo=UTC)


async def _saved(
    db: Database, span: tuple[dt.datetime, dt.datetime | None], *times: dt.datetime
) -> int:
    """Save a run of this span with a result at each time; give its id."""
    run = await save_run(db, Run(started_at=span[0], ended_at=span[1]))
    assert run.id is not None
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                execution_time=0.5,
                created_at=at,
                run_id=run.id,
                test_id=f"t{number}",
            )
            for number, at in enumerate(times)
        ],
    )
    return run.id


async def _times(db: Database, run: Run) -> list[dt.datetime]:
    """The run's results' times as stored, in the order of their test ids."""
    found = [r for r in await all_results(db) if r.run_id == run.id]
    return [r.created_at for r in sorted(found, key=lambda r: str(r.test_id))]


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T10:00:00+14:00", "9999-12-31T20:00:00-12:00", "0001-01-01T00:00:00.5+00:01"],
)
async def test_a_junit_timestamp_outside_the_years_in_utc_is_refused_by_line(
    db: Database, tmp_path: Path, timestamp: str
) -> None:
    """A timestamp that Python reads but whose UTC instant is outside the years 1 to 9999.

    Its conversion to UTC overflowed and was read past, the timestamp kept in its own offset:
    each case was written with it, and the database's encoder raised a bare OverflowError.
    """
    path = write_report(
        tmp_path,
        f'<testsuites>\n<testsuite name="s" timestamp="{timestamp}" time="3">'
        '<testcase name="a" time="1"/></testsuite></testsuites>',
    )
    with pytest.raises(ReportError) as raised:
        await import_junit(db, path)
    assert str(raised.value) == (
        f"{path}:2: <testsuite> timestamp {timestamp!r} is outside the years 1 to 9999 in UTC"
    )
    await assert_nothing_written(db)


@pytest.mark.parametrize(
    ("span", "times"),
    [
        ((FIRST, FIRST + 5 * MICROSECOND), (FIRST, FIRST + 2 * MICROSECOND)),
        ((FIRST, None), ()),
        ((NOW, NOW), (FIRST,)),  # its first import starts the run at its result: at FIRST
    ],
    ids=["run-in-year-1", "run-not-ended", "result-in-year-1"],
)
async def test_a_ctrf_export_within_year_1_s_first_millisecond_imports_again(
    db: Database,
    tmp_path: Path,
    span: tuple[dt.datetime, dt.datetime | None],
    times: tuple[dt.datetime, ...],
) -> None:
    """A run within year 1's first millisecond is exported in a form import takes.

    The summary's `start`, the run's start cut to the millisecond, was the first instant of
    all, which import refuses as reserved: the export of such a run could not come back.
    Exported and imported twice, the run keeps its results' times, and the summary a start
    within the millisecond of the run's.
    """
    run_id = await _saved(db, span, *times)
    for round_trip in range(2):
        path = write_report(tmp_path, await export_ctrf(db, run_id), f"{round_trip}.json")
        run = await import_ctrf(db, path)
        assert run.id is not None
        run_id = run.id
        assert await _times(db, run) == list(times)
        assert FIRST <= run.started_at < FIRST + dt.timedelta(milliseconds=1)
        assert run.started_at == min(times, default=run.started_at)


_INSTANTS: Final = st.datetimes(
    min_value=FIRST.replace(tzinfo=None),
    max_value=LAST.replace(tzinfo=None),
    timezones=st.just(UTC),
)


@ON_DATABASE
@given(span=st.lists(_INSTANTS, min_size=2, max_size=2).map(sorted))
@example(span=[NOW, LAST])  # refused: the root's time read back ended past the year 9999
@example(span=[FIRST, NOW])  # the run's end came back 4 microseconds early
async def test_a_junit_round_trip_keeps_a_run_s_span_of_any_length(
    db: Database, tmp_path: Path, span: list[dt.datetime]
) -> None:
    """`<testsuites>`' `time` is the run's span to the microsecond, however long.

    It was written and read as a float: past some 285 years of span (2**53 microseconds) it
    missed by microseconds, so a round trip moved the run's end, and one ending at the last
    instant a model takes came back past the year 9999, which import refuses.
    """
    # the later first: the earlier begins a suite of its own, at its timestamp
    run_id = await _saved(db, (span[0], span[1]), span[1], span[0])
    for round_trip in range(2):
        path = write_report(tmp_path, await export_junit(db, run_id), f"{round_trip}.xml")
        run = await import_junit(db, path)
        assert run.id is not None
        run_id = run.id
        assert (run.started_at, run.ended_at) == (span[0], span[1])
        assert await _times(db, run) == [span[1], span[0]]


_CASES: Final = '<testcase name="a" time="0.5"/><testcase name="b" time="0.25"/>'


@pytest.mark.parametrize(
    ("suites", "moved"),
    [
        (
            f'<testsuite name="s" timestamp="2026-03-01T10:00:00Z" time="1">{_CASES}</testsuite>',
            False,
        ),
        (
            f'<testsuite name="s" timestamp="2026-03-01T10:00:00" time="1">{_CASES}</testsuite>',
            False,
        ),
        (f'<testsuite name="s">{_CASES}</testsuite>', True),  # no time: said to pay nothing
        (f'<testsuite name="s" time="1">{_CASES}</testsuite>', True),  # Surefire's, Go's
        (
            (
                f'<testsuite name="s" timestamp="2026-03-01T10:00:00Z" time="1">{_CASES}'
                '</testsuite><testsuite name="t"><testcase name="c"/></testsuite>'
            ),
            True,
        ),
    ],
    ids=["offset", "naive-one-suite", "no-time", "time-no-timestamp", "one-suite-untimed"],
)
async def test_the_rows_of_a_junit_import_are_moved_as_docs_history_says(
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suites: str,
    moved: bool,  # noqa: FBT001
) -> None:
    """`PlaceRunResults` runs for a report with a case of a suite without a timestamp.

    Such a case is marked while the file is read and takes the run's start at its end: every
    row of the run is rewritten, a report of no time at all included, which docs/HISTORY.md
    said paid nothing (so it did while the import's time marked such cases).
    """
    placings: list[Placing | None] = []
    placing = JUnitTimes.placing

    def noted(times: JUnitTimes, span: tuple[dt.datetime, dt.datetime]) -> Placing | None:
        placings.append(placing(times, span))
        return placings[-1]

    monkeypatch.setattr(JUnitTimes, "placing", noted)
    path = write_report(tmp_path, f"<testsuites>{suites}</testsuites>")
    run = await import_junit(db, path)
    assert [found is not None for found in placings] == [moved]
    assert run.ended_at is not None
    assert all(run.started_at <= at <= run.ended_at for at in await _times(db, run))


_AT_THE_FIRST: Final = (
    '<testsuite name="s" timestamp="2026-03-01T10:00:00Z"><testcase name="a"/></testsuite>\n'
    '<testsuite name="t" timestamp="0001-01-01T00:00:00Z"><testcase name="b"/></testsuite>'
)
_TO_THE_LAST: Final = (
    '\n<testsuite name="s" timestamp="9999-12-31T23:59:59.999998+00:00" time="1e-6">'
    '<testcase name="a"/></testsuite>'
)


@pytest.mark.parametrize(
    ("suites", "problem"),
    [
        (
            _AT_THE_FIRST,
            (
                "2: <testsuite> timestamp '0001-01-01T00:00:00Z' is the first instant of all,"
                " which is reserved: use a later one"
            ),
        ),
        (
            _TO_THE_LAST,
            (
                "2: <testsuite> timestamp plus time ends at the last instant of all, which is"
                " reserved: '9999-12-31T23:59:59.999998+00:00' plus 1e-06 seconds"
            ),
        ),
    ],
    ids=["first", "last"],
)
async def test_a_junit_timestamp_at_a_reserved_instant_is_refused_by_line(
    db: Database, tmp_path: Path, suites: str, problem: str
) -> None:
    """The first and last instants are reserved: said of the element and its line.

    They were refused as the run's times, naming neither (`the run's times: Run.started_at:
    ... is reserved`).
    """
    path = write_report(tmp_path, f"<testsuites>{suites}</testsuites>")
    with pytest.raises(ReportError) as raised:
        await import_junit(db, path)
    assert str(raised.value) == f"{path}:{problem}"
    await assert_nothing_written(db)


async def test_a_ctrf_summary_start_at_the_first_instant_is_refused_naming_it(
    db: Database, tmp_path: Path
) -> None:
    """`results.summary.start` at the first instant of all, which is reserved, is named.

    It was refused as the run's start (`the run's times: Run.started_at: ... is reserved`).
    """
    first = (dt.datetime.min.replace(tzinfo=UTC) - EPOCH) // dt.timedelta(milliseconds=1)
    text = json.dumps(
        {
            "results": {
                "summary": {"start": first, "stop": 0},
                "tests": [{"name": "a", "status": "passed"}],
            }
        }
    )
    path = write_report(tmp_path, text, "r.json")
    with pytest.raises(ReportError) as raised:
        await import_ctrf(db, path)
    assert str(raised.value) == (
        f"{path}: results.summary.start must be a number of ms since 1970-01-01T00:00:00Z after"
        f" the first instant of all, which is reserved, got the number {first}"
    )
    await assert_nothing_written(db)


_TWO_KINDS: Final = """<testsuites>
<testsuite name="timeless" time="3"><testcase name="a" time="1"/><testcase name="b" time="2"/>
<testcase name="c" time="0"/></testsuite>
<testsuite name="s" timestamp="2026-03-01T10:00:00Z" time="2"><testcase name="d" time="1"/>
<testcase name="e" time="1"/></testsuite>
<testsuite name="s" timestamp="2026-03-01T11:00:00Z" time="1"><testcase name="f" time="1"/>
</testsuite></testsuites>
"""
"""A suite of no timestamp, and two of one name one after the other at two timestamps."""


async def test_a_junit_round_trip_keeps_a_timeless_suite_s_cases_at_the_run_s_start(
    db: Database, tmp_path: Path
) -> None:
    """A suite of no timestamp comes back as one, its cases at the run's start again.

    The first import put each case of a suite without a timestamp at the run's start; export
    wrote that as the suite's timestamp, and import laid its cases out from it by their
    `time`s (`b` a second later, `c` three). The two suites of one name are still written as
    one, its later one's case coming back after the earlier one's, as docs/HISTORY.md says.
    """
    first = await import_junit(db, write_report(tmp_path, _TWO_KINDS))
    assert first.id is not None
    text = await export_junit(db, first.id)
    assert [suite.get("timestamp") for suite in fromstring(text).iter("testsuite")] == [
        None,
        "2026-03-01T10:00:00+00:00",
    ]
    again = await import_junit(db, write_report(tmp_path, text, "again.xml"))
    assert (again.started_at, again.ended_at) == (first.started_at, first.ended_at)
    start = dt.datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert first.started_at == start
    kept = [start, start, start, start, start + dt.timedelta(seconds=1), start.replace(hour=11)]
    assert await _times(db, first) == kept
    kept[5] = start + dt.timedelta(seconds=2)  # f, after d and e
    assert await _times(db, again) == kept


async def test_a_timeless_suite_keeps_its_timestamp_where_a_result_is_before_the_run(
    db: Database, tmp_path: Path
) -> None:
    """Cases at the run's start come back there only if no result is earlier: else it stays.

    Import gives a case of no timestamp the run's start, which an earlier result's suite
    would move; such a suite keeps its timestamp, and its first case its time.
    """
    run_id = await _saved(db, (NOW, NOW), NOW, NOW, NOW - dt.timedelta(seconds=5))
    text = await export_junit(db, run_id)
    assert None not in [suite.get("timestamp") for suite in fromstring(text).iter("testsuite")]
    run = await import_junit(db, write_report(tmp_path, text))
    assert run.started_at == NOW - dt.timedelta(seconds=5)
    assert (await _times(db, run))[0] == NOW


@pytest.mark.parametrize("time", ["0e99999999999999999999", "1e-99999999999999999999"])
async def test_a_junit_time_of_an_exponent_past_decimals_reads_as_zero(
    db: Database, tmp_path: Path, time: str
) -> None:
    """A time in range whose exponent Decimal cannot hold is the zero it is.

    Decimal raised InvalidOperation, which no import error caught: a traceback, not a ReportError.
    """
    path = write_report(
        tmp_path,
        f'<testsuite name="s" timestamp="2026-03-01T10:00:00+00:00" time="{time}">'
        '<testcase classname="c" name="n" time="0"/></testsuite>',
    )
    run = await import_junit(db, path)
    assert (run.started_at, run.ended_at) == (NOW.replace(microsecond=0),) * 2
