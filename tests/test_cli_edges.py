"""The run-history commands given what a user gets wrong: refused in one line, nothing made."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from _cache_disk_helpers import open_descriptors
from _cli_helpers import assert_one_error_line, cli, ok, redirected, run
from persistence.__main__ import _parser, _run_history  # the command's steps
from persistence._cli_history import CHECKS

pytestmark = pytest.mark.usefixtures("no_database_url")

REPORT = '<testsuite name="s"><testcase classname="a" name="t" time="0.1"/></testsuite>\n'


def test_an_import_into_a_missing_sqlite_file_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped --database is named, with how to make it; no file or folder is left.

    The import could never succeed there (an empty file has no tables), yet it created the
    file and its folder, then failed on the missing table `runs`.
    """
    report = tmp_path / "report.xml"
    report.write_text(REPORT, encoding="utf-8")
    typo = tmp_path / "sub" / "typo.db"
    code, out, err = run(capsys, "import", str(report), "--database", str(typo))
    assert (code, out) == (3, "")
    assert_one_error_line(err)
    assert f"no SQLite database at {str(typo)!r}" in err
    assert "persistence migrate --database" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"]


def _report(status: str) -> str:
    outcome = "<failure>boom</failure>" if status == "failed" else ""
    return (
        '<testsuite name="s"><testcase classname="a" name="t\u00e9st\u2603" time="0.1">'
        f"{outcome}</testcase></testsuite>\n"
    )


