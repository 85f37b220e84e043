"""The run-history commands: import, runs, compare (exit 1 on new failures), flaky and the rest."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Final

import attrs
import pytest

from _cli_helpers import ok
from _history_oracle import store_times
from persistence import (
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    keep_counterexample,
    open_counterexample_store,
    save_results,
    save_run,
)
from persistence.__main__ import main
from persistence._cli_history import sparkline
from persistence._interface import JsonObject
from persistence.storage import open_storage

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
REPORT: Final = """<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="s">
  <testcase classname="tests.test_io" name="test_read" time="{read}">{outcome}</testcase>
  <testcase classname="tests.test_io" name="test_write" time="0.2"/>
</testsuite>
"""


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command in this process: its exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_sparkline_draws_lowest_to_highest() -> None:
    """Eighth-blocks scaled between the smallest and the largest value."""
    assert sparkline([]) == ""
    assert sparkline([1.0, 1.0]) == "▁▁"
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"


def test_import_then_compare_flaky_and_history(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """Two imports of one commit: compare exits 1 on the new failure; flaky finds the test."""
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    for index, outcome in enumerate(("", '<failure message="boom">trace</failure>')):
        path = tmp_path / f"report{index}.xml"
        path.write_text(REPORT.format(read=0.1 + index, outcome=outcome), encoding="utf-8")
        code, out, _ = run(capsys, "import", str(path), "--label", "commit=abc", *db)
        assert code == 0
        assert out.strip() == f"imported {path} as run {index + 1}"

    code, out, _ = run(capsys, "runs", *db)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["id", "2", "1"]
    assert "commit=abc" in out

    code, out, _ = run(capsys, "compare", *db)
    assert code == 1
    assert "new_failure  tests.test_io::test_read" in out
    code, out, _ = run(capsys, "compare", "2", "1", "--json", *db)
    assert code == 0
    assert [c["change"] for c in json.loads(out)["changes"]] == ["fixed"]

    code, out, _ = run(capsys, "flaky", "--json", *db)
    assert code == 0
    assert [(f["test_id"], f["flip_rate"]) for f in json.loads(out)["flaky"]] == [
        ("tests.test_io::test_read", 1.0)
    ]
    code, out, _ = run(capsys, "test-history", "tests.test_io::test_write", *db)
    assert code == 0
    assert out.splitlines()[0] == "tests.test_io::test_write  ▁▁"
    assert "p50 0.200s" in out

    code, out, _ = run(capsys, "export", "2", "--format", "ctrf", *db)
    assert code == 0
    assert [t["status"] for t in json.loads(out)["results"]["tests"]] == ["failed", "passed"]
    assert run(capsys, "status", *db)[0] == 0  # the migration commands work as before


def test_an_export_to_stdout_of_a_run_of_no_result_is_empty_as_json_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """JSON Lines of no result hold no line: stdout is empty, as the `--output` file is.

    It printed one blank line, which a reader of JSON Lines takes for a bad record.
    """
    database = tmp_path / "app.db"
    db = ["--database", str(database)]
    ok("migrate", *db)

    async def empty_run() -> int:
        async with connect(database) as opened:
            run_id = (await save_run(opened, Run())).id
        assert run_id is not None
        return run_id

    run_id = str(asyncio.run(empty_run()))
    assert run(capsys, "export", run_id, "--format", "jsonl", *db) == (0, "", "")
    ok("export", run_id, "--format", "jsonl", "--output", str(tmp_path / "out.jsonl"), *db)
    assert (tmp_path / "out.jsonl").read_bytes() == b""
    code, out, _ = run(capsys, "export", run_id, "--format", "ctrf", *db)
    assert code == 0
    assert out.endswith("}\n")
    assert json.loads(out)["results"]["tests"] == []


_TIMED_SUITE: Final = """<testsuite name="AppTest" tests="1" time="{time}">
  <testcase classname="com.example.AppTest" name="works" time="{time}">{outcome}</testcase>
