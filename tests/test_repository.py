"""Every repository operation, on both engines."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import asyncpg
import attrs
import pytest

from persistence import (
    ConfigEntry,
    ConfigType,
    ConflictError,
    Database,
    FileRecord,
    NotFoundError,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_config_entries,
    all_file_records,
    all_results,
    delete_config_entry,
    delete_file_record,
    delete_file_record_by_path,
    delete_result,
    delete_results_before,
    find_config_entry,
    find_config_entry_by_key,
    find_file_record,
    find_file_record_by_path,
    find_result,
    get_config_entry,
    get_config_entry_by_key,
    get_config_value,
    get_file_record,
    get_file_record_by_path,
    get_result,
    list_results,
    result_stats,
    results_by_type,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    set_config,
)
from persistence.cache import open_memory_cache
from persistence.models import MAX_KEY_BYTES, PYTHON_TYPES

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def result(
    minutes: int = 0,
    test_type: TestType = TestType.UNIT,
    status: TestStatus = TestStatus.PASSED,
    execution_time: float = 1.0,
) -> TestResult:
    """A result created `minutes` after T0."""
    return TestResult(
        test_type=test_type,
        status=status,
        execution_time=execution_time,
        created_at=T0 + dt.timedelta(minutes=minutes),
    )


# --- test results --------------------------------------------------------------------------


async def test_save_inserts_and_find_reads_back(db: Database) -> None:
    """A saved result gets an id, and finding it gives back every field."""
    original = TestResult(
        test_type=TestType.STRESS,
        status=TestStatus.FAILED,
        execution_time=2.5,
        memory_usage=1 << 40,
        test_cases_passed=3,
        test_cases_total=7,
        error_message="wrong answer on case 4",
        output="1 2 3\n",
        metadata={"seed": 42, "cases": [1, 2], "nested": {"ok": False, "none": None}},
    )
    saved = await save_result(db, original)
    assert saved.id is not None
    assert saved == attrs.evolve(original, id=saved.id)
    assert await find_result(db, saved.id) == saved
    assert await get_result(db, saved.id) == saved


async def test_save_with_id_updates(db: Database) -> None:
    """Saving a result that has an id overwrites the stored one."""
    saved = await save_result(db, result())
    changed = TestResult(
        id=saved.id, test_type=TestType.TLE, status=TestStatus.TIMEOUT, execution_time=9.0
    )
    assert await save_result(db, changed) == changed
    assert saved.id is not None
    assert await get_result(db, saved.id) == changed


async def test_save_with_unknown_id_is_not_found(db: Database) -> None:
    """Overwriting an id that does not exist raises NotFoundError and writes nothing."""
    with pytest.raises(NotFoundError):
        await save_result(db, attrs.evolve(result(), id=12345))
    assert await all_results(db) == []


async def test_missing_result(db: Database) -> None:
    """Find gives None and get raises NotFoundError for an id with no row."""
    assert await find_result(db, 999) is None
    with pytest.raises(NotFoundError, match="999"):
        await get_result(db, 999)


async def test_delete_result(db: Database) -> None:
    """Delete removes the row and says whether there was one."""
    saved = await save_result(db, result())
    assert saved.id is not None
    assert await delete_result(db, saved.id) is True
    assert await delete_result(db, saved.id) is False
    assert await find_result(db, saved.id) is None


async def test_all_results_newest_first(db: Database) -> None:
    """all_results lists every result, newest first, ties broken by id."""
    await save_results(db, [result(minutes) for minutes in (5, 1, 3, 3)])
    listed = await all_results(db)
    assert [r.created_at for r in listed] == [T0 + dt.timedelta(minutes=m) for m in (5, 3, 3, 1)]
    ids = [r.id for r in listed if r.created_at == T0 + dt.timedelta(minutes=3)]
    assert ids == sorted(ids, key=lambda i: -(i or 0))


async def test_results_by_type(db: Database) -> None:
    """results_by_type keeps only that type."""
    await save_results(db, [result(1, TestType.UNIT), result(2, TestType.TLE), result(3)])
    found = await results_by_type(db, TestType.UNIT)
    assert [r.created_at.minute for r in found] == [3, 1]
    assert {r.test_type for r in found} == {TestType.UNIT}


async def test_filters_run_in_sql(db: Database) -> None:
    """Type, status and a half-open time range narrow the listing together."""
    await save_results(
        db,
        [
            result(1, TestType.UNIT, TestStatus.PASSED),
            result(2, TestType.UNIT, TestStatus.FAILED),
            result(3, TestType.TLE, TestStatus.FAILED),
            result(4, TestType.UNIT, TestStatus.FAILED),
            result(5, TestType.UNIT, TestStatus.FAILED),
        ],
    )
    where = ResultFilter(
        test_type=TestType.UNIT,
        status=TestStatus.FAILED,
        created_from=T0 + dt.timedelta(minutes=2),
        created_until=T0 + dt.timedelta(minutes=5),
    )
    page = await list_results(db, where)
    assert [r.created_at.minute for r in page.items] == [4, 2]
    assert page.next_cursor is None


async def test_filter_bounds_in_other_time_zones(db: Database) -> None:
    """A time range given in another zone means the same instants."""
    await save_results(db, [result(m) for m in range(4)])
    plus_two = dt.timezone(dt.timedelta(hours=2))
    where = ResultFilter(created_from=(T0 + dt.timedelta(minutes=1)).astimezone(plus_two))
    assert len((await list_results(db, where)).items) == 3


async def test_keyset_pages_cover_everything_once(db: Database) -> None:
    """Following next_cursor visits every result exactly once, newest first."""
    await save_results(db, [result(m % 7) for m in range(23)])
    seen: list[TestResult] = []
    page = await list_results(db, limit=5)
    while True:
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        page = await list_results(db, limit=5, after=page.next_cursor)
    assert len(seen) == 23
    assert len({r.id for r in seen}) == 23
    keys = [(r.created_at, r.id or 0) for r in seen]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize("limit", [0, -1, 10_001])
async def test_page_size_is_bounded(db: Database, limit: int) -> None:
    """A page size out of range is refused, naming the limit."""
    with pytest.raises(ValidationError, match="limit"):
        await list_results(db, limit=limit)


async def test_naive_filter_bound_refused(db: Database) -> None:
    """A naive datetime in a filter is refused, naming the field."""
    with pytest.raises(ValidationError, match="created_from"):
        await list_results(db, ResultFilter(created_from=dt.datetime(2026, 1, 1)))  # noqa: DTZ001


async def test_save_results_is_one_batch(db: Database) -> None:
    """save_results stores every result and returns the count."""
    count = await save_results(db, (result(m) for m in range(250)))
    assert count == 250
    assert len(await all_results(db)) == 250
    assert await save_results(db, []) == 0


async def test_save_results_is_all_or_nothing(db: Database) -> None:
    """A batch with one bad item stores none of them."""
    good = result(1)
    with pytest.raises(ValidationError, match="id"):
        await save_results(db, [good, attrs.evolve(result(), id=5)])
    assert await all_results(db) == []


async def test_stats_per_type(db: Database) -> None:
    """Stats count each status and give the mean and longest time per type."""
    await save_results(
        db,
        [
            result(0, TestType.UNIT, TestStatus.PASSED, 1.0),
            result(0, TestType.UNIT, TestStatus.PASSED, 2.0),
            result(0, TestType.UNIT, TestStatus.FAILED, 6.0),
            result(0, TestType.STRESS, TestStatus.ERROR, 0.5),
        ],
    )
    stats = await result_stats(db)
    assert set(stats) == {TestType.UNIT, TestType.STRESS}
    unit = stats[TestType.UNIT]
    assert unit.counts == {TestStatus.PASSED: 2, TestStatus.FAILED: 1}
    assert unit.total == 3
    assert unit.mean_time == pytest.approx(3.0)
    assert unit.max_time == 6.0
    assert stats[TestType.STRESS].counts == {TestStatus.ERROR: 1}


async def test_stats_of_empty_table(db: Database) -> None:
    """An empty table has no stats."""
    assert await result_stats(db) == {}


async def test_retention_deletes_only_older(db: Database) -> None:
    """delete_results_before removes results strictly older than the cut-off."""
    await save_results(db, [result(m) for m in range(5)])
    assert await delete_results_before(db, T0 + dt.timedelta(minutes=2)) == 2
    assert sorted(r.created_at.minute for r in await all_results(db)) == [2, 3, 4]


# --- config --------------------------------------------------------------------------------

CONFIG_VALUES: list[tuple[object, ConfigType]] = [
    ("text ünïcode", ConfigType.STR),
    ("", ConfigType.STR),
    (42, ConfigType.INT),
    (-(2**63), ConfigType.INT),
    (0.1, ConfigType.FLOAT),
    (1e300, ConfigType.FLOAT),
    (True, ConfigType.BOOL),
    (False, ConfigType.BOOL),
    ([1, "two", [3.5, None]], ConfigType.LIST),
    ({"a": {"b": [1, 2]}, "c": None}, ConfigType.DICT),
]


@pytest.mark.parametrize(("value", "kind"), CONFIG_VALUES)
async def test_config_reads_back_its_declared_type(
    db: Database, value: object, kind: ConfigType
) -> None:
    """A config value reads back equal, and of the declared Python type."""
    entry = await set_config(db, "section", "key", value)  # type: ignore[arg-type]  # table of values
    assert entry.type is kind
    found = await get_config_entry_by_key(db, "section", "key")
    assert found.value == value
    assert type(found.value) is type(value)
    assert found == entry


async def test_config_upsert_replaces_by_section_and_key(db: Database) -> None:
    """Setting the same (section, key) again replaces value, type and description."""
    first = await set_config(db, "run", "jobs", 4, description="workers")
    second = await set_config(db, "run", "jobs", "auto")
    assert second.id == first.id
    assert second.type is ConfigType.STR
    assert second.description is None
    assert [e.value for e in await all_config_entries(db)] == ["auto"]


async def test_config_value_typed_reads(db: Database) -> None:
    """get_config_value checks the declared type and falls back to a default."""
    await set_config(db, "run", "jobs", 4)
    assert await get_config_value(db, "run", "jobs", int) == 4
    with pytest.raises(ValidationError, match="declared int"):
        await get_config_value(db, "run", "jobs", str)
    assert await get_config_value(db, "run", "missing", int, 7) == 7
    with pytest.raises(NotFoundError):
        await get_config_value(db, "run", "missing", int)


@pytest.mark.parametrize(
    ("kind", "shown"),
    [(list[int], "list[int]"), ("list", "'list'"), (bytes, "bytes"), (None, "None")],
)
async def test_config_value_read_as_no_config_type_is_refused(
    db: Database, kind: object, shown: str
) -> None:
    """A `kind` that is no config type is refused first, naming it and the types there are.

    It was compared with the stored value's type only when there was one: `list[int]` or
    `"list"` said `run.jobs is declared list, not list`, and a missing entry gave the default.
    """
    await set_config(db, "run", "jobs", [4])
    hostile = cast("type[int]", kind)  # what a caller without mypy may pass
    cache = await open_memory_cache(db)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: get_config_value(db, "run", "jobs", hostile),
        lambda: get_config_value(db, "run", "missing", hostile, 7),
        lambda: cache.get_config_value("run", "jobs", hostile),
    ]
    try:
        for read in reads:
            with pytest.raises(ValidationError) as caught:
                await read()
            assert (caught.value.model, caught.value.field) == ("get_config_value", "kind")
            assert caught.value.reason == (
                f"expected one of the types str, int, float, bool, list, dict, got {shown}"
            )
    finally:
        await cache.close()


async def test_config_find_by_id_and_key(db: Database) -> None:
    """Config entries are found by id and by (section, key), or not at all."""
    entry = await set_config(db, "a", "b", 1.5)
    assert entry.id is not None
    assert await find_config_entry(db, entry.id) == entry
    assert await find_config_entry_by_key(db, "a", "b") == entry
    assert await find_config_entry_by_key(db, "a", "c") is None
    assert await find_config_entry(db, entry.id + 1) is None
    with pytest.raises(NotFoundError):
        await get_config_entry_by_key(db, "a", "c")


async def test_config_update_by_id(db: Database) -> None:
    """Saving an entry with an id overwrites it; a taken (section, key) is a conflict."""
    first = await set_config(db, "s", "one", 1)
    await set_config(db, "s", "two", 2)
    moved = ConfigEntry(id=first.id, section="s", key="three", value=3, type=ConfigType.INT)
    assert await save_config_entry(db, moved) == moved
    clash = ConfigEntry(id=first.id, section="s", key="two", value=3, type=ConfigType.INT)
    with pytest.raises(ConflictError):
        await save_config_entry(db, clash)
    with pytest.raises(NotFoundError):
        await save_config_entry(
            db, ConfigEntry(id=999, section="s", key="x", value=1, type=ConfigType.INT)
        )


async def test_config_list_and_delete(db: Database) -> None:
    """Entries list by section then key, and delete says whether one was there."""
    await set_config(db, "b", "x", 1)
    entry = await set_config(db, "a", "y", 2)
    await set_config(db, "a", "x", 3)
    assert [(e.section, e.key) for e in await all_config_entries(db)] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
    ]
    assert entry.id is not None
    assert await delete_config_entry(db, entry.id) is True
    assert await delete_config_entry(db, entry.id) is False


async def store_config_text(database_url: str, kind: str, text: str | bytes) -> None:
    """Set the value and type of every config entry by plain SQL, as another program would."""
    if database_url.startswith("postgresql"):
        server = await asyncpg.connect(database_url)
        try:
            await server.execute("UPDATE config_entries SET value = $1, type = $2", text, kind)
        finally:
            await server.close()
        return
    with contextlib.closing(sqlite3.connect(database_url)) as file, file:
        file.execute("UPDATE config_entries SET value = ?, type = ?", (text, kind))


@pytest.mark.parametrize("kind", ["list", "dict"])
async def test_config_text_nested_too_deep_is_refused(
    db: Database, database_url: str, kind: str
) -> None:
    """A stored list nested 100,000 deep, written by plain SQL, is a ValidationError on read.

    Python's JSON decoder gives up with RecursionError, which escaped every read of the entry.
    """
    await set_config(db, "s", "k", "x")
    await store_config_text(database_url, kind, "[" * 100_000 + "]" * 100_000)
    for read in (
        lambda: get_config_value(db, "s", "k", list),
        lambda: find_config_entry_by_key(db, "s", "k"),
        lambda: all_config_entries(db),
    ):
        with pytest.raises(ValidationError) as caught:
            await read()
        assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")


BROKEN_CONFIG_TEXTS = [
    ("float", "NaN"),
    ("float", "-Infinity"),
    ("float", "1e400"),
    ("int", "99999999999999999999999"),
    ("list", "[NaN]"),
    ("list", "[1e400]"),
    ("list", '["\\u0000"]'),
    ("list", '["\\ud800"]'),
    ("dict", '{"a": Infinity}'),
    ("dict", '{"a": 99999999999999999999999}'),
]
"""(declared type, stored text) of the declared type, holding a value the model refuses."""


@pytest.mark.parametrize(("kind", "text"), BROKEN_CONFIG_TEXTS)
async def test_config_text_breaking_the_models_rules_is_refused(
    db: Database, database_url: str, kind: str, text: str
) -> None:
    """A stored value that `set_config` would refuse (NaN, beyond 64 bits, NUL) is refused on read.

    Such rows, written by plain SQL, were read into a ConfigEntry that its own rules refuse:
    `get_config_value(..., float)` gave NaN, and the entry could not be saved back.
    """
    await set_config(db, "s", "k", "x")
    await store_config_text(database_url, kind, text)
    wanted = {"float": float, "int": int, "list": list, "dict": dict}[kind]
    for read in (
        lambda: get_config_value(db, "s", "k", wanted),
        lambda: find_config_entry_by_key(db, "s", "k"),
        lambda: all_config_entries(db),
    ):
        with pytest.raises(ValidationError) as caught:
            await read()
        assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")
        assert "stored text" in caught.value.reason


async def test_a_broken_config_row_is_named_by_its_id_section_and_key(
    db: Database, database_url: str
) -> None:
    """One row that plain SQL broke failed every listing, naming no row to mend."""
    entry = await set_config(db, "runner", "workers", 4)
    await store_config_text(database_url, "int", "4.0")
    with pytest.raises(ValidationError) as caught:
        await all_config_entries(db)
    assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")
    assert caught.value.reason == (
        f"id {entry.id} ('runner', 'workers'): stored text '4.0' is not an int"
    )


@pytest.mark.parametrize(
    ("kind", "blob"),
    [
        ("int", b"5"),
        ("list", "[1]".encode("utf-16")),
        ("dict", b'{"a": 1}'),
        ("str", b"abc"),
        ("float", b"1.5"),
        ("bool", b"true"),
    ],
)
async def test_a_config_value_stored_as_a_blob_is_refused_for_every_type(
    sqlite_db: Database, tmp_path: Path, kind: str, blob: bytes
) -> None:
    """SQLite's text column takes a blob: json.loads read one (in UTF-16 too) for three types."""
    await set_config(sqlite_db, "s", "k", "x")
    await store_config_text(str(tmp_path / "test.db"), kind, blob)
    for read in (
        lambda: get_config_value(sqlite_db, "s", "k", PYTHON_TYPES[ConfigType(kind)]),
        lambda: all_config_entries(sqlite_db),
    ):
        with pytest.raises(ValidationError, match=r"stored bytes .* is not text") as caught:
            await read()
        assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")


