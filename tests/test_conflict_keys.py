"""A ConflictError names the key that conflicted, and its field, in the same words on both engines.

PostgreSQL's detail ("Key (path)=(a) already exists.") is the form; SQLite names only the
columns, or for a foreign key nothing at all, so the statement's rows supply the values.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import attrs
import pytest

from persistence import (
    ConflictError,
    Database,
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    save_run,
    set_config,
)

T0: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY_SHOWN: Final = 200  # the most characters of a key's values a message shows


def _result(test_id: str | None, run_id: int | None) -> TestResult:
    return TestResult(
        test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run_id, test_id=test_id
    )


def _record(path: str) -> FileRecord:
    return FileRecord(path=path, size=1, hash="", created_at=T0, accessed_at=T0)


async def _run(db: Database) -> int:
    run = await save_run(db, Run(started_at=T0))
    assert run.id is not None
    return run.id


async def test_a_config_entry_moved_onto_a_taken_key_names_it(db: Database) -> None:
    """An entry overwritten by id onto another's (section, key) names that section and key."""
    await set_config(db, "paths", "taken", 1)
    other = await set_config(db, "paths", "other", 2)
    with pytest.raises(ConflictError) as caught:
        await save_config_entry(db, attrs.evolve(other, key="taken"))
    assert "Key (section, key)=(paths, taken) already exists." in str(caught.value)


async def test_a_file_record_moved_onto_a_taken_path_names_it(db: Database) -> None:
    """A record overwritten by id onto another's path names that path."""
    await save_file_record(db, _record("reports/a.xml"))
    other = await save_file_record(db, _record("reports/b.xml"))
    with pytest.raises(ConflictError) as caught:
        await save_file_record(db, attrs.evolve(other, path="reports/a.xml"))
    assert "Key (path)=(reports/a.xml) already exists." in str(caught.value)


async def test_a_result_saved_twice_in_a_run_names_the_run_and_the_test(db: Database) -> None:
    """Inserted or overwritten by id onto a test its run holds: both name (run_id, test_id)."""
    run_id = await _run(db)
    await save_result(db, _result("t::a", run_id))
    second = await save_result(db, _result("t::b", run_id))
    taken = f"Key (run_id, test_id)=({run_id}, t::a) already exists."
    with pytest.raises(ConflictError) as inserted:
        await save_result(db, _result("t::a", run_id))
    assert taken in str(inserted.value)
    with pytest.raises(ConflictError) as overwritten:
        await save_result(db, attrs.evolve(second, test_id="t::a"))
    assert taken in str(overwritten.value)


@pytest.mark.parametrize("size", [500, 2100], ids=["one-statement", "many-statements"])
async def test_a_batch_names_the_row_that_conflicts(db: Database, size: int) -> None:
    """In a batch, the one row of hundreds that repeats a stored key, or another row's, is named.

    2100 rows take two of SQLite's multi-row statements: the repeat is in the second. A repeat
    within the batch is refused before anything is sent, naming both items.
    """
    run_id = await _run(db)
    await save_result(db, _result("stored", run_id))
    batch = [_result(f"t{n}", run_id) for n in range(size)]
    repeats_stored = [*batch[:-3], _result("stored", run_id), *batch[-3:]]
    with pytest.raises(ConflictError) as caught:
        await save_results(db, repeats_stored)
    assert f"Key (run_id, test_id)=({run_id}, stored) already exists." in str(caught.value)
    repeats_a_row = [*batch[:-3], _result("t5", run_id), *batch[-3:]]
    with pytest.raises(ConflictError) as caught:
        await save_results(db, repeats_a_row)
    assert str(caught.value) == (
        f"results[{size - 3}] repeats the test of results[5] (a run holds each test id once):"
        f" Key (run_id, test_id)=({run_id}, t5) is in the batch twice."
    )
    assert caught.value.constraint == "test_results_run_test_idx"
    assert len(await all_results(db)) == 1


async def test_a_long_key_is_cut_and_said_to_be(db: Database) -> None:
    """A key's values past KEY_SHOWN characters are cut, and the message says how long they were."""
    path = "deep/" * 200 + "a.xml"
    await save_file_record(db, _record(path))
    other = await save_file_record(db, _record("b.xml"))
    with pytest.raises(ConflictError) as caught:
        await save_file_record(db, attrs.evolve(other, path=path))
    message = str(caught.value)
    assert f"Key (path)=({path[:KEY_SHOWN]}... (cut from {len(path)} characters))" in message
    assert path not in message


async def test_a_missing_run_is_named(db: Database) -> None:
    """A result of a run that does not exist names the run_id and the table it was looked for in."""
    missing = 'Key (run_id)=(999) is not present in table "runs".'
    with pytest.raises(ConflictError) as alone:
        await save_result(db, _result("t::a", 999))
    assert missing in str(alone.value)
    run_id = await _run(db)
    batch = [_result(f"t{n}", run_id) for n in range(300)]
    with pytest.raises(ConflictError) as in_batch:
        await save_results(db, [*batch[:150], _result("t::x", 999), *batch[150:]])
    assert missing in str(in_batch.value)
    assert await all_results(db) == []
