"""Stored text that no longer decodes, written by plain SQL: a ValidationError naming it.

SQLite keeps times as text, and JSON as text that a CHECK holds valid unless the writer turns
checks off; PostgreSQL keeps JSON that may nest deeper than Python's decoder goes. Whatever the
path a row is read by (one row, a page, a whole table), such a value is refused by the
package's own error, naming the stored text, never a bare ValueError or RecursionError.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import asyncpg
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persistence import (
    Database,
    DatabaseError,
    FileRecord,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_config_entries,
    all_file_records,
    all_results,
    all_runs,
    connect,
    find_file_record_by_path,
    get_config_entry,
    get_config_entry_by_key,
    get_result,
    get_run,
    list_config_entries,
    list_results,
    save_file_record,
    save_result,
    save_results,
    save_run,
    set_config,
)
from persistence.backup import copy_database
from persistence.migrations import migrate
from persistence.run_history import counterexamples, flaky_tests
from test_plain_ids import plain_sql

START = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def result(i: int) -> TestResult:
    """A plain result with some metadata."""
    return TestResult(
        test_type=TestType.UNIT, status=TestStatus.PASSED, test_id=f"t{i}", metadata={"i": i}
    )


def poison(path: Path, table: str, column: str, text: str, row_id: int) -> None:
    """Write `text` into one row's column as another program would, checks turned off."""
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        plain.execute("PRAGMA ignore_check_constraints = ON")
        plain.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (text, row_id))  # noqa: S608  # the test's own names


BAD_TIMES = ["2026-13-01T00:00:00+00:00", "2026-\x112-04T00:00:00", "2026-1", "2026-12-04T25:00"]
"""Text that sorts among stored times, so listings in time order reach it as well."""
BAD_JSON = ['{"i": 1', "[" * 5000 + "]" * 5000, "NaN?", ""]


@pytest.mark.parametrize(
    ("column", "text"),
    [("created_at", text) for text in BAD_TIMES] + [("metadata", text) for text in BAD_JSON],
)
async def test_a_result_that_does_not_decode_is_refused_on_every_path(
    tmp_path: Path, column: str, text: str
) -> None:
    """One bad row among many: read alone, in a page, or with the whole table."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(50)])
        poison(path, "test_results", column, text, 25)
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: get_result(db, 25),
            lambda: all_results(db),
        ]
        for read in reads:
            with pytest.raises(ValidationError, match="stored row") as caught:
                await read()
            assert repr(text)[:40] in str(caught.value)
        assert (await get_result(db, 24)).test_id == "t23"  # the other rows still read


@pytest.mark.parametrize("text", ["garbage", ""])
async def test_a_time_that_sorts_outside_all_times_is_refused_by_id(
    tmp_path: Path, text: str
) -> None:
    """Text that sorts after or before every time is refused when read by its id, and listed.

    Listings in time order page by the stored text; their unset bounds once were the first and
    last times there can be, so they passed over such a row. Now they reach it and refuse it.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(5)])
        poison(path, "test_results", "created_at", text, 3)
        with pytest.raises(ValidationError, match="stored row"):
            await get_result(db, 3)
        with pytest.raises(ValidationError, match="stored row"):
            await all_results(db)


async def test_runs_and_file_records_that_do_not_decode_are_refused(tmp_path: Path) -> None:
    """The same for the other tables that hold times: runs and file records."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        run = await save_run(db, Run())
        assert run.id is not None
        record = await save_file_record(db, FileRecord(path="a.txt", size=1, hash="0" * 64))
        assert record.id is not None
        poison(path, "runs", "started_at", "2026-13-01", run.id)
        poison(path, "file_records", "created_at", "2026-02-30", record.id)
        for read in (
            lambda: get_run(db, run.id or 0),
            lambda: all_runs(db),
            lambda: find_file_record_by_path(db, "a.txt"),
            lambda: all_file_records(db),
        ):
            with pytest.raises(ValidationError, match="stored row"):
                await read()


@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=40))
def test_any_text_in_a_time_column_reads_or_is_refused(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Whatever text plain SQL puts in `created_at`: a time, or a ValidationError."""
    path = tmp_path_factory.mktemp("any") / "app.db"

    async def check() -> None:
        async with connect(path) as db:
            await migrate(db)
            await save_results(db, [result(i) for i in range(5)])
            poison(path, "test_results", "created_at", text, 3)
            for read in (lambda: get_result(db, 3), lambda: all_results(db)):
                with contextlib.suppress(ValidationError):  # anything else fails the test
                    await read()

    asyncio.run(check())


