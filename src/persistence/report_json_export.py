"""Test reports as JSON out: a run written as a CTRF document, or as JSON Lines of result dicts.

Each in the form `persistence.report_json` imports; docs/HISTORY.md ("Import and export") has
the mapping.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
from typing import Final, cast

from persistence._codecs import json_size
from persistence._guards import FIRST_INSTANT
from persistence._interface import JsonObject, JsonValue
from persistence._loop import (
    OFF_LOOP_SIZE,
    SLICE_ITEMS,
    TEXT_PIECE,
    drop_in_slices,
    joined,
    map_in_slices,
    map_text,
    share_loop,
)
from persistence.converters import encoding_converter
from persistence.database import Database
from persistence.models import Run, TestResult, TestStatus
from persistence.report_common import written_run

__all__ = ["export_ctrf", "export_jsonl"]

_ENCODING: Final = encoding_converter()
"""A result as `to_dict` gives it, sharing its metadata, which each line replaces."""

TO_CTRF: Final = {
    TestStatus.PASSED: "passed",
    TestStatus.FAILED: "failed",
    TestStatus.TIMEOUT: "failed",
    TestStatus.ERROR: "failed",
    TestStatus.SKIPPED: "skipped",
    TestStatus.PENDING: "pending",
    TestStatus.RUNNING: "other",
}
"""The CTRF `status` of each of the package's, which export writes as `rawStatus` beside it."""


def _ctrf_test(result: TestResult, long: list[str]) -> dict[str, JsonValue]:
    """Give one result as a CTRF test, to write as JSON; its long texts are holes (`_holed`).

    Its `start`, `stop` and `duration` are what another tool reads a test's time from: whole
    milliseconds, as CTRF's schema types them, `stop - start` being the `duration`. The exact
    seconds are in `extra`, which an import reads first.
    """
    duration = round(result.execution_time * 1000)
    start = _milliseconds(result.created_at)
    extra: dict[str, JsonValue] = {
        "execution_time": result.execution_time,
        "test_type": result.test_type.value,
        "metadata": _holed_members(result.metadata, long),
        "memory_usage": result.memory_usage,
        "test_cases_passed": result.test_cases_passed,
        "test_cases_total": result.test_cases_total,
        "created_at": result.created_at.isoformat(),
    }
    if result.test_id is None:  # its name is made up, and may be a test's: import keeps none
        extra["no_test_id"] = True
    test: dict[str, JsonValue] = {
        "name": result.test_id or f"result-{result.id}",
        "status": TO_CTRF[result.status],
        "rawStatus": result.status.value,
        "duration": duration,
        "start": start,
        "stop": start + duration,
        "extra": extra,
    }
    if result.error_message is not None:
        test["message"] = _holed(result.error_message, long)
    return test  # its `stdout` and `stderr` come last, split apart (`_ctrf_tests`)


_SPLIT_CHARS: Final = 1 << 16
"""The characters of a text split into lines at a time: about a millisecond's work."""


async def split_lines(text: str) -> list[JsonValue]:
    r"""Give `text.split("\n")`, split a slice of the text at a time, the loop given back between.

    Each line is a string of its own: split in one call, an output of a million lines held the
    loop about 40 ms, and twice that for a result whose stderr is as long.
    """
    lines: list[JsonValue] = []
    start = 0
    while (cut := text.find("\n", start + _SPLIT_CHARS)) >= 0:
        lines += text[start:cut].split("\n")
        start = cut + 1
        await share_loop()
    lines += text[start:].split("\n")
    return lines


EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND: Final = dt.timedelta(milliseconds=1)
_FIRST_MS: Final = (FIRST_INSTANT - EPOCH) // _MILLISECOND + 1
"""The first whole millisecond that names a time a run takes: the first instant is reserved."""


def _milliseconds(instant: dt.datetime) -> int:
    """Give an instant as CTRF writes one: whole milliseconds since 1970 in UTC.

    The part below a millisecond is cut off, so that the instant read back is never after it,
    before 1970 too; exactly, where `timestamp()`'s float may miss a millisecond.
    """
    return (instant - EPOCH) // _MILLISECOND


