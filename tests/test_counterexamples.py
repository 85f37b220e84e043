"""Counterexamples: failing inputs kept once, listed newest first, and swept when unnamed."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import pytest

from persistence import (
    ConflictError,
    CounterexampleStore,
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    counterexample_store,
    counterexamples,
    delete_results_before,
    keep_counterexample,
    save_run,
    transaction,
)
from persistence._files.locks import Change, perform
from test_plain_ids import plain_sql

T0: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OLD: Final = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
TEST: Final = "solutions/a.cpp#stress"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _failing(
    at: dt.datetime, status: TestStatus = TestStatus.FAILED, **fields: object
) -> TestResult:
    return TestResult(
        test_type=TestType.STRESS,
        status=status,
        created_at=at,
        test_id=TEST,
        **fields,  # type: ignore[arg-type]  # the few fields the tests vary
    )


async def test_inputs_are_kept_once_and_listed_newest_first(
    db: Database, store: CounterexampleStore
) -> None:
    """Two failures on one input and one on another: two counterexamples, one file per content."""
    first = await keep_counterexample(
        db, store, _failing(T0), input=b"3\n1 2 3\n", expected=b"6\n", actual=b"7\n"
    )
    await keep_counterexample(
        db, store, _failing(T0 + dt.timedelta(minutes=1), TestStatus.TIMEOUT), input=b"5\n"
    )
    newest = await keep_counterexample(
        db, store, _failing(T0 + dt.timedelta(minutes=2)), input=b"3\n1 2 3\n", actual=b"8\n"
    )
    assert first.id is not None
    assert newest.id is not None

    found = await counterexamples(db, TEST)
    assert [(c.input_sha256, c.failures, c.result_id) for c in found] == [
        (_sha(b"3\n1 2 3\n"), 2, newest.id),
        (_sha(b"5\n"), 1, newest.id - 1),
    ]
    latest = found[0]
    assert (latest.status, latest.input_size) == (TestStatus.FAILED, 8)
    assert (latest.first_failed_at, latest.failed_at) == (T0, T0 + dt.timedelta(minutes=2))
    assert (latest.expected_sha256, latest.actual_sha256) == (None, _sha(b"8\n"))
    assert found[1].status is TestStatus.TIMEOUT
    assert await store.read(latest.input_sha256) == b"3\n1 2 3\n"
    assert sorted(await store.keys()) == sorted(
        _sha(data) for data in (b"3\n1 2 3\n", b"6\n", b"7\n", b"5\n", b"8\n")
    )
    assert await counterexamples(db, "another#stress") == []
    assert len(await counterexamples(db, TEST, top=1)) == 1


REFUSED: Final = [
    (TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, test_id=TEST), "test_type"),
    (TestResult(test_type=TestType.TLE, status=TestStatus.PASSED, test_id=TEST), "status"),
    (TestResult(test_type=TestType.TLE, status=TestStatus.TIMEOUT), "test_id"),
    (TestResult(test_type=TestType.TLE, status=TestStatus.ERROR, test_id=TEST, id=3), "id"),
]


async def test_a_result_that_keeps_no_counterexample_is_refused(
    db: Database, store: CounterexampleStore
) -> None:
    """Not stress or tle, not failing, no test id, already saved: refused, nothing written."""
    for result, field in REFUSED:
        with pytest.raises(ValidationError) as caught:
            await keep_counterexample(db, store, result, input=b"1\n")
        assert caught.value.field == field
    assert await all_results(db) == []
    assert await store.keys() == []


async def test_bad_content_or_a_transaction_is_refused(
    db: Database, store: CounterexampleStore
) -> None:
    """Text instead of bytes, or a call inside transaction(), is refused before any write."""
    with pytest.raises(ValidationError, match=r"TestResult\.input"):
        await keep_counterexample(db, store, _failing(T0), input="1\n")  # type: ignore[arg-type]  # the mistake tested
    with pytest.raises(ValidationError, match="outside transaction"):
        async with transaction(db) as tx:
            await keep_counterexample(tx, store, _failing(T0), input=b"1\n")
    assert await all_results(db) == []
    assert await store.keys() == []


async def test_metadata_changed_in_place_is_refused_before_any_file_is_kept(
    db: Database, store: CounterexampleStore
) -> None:
    """A result whose metadata its caller changed after the build keeps no file."""
    result = _failing(T0, metadata={"seed": 1})
    result.metadata["seed"] = 2**64
    with pytest.raises(ValidationError, match=r"TestResult\.metadata"):
        await keep_counterexample(db, store, result, input=b"1\n")
    assert await all_results(db) == []
    assert await store.keys() == []


async def test_a_result_that_cannot_be_saved_links_nothing_and_its_files_are_swept(
    db: Database, store: CounterexampleStore
) -> None:
    """A run that does not exist: no result, no link; the files published go at the next sweep."""
    missing = r'Key \(run_id\)=\(999\) is not present in table "runs"\.'
    with pytest.raises(ConflictError, match=missing):
        await keep_counterexample(db, store, _failing(T0, run_id=999), input=b"orphan\n")
    assert await all_results(db) == []
    assert await store.keys() == [_sha(b"orphan\n")]
    assert await store.sweep(db) == 1
    assert await store.keys() == []


async def test_retention_removes_only_the_files_no_result_names(
    db: Database, store: CounterexampleStore
) -> None:
    """Old results go with their links; a file a new result still names stays."""
    run = await save_run(db, Run(started_at=OLD))
    await keep_counterexample(db, store, _failing(OLD, run_id=run.id), input=b"shared\n")
    await keep_counterexample(
        db, store, _failing(OLD), input=b"old only\n", expected=b"e\n", actual=b"a\n"
    )
    kept = await keep_counterexample(db, store, _failing(T0), input=b"shared\n")
    assert len(await store.keys()) == 4

    deleted = await delete_results_before(db, T0, artifacts=store)
    assert deleted == 2
    assert await store.keys() == [_sha(b"shared\n")]
    assert [c.result_id for c in await counterexamples(db, TEST)] == [kept.id]
    assert await store.read(_sha(b"shared\n")) == b"shared\n"
    with pytest.raises(ValidationError, match="outside transaction"):
        async with transaction(db) as tx:
            await delete_results_before(tx, T0, artifacts=store)


async def test_a_link_whose_result_plain_sql_deleted_keeps_no_file(
    db: Database, database_url: str, store: CounterexampleStore
) -> None:
    """A result deleted with foreign keys off leaves its links: they name nothing now.

    The sweep read every link as naming its file: the file was kept for good, though no
    result, nor `counterexamples`, showed it, and no call of the package removed it.
    """
    gone = await keep_counterexample(db, store, _failing(T0), input=b"orphaned\n")
    kept = await keep_counterexample(db, store, _failing(T0), input=b"named\n")
    off = ("SET session_replication_role = replica",) if "://" in database_url else ()
    await plain_sql(database_url, *off, f"DELETE FROM test_results WHERE id = {gone.id}")  # noqa: S608  # the test's own id
    assert [c.result_id for c in await counterexamples(db, TEST)] == [kept.id]
    assert await store.sweep(db) == 1
    assert await store.keys() == [_sha(b"named\n")]


async def test_a_keep_cancelled_once_its_result_is_saved_says_its_id(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation that comes once the keep committed (its lock let go after): its id noted.

    The COMMIT runs to its end before a cancellation goes on: the result and its files were
    kept, and the caller, told only that it was cancelled, had no id to find them by.
    """
    performed = perform  # the one the store imported

    async def then_cancelled(
        stage: Callable[[], Change[object]], record: Callable[[object], Awaitable[object]]
    ) -> object:
        await performed(stage, record)
        raise asyncio.CancelledError

    monkeypatch.setattr(counterexample_store, "perform", then_cancelled)
    with pytest.raises(asyncio.CancelledError) as raised:
        await keep_counterexample(db, store, _failing(T0), input=b"kept\n")
    (kept,) = await counterexamples(db, TEST)
    assert raised.value.__notes__ == [f"result {kept.result_id} was saved, with its counterexample"]


