"""Test reports as JSON: CTRF documents and JSON Lines of the package's own result dicts.

As with JUnit (`persistence.reports`), each file becomes one new run in one transaction, or a
ReportError naming the file and the line or test index, with nothing written. CTRF export
writes each result's own status as `rawStatus` and its exact seconds under `extra`, which
import prefers, so a round trip keeps them; docs/HISTORY.md ("Import and export") tells more.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Final

from persistence._interface import JsonObject, JsonValue
from persistence._loop import map_each, share_loop
from persistence.converters import from_dict, to_dict
from persistence.database import Database, transaction
from persistence.exceptions import ReportError
from persistence.models import Run, TestResult, TestStatus, TestType, utc_now
from persistence.reports import open_report, read_run
from persistence.results import save_results
from persistence.runs import save_run

__all__ = ["export_ctrf", "export_jsonl", "import_ctrf", "import_jsonl"]

_FROM_CTRF: Final = {
    "passed": TestStatus.PASSED,
    "failed": TestStatus.FAILED,
    "skipped": TestStatus.SKIPPED,
    "pending": TestStatus.PENDING,
    "other": TestStatus.ERROR,
}
_TO_CTRF: Final = {
    TestStatus.PASSED: "passed",
    TestStatus.FAILED: "failed",
    TestStatus.TIMEOUT: "failed",
    TestStatus.ERROR: "failed",
    TestStatus.SKIPPED: "skipped",
    TestStatus.PENDING: "pending",
    TestStatus.RUNNING: "other",
}
_STATUSES: Final = {member.value: member for member in TestStatus}


def _read(path: Path) -> bytes:
    with open_report(path) as stream:
        return stream.read()


async def _read_text(path: Path) -> str:
    try:
        return (await asyncio.to_thread(_read, path)).decode("utf-8")
    except OSError as error:
        raise ReportError(path, None, f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ReportError(path, None, f"not UTF-8: {error.reason} at byte {error.start}") from None


async def _store(db: Database, labels: JsonObject | None, results: list[TestResult]) -> Run:
    """Save a new run and its results, all or nothing."""
    async with transaction(db) as tx:
        run = await save_run(tx, Run(started_at=utc_now(), labels={} if labels is None else labels))
        for result in results:  # each a fresh, unshared model built by this module
            object.__setattr__(result, "run_id", run.id)
        await save_results(tx, results)
    return run


def _checked_ids(path: Path, results: list[tuple[int | None, TestResult]], *, lines: bool) -> None:
    """Refuse a test id that appears twice, naming both places: lines, or CTRF's indexes."""
    seen: dict[str, int] = {}
    for index, (line, result) in enumerate(results):
        if result.test_id is None:
            continue
        place = index if line is None else line
        if result.test_id in seen:
            first = seen[result.test_id]
            where = "" if lines else f"results.tests[{index}]: "
            raise ReportError(
                path,
                line,
                f"{where}test {result.test_id!r:.200} appears twice: first at "
                + (f"line {first}" if lines else f"results.tests[{first}]"),
            )
        seen[result.test_id] = place


async def import_ctrf(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObject | None = None
) -> Run:
    """Import one CTRF JSON report as one new run; return the run."""
    path = Path(path)
    text = await _read_text(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(path, error.lineno, f"not JSON: {error.msg}") from None
    except (ValueError, RecursionError) as error:  # a number too long, or nested too deep
        raise ReportError(path, None, f"not JSON that can be read: {error}") from None
    found = document.get("results") if isinstance(document, dict) else None
    tests = found.get("tests") if isinstance(found, dict) else None
    if not isinstance(tests, list):
        raise ReportError(path, 1, "not a CTRF report: no results.tests list")
    results = []
    for index, test in enumerate(tests):
        try:
            results.append(_ctrf_result(test))
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise ReportError(path, None, f"results.tests[{index}]: {error}") from None
        await share_loop()  # tens of microseconds a test: thousands would hold the loop
    _checked_ids(path, [(None, r) for r in results], lines=False)
    return await _store(db, labels, results)


def _ctrf_result(test: object) -> TestResult:
    if not isinstance(test, dict):
        raise TypeError(f"expected an object, got {type(test).__name__}")
    raw = test.get("rawStatus")
    status = _STATUSES.get(raw) if isinstance(raw, str) else None
    if status is None:
        status = _FROM_CTRF.get(test.get("status"))  # type: ignore[arg-type]  # checked: None if not a key
    if status is None:
        raise ValueError(f"status must be one of {sorted(_FROM_CTRF)}, got {test.get('status')!r}")
    given_extra = test.get("extra")
    # JSON from the file: the model checks each value it is given.
    extra: dict[str, Any] = given_extra if isinstance(given_extra, dict) else {}
    seconds = extra.get("execution_time")
    if seconds is None:
        duration = test.get("duration", 0)
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise TypeError(f"duration must be a number of milliseconds, got {duration!r}")
        seconds = duration / 1000
    name = test.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty text, got {name!r:.80}")
    stdout = test.get("stdout")
    return TestResult(
        test_type=TestType(extra.get("test_type", "unit")),
        status=status,
        execution_time=seconds,
        error_message=test.get("message") or test.get("trace"),
        output="\n".join(stdout) if isinstance(stdout, list) else None,
        metadata=extra.get("metadata", {}),
        test_id=name,
    )


def _ctrf_test(result: TestResult) -> str:
    """Write one result as a CTRF test, after a comma, indented to its place in the document."""
    test: dict[str, JsonValue] = {
        "name": result.test_id or f"result-{result.id}",
        "status": _TO_CTRF[result.status],
        "rawStatus": result.status.value,
        "duration": result.execution_time * 1000,
        "extra": {
            "execution_time": result.execution_time,
            "test_type": result.test_type.value,
            "metadata": result.metadata,
        },
    }
    if result.error_message is not None:
        test["message"] = result.error_message
    if result.output is not None:
        test["stdout"] = list[JsonValue](result.output.split("\n"))
    # JSON text holds no raw line break but between its parts: each takes the list's indent.
    return ",\n" + _TEST_INDENT + _json(test).replace("\n", "\n" + _TEST_INDENT)


def _json(value: JsonValue) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)