async def test_postgres_json_nested_deeper_than_python_reads_is_refused(
    migrated_postgres_url: str,
) -> None:
    """Jsonb nested 5,000 deep is valid to PostgreSQL, and too deep for Python's decoder."""
    async with connect(migrated_postgres_url) as db:
        await save_results(db, [result(i) for i in range(10)])
        deep = "[" * 5000 + "]" * 5000
        await plain_sql(
            migrated_postgres_url,
            f"UPDATE test_results SET metadata = jsonb_build_object('deep', '{deep}'::jsonb) "  # noqa: S608  # the test's own text
            "WHERE test_id = 't5'",
        )
        with pytest.raises(ValidationError, match=r"stored row\.test_results\.metadata: id 6: "):
            await all_results(db)


PAST_THE_MODEL = {
    "execution_time": ["9e999", "1e300", "'abc'", "x'00'"],
    "memory_usage": ["'abc'", "1e30", "1.5"],
    "test_cases_total": ["'many'"],
    "error_message": ["'a' || char(0) || 'b'", "x'6869'"],
    "output": ["char(0)"],
    "test_id": ["'t' || char(0)", "printf('%.2000c', 'x')", "7"],
    "run_id": ["'r'", "1.5"],
}
"""SQL values that SQLite's loose column types take and the model refuses: no finite time up to
its limit, no int, no text, NUL characters, a key too long to index (the last test id, an int,
is read as the text '7', which the model takes). Since migration 0016 the CHECKs refuse text,
blobs and reals in number columns (test_stored_numbers.py); a program that turns them off
(`PRAGMA ignore_check_constraints`) still stores them, as these tests do."""

UNCHECKED: Final = "PRAGMA ignore_check_constraints = ON"
"""Plain SQL past SQLite's CHECKs, to store what the read paths must still refuse."""


@pytest.mark.parametrize(
    ("column", "value"),
    [(column, value) for column, values in PAST_THE_MODEL.items() for value in values],
)
async def test_a_result_stored_past_the_models_rules_is_refused_on_every_path(
    tmp_path: Path, column: str, value: str
) -> None:
    """A row that plain SQL wrote within the CHECKs but against the model is never a model.

    Each read gives the model's own reason on `stored row`, naming the column; the other rows
    still read. Before, the row came back as a TestResult that broke its own rules.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(50)])
        update = f"UPDATE test_results SET {column} = {value} WHERE id = 25"  # noqa: S608  # the test's own SQL
        await plain_sql(str(path), UNCHECKED, update)
        if value == "7":
            assert (await get_result(db, 25)).test_id == "7"
            return
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: get_result(db, 25),
            lambda: all_results(db),
            lambda: list_results(db, ResultFilter(status=TestStatus.PASSED), limit=100),
            lambda: list_results(db, ResultFilter(metadata={"i": 24})),
        ]
        for read in reads:
            with pytest.raises(ValidationError, match=rf"stored row\.test_results\.{column}"):
                await read()
        assert (await get_result(db, 24)).test_id == "t23"


async def test_postgres_results_past_the_models_rules_are_refused(
    migrated_postgres_url: str,
) -> None:
    """PostgreSQL's CHECKs let a too long test id through, and past its CHECK a too long time.

    Since migration 0016 a CHECK refuses an infinite or too long time
    (test_stored_number_bounds.py); a program that drops it still stores one, as this test does.
    """
    async with connect(migrated_postgres_url) as db:
        await save_results(db, [result(i) for i in range(10)])
        await plain_sql(
            migrated_postgres_url,
            "ALTER TABLE test_results"
            " DROP CONSTRAINT test_results_execution_time_finite_up_to_1e12",
        )
        for column, value in [
            ("execution_time", "'Infinity'"),
            ("execution_time", "1e300"),
            ("test_id", "repeat('x', 2000)"),
        ]:
            await plain_sql(
                migrated_postgres_url,
                f"UPDATE test_results SET {column} = {value} WHERE test_id = 't5'",  # noqa: S608  # the test's own SQL
            )
            with pytest.raises(ValidationError, match=rf"stored row\.test_results\.{column}"):
                await all_results(db)
            await plain_sql(
                migrated_postgres_url,
                "UPDATE test_results SET execution_time = 0, test_id = 't5' "
                "WHERE test_id = 't5' OR length(test_id) > 100",
            )
        assert len(await all_results(db)) == 10


_BAD_HASHES = [("hash", "'not a hash'"), ("hash", "upper(hash)")]
_SQLITE_ONLY = [
    ("size", "'big'"),
    ("size", "2.5"),
    ("path", "'b' || char(0)"),
    ("path", "printf('%.2000c', 'p')"),
]
"""PostgreSQL's column types and text hold these."""