@pytest.mark.parametrize("encoding", ["ascii", "ascii:surrogateescape"])
def test_tables_and_sparklines_print_on_an_ascii_stdout(tmp_path: Path, encoding: str) -> None:
    """A stdout that cannot encode a test id or the sparkline gets them escaped, not a crash.

    On Windows a redirected stdout is cp1252, and PYTHONIOENCODING or a legacy locale may
    make it ASCII: printing `▁` or a snowman raised UnicodeEncodeError, a traceback with exit
    1, which `compare` uses to say the head run has new failures. A C locale's stdout, whose
    errors are `surrogateescape`, still did.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    for index, status in enumerate(("passed", "failed")):
        report = tmp_path / f"r{index}.xml"
        report.write_text(_report(status), encoding="utf-8")
        ok("import", str(report), *db)
    ascii_out = {"PYTHONIOENCODING": encoding}
    for command, code in ((("compare", "2", "1"), 0), (("compare",), 1)):
        done = cli(*command, *db, cwd=tmp_path, env=ascii_out)
        assert (done.returncode, done.stderr) == (code, ""), done.stderr
        assert "a::t\\xe9st\\u2603" in done.stdout
    done = cli("test-history", "a::t\u00e9st\u2603", *db, cwd=tmp_path, env=ascii_out)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.splitlines()[0] == "a::t\\xe9st\\u2603  " + "\\u2581" * 2


def test_a_utf8_stdout_of_surrogateescape_writes_a_names_bytes_back(tmp_path: Path) -> None:
    """In Python's UTF-8 mode (a C locale), a folder's undecodable byte is written as it is.

    The escape meant for a stdout that cannot encode a character wrote it as text, `udcff`
    after a backslash.
    """
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/mig\xff"))
    done = subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-m", "persistence", "new", "--migrations", str(folder), "add_x"],
        cwd=tmp_path,
        env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "1", "PYTHONIOENCODING": ""},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert b"/mig\xff/" in done.stdout, done.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """`persistence runs | head -1` ends as a shell's tools do: exit 141, nothing on stderr.

    The reader leaving is no failure of the command: it said `error: Broken pipe` and exited 3,
    as for a database it could not reach.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    report = tmp_path / "r.xml"
    report.write_text(REPORT, encoding="utf-8")
    for _ in range(3):
        ok("import", str(report), *db)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", "runs", *db],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_label_given_twice_with_two_values_is_refused_before_anything_opens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--label commit=a --label commit=b` is a usage error naming the key; no run is made.

    The last value was kept without a word, so a script that set the commit twice by mistake
    stored a run under a commit it never named last on purpose.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    report = tmp_path / "r.xml"
    report.write_text(REPORT, encoding="utf-8")
    labels = ["--label", "commit=a", "--label", "branch=main", "--label", "commit=b"]
    done = cli("import", str(report), *labels, *db, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert "argument --label: 'commit' is given twice ('a', then 'b')" in done.stderr
    assert run(capsys, "runs", "--json", *db)[1].split() == ["{", '"runs":', "[]", "}"]
    same = ["--label", "commit=a", "--label", "commit=a"]  # said twice alike: nothing to choose
    ok("import", str(report), *same, *db)


@pytest.mark.parametrize("label", ["commit=\udcff", "\udcff=1"])
def test_a_label_no_run_holds_is_bad_usage_before_anything_opens(
    tmp_path: Path, label: str
) -> None:
    """A label of bytes that are not UTF-8 is exit 2 naming --label; nothing opens.

    It was refused by the import once the database was open, exit 3, and a missing database
    hid it behind its own error.
    """
    report = tmp_path / "r.xml"
    report.write_text(REPORT, encoding="utf-8")
    database = tmp_path / "absent" / "app.db"
    done = cli("import", str(report), "--label", label, "--database", str(database), cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert "argument --label: " in done.stderr
    assert "must be valid Unicode" in done.stderr
    assert not database.parent.exists()


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
@pytest.mark.parametrize("kind", ["junit", "ctrf", "jsonl"])
def test_an_export_to_stdout_is_utf_8_whatever_stdout_encodes(
    tmp_path: Path, encoding: str, kind: str
) -> None:
    r"""The bytes on stdout are the file `--output` writes: UTF-8, as the formats declare.

    A stdout of another encoding (cp1252 on Windows when redirected, a legacy locale) wrote
    `é` as the byte 0xE9 into XML declaring UTF-8, which no reader then read back, and a
    character it lacked as an escape, `\u2603`, in the test's name.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    report = tmp_path / "r.xml"
    report.write_text(_report("failed"), encoding="utf-8")
    ok("import", str(report), *db)
    written = tmp_path / "written"
    export = ("export", "1", "--format", kind, *db)
    ok(*export, "--output", str(written))
    done = subprocess.run(  # this interpreter, fixed arguments
        [sys.executable, "-m", "persistence", *export],
        cwd=tmp_path,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert done.stdout.rstrip(b"\n") == written.read_bytes().rstrip(b"\n")
    assert "t\u00e9st\u2603".encode() in done.stdout


def test_a_dry_run_prints_the_sql_in_utf_8_whatever_stdout_encodes(tmp_path: Path) -> None:
    r"""The SQL `migrate --dry-run` prints is the files' own UTF-8, byte for byte.

    Through a stdout of another encoding, a literal `'café☃'` of a migration was printed as
    `'caf\xe9\u2603'` in Latin-1: SQL that, run, would store another text.
    """
    folder = tmp_path / "mine"
    sql = "-- caf\u00e9\nCREATE TABLE t (x TEXT DEFAULT 'caf\u00e9\u2603');\n"
    for engine in ("sqlite", "postgres"):
        (folder / engine).mkdir(parents=True)
        (folder / engine / "0001_t.sql").write_text(sql, encoding="utf-8")
    done = subprocess.run(  # this interpreter, fixed arguments
        [
            *(sys.executable, "-m", "persistence", "migrate", "--dry-run"),
            *("--migrations", str(folder), "--database", str(tmp_path / "app.db")),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONIOENCODING": "latin-1"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert sql.rstrip().encode() in done.stdout
    assert not (tmp_path / "app.db").exists()


def _with_a_run(database: Path) -> list[str]:
    """Migrate the SQLite file `database` and import a report into it: the `--database` args."""
    db = ["--database", str(database)]
    ok("migrate", *db)
    report = database.parent / "r.xml"
    report.write_text(REPORT, encoding="utf-8")
    ok("import", str(report), *db)
    return db


@pytest.mark.parametrize("output", ["app.db", "app.db-wal", "sub/../app.db", "link.db", "hard.db"])
def test_an_export_never_replaces_the_database_it_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, output: str
) -> None:
    """`export --output` naming the SQLite database itself, by any path, or its WAL is refused.

    The export replaced the database with its XML and exited 0; over the `-wal` file, it threw
    away every commit not yet checkpointed into the database.
    """
    database = tmp_path / "app.db"
    db = _with_a_run(database)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.db").symlink_to(database)
    os.link(database, tmp_path / "hard.db")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("app.db")}
    done = cli("export", "1", "--output", output, *db, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (3, "")
    assert_one_error_line(done.stderr)
    assert f"--output {output!r} is the database {str(database)!r}" in done.stderr
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("app.db")}
    assert after == before
    assert run(capsys, "runs", "--json", *db)[1].count('"id": 1') == 1


@pytest.mark.parametrize("output", ["/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"])
def test_an_export_to_standard_output_appended_to_a_log_keeps_the_log(
    tmp_path: Path, output: str
) -> None:
    """`export --output /dev/stdout >> log`: the export is added to the log, through stdout.

    The path's link leads to the log itself, a regular file, which the export replaced whole
    by one written beside it: the log's earlier lines were lost.
    """
    database = tmp_path / "app.db"
    db = _with_a_run(database)
    log = tmp_path / "log.txt"
    log.write_text("an earlier line\n", encoding="utf-8")
    with log.open("a", encoding="utf-8") as appended:
        done = subprocess.run(  # this interpreter, fixed arguments
            [sys.executable, "-m", "persistence", "export", "1", "--output", output, *db],
            cwd=tmp_path,
            stdout=appended,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stderr) == (0, "")
    text = log.read_text(encoding="utf-8")
    assert text.startswith("an earlier line\n<?xml")
    assert text.rstrip().endswith("</testsuites>")


@pytest.mark.parametrize("number", [3, 4, 5, 9])
def test_an_export_to_a_descriptor_not_open_is_refused_before_the_database_opens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, number: int
) -> None:
    """`--output /dev/fd/N` where the shell opened no N: refused, the database untouched.

    Taken as the process's own descriptor, the number was one the database's files had by the
    time the export wrote: its XML went into the `-wal` file, and the database was lost. 3 to
    5 were the event loop's own (its epoll, its socket pair) when the copy was taken: the
    export went into the loop's socket, exit 0, or failed as "Invalid argument".
    """
    database = tmp_path / "app.db"
    db = _with_a_run(database)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("app.db")}
    output = f"/dev/fd/{number}"
    done = cli("export", "1", "--output", output, *db, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (3, "")
    assert_one_error_line(done.stderr)
    assert f"--output {output!r} names descriptor {number}, which is not open" in done.stderr
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("app.db")}
    assert after == before
    assert run(capsys, "runs", "--json", *db)[1].count('"id": 1') == 1


@pytest.mark.parametrize(
    "command",
    [
        ("new", "add_index", "--migrations", ""),
        ("status", "--migrations", ""),
        ("import", ""),
        ("export", "1", "--output", ""),
        ("counterexamples", "t", "--storage", ""),
        ("backup", ""),
        ("restore", ""),
    ],
)
def test_an_empty_path_is_bad_usage_and_makes_nothing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A path given empty (a shell variable left unset) is exit 2, naming the option.

    It was read as the working folder: `new NAME --migrations ""` wrote `sqlite/` and
    `postgres/` there and exited 0, and the others named `.` or the working folder's path.
    """
    db = () if command[0] == "new" else ("--database", str(tmp_path / "app.db"))
    done = cli(*command, *db, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert "an empty path names no file or folder" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["backup.db\r", "back\nup.db"])
def test_a_backup_named_with_a_line_end_is_refused_by_its_name(tmp_path: Path, name: str) -> None:
    r"""A backup file whose name holds a line end (a CRLF env file's `\r`) is named as the fault.

    No database can be opened at such a path, and the backup failed on its own working file,
    `invalid database URL '.backup.db\r.a5705fl2.partial/backup.db'`, which the user never named.
    """
    db = ["--database", str(tmp_path / "app.db")]
    ok("migrate", *db)
    done = cli("backup", name, *db, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (3, "")
    assert_one_error_line(done.stderr)
    assert "backup.path: holds a line end" in done.stderr
    assert "partial" not in done.stderr
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("app.db")] == []


@pytest.mark.parametrize("command", [("runs",), ("export", "1"), ("import", "r.xml")])
def test_a_closed_stdout_is_refused_before_the_command_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    """With stdout closed (`>&-`) a command fails at once, exit 3, and imports nothing.

    Python gives such a process no `sys.stdout`: `print` wrote nothing without a word and the
    command exited 0, its table or its export lost, and an export to stdout raised
    AttributeError with a traceback.
    """
    db = _with_a_run(tmp_path / "app.db")
    closed = redirected(">&-")
    done = cli(*command, *db, cwd=tmp_path, prefix=closed)
    assert done.returncode == 3, done.stderr
    assert_one_error_line(done.stderr)
    assert "standard output is closed" in done.stderr
    assert run(capsys, "runs", "--json", *db)[1].count('"id"') == 1


def test_an_export_to_a_file_runs_with_stdout_closed(tmp_path: Path) -> None:
    """`export 1 --output FILE >&-` prints nothing on stdout: it runs, where it was refused."""
    db = _with_a_run(tmp_path / "app.db")
    closed = redirected(">&-")
    done = cli("export", "1", "--output", "out.xml", *db, cwd=tmp_path, prefix=closed)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "out.xml").read_text(encoding="utf-8").startswith("<?xml")


def test_an_export_to_dev_stdout_writes_into_the_pipe_it_is(tmp_path: Path) -> None:
    """`--output /dev/stdout` when stdout is a pipe: the export goes down the pipe.

    The path was followed to the pipe first (`/proc/PID/fd/pipe:[N]`), which has no path to
    look at: taken for a new file, the export was made beside it, in /proc, and the command
    failed with "No such file or directory: /dev/stdout".
    """
    db = _with_a_run(tmp_path / "app.db")
    written = tmp_path / "written.xml"
    ok("export", "1", "--output", str(written), *db)
    done = cli("export", "1", "--output", "/dev/stdout", *db, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == written.read_text(encoding="utf-8")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("failing", ["no database", "no such run", "the output is the database"])
def test_an_export_to_a_descriptor_that_fails_leaves_no_descriptor_open(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, failing: str
) -> None:
    """`main(["export", ..., "--output", "/dev/fd/N"])` failing in a program's own process.

    The copy of N taken before the database opened was closed only by the write: a command
    that failed first left it open, one more each call.
    """
    database = tmp_path / "app.db"
    db = _with_a_run(database) if failing != "no database" else ["--database", str(database)]
    run_id = "99" if failing == "no such run" else "1"
    read_end, write_end = os.pipe()
    if failing == "the output is the database":  # a descriptor the shell opened on it
        os.close(write_end)
        write_end = os.open(database, os.O_RDONLY)
    try:
        before = sorted(p.name for p in Path("/proc/self/fd").iterdir())
        code, _, err = run(capsys, "export", run_id, "--output", f"/dev/fd/{write_end}", *db)
        after = sorted(p.name for p in Path("/proc/self/fd").iterdir())
    finally:
        os.close(read_end)
        os.close(write_end)
    assert code != 0, err
    assert after == before


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
async def test_an_export_cancelled_while_its_checks_run_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal while the checks ran in their thread: the copy of N they took then was left.

    The command's end closed what the checks had taken so far (nothing yet), and the thread
    took its copy after. The command now waits for the checks before it ends.
    """
    read_end, write_end = os.pipe()
    checking, go_on, checked = threading.Event(), threading.Event(), threading.Event()
    real = CHECKS["export"]

    def slow(arguments: argparse.Namespace) -> None:
        checking.set()
        go_on.wait(10)
        try:
            real(arguments)
        finally:
            checked.set()

    monkeypatch.setitem(CHECKS, "export", slow)
    database = tmp_path / "app.db"
    arguments = _parser().parse_args(
        ["export", "1", "--output", f"/dev/fd/{write_end}", "--database", str(database)]
    )
    try:
        before = open_descriptors()
        running = asyncio.ensure_future(_run_history(arguments))
        assert await asyncio.to_thread(checking.wait, 10)
        running.cancel()
        await asyncio.sleep(0.05)
        go_on.set()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert await asyncio.to_thread(checked.wait, 10)  # the checks' thread has ended
        after = open_descriptors()
    finally:
        go_on.set()
        os.close(read_end)
        os.close(write_end)
    assert after == before


def test_with_stderr_closed_an_error_goes_nowhere_not_into_stdout(tmp_path: Path) -> None:
    """Started with `2>&-`: the exit code tells, and stdout holds nothing of the error.

    Python's stderr is None then, and print() wrote the error line to stdout: into the
    export's file, or the JSON a script read.
    """
    db = _with_a_run(tmp_path / "app.db")
    closed = redirected("2>&-")
    done = cli("export", "99", *db, cwd=tmp_path, prefix=closed)
    assert (done.returncode, done.stdout, done.stderr) == (3, "", "")


def test_an_error_names_a_path_as_it_is_spaces_and_escapes_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A path of two spaces is named with both; one holding an escape sequence, quoted.

    Every run of spaces in the line became one, naming a path that is not there, and the
    operating system's error printed the path's ESC raw to the terminal.
    """
    db = _with_a_run(tmp_path / "app.db")
    for output, shown in (
        (tmp_path / "two  spaces" / "x.xml", "two  spaces"),
        (tmp_path / "\x1b[2J" / "x.xml", "'" + str(tmp_path) + "/\\x1b[2J/x.xml'"),
    ):
        code, out, err = run(capsys, "export", "1", "--output", str(output), *db)
        assert (code, out) == (3, "")
        assert_one_error_line(err)
        assert shown in err
        assert "\x1b" not in err


@pytest.mark.parametrize("kind", ["empty file", "another program's database"])
def test_an_import_into_a_file_never_migrated_is_refused_leaving_it_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    """Refused before the open that writes, which set WAL mode first: the file is unchanged.

    An empty file became a 4 kB WAL database, and another program's rollback-journal database
    was left in WAL mode, by a command that then refused it as not migrated.
    """
    database = tmp_path / "their.db"
    database.touch()
    if kind != "empty file":
        with contextlib.closing(sqlite3.connect(database)) as theirs, theirs:
            theirs.execute("CREATE TABLE notes (body TEXT)")
            theirs.execute("INSERT INTO notes VALUES ('mine')")
    before = database.read_bytes()
    report = tmp_path / "r.xml"
    report.write_text(REPORT, encoding="utf-8")
    code, out, err = run(capsys, "import", str(report), "--database", str(database))
    assert (code, out) == (3, "")
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.xml", "their.db"]
    assert_one_error_line(err)
    assert f"{database}: migrations not applied or drifted: 0001_initial_schema, " in err
    assert err.rstrip().endswith("run 'persistence migrate'")


def test_an_import_that_cannot_say_so_names_the_run_it_saved(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Standard output full after the commit: the error says the run is saved, and which.

    It said only `No space left on device: standard output`, exit 3, for a run that was
    saved: a step retried on failure imported the report twice.
    """
    db = _with_a_run(tmp_path / "app.db")
    full = redirected("> /dev/full")
    done = cli("import", str(tmp_path / "r.xml"), *db, cwd=tmp_path, prefix=full)
    assert done.returncode == 3
    assert_one_error_line(done.stderr)
    assert "r.xml as run 2, but could not say so on standard output" in done.stderr
    assert "the run is saved; do not import the report again" in done.stderr
    assert run(capsys, "runs", "--json", *db)[1].count('"id": 2') == 1


@pytest.mark.parametrize("output", ["/dev/fd/7", "/dev/stdout"])
def test_a_failed_write_through_a_descriptor_names_it(tmp_path: Path, output: str) -> None:
    """`--output /dev/fd/7 7>/dev/full`: the error names the output, as a path's does.

    It said only `No space left on device`, which could as well have been the database's.
    """
    db = _with_a_run(tmp_path / "app.db")
    full = redirected("7>/dev/full >/dev/full")
    done = cli("export", "1", "--output", output, *db, cwd=tmp_path, prefix=full)
    assert done.returncode == 3
    assert_one_error_line(done.stderr)
    assert done.stderr.endswith(f"No space left on device: {output}\n")


@pytest.mark.parametrize("sidecar", ["", "-wal"])
def test_an_export_to_a_stdout_that_is_the_database_is_refused(
    tmp_path: Path, sidecar: str
) -> None:
    """`persistence export 1 >> app.db`: refused, the database unchanged.

    The export was appended to the database file (or its WAL), exit 0; `--output` naming the
    same file was refused.
    """
    database = tmp_path / "app.db"
    db = _with_a_run(database)
    target = tmp_path / f"app.db{sidecar}"
    target.touch()
    before = target.read_bytes()
    appended = redirected(f">> {shlex.quote(str(target))}")
    done = cli("export", "1", *db, cwd=tmp_path, prefix=appended)
    assert done.returncode == 3
    assert target.read_bytes() == before
    assert_one_error_line(done.stderr)
    assert f"standard output is the database {str(database)!r}" in done.stderr


@pytest.mark.parametrize("command", ["backup", "restore", "copy", "migrate"])
def test_a_command_that_cannot_say_what_it_did_says_that_it_is_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    """Standard output full after the commit: the error says the work is kept, not to redo it.

    Each said only `No space left on device: standard output`, exit 3, for a backup made
    whole, a restore or copy committed, migrations applied: the retry it invited was refused
    (`'b.backup' exists`, `target ... is not empty`).
    """
    db = _with_a_run(tmp_path / "app.db")
    backup, target = tmp_path / "b.backup", tmp_path / "target.db"
    if command == "restore":
        ok("backup", str(backup), *db)
    if command in {"restore", "copy"}:
        ok("migrate", "--database", str(target))
    arguments = {
        "backup": [str(backup), *db],
        "restore": [str(backup), "--database", str(target)],
        "copy": [db[-1], str(target)],
        "migrate": ["--database", str(tmp_path / "new.db")],
    }[command]
    done = cli(command, *arguments, cwd=tmp_path, prefix=redirected("> /dev/full"))
    assert done.returncode == 3, done.stderr
    assert_one_error_line(done.stderr)
    assert "but could not say so on standard output (No space left on device)" in done.stderr
    kept = "the migrations it applied are kept" if command == "migrate" else "it is complete"
    assert kept in done.stderr
    if command == "backup":
        assert backup.is_file()
    elif command == "migrate":
        assert run(capsys, "status", "--database", str(tmp_path / "new.db"))[0] == 0
    else:
        assert run(capsys, "runs", "--json", "--database", str(target))[1].count('"id": 1') == 1
