"""Test reports as JSON: CTRF documents and JSON Lines of the package's own result dicts.

As with JUnit (`persistence.reports`), each file becomes one new run in one transaction, or a
ReportError naming the file and the line or test index, with nothing written. CTRF export
(`persistence.report_json_export`) writes each result's own status as `rawStatus`, and its
exact seconds and the fields CTRF has no member for under `extra`, which import prefers, so a
round trip keeps them; docs/HISTORY.md ("Import and export") tells more.
"""

from __future__ import annotations

import asyncio
import codecs
import datetime as dt
import functools
import itertools
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from persistence._guards import FIRST_INSTANT, LAST_INSTANT
from persistence._interface import JsonObjectInput
from persistence._json_pieces import TextValues
from persistence._json_report_text import ctrf_document, decode, ended, skip
from persistence._loop import OFF_LOOP_SIZE, drop_in_slices, off_loop, share_loop
from persistence._rows import TEST_STATUSES, TEST_TYPES
from persistence.converters import from_dict
from persistence.database import Database
from persistence.exceptions import ReportError
from persistence.models import MAX_EXECUTION_TIME, Run, TestResult, TestStatus, TestType
from persistence.report_common import import_arguments, import_transaction, open_report
from persistence.report_json_export import EPOCH, TO_CTRF, export_ctrf, export_jsonl
from persistence.report_times import timed_run
from persistence.results import save_results
from persistence.runs import save_run

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["export_ctrf", "export_jsonl", "import_ctrf", "import_jsonl"]

_FROM_CTRF: Final = {
    "passed": TestStatus.PASSED,
    "failed": TestStatus.FAILED,
    "skipped": TestStatus.SKIPPED,
    "pending": TestStatus.PENDING,
    "other": TestStatus.ERROR,
}
_T = TypeVar("_T")


MAX_JSON_REPORT_BYTES: Final = 1 << 29
"""The largest CTRF or JSON Lines report read, 512 MiB: it is read whole, and held as text about
three times over while read (a JUnit report is read as a stream, of any size)."""
_DECODED_AT_ONCE: Final = 1 << 22
"""Bytes read and decoded in one call: the GIL is let go between (206 MB held the loop 640 ms)."""


def _read(path: Path) -> str:
    """Read and decode the report in the worker thread, a piece at a time, up to its bound.

    Decoded on the loop, 40 MB of CJK held it 60 ms.
    """
    decoder, parts, done = codecs.getincrementaldecoder("utf-8")(), [], 0
    with open_report(path) as stream:
        # Told before a byte is read: a sparse file of a GiB took 2 GB of memory, then failed.
        while (size := max(done, os.fstat(stream.fileno()).st_size)) <= MAX_JSON_REPORT_BYTES:
            piece = stream.read(_DECODED_AT_ONCE)
            try:
                parts.append(decoder.decode(piece, final=not piece))
            except UnicodeDecodeError as error:  # at the byte of the file, not of the piece
                at = done - len(decoder.getstate()[0]) + error.start
                raise ReportError(path, None, f"not UTF-8: {error.reason} at byte {at}") from None
            if not piece:  # A byte order mark, as Windows tools write, is no part of the JSON
                return "".join(parts).removeprefix("\ufeff")  # (RFC 8259 §8.1)
            done += len(piece)
    raise ReportError(
        path, None, f"{size:,} bytes, where a JSON report is read up to {MAX_JSON_REPORT_BYTES:,}"
    )


async def _read_text(path: Path) -> str:
    try:
        return await asyncio.to_thread(_read, path)
    except OSError as error:
        raise ReportError(path, None, f"cannot read: {error.strerror or error}") from None


async def _store(db: Database, run: Run, results: list[TestResult]) -> Run:
    """Save the new run and its results, all or nothing, emptying `results` a slice at a time.

    They are dropped before the commit: a cancellation meanwhile rolls back, where after it
    the caller would lose the id of a run that was saved. Nothing else may hold them, or the
    last reference, dropped in one go, frees them all at once.
    """
    async with import_transaction(db) as (tx, committing):
        run = await save_run(tx, run)
        for result in results:  # each a fresh, unshared model built by this module
            object.__setattr__(result, "run_id", run.id)
            await share_loop()
        await save_results(tx, results)
        await drop_in_slices(results)
        committing.append(run)
    return run


def _note_id(
    path: Path, seen: dict[str, int], result: TestResult, place: int, *, lines: bool
) -> None:
    """Refuse a test id seen before, naming both places: lines, or CTRF's indexes.

    Checked as each test is read: a pass over tens of thousands after reading them held the
    loop in one call.
    """
    if result.test_id is None or (first := seen.setdefault(result.test_id, place)) == place:
        return
    where = "" if lines else f"results.tests[{place}]: "
    raise ReportError(
        path,
        place if lines else None,
        f"{where}test {result.test_id!r:.200} appears twice: first at "
        + (f"line {first}" if lines else f"results.tests[{first}]"),
    )