async def _ctrf_tests(results: list[TestResult]) -> list[str]:
    """Write each result as a CTRF test, after a comma, indented to its place in the document.

    A test is one piece, or several where it holds a long text (`_filled`).
    """
    written = []
    for result in results:
        long: list[str] = []
        test = _ctrf_test(result, long)
        stderr = result.metadata.get("system_err")
        for name, given in (("stdout", result.output), ("stderr", stderr)):
            if isinstance(given, str):
                test[name] = await _ctrf_lines(given, long)
        text = [",\n" + _TEST_INDENT, *await _json(test, _TEST_INDENT)]
        written += await _filled(text, long) if long else text
        for name in ("stdout", "stderr"):  # a line a string: a million lines take ms to free
            lines = test.get(name)
            if isinstance(lines, list):
                await drop_in_slices(lines)
    return written


async def _ctrf_lines(text: str, long: list[str]) -> list[JsonValue]:
    """Give a text's lines as CTRF writes them; a line past TEXT_PIECE goes in `long` (`_holed`).

    Only a text past it may hold one; then the lines' lengths are taken a slice at a time.
    """
    lines = await split_lines(text)
    if (
        len(text) > TEXT_PIECE
        and max(await map_in_slices(len, cast("list[str]", lines))) > TEXT_PIECE
    ):
        return await map_in_slices(functools.partial(_holed, long=long), lines)
    return lines


def _holed(value: JsonValue, long: list[str]) -> JsonValue:
    """Give a value to write as JSON; a text past TEXT_PIECE goes in `long`, a hole in its place.

    Encoded in one call, an output of 40 MB held the loop 200 to 650 ms: `_filled` encodes it
    in pieces. The holes go in the order the encoder meets them, as `_filled` fills them.
    """
    if isinstance(value, str) and len(value) > TEXT_PIECE:
        long.append(value)
        return _HOLE
    return value


def _holed_members(found: JsonObject, long: list[str]) -> JsonObject:
    """Give an object (metadata) with its long texts as holes; the object itself if none."""
    if not any(isinstance(value, str) and len(value) > TEXT_PIECE for value in found.values()):
        return found
    return {name: _holed(value, long) for name, value in found.items()}


async def _filled(text: list[str], long: list[str]) -> list[str]:
    """Give JSON text's pieces with each hole filled with its long text, encoded a piece at a time.

    A hole is the only JSON string that holds a NUL character, which no stored text holds; a
    piece of `_json`'s holds each string whole, so no hole is cut in two.
    """
    filled: list[str] = []
    holes = iter(long)
    for piece in text:
        if _ENCODED_HOLE not in piece:
            filled.append(piece)
            continue
        between = piece.split(_ENCODED_HOLE)
        filled.append(between[0])
        for after in between[1:]:
            filled += ['"', *await map_text(_json_characters, next(holes)), '"', after]
        await share_loop()
    assert next(holes, None) is None, "a long text has no hole"  # noqa: S101  # the writer's own
    return filled


def _json_characters(text: str) -> str:
    """Encode text as the inside of a JSON string, each character alone, as `json.dumps` does."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


async def _json(
    value: JsonValue | dict[str, object], indent: str = "", encoder: json.JSONEncoder | None = None
) -> list[str]:
    """Give `json.dumps(value, indent=2)` in pieces, each line after the first indented by `indent`.

    The encoder that indents is `json`'s Python one, a piece per value and bracket: one
    result's output of a million lines took it half a second, written in one go. Its pieces
    are taken, joined and indented a slice at a time, the loop given back between; they are
    joined once, with the whole document: joined here, a million lines took 30 to 60 ms more.
    Given `_COMPACT`, it is `json.dumps(value)`'s text, in pieces: `iterencode` is the Python
    encoder too, where `dumps` is one C call.
    """
    pieces = (encoder or _INDENTED).iterencode(value)
    text: list[str] = []
    while part := list(itertools.islice(pieces, SLICE_ITEMS)):
        # JSON text holds no raw line break but between its parts: each takes the indent.
        text.append("".join(part).replace("\n", "\n" + indent) if indent else "".join(part))
        await share_loop()
    return text


_INDENTED: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=2)
_COMPACT: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_ONE_CALL_SIZE: Final = 8 * OFF_LOOP_SIZE
"""The most a line's metadata may hold (by `json_size`) to be encoded in one call: about 6 ms.
The Python encoder that writes a larger one in slices takes twice the time."""


_TEST_INDENT: Final = " " * 6
"""A test's indent in the document: inside the document, `results` and the `tests` list."""
_HOLE: Final = "\x00"
"""Where the tests go in the document, or a long text in a test or a line: the only string
that can hold a NUL character."""
_ENCODED_HOLE: Final = json.dumps(_HOLE)