</testsuite>
"""


def test_compare_takes_the_two_runs_imported_last_whatever_their_times(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """Reports without times of their own (Surefire's, Go's) end at their import.

    The head took 95 s, the base 12.5 s, imported a moment apart: the head started first,
    and `compare` took it for the base, its new failure `fixed`, exit 0.
    """
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    for name, time, outcome in (("base", 12.5, ""), ("head", 95.0, "<failure>boom</failure>")):
        path = tmp_path / f"{name}.xml"
        path.write_text(_TIMED_SUITE.format(time=time, outcome=outcome), encoding="utf-8")
        assert run(capsys, "import", str(path), *db)[0] == 0
    code, out, _ = run(capsys, "runs", *db)
    assert [line.split()[0] for line in out.splitlines()] == ["id", "1", "2"]  # by start
    code, out, _ = run(capsys, "compare", *db)
    assert code == 1, out
    assert out.splitlines()[0] == "run 1 -> run 2: 1 change(s), 1 new failure(s)"
    assert "new_failure  com.example.AppTest::works" in out


def test_runs_of_ids_zero_and_below_are_named_on_the_command_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`runs` lists a run that plain SQL gave the id 0 or -7; `compare` and `export` take it.

    Both refused the id as `not a run id: a whole number from 1 to 2**63 - 1`.
    """
    database = tmp_path / "app.db"
    db = ["--database", str(database)]
    assert run(capsys, "migrate", *db)[0] == 0
    for name, time, outcome in (("base", 12.5, ""), ("head", 95.0, "<failure>boom</failure>")):
        path = tmp_path / f"{name}.xml"
        path.write_text(_TIMED_SUITE.format(time=time, outcome=outcome), encoding="utf-8")
        assert run(capsys, "import", str(path), *db)[0] == 0
    with contextlib.closing(sqlite3.connect(database)) as plain, plain:
        for old, new in ((1, -7), (2, 0)):
            plain.execute("UPDATE runs SET id = ? WHERE id = ?", (new, old))  # its results follow
            plain.execute("UPDATE test_results SET run_id = ? WHERE run_id = ?", (new, old))
    code, out, _ = run(capsys, "runs", *db)
    assert sorted(line.split()[0] for line in out.splitlines()[1:]) == ["-7", "0"]
    code, out, err = run(capsys, "compare", "-7", "0", *db)
    assert code == 1, err
    assert out.splitlines()[0] == "run -7 -> run 0: 1 change(s), 1 new failure(s)"
    code, out, err = run(capsys, "export", "-7", "--format", "jsonl", *db)
    assert code == 0, err
    assert len(out.splitlines()) == 1
    for bad in ("9223372036854775808", "-9223372036854775809", "1.0", "٣", "9" * 5000):
        with pytest.raises(SystemExit) as usage:
            main(["export", bad, *db])
        assert usage.value.code == 2
        assert "is not a run id: a whole number from -2**63 to 2**63 - 1" in capsys.readouterr().err


def test_compare_with_fewer_than_two_runs_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Exit 3 with one line on stderr; a bad import names the file and line, exit 3."""
    db = ["--database", str(tmp_path / "app.db")]
    assert run(capsys, "migrate", *db)[0] == 0
    code, _, err = run(capsys, "compare", *db)
    assert code == 3
    assert err.startswith("persistence: error: Run not found")
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuite><testcase name='a' time='-1'/></testsuite>", encoding="utf-8")
    code, _, err = run(capsys, "import", str(bad), *db)
    assert code == 3
    assert f"{bad}:1: " in err
    assert json.loads(run(capsys, "runs", "--json", *db)[1]) == {"runs": []}
    with pytest.raises(SystemExit) as usage:
        main(["compare", "0", *db])  # a base without a head
    assert usage.value.code == 2


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["runs", "--limit", "10001"], "--limit"),
        (["test-history", "t", "--limit", "10001"], "--limit"),
        (["test-history", "t", "--last", "100001"], "--last"),
        (["counterexamples", "t", "--limit", "10001"], "--limit"),
        (["export", "9223372036854775808"], "RUN_ID"),
        (["compare", "1", "9223372036854775808"], "head"),
        (["test-history", ""], "TEST_ID"),
        (["test-history", "a\x00b"], "TEST_ID"),
        (["counterexamples", "t" * 1025], "TEST_ID"),
        (["compare", "1"], "BASE and HEAD"),
    ],
)
def test_an_argument_past_what_its_call_takes_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, arguments: list[str], named: str
) -> None:
    """Exit 2, naming the argument, before the database is opened: a malformed argument.

    The command line took any whole number and any text, and the call refused them once the
    database was open: exit 3, which says the command could not run.
    """
    with pytest.raises(SystemExit) as usage:
        main([*arguments, "--database", str(tmp_path / "never.db")])
    assert usage.value.code == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("fifo", "not a regular file"),
        ("zero", "not a regular file"),
        ("folder", "not a regular file"),
        ("missing", "cannot read"),
        ("400-digit-duration", "duration must be at most"),
        ("nested-100000-deep", "not JSON"),
    ],
)
def test_import_of_a_bad_path_or_file_fails_in_one_line_at_once(
    tmp_path: Path, kind: str, problem: str
) -> None:
    """A FIFO, /dev/zero, a folder or a hostile CTRF file: exit 3 at once, one line, no traceback.

    With --json too: nothing on stdout, and the one line on stderr names the problem.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    path = tmp_path / "report.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    elif kind == "folder":
        path.mkdir()
    elif kind == "400-digit-duration":
        path.write_text(
            '{"results": {"tests": [{"name": "a", "status": "passed", "duration": %s}]}}'
            % ("9" * 400)
        )
    elif kind == "nested-100000-deep":
        path.write_text('{"results": {"tests": ' + "[" * 100_000 + "]" * 100_000 + "}}")
    try:
        done = subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", "import", str(path), "--json", *db],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        if kind == "fifo":  # a reader still waiting gets a writer, and the end
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert (done.returncode, done.stdout) == (3, "")
    assert done.stderr.startswith("persistence: error: ")
    assert problem in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize("days", ["740000", "99999999999"])
