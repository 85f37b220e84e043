"""What the report tests share: a pytest JUnit report, written to a file, and nothing written."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from persistence import Database, all_results, all_runs

PYTEST: Final = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="1.2"
 timestamp="2026-03-01T10:00:00.000000" hostname="ci-3">
<testcase classname="tests.test_io" name="test_read" file="tests/test_io.py" time="0.010" />
<testcase classname="tests.test_io" name="test_write" time="0.5">
<failure message="assert 1 == 2">def test_write():
&gt;   assert 1 == 2
E   assert 1 == 2</failure><system-out>wrote 3 bytes</system-out></testcase>
<testcase classname="tests.test_io" name="test_slow" time="0.000">
<skipped type="pytest.skip" message="needs a network">tests/test_io.py:9: needs a network</skipped>
</testcase>
<testcase classname="tests.test_io" name="test_setup" time="0.1">
<error message="fixture failed">boom</error><system-err>trace</system-err></testcase>
</testsuite></testsuites>
"""


def write_report(tmp_path: Path, text: str | bytes, name: str = "report.xml") -> Path:
    """Write a report's text or bytes to a file under `tmp_path`; give its path."""
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


async def assert_nothing_written(db: Database) -> None:
    """The database holds no run and no result: a refused report left nothing behind."""
    assert await all_runs(db) == []
    assert await all_results(db) == []