async def export_ctrf(db: Database, run_id: int) -> str:
    """Write a run's results as one CTRF JSON document.

    Each test is written apart, giving the loop back between them, into the text that
    `json.dumps(document, indent=2)` would give (which writes the whole in one go).
    """
    return await written_run(db, run_id, ctrf_text)


async def ctrf_text(run: Run, results: list[TestResult]) -> str:
    """Write a run's results, as read, as `export_ctrf` does."""
    counts = dict.fromkeys(TO_CTRF.values(), 0)  # passed, failed, skipped, pending, other
    for result in results:
        counts[TO_CTRF[result.status]] += 1
    tests = await _ctrf_tests(results)
    # Cut to the millisecond, but never to the first instant of all, which import refuses as
    # reserved: a run within year 1's first millisecond gives the next one, as its end does.
    started = max(_milliseconds(run.started_at), _FIRST_MS)
    ended = started if run.ended_at is None else max(_milliseconds(run.ended_at), started)
    document: JsonObject = {
        "reportFormat": "CTRF",
        "specVersion": "0.0.0",
        "results": {
            "tool": {"name": "persistence"},
            "summary": {"tests": len(results), **counts, "start": started, "stop": ended},
            "tests": _HOLE,
            "extra": {"run_id": run.id, "labels": run.labels},
        },
    }
    # Labels hold no NUL character: the first such string is the hole, before `extra`.
    head, tail = "".join(await _json(document)).split(_ENCODED_HOLE, 1)
    if not tests:
        return f"{head}[]{tail}"
    tests[0] = f"{head}[" + tests[0].removeprefix(",")
    tests.append(f"\n    ]{tail}")
    return await joined(tests)  # one copy of megabytes, not three


async def export_jsonl(db: Database, run_id: int) -> str:
    """Write a run's results as JSON Lines, one `to_dict` of a result per line."""
    return await written_run(db, run_id, lambda _, results: jsonl_text(results))


async def jsonl_text(results: list[TestResult]) -> str:
    """Write results, as read, as `export_jsonl` does."""
    lines: list[str] = []
    for result in results:
        long: list[str] = []
        data = _jsonl_data(result, long)
        if json_size(result.metadata, _ONE_CALL_SIZE) > _ONE_CALL_SIZE:
            # Wide metadata (many keys, no long text), encoded in one call, held the loop
            # 70 ms for 3.5 MB: written a slice at a time, as a CTRF test is.
            line = [*await _json(data, encoder=_COMPACT), "\n"]
        else:
            line = [json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n"]
        lines += await _filled(line, long) if long else line
        await share_loop()
    return await joined(lines)  # one copy of the whole: a result's output may be megabytes


def _jsonl_data(result: TestResult, long: list[str]) -> dict[str, object]:
    """Give a result's line to write; its long texts are holes (`_holed`).

    A long text of a field or of a member of its metadata is holed in the order of the model's
    fields, which `to_dict` keeps.
    """
    data: dict[str, object] = _ENCODING.unstructure(result)  # to_dict's, its dicts not copied
    data["error_message"] = _holed(result.error_message, long)
    data["output"] = _holed(result.output, long)
    data["metadata"] = _holed_members(result.metadata, long)
    return data