@pytest.mark.parametrize(("column", "value"), _BAD_HASHES)
async def test_a_file_record_stored_past_the_models_rules_is_refused(
    database_url: str, column: str, value: str
) -> None:
    """A file record's hash has no CHECK on either engine, and SQLite's columns take any type.

    Such a record was read into a FileRecord that broke its own rules; now each read refuses it
    on `stored row`, naming the column, and the other records still read.
    """
    await _refused_file_record(database_url, column, value)


@pytest.mark.parametrize(("column", "value"), _SQLITE_ONLY)
async def test_a_sqlite_file_record_of_loose_types_is_refused(
    tmp_path: Path, column: str, value: str
) -> None:
    """The same for what only SQLite's columns take: a size not an int, a path with a NUL."""
    await _refused_file_record(str(tmp_path / "app.db"), column, value, UNCHECKED)


async def _refused_file_record(database_url: str, column: str, value: str, *before: str) -> None:
    async with connect(database_url) as db:
        await migrate(db)
        for name in ("a", "b"):
            await save_file_record(db, FileRecord(path=name, size=1, hash="ab" * 32))
        update = f"UPDATE file_records SET {column} = {value} WHERE path = 'b'"  # noqa: S608  # the test's own SQL
        await plain_sql(database_url, *before, update)
        with pytest.raises(ValidationError, match=rf"stored row\.file_records\.{column}"):
            await all_file_records(db)
        assert (await find_file_record_by_path(db, "a")) is not None


_CONFIG_PAST_THE_MODEL = [("key", f"'{'k' * 1100}'"), ("section", f"'{'s' * 1100}'")]
"""A section or key too long to be one, which PostgreSQL's index takes up to 2,704 bytes."""
_SQLITE_CONFIG_ONLY = [
    ("section", "'b' || char(0)"),
    ("key", "'k' || char(0)"),
    ("description", "'d' || char(0)"),
    ("description", "x'00'"),
]
"""NUL characters and a blob, which only SQLite's columns take."""


@pytest.mark.parametrize(("column", "value"), _CONFIG_PAST_THE_MODEL)
async def test_a_config_entry_stored_past_the_models_rules_is_refused(
    database_url: str, column: str, value: str
) -> None:
    """A config entry's section, key and description have only NOT NULL and non-empty CHECKs.

    Such an entry was read into a ConfigEntry that broke its own rules, and a page ending on it
    failed to make its cursor; now each read refuses it on `stored row`, naming the column and
    the entry's id, and the other entries still read. PostgreSQL's CHECK (migration 0019)
    now refuses a section or key past 1,024 bytes as it is written.
    """
    if "://" in database_url:
        async with connect(database_url) as db:
            await migrate(db)
            bad = await set_config(db, "b", "k", 2)
        update = f"UPDATE config_entries SET {column} = {value} WHERE id = {bad.id}"  # noqa: S608  # the test's own SQL
        with pytest.raises(asyncpg.CheckViolationError, match="config_entries_keys_within"):
            await plain_sql(database_url, update)
        return
    await _refused_config_entry(database_url, column, value)


@pytest.mark.parametrize(("column", "value"), _SQLITE_CONFIG_ONLY)
async def test_a_sqlite_config_entry_of_loose_types_is_refused(
    tmp_path: Path, column: str, value: str
) -> None:
    """The same for what only SQLite's columns take: NUL characters, a blob."""
    await _refused_config_entry(str(tmp_path / "app.db"), column, value)