async def _place_timeless(timeless: list[TestResult], at: dt.datetime) -> None:
    """Give each of `timeless` the time `at`, emptying the list, the loop given back between."""
    while timeless:  # each a fresh, unshared model built by this module
        object.__setattr__(timeless.pop(), "created_at", at)
        await share_loop()


async def import_ctrf(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObjectInput | None = None
) -> Run:
    """Import one CTRF JSON report as one new run, from `summary.start` to `stop`; return it."""
    path, run = import_arguments("import_ctrf", db, path, labels)
    text = await _read_text(path)
    try:
        read = await ctrf_document(text)
    except json.JSONDecodeError as error:
        raise ReportError(path, error.lineno, f"not JSON: {error.msg}") from None
    document = read.parsed
    found = document.get("results") if isinstance(document, dict) else None
    tests = found.get("tests") if isinstance(found, dict) else None
    if not isinstance(tests, list):
        raise ReportError(path, 1, "not a CTRF report: no results.tests list")
    results = []
    timeless = []  # the results whose test gave no time of its own
    stated: tuple[dt.datetime, dt.datetime] | None = None  # the tests' own times, if any
    seen: dict[str, int] = {}  # each test id, with the index of the test that gave it
    for index in range(len(tests)):
        test, tests[index] = tests[index], None  # each test's JSON freed once read, not all at once
        try:
            if index in read.large_tests:  # its checks, in one call, held the loop too
                result, own_time = await off_loop(functools.partial(_ctrf_result, test))
            else:
                result, own_time = _ctrf_result(test)
        except (ValueError, TypeError, KeyError, OverflowError) as error:
            raise ReportError(path, None, f"{_ctrf_place(index, test)}: {error}") from None
        _note_id(path, seen, result, index, lines=False)
        results.append(result)
        if not own_time:
            timeless.append(result)
        else:
            stated = _widened(stated, (result.created_at, result.created_at))
        await share_loop()  # tens of microseconds a test: thousands would hold the loop
    try:
        summary = _ctrf_span(found.get("summary") if isinstance(found, dict) else None)
    except (ValueError, TypeError) as error:
        raise ReportError(path, None, str(error)) from None
    span = _widened(summary, stated) or (run.started_at, run.started_at)
    await _place_timeless(timeless, span[0])
    return await _store(db, timed_run(path, run, span), results)


def _widened(
    span: tuple[dt.datetime, dt.datetime] | None, times: tuple[dt.datetime, dt.datetime] | None
) -> tuple[dt.datetime, dt.datetime] | None:
    """Give the summary's span widened to hold the tests' own times, or either alone."""
    if span is None or times is None:
        return span or times
    return min(span[0], times[0]), max(span[1], times[1])


def _ctrf_span(summary: object) -> tuple[dt.datetime, dt.datetime] | None:
    """Give `results.summary`'s `start` and `stop`, if it gives them."""
    if summary is None:
        return None
    if not isinstance(summary, dict):
        raise TypeError(f"results.summary must be an object, got {_shown(summary)}")
    start, stop = _ctrf_instant(summary, "start"), _ctrf_instant(summary, "stop")
    if start is None and stop is None:
        return None
    if start is None or stop is None:
        missing, given = ("start", "stop") if start is None else ("stop", "start")
        raise ValueError(f"results.summary.{missing} is missing, while {given} is given")
    if stop < start:
        raise ValueError(
            f"results.summary.stop {summary['stop']!r:.80} is before start {summary['start']!r:.80}"
        )
    return start, stop


def _ctrf_instant(summary: dict[str, object], name: str) -> dt.datetime | None:
    """Give `start` or `stop` of a CTRF summary, milliseconds since 1970 in UTC, as an instant."""
    value = summary.get(name)
    if value is None:
        return None
    problem = f"results.summary.{name} must be a number of ms since 1970-01-01T00:00:00Z"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise TypeError(f"{problem}, got {_shown(value)}")
    try:
        found = EPOCH + dt.timedelta(milliseconds=value)
    except OverflowError:
        raise ValueError(f"{problem} in the years 1 to 9999, got {_shown(value)}") from None
    if found in {FIRST_INSTANT, LAST_INSTANT}:  # refused as the run's, which named neither
        when = "after the first" if found == FIRST_INSTANT else "before the last"
        raise ValueError(f"{problem} {when} instant of all, which is reserved, got {_shown(value)}")
    return found