def test_flaky_looking_back_further_than_the_calendar_reads_everything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, days: str
) -> None:
    """`--days` beyond year 1 looks back to the start of time, not into an OverflowError."""
    db = ["--database", str(tmp_path / "app.db")]
    assert run(capsys, "migrate", *db)[0] == 0
    code, out, err = run(capsys, "flaky", "--days", days, "--json", *db)
    assert (code, err) == (0, "")
    assert json.loads(out)["flaky"] == []


async def _keep_three(url: str, root: Path) -> None:
    """Keep three failures of one stress test on two distinct inputs, the second newest."""
    async with connect(url) as db:
        store = await open_counterexample_store(await open_storage(root))
        for case, got in ((b"1\n", b"x\n"), (b"2\n", b"y\n"), (b"1\n", b"z\n")):
            failed = TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id=STRESS)
            await keep_counterexample(db, store, failed, input=case, actual=got)


STRESS: Final = "solutions/a.cpp#stress"


def test_counterexamples_lists_inputs_newest_first_with_their_files(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """A table by default, JSON with --json; --storage gives each file's path, to replay."""
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    root = tmp_path / "files"
    asyncio.run(_keep_three(database_url, root))

    code, out, _ = run(capsys, "counterexamples", STRESS, *db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["last", "failed", "status", "failures", "size", "input"]
    assert [line.split()[-1] for line in lines[1:]] == [sha256(b"1\n"), sha256(b"2\n")]
    assert [line.split()[3] for line in lines[1:]] == ["2", "1"]

    code, out, _ = run(capsys, "counterexamples", STRESS, "--storage", str(root), "--json", *db)
    assert code == 0
    found = json.loads(out)["counterexamples"]
    assert [Path(c["input_file"]).read_bytes() for c in found] == [b"1\n", b"2\n"]
    assert [Path(c["actual_file"]).read_bytes() for c in found] == [b"z\n", b"y\n"]
    assert [c["expected_file"] for c in found] == [None, None]
    assert [(c["failures"], c["status"]) for c in found] == [(2, "failed"), (1, "failed")]

    code, out, _ = run(capsys, "counterexamples", STRESS, "--limit", "1", *db)
    assert code == 0
    assert len(out.splitlines()) == 2
    code, out, _ = run(capsys, "counterexamples", "no/such#test", "--json", *db)
    assert (code, json.loads(out)["counterexamples"]) == (0, [])

    code, _, err = run(capsys, "counterexamples", STRESS, "--storage", str(tmp_path), *db)
    assert code == 3  # a root that does not keep them: one line naming the missing file
    assert err.startswith("persistence: error: Counterexample file")
    assert str(tmp_path / ".cache" / "counterexamples" / sha256(b"1\n")[:2]) in err
    with pytest.raises(SystemExit) as usage:
        main(["counterexamples", STRESS, "--limit", "0", *db])
    assert usage.value.code == 2


def sha256(data: bytes) -> str:
    """The hash that names a kept file."""
    return hashlib.sha256(data).hexdigest()


_LIMITED: Final = """
import resource, signal, sys
from persistence.__main__ import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
sys.exit(main(sys.argv[2:]))
"""


def test_an_export_that_cannot_be_written_whole_leaves_the_old_file(tmp_path: Path) -> None:
    """A disk that fills up part way (files limited to 64 kB): the old export stays, whole.

    The file was written in place: the old one was cut short to the 64 kB of the new one
    that fitted, and the command still said why on one line.
    """
    db = ["--database", str(tmp_path / "app.db")]
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(5_000))
    report = tmp_path / "report.xml"
    report.write_text(f'<testsuite name="s">\n{cases}\n</testsuite>')
    ok("migrate", *db)
    ok("import", str(report), *db)
    old = tmp_path / "out" / "run.xml"
    old.parent.mkdir()
    old.write_text("the last export\n")
    old.chmod(0o640)
    done = subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-c", _LIMITED, str(64 << 10), "export", "1", "--output", str(old), *db],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (3, "")
    assert old.read_text() == "the last export\n"
    assert done.stderr == f"persistence: error: File too large: {old}\n"
    assert [p.name for p in old.parent.iterdir()] == ["run.xml"]  # no part of the new one
    ok("export", "1", "--output", str(old), *db)
    assert old.read_text().count("<testcase ") == 5_000
    assert stat.S_IMODE(old.stat().st_mode) == 0o640  # the mode of the file it replaced
    assert [p.name for p in old.parent.iterdir()] == ["run.xml"]


@pytest.mark.parametrize("kind", ["symlink", "device", "new"])
def test_an_export_writes_through_a_symlink_or_a_device(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """A symlink's target is written and the link kept; /dev/null is written, not replaced."""
    db = ["--database", str(tmp_path / "app.db")]
    report = tmp_path / "report.xml"
    report.write_text(REPORT.format(read="0.1", outcome=""))
    assert run(capsys, "migrate", *db)[0] == 0
    assert run(capsys, "import", str(report), *db)[0] == 0
    target = tmp_path / "real.xml"
    output = tmp_path / "link.xml"
    if kind == "symlink":
        target.write_text("old")
        output.symlink_to(target)
    elif kind == "device":
        output.symlink_to("/dev/null")
    else:
        output = target
    assert run(capsys, "export", "1", "--output", str(output), *db) == (0, "", "")
    if kind == "device":
        assert Path("/dev/null").is_char_device()
    else:
        assert output.read_text().count("<testcase ") == 2
        assert target.read_text().count("<testcase ") == 2
        assert output.is_symlink() == (kind == "symlink")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith("partial")) == []


LOOKALIKES: Final = [
    *("a", "a ", "é", "e\u0301", "x\x1b[2Jy", "one\ntwo", "zero\u200bwidth"),
    *("cgj\u034f", "filler\u3164", "braille\u2800", "selector\ufe0f", "lead\u115fer"),
]
"""Test ids that print alike, or that act on the terminal: each is another test."""


async def _store_lookalikes(url: str) -> None:
    """Two runs of commit c1: each look-alike passes in the first and fails in the second."""
    async with connect(url) as db:
        for status in (TestStatus.PASSED, TestStatus.FAILED):
            run = await save_run(db, Run(labels={"commit": "c1", "note": "a\x1b[31m"}))
            await save_results(
                db,
                [
                    TestResult(test_type=TestType.UNIT, status=status, run_id=run.id, test_id=k)
                    for k in LOOKALIKES
                ],
            )


def test_tables_show_test_ids_that_print_alike_apart_and_act_on_no_terminal(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    r"""An odd test id or label is shown escaped, as Python writes it; a plain one as it is.

    Odd: a control character, a space at either end, a decomposed accent, an invisible
    character. An imported report names its tests: `x\x1b[2Jy` cleared the terminal of
    whoever ran `compare`, `one\ntwo` split its row in two, and `é` and `e\u0301` (or `a`
    and `a `) made two rows that read the same. Invisible characters that Python counts as
    printable (a combining grapheme joiner, Hangul fillers, a blank braille pattern, a
    variation selector) were shown raw.
    """
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store_lookalikes(database_url))
    shown = ["a", "'a '", "é", "'e\\u0301'", "'x\\x1b[2Jy'", "'one\\ntwo'", "'zero\\u200bwidth'"]
    shown += [ascii(text) for text in LOOKALIKES[-5:]]
    for command, column in (("compare", 1), ("flaky", 1)):
        code, out, _ = run(capsys, command, *db)
        assert code == (1 if command == "compare" else 0)
        rows = out.splitlines()[-len(LOOKALIKES) :]
        assert sorted(re.split("  +", row)[column] for row in rows) == sorted(shown)
        assert "\x1b" not in out
        assert len(out.splitlines()) == len(LOOKALIKES) + (2 if command == "compare" else 1)
    code, out, _ = run(capsys, "runs", *db)
    assert "note='a\\x1b[31m'" in out
    assert "\x1b" not in out


async def _store_times(url: str, times: list[float]) -> None:
    """Passed results of test `t`, one a second from T0, in this order (`store_times`)."""
    async with connect(url) as db:
        await store_times(db, times)


def test_test_history_says_slower_past_the_floor_only(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """0 s then 0.001 s is not SLOWER by default; `--slower-floor 0` makes it so, as for compare."""
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store_times(database_url, [0.0, 0.0, 0.001]))
    code, out, _ = run(capsys, "test-history", "t", *db)
    assert code == 0
    assert "latest 0.001s  (last 3 passed)" in out
    code, out, _ = run(capsys, "test-history", "t", "--slower-floor", "0", *db)
    assert "latest 0.001s  SLOWER" in out
    code, out, _ = run(capsys, "test-history", "t", "--slower-floor", "0", "--json", *db)
    assert json.loads(out)["figures"]["slower"] is True
    for bad in (["--slower-floor", "-1"], ["--slower-ratio", "nan"]):
        with pytest.raises(SystemExit) as usage:
            main(["test-history", "t", *bad, *db])
        assert usage.value.code == 2


def test_test_history_takes_the_slower_ratio_as_compare_does(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """1 s, 1 s, then 2 s: SLOWER at the default ratio 1.5, not with `--slower-ratio 3`."""
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store_times(database_url, [1.0, 1.0, 2.0]))
    assert "latest 2.000s  SLOWER" in run(capsys, "test-history", "t", *db)[1]
    code, out, _ = run(capsys, "test-history", "t", "--slower-ratio", "3", *db)
    assert code == 0
    assert "latest 2.000s  (last 3 passed)" in out


WIDE: Final = ["a", "q\u0307", "漢字", "😀"]
"""Ids of 1, 1 (a letter and a combining mark), 4 and 2 columns on a terminal, by code point."""


async def _store_wide(url: str) -> None:
    """Two runs: each wide id passes in the first and fails in the second."""
    async with connect(url) as db:
        for status in (TestStatus.PASSED, TestStatus.FAILED):
            run_ = await save_run(db, Run())
            await save_results(
                db,
                [
                    TestResult(
                        test_type=TestType.UNIT,
                        status=status,
                        execution_time=1.0,
                        run_id=run_.id,
                        test_id=k,
                    )
                    for k in WIDE
                ],
            )


def test_table_columns_line_up_past_wide_and_combining_characters(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """A CJK character or an emoji takes two columns, a combining mark none: padding counts so.

    Padding counted code points: `😀` was padded as one column and `q\u0307` as two, so every
    column after the test id started at another place on each row.
    """
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store_wide(database_url))
    code, out, _ = run(capsys, "compare", *db)
    assert code == 1
    assert out.splitlines()[1:] == [
        "change       test  base    head    time",
        "new_failure  a     passed  failed  1.000s -> 1.000s",
        "new_failure  q\u0307     passed  failed  1.000s -> 1.000s",
        "new_failure  漢字  passed  failed  1.000s -> 1.000s",
        "new_failure  😀    passed  failed  1.000s -> 1.000s",
    ]


def test_test_history_shows_a_run_of_id_zero_by_its_id(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Plain SQL may number a run 0: its results are of run 0, not of none (`-`)."""
    path = str(tmp_path / "app.db")
    assert run(capsys, "migrate", "--database", path)[0] == 0
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        plain.execute(
            "INSERT INTO runs (id, started_at) VALUES (0, '2026-05-01T00:00:00.000000+00:00')"
        )
        for run_id in (0, None):
            plain.execute(
                "INSERT INTO test_results (test_type, status, created_at, run_id, test_id)"
                " VALUES ('unit', 'passed', '2026-05-01T00:00:01.000000+00:00', ?, 't')",
                (run_id,),
            )
    code, out, _ = run(capsys, "test-history", "t", "--database", path)
    assert code == 0
    assert sorted(line.split()[2] for line in out.splitlines()[-2:]) == ["-", "0"]


def test_a_file_argument_ending_in_a_separator_is_bad_usage(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--output out/` (or `out/.`) names a folder: exit 2, nothing written or replaced.

    The slash was dropped: a file `out` was written, and `--output keep.txt/` replaced
    `keep.txt`, where `open` refuses either. The import, backup and restore files alike.
    """
    db = ["--database", str(tmp_path / "app.db")]
    kept = tmp_path / "keep.txt"
    kept.write_text("mine", encoding="utf-8")
    for command in (
        ["export", "1", "--output", f"{tmp_path}/out/"],
        ["export", "1", "--output", f"{kept}/"],
        ["export", "1", "--output", f"{tmp_path}/out/."],
        ["export", "1", "--output", "."],
        ["import", f"{kept}/"],
        ["backup", f"{tmp_path}/copy/"],
        ["restore", f"{kept}/"],
    ):
        with pytest.raises(SystemExit) as usage:
            main([*command, *db])
        assert usage.value.code == 2
        assert "names a folder, by its last part" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]
    assert kept.read_text(encoding="utf-8") == "mine"


def test_the_import_line_shows_a_file_name_of_a_line_end_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file name holding a newline is shown quoted, as errors show it: one line, not two."""
    db = ["--database", str(tmp_path / "app.db")]
    assert run(capsys, "migrate", *db)[0] == 0
    path = tmp_path / "r\nx.xml"
    path.write_text(REPORT.format(read="0.1", outcome=""), encoding="utf-8")
    code, out, _ = run(capsys, "import", str(path), *db)
    assert code == 0
    assert out == f"imported {str(path)!r} as run 1\n"


async def _store_an_early_run(url: str) -> None:
    async with connect(url) as db:
        started = dt.datetime(1, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        run = await save_run(db, Run(started_at=started, labels={"commit": "c0"}))
        result = TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, run_id=run.id)
        await save_results(db, [attrs.evolve(result, test_id="t", created_at=started)])


def test_tables_write_an_early_year_in_four_digits(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """A run of year 1 is shown `0001-01-02 03:04:05`, lined up with later ones.

    `strftime("%Y")` pads the year on some systems only: glibc wrote `1-01-02`.
    """
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store_an_early_run(database_url))
    for command in (("runs",), ("test-history", "t")):
        code, out, _ = run(capsys, *command, *db)
        assert code == 0
        assert "0001-01-02 03:04:05" in out, command


@pytest.mark.long
def test_an_import_waits_for_a_write_lock_held_longer_than_the_librarys_default(
    capsys: pytest.CaptureFixture[str], migrated_sqlite: Path, tmp_path: Path
) -> None:
    """A second import into SQLite waits for the first, as it would on PostgreSQL.

    Before, it waited `open_database`'s 5 s for the write lock and failed (`the database is
    locked`), though the first import ended a moment later: a long import held the lock.
    """
    database = migrated_sqlite
    report = tmp_path / "report.xml"
    report.write_text(REPORT.format(read=0.1, outcome=""), encoding="utf-8")
    other = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's long import, as plain SQL
    release = threading.Timer(6.5, other.commit)  # well past the old 5 s, on a loaded machine
    release.start()
    try:
        code, out, err = run(capsys, "import", str(report), "--database", str(database))
    finally:
        release.join()
        other.close()
    assert (code, err) == (0, "")
    assert out.strip() == f"imported {report} as run 1"


def test_the_runs_table_shows_a_label_as_stored(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A label that is no text is shown as its JSON, as the run holds it and `--json` gives it.

    The table wrote Python's forms: `ok=True none=None d={'x': ['y']}`.
    """
    db = ["--database", str(tmp_path / "app.db")]
    assert run(capsys, "migrate", *db)[0] == 0
    labels: JsonObject = {"ok": True, "none": None, "d": {"x": ["y"]}, "n": 1.5, "s": "text"}

    async def store() -> None:
        async with connect(tmp_path / "app.db") as opened:
            await save_run(
                opened, Run(started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), labels=labels)
            )

    asyncio.run(store())
    code, out, _ = run(capsys, "runs", *db)
    assert code == 0
    assert 'd={"x": ["y"]} n=1.5 s=text ok=true none=null' in out, out  # by key
