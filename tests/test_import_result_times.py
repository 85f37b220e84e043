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

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from _report_helpers import write_report
from persistence import (
    Database,
    Run,
    TestResult,
    all_results,
    import_junit,
    save_results,
    save_run,
    to_dict,
)
from persistence.models import TestStatus, TestType
from persistence.report_json import export_ctrf, export_jsonl, import_ctrf, import_jsonl
from strategies import ON_DATABASE
from strategies.values import results

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


def _suite(attributes: str, *times: float, name: str = "s") -> str:
    """A `<testsuite>` of these attributes holding a case `{name}{i}` of each time."""
    cases = "".join(
        f'<testcase classname="c" name="{name}{i}" time="{time}"/>' for i, time in enumerate(times)
    )
    return f'<testsuite name="{name}" {attributes}>{cases}</testsuite>'


async def _junit_times(
    db: Database, tmp_path: Path, *suites: str
) -> tuple[Run, dict[str, dt.datetime]]:
    """Import a JUnit report of these suites; give its run and its results' times by case name."""
    text = f"<testsuites>{''.join(suites)}</testsuites>"
    run = await import_junit(db, write_report(tmp_path, text))
    return run, {test_id.removeprefix("c::"): at for test_id, at in (await _times(db, run)).items()}


def _at(seconds: float) -> dt.datetime:
    return WEEK_AGO + dt.timedelta(seconds=seconds)


async def test_a_junit_case_starts_after_the_cases_before_it_in_its_suite(
    db: Database, tmp_path: Path
) -> None:
    """A testcase has no timestamp: its suite's, plus the times of the cases before it."""
    run, times = await _junit_times(
        db, tmp_path, _suite('timestamp="2026-03-01T12:00:00+02:00" time="10"', 1.5, 2, 0.25)
    )
    assert (run.started_at, run.ended_at) == (WEEK_AGO, _at(10))
    assert times == {"s0": _at(0), "s1": _at(1.5), "s2": _at(3.5)}


async def test_a_junit_case_of_a_suite_without_a_timestamp_takes_the_run_s_start(
    db: Database, tmp_path: Path
) -> None:
    """Known only at the report's end: here the last suite starts the run."""
    run, times = await _junit_times(
        db,
        tmp_path,
        _suite('timestamp="2026-03-01T10:00:05Z" time="5"', 1, 1, name="a"),
        _suite('time="3"', 1, 1, name="b"),
        _suite('timestamp="2026-03-01T10:00:00Z" time="1"', 0.5, name="c"),
    )
    assert (run.started_at, run.ended_at) == (WEEK_AGO, _at(10))
    assert times == {
        "a0": _at(5),
        "a1": _at(6),
        "b0": WEEK_AGO,
        "b1": WEEK_AGO,
        "c0": WEEK_AGO,
    }


async def test_junit_cases_past_the_run_s_end_are_put_at_its_end(
    db: Database, tmp_path: Path
) -> None:
    """Cases whose times add up past every suite's end are not placed after the run."""
    run, times = await _junit_times(
        db, tmp_path, _suite('timestamp="2026-03-01T10:00:00Z" time="2"', 1.5, 1.5, 1.5)
    )
    assert run.ended_at == _at(2)
    assert times == {"s0": _at(0), "s1": _at(1.5), "s2": _at(2)}