def _ctrf_test_start(test: dict[str, object]) -> dt.datetime | None:
    """Give a test's `start`, milliseconds since 1970 in UTC, if it names a time a result takes.

    Import read no test's `start` before: one that names no such time (no number, out of the
    years 1 to 9999, or the first or last instant of all, which are reserved) is read past,
    not refused, and the test takes the run's start as a test without one does.
    """
    value = test.get("start")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        found = EPOCH + dt.timedelta(milliseconds=value)
    except (OverflowError, ValueError):  # ValueError: NaN
        return None
    return found if FIRST_INSTANT < found < LAST_INSTANT else None


def _ctrf_place(index: int, test: object) -> str:
    """Name a test of a CTRF file: its index in `results.tests`, and its name if it has one."""
    name = test.get("name") if isinstance(test, dict) else None
    named = f": test {name!r:.200}" if isinstance(name, str) and name else ""
    return f"results.tests[{index}]{named}"


def _shown(value: object) -> str:
    """Say what a JSON value is, as the CTRF schema names types: the value too, if short."""
    match value:
        case dict():
            return "an object"
        case list():
            return "an array"
        case None:
            return "null"
        case bool():
            return "true" if value else "false"
        case str():
            text = json.dumps(value)
            return f"the string {text if len(text) <= _SHOWN else text[:_SHOWN] + '...'}"
    return f"the number {value!r:.{_SHOWN}}"


_SHOWN: Final = 80
"""How many characters of a wrong value an error shows."""


def _member(
    found: dict[str, object], name: str, kind: type[_T], expected: str, *, under: str = ""
) -> _T | None:
    """Give an optional member of a CTRF object, None when it is left out or null.

    Any other JSON type than `kind` is refused, naming the member (`under` its parent's name)
    and what it holds.
    """
    value = found.get(name)
    if value is None or isinstance(value, kind):
        return value
    raise TypeError(f"{under}{name} must be {expected}, got {_shown(value)}")


def _ctrf_result(test: object) -> tuple[TestResult, bool]:
    """Read one test of a CTRF file, each member it uses checked for its JSON type first.

    `test_type`, `execution_time`, `metadata` and the fields in `_OWN` under `extra` are this
    package's own, as export writes them; the model then checks each value it is given. The
    result's time is `extra.created_at`, exact, else the test's `start`; the flag says whether
    the test gave either.
    """
    if not isinstance(test, dict):
        raise TypeError(f"expected an object, got {_shown(test)}")
    name = test.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {_shown(name)}")
    given = test.get("status")
    status = _FROM_CTRF.get(given) if isinstance(given, str) else None
    if status is None:
        raise ValueError(f"status must be one of {sorted(_FROM_CTRF)}, got {_shown(given)}")
    raw = _member(test, "rawStatus", str, "a string")
    extra: dict[str, object] = _member(test, "extra", dict, "an object") or {}
    test_type = extra.get("test_type")
    kind = TEST_TYPES.get(test_type) if isinstance(test_type, str) else None
    if kind is None and test_type is not None:
        raise ValueError(
            f"extra.test_type must be one of {sorted(TEST_TYPES)}, got {_shown(test_type)}"
        )
    metadata = _member(extra, "metadata", dict, "an object", under="extra.") or {}
    message = _member(test, "message", str, "a string")
    trace = _member(test, "trace", str, "a string")
    stderr = _ctrf_lines(test, "stderr")
    if stderr is not None and "system_err" not in metadata:  # where a JUnit import keeps it
        metadata = {**metadata, "system_err": stderr}
    own = {  # the rest of the result, as export writes it under `extra`
        field: value
        for field, kind_of, expected in _OWN
        if (value := _member(extra, field, kind_of, expected, under="extra.")) is not None
    }
    if "created_at" not in own and (start := _ctrf_test_start(test)) is not None:
        own["created_at"] = start.isoformat()
    unnamed = _member(extra, "no_test_id", bool, "a boolean", under="extra.")  # export's mark
    return from_dict(
        TestResult,
        {
            "test_type": TestType.UNIT if kind is None else kind,
            "status": _raw_status(raw, given, status),
            "execution_time": _ctrf_seconds(test, extra),
            "error_message": "\n".join(text for text in (message, trace) if text) or None,
            "output": _ctrf_lines(test, "stdout"),
            "metadata": metadata,
            "test_id": None if unnamed else name,
            **own,
        },
    ), "created_at" in own


def _raw_status(raw: str | None, given: object, status: TestStatus) -> TestStatus:
    """Give the status a `rawStatus` names, where export writes the CTRF `status` given for it.

    So `timeout` and `error` come back apart within `failed`; a `rawStatus` of another tool's
    (`timedOut`), or one that the `status` contradicts (`passed` in a `failed` test, Mocha's
    and Jest's `pending` for a skipped one), leaves the `status`.
    """
    named = None if raw is None else TEST_STATUSES.get(raw)
    return named if named is not None and TO_CTRF[named] == given else status


