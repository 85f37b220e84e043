"""Imports stay whole when cancelled, killed, failing or racing; an export shows one moment."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import pytest

from _report_helpers import PYTEST, assert_nothing_written, write_report
from persistence import (
    Database,
    DatabaseError,
    NotFoundError,
    PersistenceError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    all_runs,
    delete_results_before,
    delete_run,
    export_junit,
    import_junit,
    report_common,
    reports,
    save_results,
    save_run,
)
from persistence._loop import map_in_slices
from persistence._paging import READ_PAGE
from persistence.report_json import export_ctrf, export_jsonl
from persistence.reports import CHUNK_BYTES, run_results
from test_plain_ids import plain_sql


def _exported_count(form: str, text: str) -> int:
    """How many results an export holds, read back from its own form."""
    if form == "junit":
        return int(text.split('tests="', 1)[1].split('"', 1)[0])
    if form == "ctrf":
        summary = json.loads(text)["results"]["summary"]
        return int(summary["tests"])
    return len(text.splitlines())


@pytest.mark.parametrize("form", ["junit", "ctrf", "jsonl"])
@pytest.mark.parametrize("deletion", ["run", "retention"])
async def test_an_export_reads_its_run_as_of_one_moment(
    db: Database, monkeypatch: pytest.MonkeyPatch, form: str, deletion: str
) -> None:
    """An export shows its run as it was when it began, never in part.

    Between two pages of its results, the run is deleted, or retention deletes the results on
    the pages not read yet (given an old time).
    """
    run = await save_run(db, Run())
    assert run.id is not None
    run_id = run.id
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    total = READ_PAGE + 500
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                run_id=run_id,
                test_id=f"t{i}",
                created_at=old if i >= total // 2 else dt.datetime.now(dt.UTC),
            )
            for i in range(total)
        ],
    )
    pages = 0

    async def map_then_delete(*arguments: Any) -> Any:  # noqa: ANN401  # passed through
        nonlocal pages
        pages += 1
        if pages == 1 and deletion == "run":
            await delete_run(db, run_id)
        elif pages == 1:
            assert await delete_results_before(db, old + dt.timedelta(days=1)) == total - total // 2
        return await map_in_slices(*arguments)

    monkeypatch.setattr("persistence.report_common.map_in_slices", map_then_delete)
    export = {"junit": export_junit, "ctrf": export_ctrf, "jsonl": export_jsonl}[form]
    assert _exported_count(form, await export(db, run_id)) == total
    assert pages >= 2
    if deletion == "run":
        with pytest.raises(NotFoundError):
            await export(db, run_id)
    else:
        assert _exported_count(form, await export(db, run_id)) == total // 2


async def test_an_import_cancelled_part_way_writes_nothing(db: Database, tmp_path: Path) -> None:
    """Cancelled at any point while it streams a large file, the import is all or nothing."""
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(60_000))
    path = write_report(
        tmp_path, f'<testsuites><testsuite name="s">\n{cases}\n</testsuite></testsuites>'
    )
    assert path.stat().st_size > 2 * CHUNK_BYTES
    cancelled = 0
    for delay in (0.0, 0.001, 0.01, 0.03, 0.1, 0.3):
        task = asyncio.ensure_future(import_junit(db, path))
        await asyncio.sleep(delay)
        task.cancel()
        try:
            run = await task
        except asyncio.CancelledError:
            cancelled += 1
            await assert_nothing_written(db)
            continue
        assert run.id is not None
        assert len(await all_results(db)) == 60_000  # it finished first: all of it
        await delete_run(db, run.id)
    assert cancelled > 0


_IMPORTER: Final = """
import asyncio, sys
from persistence import connect
from persistence.reports import import_junit

async def main():
    async with connect(sys.argv[1]) as db:
        print("open", flush=True)
        await import_junit(db, sys.argv[2])
        print("done", flush=True)

