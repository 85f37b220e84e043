"""Report times at their edges: the years 1 and 9999, offsets, exports read back.

Each test here failed before the fix it came with: a JUnit timestamp whose offset puts it
outside the years 1 to 9999 in UTC, and exports at the edges of the years, that an import
refused or read back off.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

import pytest

from _report_helpers import assert_nothing_written, write_report
from persistence import Database, ReportError, import_junit

UTC: Final = dt.UTC


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
