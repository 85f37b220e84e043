"""Edges of the record modules: runs through the converter, hostile arguments, racing calls."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final, TypeVar

import pytest

import persistence.runs
from persistence import (
    CounterexampleStore,
    Database,
    MigrationError,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    connect,
    delete_results_before,
    end_run,
    from_dict,
    get_run,
    list_results,
    make_converter,
    migrate,
    open_persistence,
    save_results,
    save_run,
    to_dict,
)
from persistence._loans import run_query
from persistence.exceptions import StorageError
from persistence.migrations import pending_migrations
from test_plain_ids import plain_sql

_T = TypeVar("_T")

T0: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
T0_TEXT: Final = "2026-03-01T00:00:00+00:00"


def test_a_run_goes_through_the_converter_and_json_and_back() -> None:
    """A run, the fourth model, round-trips as the other three do, its id and end kept."""
    run = Run(started_at=T0, ended_at=T0 + dt.timedelta(minutes=3), labels={"commit": "9f2c"}, id=7)
    data = to_dict(run)
    assert data == {
        "started_at": T0_TEXT,
        "ended_at": "2026-03-01T00:03:00+00:00",
        "labels": {"commit": "9f2c"},
        "id": 7,
    }
    assert from_dict(Run, json.loads(json.dumps(data))) == run
    converter = make_converter()
    assert converter.structure(converter.unstructure(run), Run) == run


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"started_at": T0_TEXT, "colour": "red"}, "colour"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-03-01T00:00:00"}, "started_at"),
        ({"started_at": T0_TEXT, "ended_at": "2026-02-01T00:00:00+00:00"}, "ended_at"),
        ({"started_at": T0_TEXT, "labels": ["commit"]}, "labels"),
        ({"started_at": T0_TEXT, "id": "5"}, "id"),
        ({"started_at": T0_TEXT, "id": True}, "id"),
        (5, "argument"),
    ],
)
def test_a_bad_run_dict_is_a_validation_error_naming_its_field(data: object, field: str) -> None:
    """Each rule of the model holds, and the error names the field, as for the other models.

    Run was left to cattrs' defaults: a ClassValidationError or a TypeError, and an id of
    "5" taken as 5.
    """
    with pytest.raises(ValidationError, match=rf"^Run\.{field}:"):
        from_dict(Run, data)  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(ValidationError, match=rf"^Run\.{field}:"):
        make_converter().structure(data, Run)


class _BytesPath:
    """An os.PathLike whose path is bytes, which no database URL is."""

    def __fspath__(self) -> bytes:
        return b"app.db"


@pytest.mark.parametrize(
    "database", [5, b"postgresql://u:secret@127.0.0.1/db", _BytesPath(), ["app.db"]]
)
async def test_a_database_that_is_no_url_or_path_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database: object
) -> None:
    """`connect` and `open_persistence` refuse it naming their argument, and make nothing.

    It raised a bare TypeError from `os.fspath`, or from a regular expression given bytes,
    and then a DatabaseError that named no argument. The value is not shown: bytes may hold a
    password.
    """
    monkeypatch.chdir(tmp_path)
    refused = r"expected a str or os\.PathLike of one, got (a path of )?(int|bytes|list)"
    with pytest.raises(ValidationError, match=rf"^open_database\.url: {refused}") as connecting:
        async with connect(database):  # type: ignore[arg-type]  # bad on purpose
            pass
    with pytest.raises(
        ValidationError, match=rf"^open_persistence\.database: {refused}"
    ) as opening:
        async with open_persistence(database, files=tmp_path / "f"):  # type: ignore[arg-type]  # bad on purpose
            pass
    assert "secret" not in f"{connecting.value} {opening.value}"
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))


@pytest.mark.parametrize(
    ("files", "refused"),
    [
        ({}, "has no sqlite/ folder"),
        ({"sqlite/0001_Notes.sql": "SELECT 1;"}, "0001_Notes.sql: migration files are named"),
        ({"sqlite/0001_notes.sql": "CREATE TABLE notes (id INTEGER);\nCOMMIT;"}, "COMMIT"),
        ({"sqlite/0001_notes.sql": "SELECT 1;", "sqlite/0001_more.sql": "SELECT 2;"}, "share"),
    ],
)
async def test_a_bad_user_chain_is_refused_before_the_database_is_made(
    tmp_path: Path, files: dict[str, str], refused: str
) -> None:
    """A user folder whose files `migrate` would refuse makes no database file, no storage.

    `persistence migrate` reads every file first for that reason; `open_persistence` made and
    opened the SQLite file, then refused the folder, and left the new file behind.
    """
    chain = _written(tmp_path / "chain", {"README": "", **files})
    with pytest.raises(MigrationError, match=refused):
        async with open_persistence(
            tmp_path / "new.db", files=tmp_path / "f", user_migrations=chain
        ):
            pass
    assert await asyncio.to_thread(lambda: [path.name for path in tmp_path.iterdir()]) == ["chain"]


def _written(folder: Path, files: dict[str, str]) -> Path:
    """Write each file of `files` (a path under `folder`: its text) and give the folder."""
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


async def test_end_run_keeps_what_another_writer_stored_meanwhile(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending a run writes its end alone: labels another writer set meanwhile stay.

    `end_run` read the run, then wrote every field back: labels that another process stored
    between its read and its write were silently put back as they were. Here the other
    writer, plain SQL, tags the run right after end_run's first statement.
    """
    run = await save_run(db, Run(started_at=T0, labels={"commit": "9f2c"}))
    assert run.id is not None
    tag = """UPDATE runs SET labels = '{"commit": "9f2c", "verdict": "flaky"}'"""
    first_query = run_query

    async def then_another_writer_tags(db: Database, query: Callable[..., Awaitable[_T]]) -> _T:
        monkeypatch.setattr(persistence.runs, "run_query", first_query)
        answer = await first_query(db, query)
        await plain_sql(database_url, tag)
        return answer

    monkeypatch.setattr(persistence.runs, "run_query", then_another_writer_tags)
    end = T0 + dt.timedelta(minutes=5)
    await end_run(db, run.id, end)
    assert await get_run(db, run.id) == Run(
        started_at=T0, ended_at=end, labels={"commit": "9f2c", "verdict": "flaky"}, id=run.id
    )