@pytest.mark.parametrize("text", ["1_000.5", "\u0661\u0662", "\uff11.5", "1_0e1_0"])
async def test_config_float_text_in_no_number_syntax_is_refused(
    db: Database, database_url: str, text: str
) -> None:
    """A stored float is read in the syntax of JSON and SQL numbers, as a stored int is.

    Python's `float` also reads underscores between digits and digits of other scripts, so
    text that another program stored and that JSON reads as no number (`1_000.5`, Arabic
    digits) was read as a float setting, while an int setting refused the same text.
    """
    await set_config(db, "s", "k", 1.0)
    await store_config_text(database_url, "float", text)
    with pytest.raises(ValidationError, match="is not a float") as caught:
        await get_config_value(db, "s", "k", float)
    assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")
    await store_config_text(database_url, "float", " -0.0 ")  # as float() and PostgreSQL take
    assert str(await get_config_value(db, "s", "k", float)) == "-0.0"


# --- file records --------------------------------------------------------------------------

HASH_A = "a" * 64
HASH_B = "b" * 64


async def test_file_record_upsert_by_path(db: Database) -> None:
    """Saving the same path again refreshes size, hash and access time, keeping the id."""
    first = await save_file_record(db, FileRecord(path="src/main.cpp", size=10, hash=HASH_A))
    later = first.accessed_at + dt.timedelta(hours=1)
    second = await save_file_record(
        db, FileRecord(path="src/main.cpp", size=20, hash=HASH_B, accessed_at=later)
    )
    assert second.id == first.id
    assert (second.size, second.hash, second.accessed_at) == (20, HASH_B, later)
    assert second.created_at == first.created_at
    assert await find_file_record_by_path(db, "src/main.cpp") == second