asyncio.run(main())
"""


async def test_an_import_killed_part_way_leaves_all_or_nothing(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """A process killed (SIGKILL) while it imports leaves no run, or the whole run; then more."""
    count = 40_000
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(count))
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    killed = 0
    for delay in (0.05, 0.3):
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _IMPORTER, database_url, str(path), stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        try:
            assert await asyncio.wait_for(child.stdout.readline(), 30) == b"open\n"
            await asyncio.sleep(delay)
        finally:
            child.kill()
            await child.wait()
        killed += await child.stdout.read() != b"done\n"
    runs = await all_runs(db)
    results = await all_results(db)
    assert len(results) == count * len(runs)  # each run whole
    assert killed >= 1  # at least one kill came before the end
    await import_junit(db, path)
    assert len(await all_results(db)) == count * (len(runs) + 1)


async def test_two_processes_import_into_one_database_at_once(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """Two importers at the same moment: two whole runs, each with every case of its file."""
    count = 5_000
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(count))
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _IMPORTER, database_url, str(path), stdout=asyncio.subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [await asyncio.wait_for(child.communicate(), 60) for child in children]
    assert [(child.returncode, out) for child, (out, _) in zip(children, outputs, strict=True)] == [
        (0, b"open\ndone\n")
    ] * 2
    runs = await all_runs(db)
    assert len(runs) == 2
    for run in runs:
        assert run.id is not None
        assert [r.test_id for r in await run_results(db, run.id)] == [
            f"c::t{i}" for i in range(count)
        ]


@pytest.mark.parametrize("failing", [1, 10_000, 15_000, 29_999])
async def test_an_import_whose_insert_fails_part_way_writes_nothing(
    db: Database, database_url: str, tmp_path: Path, failing: int
) -> None:
    """A row the engine refuses, in the first, a middle or the last batch: nothing stays.

    A trigger refuses it; the import raises the engine's refusal, and no run and no result stay.
    """
    refused = f"NEW.test_id = 'c::t{failing}'"
    if "://" in database_url:
        statements = [
            (
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by trigger'; END $$"
            ),
            (
                "CREATE TRIGGER refuse BEFORE INSERT ON test_results FOR EACH ROW "
                f"WHEN ({refused}) EXECUTE FUNCTION refuse()"
            ),
        ]
    else:
        statements = [
            (
                f"CREATE TRIGGER refuse BEFORE INSERT ON test_results WHEN {refused} "
                "BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
            )
        ]
    await plain_sql(database_url, *statements)
    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(30_000))
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    with pytest.raises(PersistenceError, match="refused by trigger"):
        await import_junit(db, path)
    await assert_nothing_written(db)


def _slow_open(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event, list[IO[bytes]]]:
    """Make opening a report wait for `go_on`; `opening` says it began; `opened` gets each file."""
    opening, go_on = threading.Event(), threading.Event()
    opened: list[IO[bytes]] = []
    real_open = report_common.open_report

    def slow_open(path: Path) -> IO[bytes]:
        opening.set()
        go_on.wait(10)
        stream: IO[bytes] = real_open(path)
        opened.append(stream)
        return stream

    monkeypatch.setattr(reports, "open_report", slow_open)
    return opening, go_on, opened


async def test_an_import_cancelled_while_its_file_opens_leaves_it_closed(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker thread opens the file after its caller has gone: the file is closed for it."""
    path = write_report(tmp_path, PYTEST)
    opening, go_on, opened = _slow_open(monkeypatch)
    task = asyncio.ensure_future(import_junit(db, path))
    assert await asyncio.to_thread(opening.wait, 10)
    task.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(500):  # the thread ends a moment after the cancelled caller
        if opened and opened[0].closed:
            break
        await asyncio.sleep(0.01)
    assert [stream.closed for stream in opened] == [True]
    await assert_nothing_written(db)


def _descriptors_on(path: Path) -> int:
    """How many of this process's descriptors are open on `path`."""
    folder = Path("/proc/self/fd")
    return sum(1 for fd in folder.iterdir() if os.path.realpath(fd) == str(path.resolve()))