async def _refused_config_entry(database_url: str, column: str, value: str) -> None:
    async with connect(database_url) as db:
        await migrate(db)
        first = await set_config(db, "a", "k", 1)
        bad = await set_config(db, "b", "k", 2)
        update = f"UPDATE config_entries SET {column} = {value} WHERE id = {bad.id}"  # noqa: S608  # the test's own SQL
        await plain_sql(database_url, update)
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: get_config_entry(db, bad.id or 0),
            lambda: all_config_entries(db),
            lambda: list_config_entries(db, limit=2),
        ]
        for read in reads:
            with pytest.raises(
                ValidationError, match=rf"stored row\.config_entries\.{column}: id {bad.id}:"
            ):
                await read()
        assert (await get_config_entry(db, first.id or 0)).value == 1


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
async def test_postgres_infinite_times_of_config_and_file_records_are_refused(
    migrated_postgres_url: str, value: str
) -> None:
    """PostgreSQL's `timestamptz` holds `infinity` and `-infinity`, which asyncpg reads naive.

    A config entry or a file record holding one was read with a naive `datetime.max` or `.min`,
    which failed the next comparison with an aware time by a bare TypeError, and was written
    back as a finite time by the next save. Each read now refuses it on `stored row`, naming
    the column and the row's id; the other rows still read.
    """
    url = migrated_postgres_url
    async with connect(url) as db:
        await set_config(db, "a", "k", 1)
        entry = await set_config(db, "b", "k", 2)
        await save_file_record(db, FileRecord(path="a"))
        record = await save_file_record(db, FileRecord(path="b"))
        await plain_sql(
            url,
            f"UPDATE config_entries SET updated_at = '{value}' WHERE id = {entry.id}",  # noqa: S608  # the test's own SQL
            f"UPDATE file_records SET accessed_at = '{value}' WHERE id = {record.id}",  # noqa: S608  # the test's own SQL
        )
        reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            (
                f"config_entries.updated_at: id {entry.id}",
                lambda: get_config_entry(db, entry.id or 0),
            ),
            (f"config_entries.updated_at: id {entry.id}", lambda: all_config_entries(db)),
            (f"file_records.accessed_at: id {record.id}", lambda: all_file_records(db)),
            (
                f"file_records.accessed_at: id {record.id}",
                lambda: find_file_record_by_path(db, "b"),
            ),
        ]
        for reason, read in reads:
            with pytest.raises(ValidationError, match=rf"stored row\.{reason}: .*{value}"):
                await read()
        assert (await get_config_entry_by_key(db, "a", "k")).value == 1
        assert (await find_file_record_by_path(db, "a")) is not None


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
async def test_postgres_infinite_times_of_results_and_runs_are_refused(
    migrated_postgres_url: str, value: str
) -> None:
    """A result's or a run's time that plain SQL set to an infinity is refused when read.

    As for config entries and file records, it was read as a naive `datetime.max` or `.min`.
    A run holding one failed its read by a bare TypeError (its end compared with its start);
    a result held a time no model holds. Each read now refuses it on `stored row`, naming the
    column and the row's id; the other rows still read.
    """
    url = migrated_postgres_url
    async with connect(url) as db:
        kept, ended, started = [await save_run(db, Run(started_at=START)) for _ in range(3)]
        first, second = [await save_result(db, result(i)) for i in (1, 2)]
        await plain_sql(
            url,
            f"UPDATE test_results SET created_at = '{value}' WHERE id = {first.id}",  # noqa: S608  # the test's own SQL
            f"UPDATE runs SET ended_at = '{value}' WHERE id = {ended.id}",  # noqa: S608  # the test's own SQL
            f"UPDATE runs SET started_at = '{value}' WHERE id = {started.id}",  # noqa: S608  # the test's own SQL
        )
        reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            (f"test_results.created_at: id {first.id}", lambda: get_result(db, first.id or 0)),
            (f"runs.ended_at: id {ended.id}", lambda: get_run(db, ended.id or 0)),
            (f"runs.started_at: id {started.id}", lambda: get_run(db, started.id or 0)),
        ]
        reads.append((f"test_results.created_at: id {first.id}", lambda: all_results(db)))
        reads.append((r"runs\.(started|ended)_at: id \d+", lambda: all_runs(db)))
        for reason, read in reads:
            with pytest.raises(ValidationError, match=rf"stored row\.{reason}: .*{value}"):
                await read()
        assert (await get_result(db, second.id or 0)).test_id == "t2"
        assert (await get_run(db, kept.id or 0)).started_at == START


