"""A JUnit suite of no `time` whose cases add up past the year 9999 is refused by line.

A suite that gives its `timestamp` and no `time` lasts as long as its cases' times added up
(tests/test_junit_untimed_suites.py). Where that sum took it past the year 9999, the run was
stored ending at the suite's timestamp, every case but the first held to that instant, as if
the cases had taken no time; where it ended at the last instant of all, which is reserved, the
error named neither the element nor the line. A suite that gives a `time` so long is refused,
naming its line: one whose cases' times say the same is now refused alike, at the case's line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _report_helpers import assert_nothing_written, write_report
from persistence import Database, ReportError, import_junit

_CASES = {
    "past the year 9999": (
        "2026-01-01T00:00:00Z",
        ('<testcase name="a" time="1"/>', '<testcase name="b" time="1e12"/>'),
        "ends after the year 9999",
    ),
    "past it on its first case": (
        "9999-01-01T00:00:00+00:00",
        ('<testcase name="a" time="1e9"/>',),
        "ends after the year 9999",
    ),
    "at the last instant": (
        "9999-12-31T00:00:00Z",
        ('<testcase name="a" time="86000"/>', '<testcase name="b" time="399.999999"/>'),
        "the last instant of all, which is reserved",
    ),
}


@pytest.mark.parametrize("case", list(_CASES), ids=list(_CASES))
async def test_cases_that_take_a_suite_of_no_time_past_the_years_are_refused(
    db: Database, tmp_path: Path, case: str
) -> None:
    """The error names the file, the line of the case that took the suite there, and why."""
    timestamp, cases, reason = _CASES[case]
    lines = [f'<testsuites><testsuite name="s" timestamp="{timestamp}">', *cases]
    path = write_report(tmp_path, "\n".join([*lines, "</testsuite></testsuites>"]))
    with pytest.raises(ReportError) as raised:
        await import_junit(db, path)
    assert str(raised.value).startswith(f"{path}:{len(lines)}: <testsuite> timestamp")
    assert reason in str(raised.value)
    await assert_nothing_written(db)


async def test_a_suite_that_gives_its_time_holds_such_cases_to_the_run_s_end(
    db: Database, tmp_path: Path
) -> None:
    """With a `time`, the suite lasts that long, whatever its cases add up to, as before."""
    path = write_report(
        tmp_path,
        '<testsuites><testsuite name="s" timestamp="2026-01-01T00:00:00Z" time="5">'
        '<testcase name="a" time="1e12"/><testcase name="b" time="1"/></testsuite></testsuites>',
    )
    run = await import_junit(db, path)
    assert run.ended_at is not None
    assert (run.ended_at - run.started_at).total_seconds() == 5
