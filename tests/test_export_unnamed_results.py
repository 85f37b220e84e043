"""A result with no test id exports under a made-up name that no test of its run has.

Export names such a result `result-N`, N its id. A run that also held a test really named
`result-N` was written as two tests of one name, which every import then refused ("appears
twice"), and a CTRF round trip gave the unnamed result the made-up name for its test id.
"""

from __future__ import annotations

import json
from pathlib import Path

from defusedxml.ElementTree import fromstring

from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    export_junit,
    import_junit,
    save_result,
    save_run,
)
from persistence.report_json import export_ctrf, import_ctrf


async def _run_with_a_clash(db: Database) -> tuple[int, int]:
    """A run of an unnamed result, N, and of a test named `result-N` and `result-N-2`."""
    run = await save_run(db, Run())
    assert run.id is not None
    unnamed = await save_result(
        db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)
    )
    for taken in (f"result-{unnamed.id}", f"result-{unnamed.id}-2"):
        await save_result(
            db,
            TestResult(
                test_type=TestType.UNIT, status=TestStatus.FAILED, run_id=run.id, test_id=taken
            ),
        )
    assert unnamed.id is not None
    return run.id, unnamed.id


async def test_a_junit_export_names_no_two_cases_alike(db: Database, tmp_path: Path) -> None:
    """The made-up name steps past the run's test ids: the file imports again."""
    run_id, unnamed = await _run_with_a_clash(db)
    text = await export_junit(db, run_id)
    names = [case.get("name", "") for case in fromstring(text).iter("testcase")]
    assert sorted(names) == sorted(f"result-{unnamed}{end}" for end in ("", "-2", "-3"))
    path = tmp_path / "run.xml"
    path.write_text(text, encoding="utf-8")
    again = await import_junit(db, path)
    kept = {r.test_id: r.status for r in await all_results(db) if r.run_id == again.id}
    assert kept[f"result-{unnamed}-3"] is TestStatus.PASSED


async def test_a_ctrf_round_trip_keeps_a_result_of_no_test_id(db: Database, tmp_path: Path) -> None:
    """CTRF marks the name made up (`extra.no_test_id`): import gives the result none again."""
    run_id, _ = await _run_with_a_clash(db)
    text = await export_ctrf(db, run_id)
    tests = json.loads(text)["results"]["tests"]
    assert [t["extra"].get("no_test_id", False) for t in tests].count(True) == 1
    path = tmp_path / "run.json"
    path.write_text(text, encoding="utf-8")
    again = await import_ctrf(db, path)
    first = sorted((r.test_id or "", r.status) for r in await all_results(db) if r.run_id == run_id)
    second = sorted(
        (r.test_id or "", r.status) for r in await all_results(db) if r.run_id == again.id
    )
    assert second == first
    assert ("", TestStatus.PASSED) in second


async def test_test_ids_xml_cannot_hold_export_under_names_import_takes(
    db: Database, tmp_path: Path
) -> None:
    """What XML cannot hold in an id is shown (`#x1B`), and the file still imports again.

    Where showing it gives a case another's name, or a name past 1,024 bytes, the case whose
    name changed is numbered and cut. `a[ESC]` and `a[#x1B]` were written alike, and an id of
    800 bytes of escapes grew past the 1,024 bytes of a test id: import refused each file.
    Ids that all cut to one name are numbered on, each past the one before.
    """
    run = await save_run(db, Run())
    assert run.id is not None
    long = "\x1b[0m" * 200  # 800 bytes, 1,400 once shown
    ids = ["a[\x1b]", "a[#x1B]", "b[\x01]", "b[\x02]", long, long + "x", "plain"]
    ids += [f"t::{'x' * 1000}{chr(1) * 5}-{n}" for n in range(300)]  # each cut to one name
    for test_id in ids:
        await save_result(
            db,
            TestResult(
                test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id, test_id=test_id
            ),
        )
    path = tmp_path / "run.xml"
    path.write_text(await export_junit(db, run.id), encoding="utf-8")
    again = await import_junit(db, path)
    names = [r.test_id or "" for r in await all_results(db) if r.run_id == again.id]
    assert len(names) == len(ids)
    assert len(set(names)) == len(ids)
    assert {"a[#x1B]", "plain"} <= set(names)  # the ids it can hold are kept as they were
    assert all(len(name.encode()) <= 1024 for name in names)
    assert sum(name.startswith("#x1B[0m") for name in names) == 2  # the two long ones, cut
    assert sum(name.startswith("t::xxx") for name in names) == 300