_OWN: Final[tuple[tuple[str, type[object], str], ...]] = (
    ("memory_usage", int, "an integer"),
    ("test_cases_passed", int, "an integer"),
    ("test_cases_total", int, "an integer"),
    ("created_at", str, "an ISO 8601 time"),
)
"""The fields of a result that CTRF has no member for, under `extra`, with their JSON type."""


def _ctrf_seconds(test: dict[str, object], extra: dict[str, object]) -> float:
    """Give a test's seconds: exact under `extra` as export writes them, else its `duration`."""
    seconds = extra.get("execution_time")
    if seconds is None:
        duration = test.get("duration", 0)
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise TypeError(f"duration must be a number of milliseconds, got {_shown(duration)}")
        try:
            return duration / 1000
        except OverflowError:  # an int of hundreds of digits; a smaller one the model refuses
            limit = MAX_EXECUTION_TIME * 1000
            raise ValueError(
                f"duration must be at most {limit:g} milliseconds, got {_shown(duration)}"
            ) from None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"extra.execution_time must be a number of seconds, got {_shown(seconds)}")
    return seconds


def _ctrf_lines(test: dict[str, object], name: str) -> str | None:
    """Give a test's `stdout` or `stderr`, an array of strings, as one text of lines."""
    lines = _member(test, name, list, "an array of strings")
    if lines is None:
        return None
    for number, line in enumerate(lines):
        if not isinstance(line, str):
            raise TypeError(f"{name}[{number}] must be a string, got {_shown(line)}")
    return "\n".join(lines)


async def import_jsonl(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObjectInput | None = None
) -> Run:
    """Import JSON Lines of result dicts (as `to_dict` gives them) as one new run.

    Each line's `id` and `run_id` are dropped: the results are new, and belong to the new run,
    which spans their `created_at` times. A line without one takes the run's start.
    """
    path, run = import_arguments("import_jsonl", db, path, labels)
    results: list[TestResult] = []
    seen: dict[str, int] = {}  # each test id, with the line that gave it
    timeless = []  # the results whose line gave no time
    span: tuple[dt.datetime, dt.datetime] | None = None  # the lines' times, earliest and latest
    for number, line in _lines(await _read_text(path)):
        if skip(line, 0) == len(line):  # JSON's white space only: `strip` takes \x1c, \u3000
            continue
        try:
            if len(line) > OFF_LOOP_SIZE:  # read and checked in one call, one held the loop
                result, own_time = await off_loop(functools.partial(_jsonl_result, line))
            else:
                result, own_time = _jsonl_result(line)
        except Exception as error:  # noqa: BLE001  # json's, cattrs' and the model's errors alike
            raise ReportError(path, number, _reason(error)) from None
        _note_id(path, seen, result, number, lines=True)
        results.append(result)
        if own_time:
            span = _widened(span, (result.created_at, result.created_at))
        else:
            timeless.append(result)
        await share_loop()  # tens of microseconds a line: thousands would hold the loop
    span = span or (run.started_at, run.started_at)
    await _place_timeless(timeless, span[0])
    return await _store(db, timed_run(path, run, span), results)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Give each line of a text with its number, as splitting it at each LF and counting would.

    One line at a time: a split of a whole file of megabytes holds the loop in one call.
    """
    start = 0
    for number in itertools.count(1):
        end = text.find("\n", start)
        if end < 0:
            yield number, text[start:]
            return
        yield number, text[start:end]
        start = end + 1


def _jsonl_result(line: str) -> tuple[TestResult, bool]:
    """Read one line's result; the flag says whether the line gave its time.

    A long line is read an item at a time (`TextValues.walked`): in a worker thread, the GIL
    is let go between items.
    """
    start = skip(line, 0)  # as `json.loads`, in CTRF's words where it fails
    if len(line) > OFF_LOOP_SIZE:
        data, end = decode(line, start, TextValues(line).walked)
    else:
        data, end = decode(line, start)
    ended(line, end)
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {type(data).__name__}")
    data.pop("id", None)
    data.pop("run_id", None)
    return from_dict(TestResult, data), "created_at" in data


def _reason(error: Exception) -> str:
    """Say what is wrong, from cattrs' grouped errors too."""
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg}"
    leaves: list[BaseException] = [error]
    while isinstance(leaves[0], BaseExceptionGroup):
        leaves = list(leaves[0].exceptions)
    return str(leaves[0]) or type(leaves[0]).__name__