async def test_a_cursor_filtered_by_a_number_refuses_the_same_filter_by_a_bool(
    db: Database,
) -> None:
    """`{"flaky": True}` and `{"flaky": 1}` are two filters, so a cursor of one refuses the other.

    The filters compared equal (Python's `True == 1`), so the listing went on with the cursor's
    filter and gave the results of `1` to a caller who asked for `True`, with no error.
    Numbers still compare by value: the cursor of `1` goes on under `1.0`.
    """
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                metadata={"flaky": flag},
                created_at=T0 + dt.timedelta(seconds=second),
            )
            for second, flag in enumerate([True, 1, True, 1])
        ],
    )
    first = await list_results(db, ResultFilter(metadata={"flaky": 1}), limit=1)
    assert first.next_cursor is not None
    with pytest.raises(ValidationError, match=r"^PageCursor\.where: the cursor belongs"):
        await list_results(db, ResultFilter(metadata={"flaky": True}), after=first.next_cursor)
    same = await list_results(db, ResultFilter(metadata={"flaky": 1.0}), after=first.next_cursor)
    assert [result.metadata for result in same.items] == [{"flaky": 1}]
    assert ResultFilter(metadata={"flaky": False}) != ResultFilter(metadata={"flaky": 0})


@pytest.mark.parametrize("files", ["a_file", "a_file/below", "a_link_to_nothing"])
async def test_a_files_root_that_cannot_be_a_folder_makes_no_database(
    tmp_path: Path, files: str
) -> None:
    """A `files` root that is, or lies under, something that is no folder makes nothing.

    The database was made, opened and migrated first; then the file store refused its root,
    and a new migrated database file was left behind.
    """
    _written(tmp_path, {"a_file": "x"})
    (tmp_path / "a_link_to_nothing").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StorageError, match="not a folder"):
        async with open_persistence(tmp_path / "new.db", files=tmp_path / files):
            pass
    left = await asyncio.to_thread(lambda: sorted(path.name for path in tmp_path.iterdir()))
    assert left == ["a_file", "a_link_to_nothing"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"accept": 3}, "accept"),
        ({"accept": "0003"}, "accept"),
        ({"accept": ["3"]}, "accept"),
        ({"accept": [True]}, "accept"),
        ({"accept": [2**63]}, "accept"),
        ({"accept": [-1]}, "accept"),
        ({"accept_user": True}, "accept_user"),
    ],
)
async def test_versions_to_accept_that_are_no_versions_are_refused_by_name(
    db: Database, arguments: dict[str, object], field: str
) -> None:
    """`accept` and `accept_user` take a collection of ints: anything else names the argument.

    One version (`accept=3`) or `True` raised a bare TypeError; a text was taken character
    by character (`"0003"` said "cannot accept migration 0"), and `["3"]` was never equal to
    version 3, so drift on an applied migration was refused as "never applied".
    """
    for call in (migrate, pending_migrations):
        with pytest.raises(ValidationError, match=rf"^migrate\.{field}:"):
            await call(db, **arguments)  # type: ignore[arg-type]  # bad on purpose


@pytest.mark.parametrize("value", [None, 5, "result", {"status": "passed"}, ResultFilter()])
def test_to_dict_of_what_is_no_model_is_refused(value: object) -> None:
    """`to_dict` gave back whatever was no model as it was: `to_dict(None)` was None."""
    with pytest.raises(
        ValidationError, match=r"^to_dict\.model: expected one of the models TestResult"
    ):
        to_dict(value)  # type: ignore[arg-type]  # bad on purpose


@pytest.mark.parametrize("cls", [dict, int, None, ResultFilter, TestStatus])
def test_from_dict_into_what_is_no_model_is_refused(cls: object) -> None:
    """`from_dict(dict, data)` gave the dict back, and `from_dict(int, data)` a bare TypeError."""
    with pytest.raises(ValidationError, match=r"^from_dict\.cls: expected one of the types"):
        from_dict(cls, {"status": "passed"})  # type: ignore[arg-type]  # bad on purpose


async def test_retention_given_the_store_class_refuses_it_before_deleting(db: Database) -> None:
    """`artifacts=CounterexampleStore`, the class for the store, deletes nothing.

    A class has `sweep` to call, so it passed the check: every old row was deleted, then
    its unbound `sweep` raised a bare TypeError and no file was swept.
    """
    old = T0 - dt.timedelta(days=400)
    await save_results(
        db, [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, created_at=old)]
    )
    with pytest.raises(
        ValidationError, match=r"^TestResult\.artifacts: expected a CounterexampleStore"
    ):
        await delete_results_before(db, T0, artifacts=CounterexampleStore)  # type: ignore[arg-type]  # bad on purpose
    assert [result.created_at for result in await all_results(db)] == [old]