@pytest.mark.parametrize("value", ["infinity", "-infinity"])
async def test_postgres_infinite_result_times_are_refused_by_the_questions(
    migrated_postgres_url: str, value: str
) -> None:
    """A failing result's time that plain SQL set to an infinity is refused by the questions.

    `flaky_tests` gave it on as `last_seen`, and `counterexamples` as `failed_at` and
    `first_failed_at`: naive times that no model holds, printed by the CLI as 9999-12-31.
    """
    url = migrated_postgres_url
    async with connect(url) as db:
        passed, failed = [
            await save_run(db, Run(started_at=START, labels={"commit": "c"})) for _ in range(2)
        ]
        await save_result(db, attrs.evolve(result(1), run_id=passed.id, test_id="t"))
        await plain_sql(
            url,
            "INSERT INTO test_results (test_type, status, created_at, run_id, test_id)"  # noqa: S608  # the test's own SQL
            f" VALUES ('stress', 'failed', '{value}', {failed.id}, 't')",
            "INSERT INTO result_artifacts (result_id, role, sha256, size) SELECT id, 'input',"
            " repeat('a', 64), 3 FROM test_results WHERE status = 'failed'",
        )
        refused = rf"^stored row\.test_results\.created_at: stored {value} is no instant"
        if value == "infinity":  # a time before `since` is not asked for
            with pytest.raises(ValidationError, match=refused):
                await flaky_tests(db, START - dt.timedelta(days=1))
        with pytest.raises(ValidationError, match=refused):
            await counterexamples(db, "t")


@pytest.mark.parametrize("value", ["x'00'", "'2026-06-01T00:00:00'", "'2026-06-01 12:00'"])
async def test_a_time_stored_as_a_blob_or_without_an_offset_is_refused(
    tmp_path: Path, value: str
) -> None:
    """A blob, or a time without a UTC offset, in a SQLite time column is no stored time.

    Both were read as they were: bytes, or a naive datetime, in a model that takes aware times
    only (a naive one then failed comparisons with a raw TypeError). Now each read refuses them
    on `stored row.time`; since 0013 the history tables' CHECKs refuse them before they are
    stored, as any time not in the one form the package writes, and since 0014 file_records'
    CHECKs do: the read's refusal is seen past them, with `PRAGMA ignore_check_constraints`.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(5)])
        await save_run(db, Run())
        await save_file_record(db, FileRecord(path="a.txt", size=1))
        for held in (
            f"UPDATE test_results SET created_at = {value} WHERE id = 3",  # noqa: S608  # the test's own SQL
            f"UPDATE runs SET started_at = {value}",  # noqa: S608  # the test's own SQL
            f"UPDATE file_records SET accessed_at = {value}",  # noqa: S608  # the test's own SQL
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                await plain_sql(str(path), held)
        await plain_sql(
            str(path),
            "PRAGMA ignore_check_constraints = ON",
            f"UPDATE file_records SET accessed_at = {value}",  # noqa: S608  # the test's own SQL
        )
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: find_file_record_by_path(db, "a.txt"),
            lambda: all_file_records(db),
        ]
        for read in reads:
            with pytest.raises(
                ValidationError, match=r"stored row\.file_records\.accessed_at: id 1: "
            ):
                await read()
        assert (await get_result(db, 3)).test_id == "t2"
        assert (await get_run(db, 1)).id == 1


JSON_PAST_THE_MODEL = [
    ('{"n": 1e400}', "finite|64 bits"),
    ('{"n": -1e400}', "finite|64 bits"),
    ('{"n": 9007199254740993.5}', "below 2\\*\\*53"),
    ('{"n": 123456789012345678901234567890}', "64 bits"),
    ('{"n": -9223372036854775809}', "64 bits"),
    ('{"n": ' + "[" * 63 + "1" + "]" * 63 + "}", ""),
    ('{"n": ' + "[" * 70 + "]" * 70 + "}", "deeper than 64"),
]
"""JSON that both engines store and Python reads, holding what the model refuses: an infinite
float (which jsonb keeps as an int of 401 digits), a float past 2**53, an int beyond 64 bits,
nesting deeper than the model takes. The JSON nested 64 levels, as deep as the model takes,
must read."""
SQLITE_JSON_PAST_THE_MODEL = [
    ('{"n": 1e16}', "below 2\\*\\*53"),
    ('{"s": "a\\u0000b"}', "NUL"),
    ('{"a\\u0000": 1}', "NUL"),
    ('{"s": ["\\ud800"]}', "lone surrogate"),
]
"""A float that jsonb keeps as an int, and escapes that SQLite's JSON takes and jsonb refuses."""


