"""pytest's own JUnit report of a test whose fixture's teardown raised after the test failed.

pytest writes two testcases of one name for it, the second an `<error>` "failed on teardown
with ...". The import refused the whole report as naming the test twice; it now keeps one
result, failed, whose error holds both.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from persistence import Database, ReportError, TestStatus, all_results, import_junit

_TESTS = """
import pytest

@pytest.fixture
def fx():
    yield
    raise RuntimeError("teardown boom")

def test_a(fx):
    assert False

def test_b():
    pass
"""


def _pytest(folder: Path, report: Path) -> None:
    """Run this interpreter's pytest on the folder's tests, its JUnit report to `report`."""
    options = ["-q", "-p", "no:cacheprovider", "-o", "addopts=", f"--junitxml={report}"]
    subprocess.run(  # fixed arguments
        [sys.executable, "-m", "pytest", *options, "test_td.py"],
        cwd=folder,
        capture_output=True,
        timeout=60,
        check=False,
    )


async def test_a_teardown_error_after_a_failure_is_one_result(db: Database, tmp_path: Path) -> None:
    """The report pytest writes is taken: two results, `test_a` failed, its error both's."""
    (tmp_path / "test_td.py").write_text(_TESTS, encoding="utf-8")
    report = tmp_path / "report.xml"
    await asyncio.to_thread(_pytest, tmp_path, report)
    assert report.read_text(encoding="utf-8").count('name="test_a"') == 2  # as pytest writes it
    await import_junit(db, report)
    results = {result.test_id or "": result for result in await all_results(db)}
    assert sorted(results) == ["test_td::test_a", "test_td::test_b"]
    failed = results["test_td::test_a"]
    assert failed.status is TestStatus.FAILED
    assert failed.error_message is not None
    assert "assert False" in failed.error_message
    assert "failed on teardown: " in failed.error_message
    assert "RuntimeError: teardown boom" in failed.error_message
    assert results["test_td::test_b"].status is TestStatus.PASSED


async def test_a_second_testcase_of_one_name_is_still_refused_otherwise(
    db: Database, tmp_path: Path
) -> None:
    """Only pytest's teardown error joins the test before it: any other repeat is refused."""
    report = tmp_path / "twice.xml"
    report.write_text(
        '<testsuite name="s"><testcase classname="c" name="t"><failure message="x"/>'
        '</testcase>\n<testcase classname="c" name="t"><error message="failed on setup"/>'
        "</testcase></testsuite>\n",
        encoding="utf-8",
    )
    with pytest.raises(ReportError, match="appears twice"):
        await import_junit(db, report)
    assert await all_results(db) == []


async def test_the_teardown_error_joins_its_test_with_others_written_between(
    db: Database, tmp_path: Path
) -> None:
    """pytest-xdist writes other tests' testcases between a test's two: it still joins its own.

    Only the testcase just before was looked at, so such a report was still refused.
    """
    report = tmp_path / "xdist.xml"
    report.write_text(
        '<testsuite name="s">'
        '<testcase classname="t" name="test_a"><failure message="assert False"/></testcase>\n'
        '<testcase classname="t" name="test_b"/>\n'
        '<testcase classname="t" name="test_a">'
        '<error message="failed on teardown with &quot;boom&quot;">boom</error></testcase>\n'
        "</testsuite>\n",
        encoding="utf-8",
    )
    await import_junit(db, report)
    results = {result.test_id or "": result for result in await all_results(db)}
    assert sorted(results) == ["t::test_a", "t::test_b"]
    assert results["t::test_a"].status is TestStatus.FAILED
    assert (results["t::test_a"].error_message or "").endswith("failed on teardown: boom")


async def test_a_second_teardown_error_of_one_test_names_it_twice(
    db: Database, tmp_path: Path
) -> None:
    """A test gets one teardown testcase from pytest: another is refused, not joined again.

    Each was joined to the first's error, the whole text copied and checked anew: 80,000 of
    them took 41 s (quadratic), the loop held 300 ms at a time.
    """
    teardown = (
        '<testcase classname="t" name="test_a">'
        '<error message="failed on teardown with &quot;boom&quot;">boom</error></testcase>\n'
    )
    report = tmp_path / "twice.xml"
    report.write_text(
        '<testsuite name="s">'
        '<testcase classname="t" name="test_a"><failure message="assert False"/></testcase>\n'
        + teardown * 20_000
        + "</testsuite>\n",
        encoding="utf-8",
    )
    with pytest.raises(ReportError, match=r"twice.xml:3: test 't::test_a' appears twice"):
        await asyncio.wait_for(import_junit(db, report), 10)
    assert await all_results(db) == []


_PASSING_TESTS = """
import pytest

@pytest.fixture
def fx():
    yield
    raise RuntimeError("teardown boom")

def test_c(fx):
    pass

def test_d(fx):
    pytest.skip("not here")
"""


async def test_a_teardown_error_after_a_pass_or_a_skip_is_an_error(
    db: Database, tmp_path: Path
) -> None:
    """As pytest counts such a test: its report of a skip and the error was refused whole.

    pytest writes the error in the skipped test's own testcase: refused as "a <testcase> with
    two outcomes". Written as a testcase of its own after a pass or a skip, the joined result
    stayed passed (or skipped), the error in its message alone, unseen by `compare`.
    """
    (tmp_path / "test_td.py").write_text(_PASSING_TESTS, encoding="utf-8")
    report = tmp_path / "report.xml"
    await asyncio.to_thread(_pytest, tmp_path, report)
    await import_junit(db, report)
    apart = tmp_path / "apart.xml"
    apart.write_text(
        '<testsuite name="s"><testcase classname="t" name="test_e"/>\n'
        '<testcase classname="t" name="test_f"><skipped message="no"/></testcase>\n'
        + "".join(
            f'<testcase classname="t" name="{name}"><error message="failed on teardown with'
            ' &quot;boom&quot;">RuntimeError: teardown boom</error></testcase>\n'
            for name in ("test_e", "test_f")
        )
        + "</testsuite>\n",
        encoding="utf-8",
    )
    await import_junit(db, apart)
    results = {result.test_id or "": result for result in await all_results(db)}
    assert sorted(results) == ["t::test_e", "t::test_f", "test_td::test_c", "test_td::test_d"]
    for result in results.values():
        assert result.status is TestStatus.ERROR, result.test_id
        assert "RuntimeError: teardown boom" in (result.error_message or "")
