"""A JUnit suite that gives its `timestamp` and no `time` lasts as long as its cases.

Such a suite (written by hand, or by a tool that leaves the attribute out) used to give the run
no length: the run ended at the suite's timestamp, and every case after the first, which its
suite's timestamp and the times of the cases before it place later, was held to that end, so
all of them came out at one instant. The run now holds the cases' times; a suite that gives
its `time` keeps it, whatever its cases add up to (cases run at once add up to more).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

from _report_helpers import write_report
from persistence import Database, all_results, get_run, import_junit

UTC: Final = dt.UTC
SECOND: Final = dt.timedelta(seconds=1)


def _report(timestamp: str, suite_time: str | None) -> str:
    time = "" if suite_time is None else f' time="{suite_time}"'
    return (
        f'<testsuites><testsuite name="s" timestamp="{timestamp}"{time}>'
        '<testcase name="a" time="1"/><testcase name="b" time="2"/>'
        '<testcase name="c" time="0.5"/></testsuite></testsuites>'
    )


async def _times(db: Database, path: Path) -> tuple[dt.datetime, dt.datetime, list[dt.datetime]]:
    run = await import_junit(db, path)
    assert run.id is not None
    stored = await get_run(db, run.id)
    assert stored.ended_at is not None
    results = sorted(await all_results(db), key=lambda result: result.test_id or "")
    return stored.started_at, stored.ended_at, [result.created_at for result in results]


async def test_a_zoned_suite_of_no_time_spans_its_cases(db: Database, tmp_path: Path) -> None:
    """Each case at its suite's timestamp plus the cases before it; the run ends after the last."""
    began = dt.datetime(2026, 1, 1, tzinfo=UTC)
    path = write_report(tmp_path, _report("2026-01-01T00:00:00Z", None))
    started, ended, times = await _times(db, path)
    assert times == [began, began + SECOND, began + 3 * SECOND]
    assert (started, ended) == (began, began + 3.5 * SECOND)


async def test_a_naive_suite_of_no_time_spans_its_cases_to_the_import(
    db: Database, tmp_path: Path
) -> None:
    """A naive timestamp's run ends at the import, as before, and lasts as long as its cases."""
    path = write_report(tmp_path, _report("2026-01-01T00:00:00", None))
    before = dt.datetime.now(UTC)
    started, ended, times = await _times(db, path)
    assert before <= ended <= dt.datetime.now(UTC)
    assert ended - started == 3.5 * SECOND
    assert times == [started, started + SECOND, started + 3 * SECOND]


async def test_a_suite_that_gives_its_time_keeps_it(db: Database, tmp_path: Path) -> None:
    """A `time` shorter than its cases' sum (cases run at once) stays the run's length."""
    began = dt.datetime(2026, 1, 1, tzinfo=UTC)
    path = write_report(tmp_path, _report("2026-01-01T00:00:00Z", "2"))
    started, ended, times = await _times(db, path)
    assert (started, ended) == (began, began + 2 * SECOND)
    assert times == [began, began + SECOND, began + 2 * SECOND]  # c held to the run's end


async def test_a_report_that_gives_the_run_s_time_keeps_it(db: Database, tmp_path: Path) -> None:
    """A `<testsuites>` `time` is the run's, as an export writes it: its suites are held to it."""
    began = dt.datetime(2026, 1, 1, tzinfo=UTC)
    report = _report("2026-01-01T00:00:00Z", None).replace(
        "<testsuites>", '<testsuites timestamp="2026-01-01T00:00:00Z" time="2">'
    )
    started, ended, times = await _times(db, write_report(tmp_path, report))
    assert (started, ended) == (began, began + 2 * SECOND)
    assert times == [began, began + SECOND, began + 2 * SECOND]


async def test_a_report_time_of_no_timestamp_leaves_its_suites_to_their_cases(
    db: Database, tmp_path: Path
) -> None:
    """A `<testsuites>` `time` with no timestamp of its own places nothing: the cases add up.

    It held a suite of no `time` to its timestamp, so the run lasted no time and every case
    came out at the suite's start, where docs/HISTORY.md says the suite spans its cases.
    """
    began = dt.datetime(2026, 1, 1, tzinfo=UTC)
    report = _report("2026-01-01T00:00:00Z", None).replace("<testsuites>", '<testsuites time="2">')
    started, ended, times = await _times(db, write_report(tmp_path, report))
    assert times == [began, began + SECOND, began + 3 * SECOND]
    assert (started, ended) == (began, began + 3.5 * SECOND)