_SWEEPER: Final = """
import asyncio, datetime as dt, sys, time
from pathlib import Path
from persistence import connect, delete_results_before, open_counterexample_store
from persistence.storage import open_storage

async def main(url, root, stop):
    store = await open_counterexample_store(await open_storage(root))
    sweeps = 0
    async with connect(url) as db:
        print("ready", flush=True)
        while not Path(stop).exists():
            await delete_results_before(db, dt.datetime(2001, 1, 1, tzinfo=dt.UTC), artifacts=store)
            sweeps += 1
    print(sweeps, flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_file_a_result_names_survives_a_sweeping_process(
    database_url: str, db: Database, store: CounterexampleStore, tmp_path: Path
) -> None:
    """A writer here and retention in another process at once: every named file stays."""
    stop = tmp_path / "stop"
    sweeper = subprocess.Popen(  # noqa: ASYNC220  # a second process, on purpose
        [sys.executable, "-c", _SWEEPER, database_url, str(store.root), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sweeper.stdout is not None
        assert await asyncio.to_thread(sweeper.stdout.readline) == "ready\n"
        deadline = time.monotonic() + 1.0
        pairs = 0
        while time.monotonic() < deadline:
            data = b"%d\n" % pairs  # an old result keeps it; the sweeper may take it away ...
            await keep_counterexample(db, store, _failing(OLD), input=data)
            await asyncio.sleep(0.002 * (pairs % 3))
            at = T0 + dt.timedelta(seconds=pairs)  # ... until a new result names it again
            await keep_counterexample(db, store, _failing(at), input=data)
            assert await store.read(_sha(data)) == data, pairs
            pairs += 1
    finally:
        stop.touch()
        out, err = await asyncio.to_thread(sweeper.communicate, timeout=30)
    assert sweeper.returncode == 0, err
    assert int(out.split()[-1]) > 0
    named = {c.input_sha256 for c in await counterexamples(db, TEST, top=10_000)}
    assert named == {_sha(b"%d\n" % pair) for pair in range(pairs)}
    assert not named - set(await store.keys())


def test_path_of_names_the_kept_file_and_refuses_what_is_no_hash(tmp_path: Path) -> None:
    """The path under the root, by the first two hex digits; anything else is refused."""
    store = CounterexampleStore(tmp_path)
    key = hashlib.sha256(b"1\n").hexdigest()
    assert store.path_of(key) == tmp_path / ".cache" / "counterexamples" / key[:2] / key
    for bad in ("../" + key[3:], key.upper(), key[:-1], ""):
        with pytest.raises(ValidationError, match="is not a SHA-256"):
            store.path_of(bad)


async def test_a_hash_of_the_wrong_type_is_refused_naming_sha256(
    store: CounterexampleStore,
) -> None:
    """`path_of`, `contains` and `read` refuse a hash that is no str as `sha256`, touching nothing.

    An int, None or bytes went to the pattern as it was: `path_of` and `contains` raised
    TypeError, and `read` named another class's field (`ArtifactCache.key`).
    """
    for bad in (5, None, b"a" * 64, "A" * 64):
        with pytest.raises(ValidationError) as caught:
            store.path_of(bad)  # type: ignore[arg-type]  # a wrong type on purpose
        assert (caught.value.model, caught.value.field) == ("CounterexampleStore", "sha256")
        for look in (store.contains, store.read):
            with pytest.raises(ValidationError) as caught:
                await look(bad)  # type: ignore[arg-type]  # a wrong type on purpose
            assert (caught.value.model, caught.value.field) == ("CounterexampleStore", "sha256")
    assert not (store.root / ".cache" / "counterexamples").exists()


async def test_a_folder_in_place_of_a_kept_file_is_moved_aside(
    db: Database, store: CounterexampleStore
) -> None:
    """keep_counterexample stores through the artifact cache: a folder in a file's place goes.

    It failed with NotAFileError, for that input, for good.
    """
    (store.path_of(_sha(b"input")) / "sub").mkdir(parents=True)
    saved = await keep_counterexample(db, store, _failing(T0), input=b"input")
    assert saved.id is not None
    assert await store.read(_sha(b"input")) == b"input"


async def test_a_read_removes_no_kept_file_a_result_names(
    db: Database, store: CounterexampleStore, tmp_path: Path
) -> None:
    """A kept file with a second hard link is read and kept; a damaged one is a miss, and stays.

    The read stood on the artifact cache's, which removes such an entry as a bad one: a user's
    hard link made to replay an input deleted the file a result named, good content and all.
    """
    good, damaged = b"3\n1 2 3\n", b"5\n4 4 4 4 4\n"
    for data in (good, damaged):
        await keep_counterexample(db, store, _failing(T0), input=data)
    replay = tmp_path / "replay-input"
    replay.hardlink_to(store.path_of(_sha(good)))
    assert await store.read(_sha(good)) == good
    assert store.path_of(_sha(good)).stat().st_nlink == 2  # both names still there
    kept = store.path_of(_sha(good)).stat().st_ino
    await keep_counterexample(db, store, _failing(T0 + dt.timedelta(minutes=2)), input=good)
    assert store.path_of(_sha(good)).stat().st_ino == kept  # not removed and put back
    spoilt = store.path_of(_sha(damaged))
    spoilt.write_bytes(b"6" + damaged[1:])
    assert await store.read(_sha(damaged)) is None
    assert await store.contains(_sha(damaged))  # left for the next keep to put right
    await keep_counterexample(db, store, _failing(T0 + dt.timedelta(minutes=1)), input=damaged)
    assert await store.read(_sha(damaged)) == damaged
    named = {c.input_sha256 for c in await counterexamples(db, TEST)}
    assert named == {_sha(good), _sha(damaged)}
    assert all([await store.contains(sha) for sha in named])