async def test_file_record_find_list_delete(db: Database) -> None:
    """File records are found by id and path, listed by last access, and deleted."""
    old = await save_file_record(db, FileRecord(path="old", accessed_at=T0))
    new = await save_file_record(db, FileRecord(path="new", accessed_at=T0 + dt.timedelta(1)))
    assert [r.path for r in await all_file_records(db)] == ["new", "old"]
    assert old.id is not None
    assert new.id is not None
    assert await find_file_record(db, old.id) == old
    assert await find_file_record_by_path(db, "missing") is None
    assert await delete_file_record(db, old.id) is True
    assert await delete_file_record(db, old.id) is False
    assert await delete_file_record_by_path(db, "new") is True
    assert await delete_file_record_by_path(db, "new") is False
    assert await all_file_records(db) == []


async def test_file_record_update_by_id(db: Database) -> None:
    """A record saved with its id is overwritten; another record's path is a conflict."""
    one = await save_file_record(db, FileRecord(path="one"))
    await save_file_record(db, FileRecord(path="two"))
    renamed = FileRecord(id=one.id, path="three", size=5, created_at=one.created_at)
    assert await save_file_record(db, renamed) == renamed
    with pytest.raises(ConflictError):
        await save_file_record(db, FileRecord(id=one.id, path="two"))
    with pytest.raises(NotFoundError):
        await save_file_record(db, FileRecord(id=999, path="four"))


