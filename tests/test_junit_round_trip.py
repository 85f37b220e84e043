"""A JUnit report imported, exported and imported again keeps what the first import kept."""

from __future__ import annotations

from pathlib import Path
from typing import Final
from xml.sax.saxutils import quoteattr

from defusedxml.ElementTree import fromstring
from hypothesis import given
from hypothesis import strategies as st

from persistence import Database, TestResult, all_results, export_junit, import_junit
from persistence.reports import run_results
from strategies import ON_DATABASE

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


_SUITE_NAME = st.text(
    st.characters(exclude_categories=["Cs", "Cc"]) | st.sampled_from("\t\n\r <&>\"'"),
    max_size=20,
) | st.sampled_from(["run 1", "", "  "])
"""A suite's name: any text that XML holds, spaces and markup, one that looks like export's own."""


def _suite_of(result: TestResult) -> object:
    return result.metadata.get("suite")


def _counted(text: str) -> list[tuple[str | None, list[int]]]:
    """Each `<testsuite>` of an export: its name and counts, checked against what it holds.

    The counts of `<testsuites>` are checked to be the sums of its suites'.
    """
    root = fromstring(text)
    found: list[tuple[str | None, list[int]]] = []
    for suite in root.iter("testsuite"):
        cases = suite.findall("testcase")
        held = [sum(case.find(tag) is not None for case in cases) for tag in _OUTCOMES]
        said = [int(suite.get(count, "-1")) for count in _COUNTS]
        assert said == [len(cases), *held]
        found.append((suite.get("name"), said))
    totals = [sum(said[index] for _, said in found) for index in range(len(_COUNTS))]
    assert [int(root.get(count, "-1")) for count in _COUNTS] == totals
    return found


_COUNTS: Final = ("tests", "failures", "errors", "skipped")
_OUTCOMES: Final = ("failure", "error", "skipped")


@ON_DATABASE
@given(
    suites=st.lists(
        st.tuples(
            _SUITE_NAME,
            st.lists(st.sampled_from(["", "<failure/>", "<error/>", "<skipped/>"]), max_size=3),
        ),
        min_size=1,
        max_size=5,
    )
)
async def test_each_result_comes_back_in_its_suite(
    db: Database, tmp_path: Path, suites: list[tuple[str, list[str]]]
) -> None:
    """Export writes a `<testsuite>` per suite, so that import gives each result its suite again.

    Every result went into one `<testsuite name="run N">`: imported again, each had the suite
    `run N`, whatever suite the first import had kept.
    """
    lines, number = ["<testsuites>"], 0
    for name, outcomes in suites:
        lines.append(f"<testsuite name={quoteattr(name)}>")
        for outcome in outcomes:
            lines.append(f'<testcase name="t{number}">{outcome}</testcase>')
            number += 1
        lines.append("</testsuite>")
    first = tmp_path / "first.xml"
    first.write_text("\n".join([*lines, "</testsuites>"]), encoding="utf-8")
    run = await import_junit(db, first)
    assert run.id is not None
    text = await export_junit(db, run.id)
    _counted(text)
    second = tmp_path / "second.xml"
    second.write_text(text, encoding="utf-8")
    again = await import_junit(db, second)
    assert again.id is not None
    kept = [(r.test_id, r.status, _suite_of(r)) for r in await run_results(db, run.id)]
    assert [(r.test_id, r.status, _suite_of(r)) for r in await run_results(db, again.id)] == kept
    assert [suite for _, _, suite in kept] == [name for name, cases in suites for _ in cases]


async def test_suites_nested_repeated_or_unnamed_come_back_in_order(
    db: Database, tmp_path: Path
) -> None:
    """A case keeps its innermost suite; one of no suite is written in `run N`, as before.

    A suite's cases on either side of an inner suite come back in their order, each in its
    suite; the counts of each `<testsuite>` are its own, and `<testsuites>` gives the totals.
    """
    first = tmp_path / "first.xml"
    first.write_text(
        """<testsuites>
  <testsuite name="outer">
    <testcase name="a"><failure/></testcase>
    <testsuite name="inner"><testcase name="b"><error/></testcase></testsuite>
    <testcase name="c"><skipped/></testcase>
  </testsuite>
  <testsuite><testcase name="d"/></testsuite>
  <testsuite name="outer"><testcase name="e"/></testsuite>
</testsuites>
""",
        encoding="utf-8",
    )
    run = await import_junit(db, first)
    assert run.id is not None
    assert [_suite_of(r) for r in await run_results(db, run.id)] == [
        "outer", "inner", "outer", None, "outer"
    ]  # fmt: skip
    text = await export_junit(db, run.id)
    assert _counted(text) == [
        ("outer", [1, 1, 0, 0]),
        ("inner", [1, 0, 1, 0]),
        ("outer", [1, 0, 0, 1]),
        (f"run {run.id}", [1, 0, 0, 0]),
        ("outer", [1, 0, 0, 0]),
    ]
