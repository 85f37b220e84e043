"""A JUnit report imported, exported and imported again keeps what the first import kept."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from persistence import Database, all_results, export_junit, import_junit

REPORT: Final = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="S">
    <testcase classname="c" name="skipped-bare"><skipped/></testcase>
    <testcase classname="c" name="failed-bare"><failure/></testcase>
    <testcase classname="c" name="error-bare"><error></error></testcase>
    <testcase classname="c" name="failed-empty"><failure message=""/></testcase>
    <testcase classname="c" name="failed-said"><failure message="m">x</failure></testcase>
    <testcase classname="c" name="failed-typed"><failure type="AssertionError"/></testcase>
    <testcase classname="c" name="error-typed"><error type="OSError" message="m"/></testcase>
  </testsuite>
</testsuites>
"""


async def _again(db: Database, tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Import REPORT, export its run and import that; give each run's results."""
    first = tmp_path / "first.xml"
    first.write_text(REPORT, encoding="utf-8")
    run = await import_junit(db, first)
    assert run.id is not None
    second = tmp_path / "second.xml"
    second.write_text(await export_junit(db, run.id), encoding="utf-8")
    again = await import_junit(db, second)
    found: dict[str, list[tuple[object, ...]]] = {"first": [], "again": []}
    for result in sorted(await all_results(db), key=lambda r: r.id or 0):
        shape = (
            result.test_id,
            result.status,
            result.error_message,
            result.metadata.get("failure_type"),
        )
        found["first" if result.run_id == run.id else "again"].append(shape)
        assert result.run_id in (run.id, again.id)
    return found


async def test_an_outcome_without_a_message_comes_back_without_one(
    db: Database, tmp_path: Path
) -> None:
    """`<skipped/>` is a result with no error message, and stays one through an export.

    Export wrote `<skipped message=""></skipped>`, which imports as an empty message.
    """
    found = await _again(db, tmp_path)
    assert [shape[2] for shape in found["first"]] == [None, None, None, "", "x", None, "m"]
    assert found["again"] == found["first"]


async def test_the_type_of_a_failure_comes_back(db: Database, tmp_path: Path) -> None:
    """A failure's `type`, which import keeps as `failure_type`, is written again by export.

    Export wrote no `type`: imported again, the result had no `failure_type`.
    """
    found = await _again(db, tmp_path)
    assert [shape[3] for shape in found["first"]][-2:] == ["AssertionError", "OSError"]
    assert found["again"] == found["first"]