LONGEST_KEY = "\U0001f600" * (MAX_KEY_BYTES // 4)  # 4 bytes a character in UTF-8


async def test_longest_keys_are_stored_on_both_engines(db: Database) -> None:
    """A section, key and path of exactly MAX_KEY_BYTES bytes fit every engine's index."""
    await set_config(db, LONGEST_KEY, LONGEST_KEY, 1)
    assert await get_config_value(db, LONGEST_KEY, LONGEST_KEY, int) == 1
    await save_file_record(db, FileRecord(path=LONGEST_KEY, size=1))
    stored = await find_file_record_by_path(db, LONGEST_KEY)
    assert stored is not None
    assert stored.size == 1


@pytest.mark.parametrize("field", ["section", "key"])
async def test_longer_config_keys_are_refused_alike(db: Database, field: str) -> None:
    """One byte more is a ValidationError naming the field, on both engines, before any SQL."""
    names = {"section": "s", "key": "k", field: LONGEST_KEY + "a"}
    with pytest.raises(ValidationError, match=rf"ConfigEntry\.{field}: must be at most 1024 bytes"):
        await set_config(db, names["section"], names["key"], 1)
    with pytest.raises(ValidationError, match=rf"ConfigEntry\.{field}: must be at most"):
        await find_config_entry_by_key(db, names["section"], names["key"])
    assert await all_config_entries(db) == []


async def test_longer_paths_are_refused_alike(db: Database) -> None:
    """A 4,000-character path is refused with ValidationError on both engines."""
    with pytest.raises(ValidationError, match=r"FileRecord\.path: must be at most 1024 bytes"):
        await save_file_record(db, FileRecord(path="p" * 4000))
    with pytest.raises(ValidationError, match=r"FileRecord\.path: must be at most"):
        await find_file_record_by_path(db, "p" * 4000)
    assert await all_file_records(db) == []


async def test_every_table_has_find_and_get_by_id_and_natural_key(db: Database) -> None:
    """find_X/get_X by id and find_X_by_key/get_X_by_key exist alike for every table."""
    entry = await set_config(db, "s", "k", 1)
    record = await save_file_record(db, FileRecord(path="a/b.txt", size=3))
    assert entry.id is not None
    assert record.id is not None
    assert await get_config_entry(db, entry.id) == entry
    assert await get_config_entry_by_key(db, "s", "k") == entry
    assert await get_file_record(db, record.id) == record
    assert await get_file_record_by_path(db, "a/b.txt") == record
    for missing in (
        get_config_entry(db, entry.id + 1),
        get_config_entry_by_key(db, "s", "other"),
        get_file_record(db, record.id + 1),
        get_file_record_by_path(db, "nope"),
    ):
        with pytest.raises(NotFoundError):
            await missing