async def _refused_metadata(database_url: str, stored: str, reason: str) -> None:
    async with connect(database_url) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(10)])
        run = await save_run(db, Run(labels={"a": "b"}))
        await save_file_record(db, FileRecord(path="a.txt", size=1))
        quoted = stored.replace("'", "''")
        await plain_sql(
            database_url,
            f"UPDATE test_results SET metadata = '{quoted}' WHERE test_id = 't5'",  # noqa: S608  # the test's own SQL
            f"UPDATE runs SET labels = '{quoted}'",  # noqa: S608  # the test's own SQL
            f"UPDATE file_records SET metadata = '{quoted}'",  # noqa: S608  # the test's own SQL
        )
        if not reason:  # within the model's rules: every read gives it back
            assert (await get_result(db, 6)).metadata == {"n": nested(63)}
            assert (await get_run(db, run.id or 0)).labels == {"n": nested(63)}
            assert len(await all_file_records(db)) == 1
            return
        # Each refusal names the row's table, column and id.
        reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("test_results.metadata: id 6", lambda: get_result(db, 6)),
            ("test_results.metadata: id 6", lambda: all_results(db)),
            (
                "test_results.metadata: id 6",
                lambda: list_results(db, ResultFilter(status=TestStatus.PASSED), limit=100),
            ),
            (f"runs.labels: id {run.id}", lambda: get_run(db, run.id or 0)),
            (f"runs.labels: id {run.id}", lambda: all_runs(db)),
            ("file_records.metadata: id 1", lambda: find_file_record_by_path(db, "a.txt")),
            ("file_records.metadata: id 1", lambda: all_file_records(db)),
        ]
        for named, read in reads:
            with pytest.raises(ValidationError, match=rf"stored row\.{named}: .*({reason})"):
                await read()
        assert (await get_result(db, 5)).metadata == {"i": 4}  # the other rows still read


def nested(depth: int) -> object:
    """`1` in `depth` lists."""
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("stored", "reason"), JSON_PAST_THE_MODEL)
async def test_json_stored_past_the_models_rules_is_refused(
    database_url: str, stored: str, reason: str
) -> None:
    """Metadata and labels that plain SQL stored, valid JSON that the model refuses.

    They were read into models holding an infinite float or an int no engine's writer takes,
    which then failed on their next save or export with a bare error. Each read now refuses
    them on `stored row`, naming the row's table, column and id (it named none, as `json`),
    with the model's reason; the other rows still read.
    """
    await _refused_metadata(database_url, stored, reason)


@pytest.mark.parametrize(("stored", "reason"), SQLITE_JSON_PAST_THE_MODEL)
async def test_sqlite_json_escapes_past_the_models_rules_are_refused(
    tmp_path: Path, stored: str, reason: str
) -> None:
    """A NUL or a lone surrogate, written as a JSON escape, which SQLite's JSON takes."""
    await _refused_metadata(str(tmp_path / "app.db"), stored, reason)


