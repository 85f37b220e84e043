"""Test reports as JSON out: a run written as a CTRF document, or as JSON Lines of result dicts.

Each in the form `persistence.report_json` imports; docs/HISTORY.md ("Import and export") has
the mapping.
"""

from __future__ import annotations

import itertools
import json
from typing import Final

from persistence._interface import JsonObject, JsonValue
from persistence._loop import SLICE_ITEMS, drop_in_slices, map_each, share_loop
from persistence.converters import to_dict
from persistence.database import Database
from persistence.models import TestResult, TestStatus
from persistence.report_common import read_run

__all__ = ["export_ctrf", "export_jsonl"]

_TO_CTRF: Final = {
    TestStatus.PASSED: "passed",
    TestStatus.FAILED: "failed",
    TestStatus.TIMEOUT: "failed",
    TestStatus.ERROR: "failed",
    TestStatus.SKIPPED: "skipped",
    TestStatus.PENDING: "pending",
    TestStatus.RUNNING: "other",
}


def _ctrf_test(result: TestResult) -> dict[str, JsonValue]:
    """Give one result as a CTRF test, to write as JSON."""
    test: dict[str, JsonValue] = {
        "name": result.test_id or f"result-{result.id}",
        "status": _TO_CTRF[result.status],
        "rawStatus": result.status.value,
        "duration": result.execution_time * 1000,
        "extra": {
            "execution_time": result.execution_time,
            "test_type": result.test_type.value,
            "metadata": result.metadata,
            "memory_usage": result.memory_usage,
            "test_cases_passed": result.test_cases_passed,
            "test_cases_total": result.test_cases_total,
            "created_at": result.created_at.isoformat(),
        },
    }
    if result.error_message is not None:
        test["message"] = result.error_message
    if result.output is not None:
        test["stdout"] = list[JsonValue](result.output.split("\n"))
    stderr = result.metadata.get("system_err")
    if isinstance(stderr, str):
        test["stderr"] = list[JsonValue](stderr.split("\n"))
    return test


async def _ctrf_tests(results: list[TestResult]) -> list[str]:
    """Write each result as a CTRF test, after a comma, indented to its place in the document."""
    written = []
    for result in results:
        test = _ctrf_test(result)
        written.append(",\n" + _TEST_INDENT + await _json(test, _TEST_INDENT))
        for name in ("stdout", "stderr"):  # a line a string: a million lines take ms to free
            lines = test.get(name)
            if isinstance(lines, list):
                await drop_in_slices(lines)
    return written


async def _json(value: JsonValue, indent: str = "") -> str:
    """Give `json.dumps(value, indent=2)`, each line after the first indented by `indent`.

    The encoder that indents is `json`'s Python one, a piece per value and bracket: one
    result's output of a million lines took it half a second, written in one go. Its pieces
    are taken, joined and indented a slice at a time, the loop given back between.
    """
    pieces = _INDENTED.iterencode(value)
    text: list[str] = []
    while part := list(itertools.islice(pieces, SLICE_ITEMS)):
        # JSON text holds no raw line break but between its parts: each takes the indent.
        text.append("".join(part).replace("\n", "\n" + indent) if indent else "".join(part))
        await share_loop()
    return "".join(text)


_INDENTED: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=2)


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
    counts = dict.fromkeys(_TO_CTRF.values(), 0)  # passed, failed, skipped, pending, other
    for result in results:
        counts[_TO_CTRF[result.status]] += 1
    tests = await _ctrf_tests(results)
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
    head, tail = (await _json(document)).split(json.dumps(_HOLE), 1)
    if not tests:
        return f"{head}[]{tail}"
    tests[0] = tests[0].removeprefix(",")
    return "".join([f"{head}[", *tests, f"\n    ]{tail}"])  # one copy of megabytes, not three


async def export_jsonl(db: Database, run_id: int) -> str:
    """Write a run's results as JSON Lines, one `to_dict` of a result per line."""
    _, results = await read_run(db, run_id)
    return "".join(await map_each(_jsonl_line, results))


def _jsonl_line(result: TestResult) -> str:
    return json.dumps(to_dict(result), ensure_ascii=False, allow_nan=False) + "\n"