_TEST_INDENT: Final = " " * 6
"""A test's indent in the document: inside the document, `results` and the `tests` list."""
_HOLE: Final = "\x00"
"""Where the tests go in the document: the only string that can hold a NUL character."""


async def export_ctrf(db: Database, run_id: int) -> str:
    """Write a run's results as one CTRF JSON document.

    Each test is written apart, giving the loop back between them, into the text that
    `json.dumps(document, indent=2)` would give (which writes the whole in one go).
    """
    run, results = await read_run(db, run_id)
    counts = dict.fromkeys(_FROM_CTRF, 0)  # passed, failed, skipped, pending, other
    for result in results:
        counts[_TO_CTRF[result.status]] += 1
    tests = await map_each(_ctrf_test, results)
    started = int(run.started_at.timestamp() * 1000)
    ended = started if run.ended_at is None else int(run.ended_at.timestamp() * 1000)
    document: JsonObject = {
        "reportFormat": "CTRF",
        "specVersion": "0.0.0",
        "results": {
            "tool": {"name": "persistence"},
            "summary": {"tests": len(results), **counts, "start": started, "stop": ended},
            "tests": _HOLE,
            "extra": {"run_id": run_id, "labels": run.labels},
        },
    }
    # Labels hold no NUL character: the first such string is the hole, before `extra`.
    head, tail = _json(document).split(_json(_HOLE), 1)
    if not tests:
        return f"{head}[]{tail}"
    tests[0] = tests[0].removeprefix(",")
    return "".join([f"{head}[", *tests, f"\n    ]{tail}"])  # one copy of megabytes, not three


async def import_jsonl(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObject | None = None
) -> Run:
    """Import JSON Lines of result dicts (as `to_dict` gives them) as one new run.

    Each line's `id` and `run_id` are dropped: the results are new, and belong to the new run.
    """
    path = Path(path)
    results: list[tuple[int | None, TestResult]] = []
    for number, line in enumerate((await _read_text(path)).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            results.append((number, _jsonl_result(line)))
        except Exception as error:  # noqa: BLE001  # json's, cattrs' and the model's errors alike
            raise ReportError(path, number, _reason(error)) from None
        await share_loop()  # tens of microseconds a line: thousands would hold the loop
    _checked_ids(path, results, lines=True)
    return await _store(db, labels, [result for _, result in results])


def _jsonl_result(line: str) -> TestResult:
    data = json.loads(line)
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    data.pop("id", None)
    data.pop("run_id", None)
    return from_dict(TestResult, data)


def _reason(error: Exception) -> str:
    """Say what is wrong, from cattrs' grouped errors too."""
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg}"
    leaves: list[BaseException] = [error]
    while isinstance(leaves[0], BaseExceptionGroup):
        leaves = list(leaves[0].exceptions)
    return str(leaves[0]) or type(leaves[0]).__name__


async def export_jsonl(db: Database, run_id: int) -> str:
    """Write a run's results as JSON Lines, one `to_dict` of a result per line."""
    _, results = await read_run(db, run_id)
    return "".join(await map_each(_jsonl_line, results))


def _jsonl_line(result: TestResult) -> str:
    return json.dumps(to_dict(result), ensure_ascii=False, allow_nan=False) + "\n"