async def test_sqlite_json_stored_as_a_blob_is_refused(tmp_path: Path) -> None:
    """Metadata and labels that plain SQL stored as a blob of JSON text.

    SQLite's `json_valid` takes such a blob, so the columns' CHECK let it in; it was read
    into the model as bytes, where a dict is typed, and every export and `persistence runs`
    then failed with a bare AttributeError. Migration 0017's triggers refuse it now
    (`test_json_stored_as_text.py`); a database whose triggers were dropped is still read safely.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
        await save_results(db, [result(i) for i in range(50)])
        run = await save_run(db, Run(labels={"commit": "c"}))
        with contextlib.closing(sqlite3.connect(path)) as plain, plain:
            plain.execute("PRAGMA ignore_check_constraints = ON")  # as a later SQLite may refuse
            for trigger in ("test_results_metadata_text_update", "runs_labels_text_update"):
                plain.execute(f"DROP TRIGGER {trigger}")
            plain.execute("UPDATE test_results SET metadata = CAST(metadata AS BLOB) WHERE id = 25")
            plain.execute("UPDATE runs SET labels = CAST(labels AS BLOB)")
        reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("test_results.metadata: id 25", lambda: get_result(db, 25)),
            ("test_results.metadata: id 25", lambda: all_results(db)),
            ("test_results.metadata: id 25", lambda: list_results(db, limit=100)),
            (f"runs.labels: id {run.id}", lambda: get_run(db, run.id or 0)),
            (f"runs.labels: id {run.id}", lambda: all_runs(db)),
        ]
        for named, read in reads:
            with pytest.raises(ValidationError, match=rf"stored row\.{named}: .*got a blob"):
                await read()
        assert (await get_result(db, 24)).metadata == {"i": 23}  # the other rows still read


async def test_a_sqlite_config_time_of_another_offset_reads_in_utc(tmp_path: Path) -> None:
    """Plain SQL may store a config entry's time with another offset: no CHECK holds its form.

    It was read with that offset, where every time the package gives is in UTC, and one that
    is past the year 9999 in UTC made the entry's next save a bare OverflowError.
    """
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
    with contextlib.closing(sqlite3.connect(path)) as plain, plain:
        plain.execute(
            "INSERT INTO config_entries (id, section, key, value, type, updated_at) VALUES"
            " (1, 's', 'east', 'x', 'str', '2024-01-01T05:00:00+05:00'),"
            " (2, 's', 'late', 'x', 'str', '9999-12-31T23:59:59-05:00')"
        )
    async with connect(path) as db:
        east = await get_config_entry_by_key(db, "s", "east")
        assert east.updated_at == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        assert east.updated_at.tzinfo is dt.UTC
        with pytest.raises(ValidationError, match=r"config_entries\.updated_at: id 2: .*in UTC"):
            await get_config_entry_by_key(db, "s", "late")


_RESERVED_TIMES: Final = {
    "first": ("0001-01-01T00:00:00.000000+00:00", "0001-01-01 00:00:00+00"),
    "last": ("9999-12-31T23:59:59.999999+00:00", "9999-12-31 23:59:59.999999+00"),
}


@pytest.mark.parametrize("which", sorted(_RESERVED_TIMES))
async def test_a_reserved_instant_stored_by_plain_sql_is_refused_on_every_read(
    db: Database, database_url: str, tmp_path: Path, which: str
) -> None:
    """The first and last instants of Python's range, stored by plain SQL, are refused.

    No model holds them: asyncpg writes them as PostgreSQL's infinities. Read as they were, a
    copy into PostgreSQL turned them into infinities that no read then took, a page ending on
    one failed to build its cursor (naming no row), and the package's own export failed its
    import. Each read now refuses the row on `stored row`, naming its column and id.
    """
    lite, postgres = _RESERVED_TIMES[which]
    stored = postgres if "://" in database_url else lite
    run = await save_run(db, Run(started_at=START))
    first = await save_result(db, attrs.evolve(result(1), run_id=run.id))
    await save_result(db, result(2))
    entry = await set_config(db, "a", "k", 1)
    record = await save_file_record(db, FileRecord(path="a"))
    ended = await save_run(db, Run(started_at=START))
    await plain_sql(
        database_url,
        f"UPDATE test_results SET created_at = '{stored}' WHERE id = {first.id}",  # noqa: S608  # the test's own SQL
        f"UPDATE config_entries SET updated_at = '{stored}' WHERE id = {entry.id}",  # noqa: S608  # the test's own SQL
        f"UPDATE file_records SET created_at = '{stored}' WHERE id = {record.id}",  # noqa: S608  # the test's own SQL
        f"UPDATE runs SET started_at = '{stored}' WHERE id = {run.id}",  # noqa: S608  # the test's own SQL
        f"UPDATE runs SET ended_at = '{stored}' WHERE id = {ended.id}"  # noqa: S608  # the test's own SQL
        if which == "last"
        else "SELECT 1",
    )
    reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (f"test_results.created_at: id {first.id}", lambda: get_result(db, first.id or 0)),
        (f"test_results.created_at: id {first.id}", lambda: all_results(db)),
        (f"test_results.created_at: id {first.id}", lambda: list_results(db, limit=2)),
        (f"config_entries.updated_at: id {entry.id}", lambda: all_config_entries(db)),
        (f"file_records.created_at: id {record.id}", lambda: all_file_records(db)),
        (f"runs.started_at: id {run.id}", lambda: get_run(db, run.id or 0)),
    ]
    if which == "last":
        reads.append((f"runs.ended_at: id {ended.id}", lambda: get_run(db, ended.id or 0)))
    for reason, read in reads:
        with pytest.raises(ValidationError, match=rf"stored row\.{reason}: stored .* is reserved"):
            await read()
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match=r"stored row\.runs\.started_at: id \d+: stored"):
            await copy_database(db, target)
        assert await all_results(target) == []