async def test_naive_junit_cases_keep_their_places_in_the_run_s_span(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timestamps without an offset: the run's span ends at the import, the cases move with it.

    Batches of two: the cases inserted before the report's end are moved too.
    """
    monkeypatch.setattr("persistence.reports._BATCH", 2)
    before = dt.datetime.now(UTC)
    run, times = await _junit_times(
        db,
        tmp_path,
        _suite('timestamp="2026-03-01T10:00:00.250000" time="3"', 1, 1.000001, 5, name="a"),
        _suite('timestamp="2026-03-01T10:00:01" time="4"', 2.5, name="b"),
        _suite("", 1, name="c"),
    )
    assert run.ended_at is not None
    assert before <= run.ended_at <= dt.datetime.now(UTC)
    assert run.ended_at - run.started_at == dt.timedelta(seconds=4.75)

    def after(seconds: float) -> dt.datetime:
        return run.started_at + dt.timedelta(seconds=seconds)

    assert times == {
        "a0": after(0),
        "a1": after(1),
        "a2": after(2.000001),
        "b0": after(0.75),
        "c0": after(0),
    }


async def test_junit_cases_of_a_report_with_times_but_no_timestamp_take_the_run_s_start(
    db: Database, tmp_path: Path
) -> None:
    """The run lasted its longest `time` and ended at the import: its cases start it."""
    before = dt.datetime.now(UTC)
    run, times = await _junit_times(db, tmp_path, _suite('time="30"', 1, 2))
    assert before - dt.timedelta(seconds=30) <= run.started_at
    assert run.started_at + dt.timedelta(seconds=30) == run.ended_at
    assert times == {"s0": run.started_at, "s1": run.started_at}


async def test_junit_cases_of_a_report_of_no_times_keep_the_import_s(
    db: Database, tmp_path: Path
) -> None:
    """Nothing says when: the import's time, the run's start and end, as before."""
    before = dt.datetime.now(UTC)
    run, times = await _junit_times(db, tmp_path, _suite("", 1, 2))
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)
    assert times == {"s0": run.started_at, "s1": run.started_at}


FIRST_DAY: Final = dt.datetime(1, 1, 2)  # noqa: DTZ001  # naive, as a report's timestamps
LAST_DAY: Final = dt.datetime(9999, 1, 1)  # noqa: DTZ001
_SUITE: Final = st.tuples(
    st.integers(0, 10**12),  # its timestamp, in microseconds after the report's earliest
    st.one_of(st.none(), st.integers(0, 10**12).map(lambda us: us / 1e6)),  # its time
    st.lists(st.integers(0, 10**9).map(lambda us: us / 1e6), max_size=4),  # its cases' times
)


@ON_DATABASE
@example(  # moved on by two thousand years, every microsecond kept
    base=dt.datetime(1, 1, 2, 0, 0, 0, 999999),  # noqa: DTZ001  # naive, as a report's
    suites=[(0, 3.0, [0.000001, 0.999999, 1.5]), (1, None, [0.5])],
    naive=True,
).via("the year 1")
@example(  # moved back by eight thousand
    base=dt.datetime(9999, 1, 1, 23, 59, 59, 1),  # noqa: DTZ001  # naive, as a report's
    suites=[(999999, 2.0, [1.999999, 0.000001, 7.0])],
    naive=True,
).via("the year 9999")
@example(  # the first case at the import's time, which marked a case of no timestamp
    base=dt.datetime(2000, 1, 1),  # noqa: DTZ001  # naive, as a report's
    suites=[(0, None, [0.0]), (1, None, [])],
    naive=True,
).via("a case at the import's time")
@given(
    base=st.datetimes(FIRST_DAY, LAST_DAY),
    suites=st.lists(_SUITE, min_size=1, max_size=4),
    naive=st.booleans(),
)
async def test_junit_cases_are_placed_as_read_within_the_run_s_span(
    db: Database,
    tmp_path: Path,
    base: dt.datetime,
    suites: list[tuple[int, float | None, list[float]]],
    naive: bool,  # noqa: FBT001  # hypothesis passes each argument by name
) -> None:
    """Every case: its suite's timestamp plus the times before it, held to the run's span.

    A suite's span is its timestamp plus its `time`, or, when it gives none, its cases' times.

    Naive timestamps, in any year, move by the span's one shift, to the microsecond on both
    engines (SQLite's date functions keep milliseconds at most).
    """
    written, expected = [], {}
    ends = []
    for number, (after, time, cases) in enumerate(suites):
        began = base + dt.timedelta(microseconds=after)
        stamp = began.isoformat() if naive else began.replace(tzinfo=UTC).isoformat()
        given_time = "" if time is None else f' time="{time!r}"'
        written.append(_suite(f'timestamp="{stamp}"{given_time}', *cases, name=f"s{number}x"))
        elapsed = 0.0
        for index, seconds in enumerate(cases):
            expected[f"s{number}x{index}"] = began + dt.timedelta(seconds=elapsed)
            elapsed += seconds
        # a suite of no time lasts as long as its cases (the report's root gives none)
        ends.append(began + dt.timedelta(seconds=elapsed if time is None else time))
    first = base + dt.timedelta(microseconds=min(after for after, _, _ in suites))
    last = max(ends)
    run, times = await _junit_times(db, tmp_path, *written)
    shift = run.started_at - first.replace(tzinfo=UTC)
    assert run.ended_at is not None
    assert run.ended_at - run.started_at == last - first
    assert times == {
        name: min(max(at, first), last).replace(tzinfo=UTC) + shift for name, at in expected.items()
    }


def _line(test_id: str, created_at: dt.datetime | None) -> str:
    data = to_dict(TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=test_id))
    if created_at is None:
        del data["created_at"]
    else:
        data["created_at"] = created_at.isoformat()
    return json.dumps(data) + "\n"


async def test_a_json_line_without_a_time_takes_the_run_s_start(
    db: Database, tmp_path: Path
) -> None:
    """It took the import's time, and stretched a week-old run to the import."""
    lines = [_line("a", _at(5)), _line("b", None), _line("c", _at(2))]
    run = await import_jsonl(db, write_report(tmp_path, "".join(lines), "r.jsonl"))
    assert (run.started_at, run.ended_at) == (_at(2), _at(5))
    assert await _times(db, run) == {"a": _at(5), "b": _at(2), "c": _at(2)}


async def test_json_lines_of_no_times_keep_the_import_s(db: Database, tmp_path: Path) -> None:
    """Nothing says when: one time for all, the import's, the run's start and end."""
    before = dt.datetime.now(UTC)
    text = _line("a", None) + _line("b", None)
    run = await import_jsonl(db, write_report(tmp_path, text, "r.jsonl"))
    assert run.ended_at is not None
    assert before <= run.started_at == run.ended_at <= dt.datetime.now(UTC)
    assert await _times(db, run) == {"a": run.started_at, "b": run.started_at}


_SPANS: Final = st.lists(
    st.datetimes(
        dt.datetime(2, 1, 1),  # noqa: DTZ001
        dt.datetime(9998, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    min_size=2,
    max_size=2,
).map(sorted)
"""A run's start and end, a year from the first and last instants: CTRF writes them in ms."""


@ON_DATABASE
@given(rows=st.lists(results(), min_size=1, max_size=5), span=_SPANS)
async def test_exported_results_import_at_their_own_times_within_the_run(
    db: Database, tmp_path: Path, rows: list[TestResult], span: list[dt.datetime]
) -> None:
    """CTRF and JSON Lines carry each result's time: export then import keeps it, exactly.

    The new run holds them all, whatever the old one's span: JSON Lines' spans them, and
    CTRF's summary is widened to them.
    """
    old = await save_run(db, Run(started_at=span[0], ended_at=span[1]))
    assert old.id is not None
    await save_results(
        db, [attrs.evolve(row, run_id=old.id, test_id=f"t{i}") for i, row in enumerate(rows)]
    )
    expected = {f"t{i}": row.created_at for i, row in enumerate(rows)}
    for export, load, name in (
        (export_ctrf, import_ctrf, "c.json"),
        (export_jsonl, import_jsonl, "r.jsonl"),
    ):
        path = write_report(tmp_path, await export(db, old.id), name)
        run = await load(db, path)
        times = await _times(db, run)
        assert times == expected, name
        assert run.ended_at is not None
        assert all(run.started_at <= at <= run.ended_at for at in times.values()), name
