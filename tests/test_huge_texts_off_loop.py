"""A result whose output or error message is of megabytes is mapped in a worker thread.

Its check is a scan for NUL characters, about 1 ns a character: a search hit or a listed row
of 20 million characters beyond Latin-1 held the loop for 20 ms and more each, in one step no
slice cuts; a search's hits held it 60 to 120 ms. Each such row is now mapped off the loop
(`_rows.result_texts` weighs it for `map_in_slices`), and the small ones on it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import pytest

import persistence.report_common
import persistence.report_json
import persistence.reports
import persistence.results
import persistence.run_history
import persistence.runs
import persistence.search._results
from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    get_run,
    save_results,
    save_run,
)
from persistence._guards import text_problem
from persistence._interface import JsonObject
from persistence._rows import result_from_row
from persistence.report_common import read_run
from persistence.report_json import import_jsonl
from persistence.report_json_export import export_jsonl
from persistence.reports import import_junit
from persistence.run_history import list_test_history
from persistence.search import search_results

_HUGE: Final = "ошибка fault " * 100_000
"""1.3 million characters, past what is mapped on the loop."""


@pytest.fixture(name="mapped_where")
def mapped_where_fixture(monkeypatch: pytest.MonkeyPatch) -> dict[int, bool]:
    """Record, by text length, whether each result was mapped on the loop's thread."""
    loop_thread = threading.current_thread()
    where: dict[int, bool] = {}

    def recorded(row: object) -> TestResult:
        result = result_from_row(row)  # type: ignore[arg-type]  # a row of either query
        where[len(result.output or "") + len(result.error_message or "")] = (
            threading.current_thread() is loop_thread
        )
        return result

    modules: list[object] = [
        persistence.results,
        persistence.run_history,
        persistence.report_common,
        persistence.search._results,  # noqa: SLF001  # where the hits are mapped
    ]
    for module in modules:
        monkeypatch.setattr(module, "result_from_row", recorded)
    return where


@pytest.mark.parametrize("field", ["output", "error_message"])
async def test_a_result_of_megabytes_is_mapped_off_the_loop(
    db: Database, mapped_where: dict[int, bool], field: str
) -> None:
    """By every path that reads results: a listing, a test's history, a run's export, a search."""
    run = await save_run(db, Run())
    results = [
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.FAILED,
            run_id=run.id,
            test_id=f"t{index}",
            **{field: text},  # type: ignore[arg-type]  # one of the result's texts
        )
        for index, text in enumerate((_HUGE, "a fault"))
    ]
    await save_results(db, results)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: all_results(db),
        lambda: list_test_history(db, "t0"),
        lambda: read_run(db, run.id or 0),
        lambda: search_results(db, "fault"),
    ]
    for read in reads:
        mapped_where.clear()
        await read()
        expected = {len(_HUGE): False, len("a fault"): True}
        if read is reads[1]:  # one test's history: the huge one alone
            del expected[len("a fault")]
        assert mapped_where == expected, read


async def test_a_json_report_is_decoded_off_the_loop(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CTRF or JSON Lines report is read and decoded in a worker thread.

    It was read there, then decoded on the loop: 40 MB of CJK text held it 60 ms.
    """
    loop_thread = threading.current_thread()
    decoded_on: list[bool] = []
    real = persistence.report_json._read  # noqa: SLF001  # reads and decodes: watched

    def watched(path: Path) -> str:
        decoded_on.append(threading.current_thread() is loop_thread)
        return real(path)

    monkeypatch.setattr(persistence.report_json, "_read", watched)
    run = await save_run(db, Run())
    await save_results(
        db, [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)]
    )
    report = tmp_path / "r.jsonl"
    report.write_text(await export_jsonl(db, run.id or 0), encoding="utf-8")
    await import_jsonl(db, report)
    assert decoded_on == [False]


async def test_a_run_of_megabytes_of_labels_is_checked_and_encoded_off_the_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`save_run` checks and encodes labels of megabytes in a worker thread; small ones not.

    On the loop, 3.5 MB of labels held it 200 to 380 ms: checked twice, encoded in one call.
    """
    loop_thread = threading.current_thread()
    checked_on: list[bool] = []
    real = persistence.runs._checked_run  # noqa: SLF001  # watched

    def watched(run: Run, *, ahead: bool) -> object:
        checked_on.append(threading.current_thread() is loop_thread)
        return real(run, ahead=ahead)

    monkeypatch.setattr(persistence.runs, "_checked_run", watched)
    labels: JsonObject = {f"label{index}": "x" * 10 for index in range(20_000)}
    big = await save_run(db, Run(labels=labels))
    small = await save_run(db, Run(labels={"commit": "abc"}))
    assert checked_on == [False, True]
    assert (await get_run(db, big.id or 0)).labels == labels
    assert (await get_run(db, small.id or 0)).labels == {"commit": "abc"}
    assert big.labels == labels
    assert big.id is not None


@pytest.mark.parametrize("tag", ["system-out", "system-err", "failure"])
async def test_a_junit_text_of_megabytes_is_checked_as_it_is_parsed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str
) -> None:
    """A JUnit case's text is checked a piece at a time, as the parser gives it.

    It was checked once joined, in one call on the loop: 40 MB of emoji held it 200 ms.
    """
    checked: list[int] = []
    real = text_problem

    def watched(text: str) -> str | None:
        checked.append(len(text))
        return real(text)

    monkeypatch.setattr(persistence.reports, "text_problem", watched)
    body = "ошибка " * 300_000
    inside = (
        f'<failure message="m">{body}</failure>' if tag == "failure" else f"<{tag}>{body}</{tag}>"
    )
    report = tmp_path / "report.xml"
    report.write_text(
        f'<testsuite name="s"><testcase classname="c" name="t" time="1">{inside}'
        "</testcase></testsuite>",
        encoding="utf-8",
    )
    run = await import_junit(db, report)
    assert sum(checked) >= len(body)
    assert max(checked) <= 1 << 16, max(checked)
    [result] = await all_results(db)
    assert result.run_id == run.id
    stored = {
        "system-out": result.output,
        "system-err": result.metadata.get("system_err"),
        "failure": result.error_message,
    }[tag]
    assert stored == body
