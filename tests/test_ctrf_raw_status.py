"""A CTRF test's `rawStatus` refines its `status`, and never contradicts it.

Export writes each result's own status as `rawStatus` beside the CTRF `status` it maps to
(`timeout` and `error` as `failed`, `running` as `other`), and import prefers it, so that a
round trip keeps them apart. Any `rawStatus` that named a status of the package was taken,
whatever the `status`: a test another tool wrote as `failed` with a `rawStatus` of `passed`
was stored as passed, and so hidden from `compare_runs`' new failures, and a skipped test whose
tool calls it `pending` (Mocha's and Jest's word) was stored as pending, not yet run. Now
`rawStatus` is taken only where export would have written that `status` for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _report_helpers import write_report
from persistence import Database, TestStatus
from persistence.report_json import import_ctrf
from persistence.reports import run_results

_CASES = [
    ("failed", "passed", TestStatus.FAILED),
    ("passed", "failed", TestStatus.PASSED),
    ("skipped", "pending", TestStatus.SKIPPED),
    ("pending", "skipped", TestStatus.PENDING),
    ("other", "passed", TestStatus.ERROR),
    ("failed", "timedOut", TestStatus.FAILED),
    ("failed", "timeout", TestStatus.TIMEOUT),
    ("failed", "error", TestStatus.ERROR),
    ("other", "running", TestStatus.RUNNING),
    ("pending", "pending", TestStatus.PENDING),
]


@pytest.mark.parametrize(("status", "raw", "stored"), _CASES)
async def test_a_raw_status_is_taken_only_where_it_agrees_with_the_status(
    db: Database, tmp_path: Path, status: str, raw: str, stored: TestStatus
) -> None:
    """`status` says which CTRF outcome; `rawStatus` picks one of the package's within it."""
    test = {"name": "t", "status": status, "rawStatus": raw, "duration": 1}
    path = write_report(tmp_path, json.dumps({"results": {"tests": [test]}}), "report.json")
    run = await import_ctrf(db, path)
    assert run.id is not None
    assert [result.status for result in await run_results(db, run.id)] == [stored]
