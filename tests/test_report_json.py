"""CTRF and JSON Lines in and out: one run per file, bad files refused whole, round trips."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Final

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _report_helpers import assert_nothing_written
from persistence import (
    Database,
    ReportError,
    Run,
    TestResult,
    TestStatus,
    all_results,
    report_json,
    save_results,
    save_run,
    to_dict,
)
from persistence.report_json import export_ctrf, export_jsonl, import_ctrf, import_jsonl
from strategies import ON_DATABASE
from strategies.values import results

CTRF: Final = {
    "results": {
        "tool": {"name": "jest"},
        "summary": {"tests": 3, "passed": 1, "failed": 1, "skipped": 1, "pending": 0, "other": 0},
        "tests": [
            {"name": "adds", "status": "passed", "duration": 12},
            {
                "name": "divides",
                "status": "failed",
                "duration": 30,
                "message": "want 2, got 3",
                "stdout": ["line 1", "line 2"],
            },
            {"name": "waits", "status": "skipped", "duration": 0},
        ],
    }
}


async def test_a_ctrf_report_imports_as_one_run(db: Database, tmp_path: Path) -> None:
    """Names, statuses (skipped kept apart), durations in ms, messages and stdout are read."""
    path = tmp_path / "ctrf.json"
    path.write_text(json.dumps(CTRF))
    run = await import_ctrf(db, path, labels={"commit": "abc"})
    results = sorted(await all_results(db), key=lambda r: r.id or 0)
    assert [(r.test_id, r.status, r.execution_time) for r in results] == [
        ("adds", TestStatus.PASSED, 0.012),
        ("divides", TestStatus.FAILED, 0.03),
        ("waits", TestStatus.SKIPPED, 0.0),
    ]
    assert results[1].error_message == "want 2, got 3"
    assert results[1].output == "line 1\nline 2"
    assert {r.run_id for r in results} == {run.id}


async def test_a_ctrf_trace_and_stderr_are_kept(db: Database, tmp_path: Path) -> None:
    """A test's `trace` beside its `message`, and its `stderr`, are imported, and exported again.

    The trace was dropped when a message was there, and `stderr` was never read. The lines of
    `stderr` are kept where a JUnit import keeps `<system-err>`: `metadata["system_err"]`.
    """
    path = tmp_path / "ctrf.json"
    test = {
        "name": "divides",
        "status": "failed",
        "message": "want 2, got 3",
        "trace": "at divide (math.js:3)",
        "stderr": ["warning: slow", "warning: slower"],
    }
    path.write_text(_ctrf_with(test))
    run = await import_ctrf(db, path)
    result = next(r for r in await all_results(db) if r.test_id == "divides")
    assert result.error_message == "want 2, got 3\nat divide (math.js:3)"
    assert result.metadata == {"system_err": "warning: slow\nwarning: slower"}
    assert run.id is not None
    exported = json.loads(await export_ctrf(db, run.id))
    written = next(t for t in exported["results"]["tests"] if t["name"] == "divides")
    assert written["stderr"] == ["warning: slow", "warning: slower"]
    assert written["message"] == "want 2, got 3\nat divide (math.js:3)"


def _ctrf_with(test: object) -> str:
    return json.dumps({"results": {"tests": [{"name": "ok", "status": "passed"}, test]}})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param('{"results": {"tests": [', "not JSON", id="truncated"),
        pytest.param('{"results": {}}', "no results.tests", id="not-ctrf"),
        pytest.param(
            _ctrf_with({"name": "x", "status": "maybe"}),
            r"tests\[1\]: test 'x': status",
            id="bad-status",
        ),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed", "duration": -1}),
            "must not be negative",
            id="negative-time",
        ),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed", "duration": 1e400}),
            "must be",
            id="huge-time",
        ),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed", "duration": math.nan}),
            "finite",
            id="nan-time",
        ),
        pytest.param(
            _ctrf_with({"name": "x" * 100_000, "status": "passed"}), "1024", id="100kb-name"
        ),
        pytest.param(
            '{"results": {"tests": [{"name": "caf\xe9", "status": "passed"}]}}'.encode("latin-1"),
            "not UTF-8",
            id="wrong-encoding",
        ),
        pytest.param(_ctrf_with({"name": "ok", "status": "failed"}), "appears twice", id="twice"),
        pytest.param('{"results": 5}', "no results.tests", id="results-not-an-object"),
        pytest.param(_ctrf_with({"name": "a\x00b", "status": "passed"}), "NUL", id="nul-name"),
        pytest.param(
            _ctrf_with({"name": "x", "status": "failed", "message": "\ud800"}),
            "surrogate",
            id="surrogate-message",
        ),
        pytest.param('{"results": [{"tests": []}]}', "no results.tests", id="results-a-list"),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed", "duration": 10**400}),
            "duration must be at most",
            id="400-digit-duration",
        ),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed"}).replace('"x"', '"x", "n": ' + "9" * 5000),
            "not JSON",
            id="5000-digit-number",
        ),
        pytest.param(
            _ctrf_with({"name": "x", "status": "passed"}).replace(
                '"x"', '"x", "n": ' + "[" * 100_000 + "]" * 100_000
            ),
            "not JSON",
            id="nested-100000-deep",
        ),
    ],
)
async def test_a_bad_ctrf_file_writes_nothing(
    db: Database, tmp_path: Path, text: str | bytes, problem: str
) -> None:
    """Each is a ReportError naming the file and the problem; no run, no result."""
    path = tmp_path / "ctrf.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ReportError, match=problem) as caught:
        await import_ctrf(db, path)
    assert str(caught.value).startswith(str(path))
    await assert_nothing_written(db)


async def test_a_test_twice_in_a_ctrf_file_is_named_by_both_indexes(
    db: Database, tmp_path: Path
) -> None:
    """The error says which two entries of results.tests hold the same test, as for a line."""
    path = tmp_path / "ctrf.json"
    path.write_text(_ctrf_with({"name": "ok", "status": "failed"}))
    with pytest.raises(ReportError) as caught:
        await import_ctrf(db, path)
    assert str(caught.value) == (
        f"{path}: results.tests[1]: test 'ok' appears twice: first at results.tests[0]"
    )
    await assert_nothing_written(db)


_UNREADABLE_VALUES = [
    pytest.param("9" * 5000, "a number too long", id="5000-digits"),
    pytest.param("[" * 100_000 + "]" * 100_000, "nested too deep", id="deep"),
]
"""Values that `json` refuses past its own limits, and what the import says of each."""


@pytest.mark.parametrize(("value", "said"), _UNREADABLE_VALUES)
async def test_a_ctrf_value_json_cannot_read_is_named_by_its_line(
    sqlite_db: Database, tmp_path: Path, value: str, said: str
) -> None:
    """A number of 5,000 digits, or arrays nested 100,000 deep, is refused at its test's line.

    The error named no place at all (`ctrf.json: not JSON that can be read: Exceeds the
    limit (4300 digits)...; use sys.set_int_max_str_digits() to increase the limit`).
    """
    path = tmp_path / "ctrf.json"
    for where, line in (("test", 5), ("document", 1)):
        test = '{"name": "b", "status": "passed", "extra": {"metadata": {"x": ' + value + "}}}"
        tests = '{"name": "a", "status": "passed"},\n\n  ' + (
            test if where == "test" else '{"name": "b", "status": "passed"}'
        )
        head = '{"x": ' + (value if where == "document" else "1") + ",\n"
        path.write_text(head + '"results": {\n"tests": [' + tests + "]}}")
        with pytest.raises(ReportError) as caught:
            await import_ctrf(sqlite_db, path)
        assert caught.value.line == line, where
        assert caught.value.reason.startswith(f"not JSON: {said}"), where
        assert "sys." not in caught.value.reason
        await assert_nothing_written(sqlite_db)


_CTRF_STATUSES: Final = "['failed', 'other', 'passed', 'pending', 'skipped']"


@pytest.mark.parametrize(
    ("member", "value", "said"),
    [
        pytest.param(
            "status", [], f"status must be one of {_CTRF_STATUSES}, got an array", id="status-array"
        ),
        pytest.param(
            "status",
            {},
            f"status must be one of {_CTRF_STATUSES}, got an object",
            id="status-object",
        ),
        pytest.param(
            "message", 5, "message must be a string, got the number 5", id="message-number"
        ),
        pytest.param(
            "message", ["a"], "message must be a string, got an array", id="message-array"
        ),
        pytest.param(
            "trace", {"at": 1}, "trace must be a string, got an object", id="trace-object"
        ),
        pytest.param(
            "stdout",
            ["a", 1],
            "stdout[1] must be a string, got the number 1",
            id="stdout-number-line",
        ),
        pytest.param(
            "stdout", [None], "stdout[0] must be a string, got null", id="stdout-null-line"
        ),
        pytest.param(
            "extra",
            {"test_type": []},
            "extra.test_type must be one of ['integration', 'stress', 'tle', 'unit'], got an array",
            id="test-type-array",
        ),
        pytest.param(
            "extra", {"test_type": True}, "extra.test_type must be one of", id="test-type-true"
        ),
        pytest.param(
            "extra",
            {"execution_time": "1"},
            'extra.execution_time must be a number of seconds, got the string "1"',
            id="execution-time-string",
        ),
        pytest.param(
            "extra",
            {"metadata": []},
            "extra.metadata must be an object, got an array",
            id="metadata-array",
        ),
        pytest.param(  # was only `integer division result too large for a float`
            "duration",
            10**400,
            "duration must be at most 1e+15 milliseconds, got the number 1000000",
            id="duration-past-a-float",
        ),
        pytest.param(
            "extra",
            {"memory_usage": "1"},
            'extra.memory_usage must be an integer, got the string "1"',
            id="memory-string",
        ),
        pytest.param(
            "extra",
            {"created_at": 5},
            "extra.created_at must be an ISO 8601 time, got the number 5",
            id="created-at-number",
        ),
        pytest.param(
            "extra",
            {"created_at": "today"},
            "TestResult.created_at: 'today' is not an ISO 8601 datetime",
            id="created-at-word",
        ),
    ],
)
async def test_a_ctrf_member_of_another_json_type_is_named_with_its_test(
    sqlite_db: Database, tmp_path: Path, member: str, value: object, said: str
) -> None:
    """The error names the test, the member and what it must be: no bare `unhashable type`.

    The check comes before any call to the database, the same on both engines: SQLite's only.
    """
    path = tmp_path / "ctrf.json"
    path.write_text(_ctrf_with({"name": "x", "status": "failed", member: value}))
    with pytest.raises(ReportError) as caught:
        await import_ctrf(sqlite_db, path)
    assert str(caught.value).startswith(f"{path}: results.tests[1]: test 'x': {said}")
    await assert_nothing_written(sqlite_db)


@pytest.mark.parametrize(
    ("member", "value", "said"),
    [
        pytest.param(
            "stdout",
            "one line",
            'stdout must be an array of strings, got the string "one line"',
            id="stdout-string",
        ),
        pytest.param(
            "stdout",
            {"0": "a"},
            "stdout must be an array of strings, got an object",
            id="stdout-object",
        ),
        pytest.param(
            "stdout", 7, "stdout must be an array of strings, got the number 7", id="stdout-number"
        ),
        pytest.param("extra", ["x"], "extra must be an object, got an array", id="extra-array"),
        pytest.param(
            "extra", "x", 'extra must be an object, got the string "x"', id="extra-string"
        ),
        pytest.param(
            "rawStatus", 3, "rawStatus must be a string, got the number 3", id="raw-number"
        ),
        pytest.param(
            "rawStatus", ["timeout"], "rawStatus must be a string, got an array", id="raw-array"
        ),
    ],
)
async def test_a_ctrf_member_that_would_be_dropped_is_refused(
    sqlite_db: Database, tmp_path: Path, member: str, value: object, said: str
) -> None:
    """A member of a type the CTRF schema does not allow was left out without a word."""
    path = tmp_path / "ctrf.json"
    path.write_text(_ctrf_with({"name": "x", "status": "failed", member: value}))
    with pytest.raises(ReportError) as caught:
        await import_ctrf(sqlite_db, path)
    assert str(caught.value) == f"{path}: results.tests[1]: test 'x': {said}"
    await assert_nothing_written(sqlite_db)


async def test_a_ctrf_status_is_checked_beside_a_raw_status(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """CTRF requires `status`: a known `rawStatus` does not stand in for a wrong one."""
    path = tmp_path / "ctrf.json"
    path.write_text(_ctrf_with({"name": "x", "status": [], "rawStatus": "timeout"}))
    with pytest.raises(ReportError, match=r"tests\[1\]: test 'x': status must be one of"):
        await import_ctrf(sqlite_db, path)
    await assert_nothing_written(sqlite_db)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param('{"test_type": "unit", "status": "passed"', "not JSON", id="truncated"),
        pytest.param('{"test_type": "unit", "status": "won"}', "status", id="bad-status"),
        pytest.param(
            '{"test_type": "unit", "status": "passed", "execution_time": -1}',
            "must not be negative",
            id="negative-time",
        ),
        pytest.param(
            '{"test_type": "unit", "status": "passed", "execution_time": NaN}',
            "finite",
            id="nan-time",
        ),
        pytest.param(
            '{"test_type": "unit", "status": "passed", "execution_time": 1e400}',
            "finite",
            id="huge-time",
        ),
        pytest.param(
            '{"test_type": "unit", "status": "passed", "test_id": "%s"}' % ("x" * 100_000),
            "1024",
            id="100kb-name",
        ),
        pytest.param(
            '{"test_type": "unit", "status": "passed", "test_id": "a"}', "twice", id="twice"
        ),
        pytest.param("[1, 2]", "expected an object", id="not-an-object"),
    ],
)
async def test_a_bad_json_lines_file_writes_nothing(
    db: Database, tmp_path: Path, line: str, problem: str
) -> None:
    """The error names the file and the line of the bad record; nothing is written."""
    path = tmp_path / "results.jsonl"
    good = '{"test_type": "unit", "status": "passed", "test_id": "a"}'
    path.write_text(f"{good}\n\n{line}\n")
    with pytest.raises(ReportError, match=problem) as caught:
        await import_jsonl(db, path)
    assert caught.value.line == 3
    await assert_nothing_written(db)


@pytest.mark.parametrize(("value", "said"), _UNREADABLE_VALUES)
async def test_a_json_lines_value_json_cannot_read_is_said_as_for_ctrf(
    db: Database, tmp_path: Path, value: str, said: str
) -> None:
    """A line's value that `json` cannot read is refused at its line, in CTRF's own words.

    A number of 5,000 digits showed Python's advice, `use sys.set_int_max_str_digits() to
    increase the limit`; arrays nested 100,000 deep, `maximum recursion depth exceeded`.
    """
    path = tmp_path / "results.jsonl"
    good = '{"test_type": "unit", "status": "passed", "test_id": "a"}'
    path.write_text(f'{good}\n\n{{"test_type": "unit", "metadata": {{"x": {value}}}}}\n')
    with pytest.raises(ReportError) as caught:
        await import_jsonl(db, path)
    assert caught.value.line == 3
    ctrf = tmp_path / "ctrf.json"
    ctrf.write_text(
        _ctrf_with({"name": "b", "status": "passed", "extra": {"x": 0}}).replace(
            '"x": 0', '"x": ' + value
        )
    )
    with pytest.raises(ReportError) as as_ctrf:
        await import_ctrf(db, ctrf)
    assert caught.value.reason == as_ctrf.value.reason
    assert caught.value.reason.startswith(f"not JSON: {said}")
    assert "sys." not in caught.value.reason
    await assert_nothing_written(db)


@pytest.mark.parametrize("form", ["ctrf", "jsonl"])
async def test_a_missing_file_is_said_to_be_unreadable_and_nothing_more(
    db: Database, tmp_path: Path, form: str
) -> None:
    """The error is the file's own: `cannot read`, not wrapped in a complaint about its JSON."""
    path = tmp_path / "missing.json"
    with pytest.raises(ReportError) as caught:
        await (import_ctrf if form == "ctrf" else import_jsonl)(db, path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"
    await assert_nothing_written(db)


async def test_a_json_lines_file_in_another_encoding_is_refused(
    db: Database, tmp_path: Path
) -> None:
    """Latin-1 bytes are not UTF-8: refused by name, nothing written."""
    path = tmp_path / "results.jsonl"
    path.write_bytes(
        '{"test_type": "unit", "status": "passed", "output": "caf\xe9"}'.encode("latin-1")
    )
    with pytest.raises(ReportError, match="not UTF-8"):
        await import_jsonl(db, path)
    await assert_nothing_written(db)


async def test_a_json_report_is_decoded_in_pieces_and_names_the_files_byte(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read a few bytes at a time: a character across two pieces is whole, a bad byte named.

    It was decoded in one call, the GIL held throughout: 206 MB held the loop 640 ms.
    """
    monkeypatch.setattr(report_json, "_DECODED_AT_ONCE", 3, raising=False)  # before: missing
    line = '{"test_type": "unit", "status": "passed", "output": "caf\u00e9 \u20ac \U0001f600"}'
    path = tmp_path / "results.jsonl"
    path.write_bytes(line.encode())
    await import_jsonl(db, path)
    [result] = await all_results(db)
    assert result.output == "caf\u00e9 \u20ac \U0001f600"
    bad = line.encode().replace("caf\u00e9".encode(), b"caf\xe9")
    path.write_bytes(bad)
    with pytest.raises(
        ReportError, match=f"not UTF-8: invalid continuation byte at byte {bad.index(0xE9)}$"
    ):
        await import_jsonl(db, path)
    assert len(await all_results(db)) == 1


async def test_a_json_report_past_its_bound_is_refused_before_it_is_read(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read whole, a sparse file of a GiB took 2 GB of memory, then failed as no JSON."""
    monkeypatch.setattr(report_json, "MAX_JSON_REPORT_BYTES", 1_000, raising=False)
    line = '{"test_type": "unit", "status": "passed"}\n'
    path = tmp_path / "results.jsonl"
    path.write_text(line * 30, encoding="utf-8")
    with pytest.raises(
        ReportError, match=f"{len(line) * 30:,} bytes, where a JSON report is read up to 1,000"
    ):
        await import_jsonl(db, path)
    await assert_nothing_written(db)
    path.write_text(line * 20, encoding="utf-8")
    await import_jsonl(db, path)
    assert len(await all_results(db)) == 20


@ON_DATABASE
@given(rows=st.lists(results(), min_size=1, max_size=6))
async def test_ctrf_and_json_lines_round_trip(
    db: Database, tmp_path: Path, rows: list[TestResult]
) -> None:
    """A run exported as CTRF or JSON Lines imports again as the same results, every field.

    CTRF lost the memory used, the test case counts and the time of each result: imported
    again, they were 0, 0, 0 and the time of the import.
    """
    run = await save_run(db, Run())
    await save_results(
        db, [attrs.evolve(row, run_id=run.id, test_id=f"t{i}") for i, row in enumerate(rows)]
    )
    assert run.id is not None

    def shape(run_id: int | None, results: list[TestResult]) -> list[dict[str, object]]:
        kept = sorted((r for r in results if r.run_id == run_id), key=lambda r: r.id or 0)
        return [{k: v for k, v in to_dict(r).items() if k not in ("id", "run_id")} for r in kept]

    for export, load, name in (
        (export_ctrf, import_ctrf, "c.json"),
        (export_jsonl, import_jsonl, "r.jsonl"),
    ):
        path = tmp_path / name
        path.write_text(await export(db, run.id), encoding="utf-8")
        again = await load(db, path)
        stored = await all_results(db)
        expected = shape(run.id, stored)
        if load is import_ctrf:  # CTRF has no empty message
            for item in expected:
                item["error_message"] = item["error_message"] or None
        assert shape(again.id, stored) == expected, name


@pytest.mark.parametrize("form", ["ctrf", "jsonl"])
async def test_a_byte_order_mark_is_read_past(db: Database, tmp_path: Path, form: str) -> None:
    """A UTF-8 file that starts with a byte order mark imports as JUnit's does, lines kept.

    It was refused: "not JSON: Unexpected UTF-8 BOM".
    """
    path = tmp_path / "report"
    if form == "ctrf":
        path.write_bytes(b"\xef\xbb\xbf" + json.dumps(CTRF).encode())
        run = await import_ctrf(db, path)
    else:
        path.write_bytes(
            b'\xef\xbb\xbf{"test_type": "unit", "status": "passed", "test_id": "a"}\n'
            b'{"test_type": "unit", "status": "won", "test_id": "b"}\n'
        )
        with pytest.raises(ReportError) as caught:
            await import_jsonl(db, path)
        assert caught.value.line == 2  # the first line is read, and the second still line 2
        path.write_bytes(path.read_bytes().replace(b"won", b"failed"))
        run = await import_jsonl(db, path)
    results = await all_results(db)
    assert {r.run_id for r in results} == {run.id}
    assert [r.test_id for r in sorted(results, key=lambda r: r.id or 0)][:2] == (
        ["adds", "divides"] if form == "ctrf" else ["a", "b"]
    )


@pytest.mark.parametrize("form", ["ctrf", "jsonl"])
async def test_an_import_cancelled_while_it_frees_its_results_writes_nothing(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """The results are freed a slice at a time before the commit: a cancel then rolls back.

    Freed after it, a cancel there raised CancelledError for a run that was saved, its id lost.
    """
    freeing = asyncio.Event()

    async def slow_drop(items: list[object]) -> None:
        freeing.set()
        await asyncio.sleep(10)
        items.clear()

    monkeypatch.setattr(report_json, "drop_in_slices", slow_drop)
    path = tmp_path / "report"
    if form == "ctrf":
        path.write_text(json.dumps(CTRF))
    else:
        path.write_text('{"test_type": "unit", "status": "passed", "test_id": "a"}\n')
    task = asyncio.ensure_future((import_ctrf if form == "ctrf" else import_jsonl)(db, path))
    await asyncio.wait_for(freeing.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_nothing_written(db)
