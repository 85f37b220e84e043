"""A JUnit export writes no tag that its import refuses: past the bound, it refuses instead.

`import_junit` refuses a tag over 1 MiB (expat reads one whole in one call). An export wrote
one wherever a value it puts in an attribute was that long (a result's metadata `file`,
`failure_type` or `suite`, or a blank error message, written whole), and the report it gave
could not be imported. It refuses such a run now, naming the result, before anything is
written; a value just within the bound still goes there and back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import attrs
import pytest

from _report_helpers import write_report
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    export_junit,
    import_junit,
    save_results,
    save_run,
)
from persistence._interface import JsonObject
from persistence.reports import run_results

TAG_BYTES: Final = 1 << 20
"""The longest tag `import_junit` takes (`report_junit_export.TAG_BYTES`)."""
_PAST: Final = TAG_BYTES + 10
"""Characters of a value that no tag holding it can fit."""


async def _run_of(db: Database, result: TestResult) -> int:
    """Save a run holding `result` and a plain one after it; give the run's id."""
    run = await save_run(db, Run())
    assert run.id is not None
    plain = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, test_id="t::plain")
    await save_results(db, [attrs.evolve(one, run_id=run.id) for one in (result, plain)])
    return run.id


def _result(status: TestStatus, metadata: JsonObject, message: str | None = None) -> TestResult:
    return TestResult(
        test_type=TestType.UNIT,
        status=status,
        test_id="t::long",
        metadata=metadata,
        error_message=message,
    )


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (_result(TestStatus.PASSED, {"file": "f" * _PAST}), "metadata `file`"),
        (_result(TestStatus.FAILED, {"failure_type": "E" * _PAST}), "`failure_type`"),
        (_result(TestStatus.FAILED, {}, " " * _PAST), "a blank message"),
        (_result(TestStatus.PASSED, {"suite": "s" * _PAST}), "metadata `suite`"),
    ],
    ids=["file", "failure type", "blank message", "suite"],
)
async def test_a_value_no_tag_can_hold_is_refused_by_the_export(
    db: Database, result: TestResult, said: str
) -> None:
    """The export says which result (or suite) and why, and points to CTRF and JSON Lines."""
    run_id = await _run_of(db, result)
    with pytest.raises(ValidationError, match="past the 1 MiB that import_junit reads") as caught:
        await export_junit(db, run_id)
    assert said in str(caught.value)
    assert "export the run as CTRF or JSON Lines" in str(caught.value)


async def test_a_value_within_the_bound_goes_there_and_back(db: Database, tmp_path: Path) -> None:
    """A `file` that leaves its tag just within the bound is exported, and imported back."""
    long = "f" * (TAG_BYTES - 200)
    run_id = await _run_of(db, _result(TestStatus.PASSED, {"file": long}))
    path = write_report(tmp_path, await export_junit(db, run_id))
    again = await import_junit(db, path)
    assert again.id is not None
    (back, _) = sorted(await run_results(db, again.id), key=lambda r: r.test_id or "")
    assert back.metadata["file"] == long