async def test_an_import_whose_file_opens_while_other_tasks_are_cancelled_goes_on(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file opening, every task but the import's cancelled meanwhile: the import ends.

    The opening ran as a task of its own: code that cancels every task but its own (a
    shutdown handler) cancelled it, the import, which nobody had cancelled, failed, and the
    file the thread then opened was never closed.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    path = write_report(tmp_path, PYTEST)
    await import_junit(db, path)  # the connections it takes, open before they are counted
    opening, go_on, opened = _slow_open(monkeypatch)
    importing = asyncio.ensure_future(import_junit(db, path))
    assert await asyncio.to_thread(opening.wait, 10)
    cancel_all_tasks_but(importing)
    await asyncio.sleep(0.01)
    go_on.set()
    async with asyncio.timeout(5):
        run = await importing
    assert run.id is not None
    assert len(await run_results(db, run.id)) * 2 == len(await all_results(db)) > 0
    assert [stream.closed for stream in opened] == [True]
    assert _descriptors_on(path) == 0
    monkeypatch.undo()
    assert (await import_junit(db, path)).id not in {None, run.id}


async def test_an_import_whose_batch_insert_is_cancelled_by_another_task_is_a_database_error(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch inserted in a task of its own while the next is parsed, cancelled from outside.

    Code that cancels every task but its own (a shutdown handler) cancelled that insert, and
    the import, which nobody had cancelled, got `CancelledError`. It now gets `DatabaseError`,
    nothing is written, its file is closed, and the next import works.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    cases = "\n".join(f'<testcase classname="c" name="t{i}" time="0.1"/>' for i in range(11_000))
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    inserting, gate = asyncio.Event(), asyncio.Event()
    real = reports._insert  # noqa: SLF001  # the batch insert, held in its task

    async def held(db: Database, rows: list[Any]) -> None:
        if not inserting.is_set():  # the first batch: in a task, while the next is parsed
            inserting.set()
            await gate.wait()
        await real(db, rows)

    monkeypatch.setattr(reports, "_insert", held)
    importing = asyncio.ensure_future(import_junit(db, path))
    async with asyncio.timeout(5):
        await inserting.wait()
    cancel_all_tasks_but(importing)
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(DatabaseError, match="another task"):
        async with asyncio.timeout(5):
            await importing
    assert _descriptors_on(path) == 0
    await assert_nothing_written(db)
    monkeypatch.undo()
    run = await import_junit(db, path)
    assert run.id is not None
    assert len(await run_results(db, run.id)) == 11_000


async def test_a_file_of_several_batches_keeps_its_order(db: Database, tmp_path: Path) -> None:
    """Batches inserted while the next is parsed: every case, in the file's order."""
    count = 11_000
    cases = "\n".join(f'<testcase classname="c" name="t{i:05}" time="0.1"/>' for i in range(count))
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    run = await import_junit(db, path)
    assert run.id is not None
    results = await run_results(db, run.id)
    assert [r.test_id for r in results] == [f"c::t{i:05}" for i in range(count)]


def _batches(monkeypatch: pytest.MonkeyPatch, measure: Callable[[list[Any]], int]) -> list[int]:
    """Give the list that each batch an import inserts is measured into, by `measure`."""
    sizes: list[int] = []
    real = reports._insert  # noqa: SLF001  # the batch insert

    async def counted(db: Database, rows: list[Any]) -> None:
        sizes.append(measure(rows))
        await real(db, rows)

    monkeypatch.setattr(reports, "_insert", counted)
    return sizes


def _teardown(name: str, out: str = "") -> str:
    """Pytest's testcase of the teardown of test `name`, which failed: its error, and `out`."""
    return (
        f'<testcase classname="c" name="{name}"><error message="failed on teardown with'
        f' &quot;boom&quot;">boom</error>{out}</testcase>'
    )


async def _imported(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cases: str
) -> tuple[list[TestResult], list[int]]:
    """Import one suite of `cases`: its results, and the size of each batch inserted."""
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    sizes = _batches(monkeypatch, len)
    run = await import_junit(db, path)
    assert run.id is not None
    return await run_results(db, run.id), sizes


async def test_cases_of_large_outputs_are_inserted_in_batches_of_bounded_size(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch ends at 10,000 cases, or sooner at its outputs' and errors' bound of characters.

    Batches were of 10,000 cases whatever they held: 600 cases of 1 MB of output each went in
    one insert, 1.2 GB of memory on SQLite, its thread holding the loop about a second.
    """
    monkeypatch.setattr(reports, "_BATCH_CHARS", 100_000, raising=False)  # before: missing
    output = "x" * 30_000
    cases = "\n".join(
        f'<testcase classname="c" name="t{i}"><system-out>{output}</system-out></testcase>'
        for i in range(20)
    )
    path = write_report(tmp_path, f'<testsuite name="s">\n{cases}\n</testsuite>')
    sizes = _batches(monkeypatch, lambda rows: sum(len(row["output"] or "") for row in rows))
    run = await import_junit(db, path)
    assert run.id is not None
    assert sum(sizes) == 20 * len(output)
    assert max(sizes) <= 100_000 + len(output), sizes
    assert [r.output for r in await run_results(db, run.id)] == [output] * 20


@pytest.mark.parametrize("tag", ["system-out", "system-err"])
async def test_a_teardown_after_a_large_failure_still_joins_it_and_stderr_counts(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str
) -> None:
    """A batch ended by its characters does not end after a failure, which a teardown may join.

    pytest's second testcase of a test, its teardown's error, came after the first was
    inserted, and the report was refused as naming the test twice. And `<system-err>`, kept in
    the metadata, was not counted: 20 cases of it went in one insert.
    """
    monkeypatch.setattr(reports, "_BATCH_CHARS", 100_000)
    text = "x" * 30_000
    cases = "\n".join(
        f'<testcase classname="c" name="t{i}"><failure message="no"/><{tag}>{text}</{tag}>'
        f"</testcase>\n{_teardown(f't{i}')}"
        for i in range(20)
    )
    results, sizes = await _imported(db, tmp_path, monkeypatch, cases)
    assert len(results) == 20
    assert all((r.error_message or "").endswith("failed on teardown: boom") for r in results)
    assert max(sizes) <= 5, sizes


@pytest.mark.parametrize("batch", [2, 3, 4])
async def test_a_teardown_after_a_failure_at_the_count_bound_still_joins_it(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """A batch ended by its count keeps back a failure that is its last, for its teardown.

    As at the bound of characters: at 10,000 results, here a few, a failure and pytest's
    testcase of its teardown fell in two batches, and the report was refused as naming the
    test twice. Passed tests between put the failures at each place in a batch.
    """
    monkeypatch.setattr(reports, "_BATCH", batch)
    # A piece is parsed inside each teardown's output, well within the bound of characters:
    # the batch may end as the teardown is read.
    out = f"<system-out>{'y' * 5_000}</system-out>"
    cases = "\n".join(
        f'<testcase classname="c" name="t{i}"><failure message="no">f</failure></testcase>\n'
        + _teardown(f"t{i}", out)
        if i % 3 == 0
        else f'<testcase classname="c" name="t{i}">{out}</testcase>'
        for i in range(20)
    )
    results, sizes = await _imported(db, tmp_path, monkeypatch, cases)
    assert len(results) == 20
    joined = [r for r in results if (r.error_message or "").endswith("failed on teardown: boom")]
    assert len(joined) == 7  # t0, t3, ... t18
    assert max(sizes) <= batch, sizes
    assert sum(sizes) == 20, sizes  # in several batches, ended by their count


async def test_large_failures_with_no_teardown_are_inserted_in_batches_of_bounded_size(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every case a failure that a teardown might join: batches still end by their characters.

    A batch whose last result was such a failure was not ended at all: 20 failures of 30,000
    characters went in one insert, past the bound of 100,000.
    """
    monkeypatch.setattr(reports, "_BATCH_CHARS", 100_000)
    text = "x" * 30_000
    cases = "\n".join(
        f'<testcase classname="c" name="t{i}"><failure message="no">{text}</failure></testcase>'
        for i in range(20)
    )
    results, sizes = await _imported(db, tmp_path, monkeypatch, cases)
    assert sum(sizes) == 20
    assert max(sizes) <= 5, sizes
    assert len(results) == 20
