"""Models saved on each engine read back exactly as saved: no value, type or offset lost."""

from __future__ import annotations

import array
import collections
import datetime as dt
from collections import UserString
from types import MappingProxyType

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigType,
    Database,
    FileRecord,
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
    find_config_entry,
    find_config_entry_by_key,
    find_file_record,
    find_file_record_by_path,
    find_result,
    get_config_entry_by_key,
    get_config_value,
    get_result,
    list_results,
    queries,
    results_by_type,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    set_config,
)
from persistence._guards import MAX_INT, MIN_INT
from persistence._interface import JsonObject, JsonValue
from persistence.models import MAX_EXECUTION_TIME, ConfigValue
from strategies import ON_DATABASE
from strategies.values import (
    AWKWARD_TEXT,
    PLAIN_JSON,
    SQL_LOOKING,
    SUBCLASSED_JSON,
    config_entries,
    config_values,
    exactly,
    file_records,
    results,
    unique,
)

ZERO = dt.timedelta(0)
MOST_BEHIND = dt.timedelta(hours=23, minutes=59)
AWKWARD_METADATA: JsonObject = {
    AWKWARD_TEXT: [AWKWARD_TEXT, 2**63 - 1, -(2**63), 2**53 + 1, 0.1, -0.0, 5e-324, 2.0**53 - 1],
    "nested": {"a": [{"b": [None, True, False, {}, []]}], "'; DROP TABLE test_results; --": "$1"},
}
"""Metadata with every awkward kind of JSON value, for the explicit examples."""

AWKWARD_RESULT = TestResult(
    test_type=TestType.STRESS,
    status=TestStatus.ERROR,
    execution_time=MAX_EXECUTION_TIME,
    memory_usage=2**63 - 1,
    test_cases_passed=2**63 - 1,
    test_cases_total=2**63 - 1,
    error_message=AWKWARD_TEXT,
    output="\n".join(SQL_LOOKING),
    created_at=dt.datetime(
        2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.timezone(-dt.timedelta(hours=23, minutes=59))
    ),
    metadata=AWKWARD_METADATA,
)

PLAIN_RESULT = TestResult(test_type=TestType.UNIT, status=TestStatus.PENDING)

AWKWARD_VALUES: list[tuple[ConfigType, ConfigValue]] = [
    (ConfigType.STR, AWKWARD_TEXT),
    (ConfigType.INT, -(2**63)),
    (ConfigType.FLOAT, -0.0),
    (ConfigType.FLOAT, 5e-324),
    (ConfigType.FLOAT, 1.7976931348623157e308),
    (ConfigType.BOOL, False),
    (ConfigType.LIST, [AWKWARD_METADATA, 2**63 - 1, -0.0]),
    (ConfigType.DICT, AWKWARD_METADATA),
    (ConfigType.STR, ""),
    (ConfigType.STR, "null"),
    (ConfigType.INT, 2**63 - 1),
]
AWKWARD_ENTRIES = tuple(
    ConfigEntry(section=AWKWARD_TEXT, key=text, value=value, type=kind, description=text)
    for text, (kind, value) in zip(SQL_LOOKING, AWKWARD_VALUES, strict=False)
)
"""Config entries with awkward values of every type, under SQL-looking keys."""


def assert_same(found: object, expected: object) -> None:
    """Assert two values are equal in value and in type, all the way down."""
    assert exactly(found) == exactly(expected)


def assert_utc(*moments: dt.datetime) -> None:
    """Assert each datetime is aware and in UTC."""
    for moment in moments:
        assert moment.utcoffset() == ZERO


def take_matching(pool: list[TestResult], wanted: TestResult) -> None:
    """Remove from pool one result that equals wanted but for its id; fail if none does."""
    for index, candidate in enumerate(pool):
        if exactly(attrs.evolve(candidate, id=None)) == exactly(wanted):
            del pool[index]
            return
    msg = f"{wanted!r} was not read back"
    raise AssertionError(msg)


@ON_DATABASE
@given(result=results(), replacement=results())
@example(
    result=AWKWARD_RESULT,
    replacement=TestResult(test_type=TestType.UNIT, status=TestStatus.PENDING),
)
async def test_result_round_trip(db: Database, result: TestResult, replacement: TestResult) -> None:
    """A saved result reads back exactly, by id, in listings, and after being overwritten."""
    saved = await save_result(db, result)
    assert saved.id is not None
    assert_same(saved, attrs.evolve(result, id=saved.id))
    found = await find_result(db, saved.id)
    assert found is not None
    assert_same(found, saved)
    assert_utc(found.created_at)
    assert_same(await get_result(db, saved.id), saved)
    assert saved in await results_by_type(db, saved.test_type)
    assert saved in await all_results(db, ResultFilter(status=saved.status))

    overwritten = attrs.evolve(replacement, id=saved.id)
    assert_same(await save_result(db, overwritten), overwritten)
    assert_same(await get_result(db, saved.id), overwritten)

    assert await delete_result(db, saved.id)
    assert await find_result(db, saved.id) is None
    assert not await delete_result(db, saved.id)


@ON_DATABASE
@given(batch=st.lists(results(), max_size=5))
async def test_result_batch_round_trip(db: Database, batch: list[TestResult]) -> None:
    """Results saved in one batch all read back exactly, newest first, each with an id."""
    before = {result.id for result in await all_results(db)}
    assert await save_results(db, batch) == len(batch)
    everything = await all_results(db)
    assert everything == sorted(everything, key=lambda r: (r.created_at, r.id), reverse=True)
    added = [result for result in everything if result.id not in before]
    for wanted in batch:
        take_matching(added, wanted)
    assert added == []
    first = await list_results(db, limit=1)
    assert first.items == tuple(everything[:1])
    for result in everything:
        assert result.id is not None
        assert await delete_result(db, result.id)


@ON_DATABASE
@given(entries=st.tuples(*(config_entries(kind) for kind in ConfigType)))
@example(entries=AWKWARD_ENTRIES)
async def test_config_round_trip(db: Database, entries: tuple[ConfigEntry, ...]) -> None:
    """An entry of every declared type reads back exactly, its value in its declared type."""
    for drawn in entries:
        entry = attrs.evolve(drawn, section=unique(drawn.section))
        saved = await save_config_entry(db, entry)
        assert saved.id is not None
        assert_same(saved, attrs.evolve(entry, id=saved.id))
        assert_same(await find_config_entry_by_key(db, entry.section, entry.key), saved)
        assert_same(await get_config_entry_by_key(db, entry.section, entry.key), saved)
        assert_same(await find_config_entry(db, saved.id), saved)
        value = await get_config_value(db, entry.section, entry.key, type(entry.value))
        assert_same(value, entry.value)
        assert saved in await all_config_entries(db)
        assert await delete_config_entry(db, saved.id)
        assert await find_config_entry_by_key(db, entry.section, entry.key) is None


@ON_DATABASE
@given(entry=config_entries(), data=st.data())
async def test_config_overwrite_round_trip(
    db: Database, entry: ConfigEntry, data: st.DataObject
) -> None:
    """Setting a key again, by key or by id, replaces its value and type, read back exactly."""
    section = unique(entry.section)
    first = await save_config_entry(db, attrs.evolve(entry, section=section))
    assert first.id is not None

    kind = data.draw(st.sampled_from(ConfigType), label="new type")
    value = data.draw(config_values(kind), label="new value")
    by_key = await set_config(db, section, entry.key, value, description=entry.description)
    assert by_key.id == first.id
    assert by_key.type is kind
    assert_same(by_key.value, value)
    assert_same(await get_config_entry_by_key(db, section, entry.key), by_key)

    by_id = attrs.evolve(entry, section=section, id=first.id)
    assert_same(await save_config_entry(db, by_id), by_id)
    assert_same(await get_config_entry_by_key(db, section, entry.key), by_id)
    assert await delete_config_entry(db, first.id)


@ON_DATABASE
@given(record=file_records(), refreshed=file_records())
@example(
    record=FileRecord(path=AWKWARD_TEXT, size=2**63 - 1, hash="f" * 64, metadata=AWKWARD_METADATA),
    refreshed=FileRecord(path="%s", hash="0" * 64),
)
async def test_file_record_round_trip(
    db: Database, record: FileRecord, refreshed: FileRecord
) -> None:
    """A saved record reads back exactly by id and path, refreshed and overwritten alike."""
    record = attrs.evolve(record, path=unique(record.path))
    saved = await save_file_record(db, record)
    assert saved.id is not None
    assert_same(saved, attrs.evolve(record, id=saved.id))
    found = await find_file_record(db, saved.id)
    assert found is not None
    assert_same(found, saved)
    assert_utc(found.created_at, found.accessed_at)
    assert_same(await find_file_record_by_path(db, record.path), saved)
    assert saved in await all_file_records(db)

    # Saving the same path again refreshes it; its creation time stays.
    again = attrs.evolve(refreshed, path=record.path)
    expected = attrs.evolve(again, id=saved.id, created_at=saved.created_at)
    assert_same(await save_file_record(db, again), expected)
    assert_same(await find_file_record_by_path(db, record.path), expected)

    moved = attrs.evolve(refreshed, path=unique(refreshed.path), id=saved.id)
    assert_same(await save_file_record(db, moved), moved)
    assert_same(await find_file_record(db, saved.id), moved)
    assert await find_file_record_by_path(db, record.path) is None

    assert await delete_file_record_by_path(db, moved.path)
    assert not await delete_file_record(db, saved.id)


async def store_integer(db: Database, place: str, number: int) -> JsonValue:
    """Store `number` in one place an integer can go, and return what reads back from there."""
    nested: JsonObject = {"n": [{"m": number}]}
    if place == "config int":
        await set_config(db, "ints", place, number)
        return await get_config_value(db, "ints", place, int)
    if place == "config list":
        await set_config(db, "ints", place, [nested])
        found_list: list[JsonValue] = await get_config_value(db, "ints", place, list)
        return found_list[0]
    if place == "config dict":
        await set_config(db, "ints", place, nested)
        found_dict: dict[str, JsonValue] = await get_config_value(db, "ints", place, dict)
        return found_dict
    if place == "result metadata":
        saved = await save_result(db, attrs.evolve(PLAIN_RESULT, metadata=nested))
        assert saved.id is not None
        return (await get_result(db, saved.id)).metadata
    record = await save_file_record(db, FileRecord(path=unique("ints"), metadata=nested))
    assert record.id is not None
    found = await find_file_record(db, record.id)
    assert found is not None
    return found.metadata


INTEGER_PLACES = {
    "config int": ("ConfigEntry", "value"),
    "config list": ("ConfigEntry", "value"),
    "config dict": ("ConfigEntry", "value"),
    "result metadata": ("TestResult", "metadata"),
    "record metadata": ("FileRecord", "metadata"),
}
"""Where an integer can be stored, and the model and field that refuse one too large."""


@pytest.mark.parametrize("place", list(INTEGER_PLACES))
async def test_integers_fit_in_64_bits_on_every_engine(db: Database, place: str) -> None:
    """An integer one past 64 bits is refused by name and not stored; the edges read back."""
    for past in (MAX_INT + 1, MIN_INT - 1, 2**100):
        with pytest.raises(ValidationError) as caught:
            await store_integer(db, place, past)
        assert (caught.value.model, caught.value.field) == INTEGER_PLACES[place]
    assert await all_config_entries(db) == []
    assert await all_results(db) == []
    assert await all_file_records(db) == []
    for edge in (MAX_INT, MIN_INT):
        found = await store_integer(db, place, edge)
        expected: JsonValue = edge if place == "config int" else {"n": [{"m": edge}]}
        assert_same(found, expected)


async def test_dict_subclasses_read_back_as_plain_dicts(db: Database) -> None:
    """Metadata and config values made of dict subclasses are stored and read back plain."""
    result = await save_result(db, attrs.evolve(PLAIN_RESULT, metadata=SUBCLASSED_JSON))
    record = await save_file_record(db, FileRecord(path="plain", metadata=SUBCLASSED_JSON))
    as_dict = ConfigEntry(section="plain", key="d", value=SUBCLASSED_JSON, type=ConfigType.DICT)
    as_list = ConfigEntry(section="plain", key="l", value=[SUBCLASSED_JSON], type=ConfigType.LIST)
    entries = [await save_config_entry(db, entry) for entry in (as_dict, as_list)]
    assert result.id is not None
    assert record.id is not None
    found = [
        (await get_result(db, result.id)).metadata,
        getattr(await find_file_record(db, record.id), "metadata", None),
        await get_config_value(db, "plain", "d", dict),
        await get_config_value(db, "plain", "l", list),
    ]
    saved = [result.metadata, record.metadata, *(entry.value for entry in entries)]
    expected: list[JsonValue] = [PLAIN_JSON, PLAIN_JSON, PLAIN_JSON, [PLAIN_JSON]]
    assert_same(saved, expected)
    assert_same(found, expected)


async def test_set_config_takes_a_dict_subclass(db: Database) -> None:
    """set_config declares a dict subclass as a dict and stores it plain, on both engines."""
    entry = await set_config(db, "plain", "ordered", collections.OrderedDict(b=1, a=2))
    assert entry.type is ConfigType.DICT
    assert type(await get_config_value(db, "plain", "ordered", dict)) is dict


@pytest.mark.parametrize(
    ("given", "kind", "stored"),
    [
        ((1, "a", (2,)), ConfigType.LIST, [1, "a", [2]]),
        (collections.deque([1]), ConfigType.LIST, [1]),
        (MappingProxyType({"a": (1,)}), ConfigType.DICT, {"a": [1]}),
    ],
)
async def test_set_config_takes_any_sequence_or_mapping_and_stores_it_plain(
    db: Database, given: object, kind: ConfigType, stored: JsonValue
) -> None:
    """A tuple or another sequence is a list; a mapping a dict: the caller's own types.

    `set_config(db, "runner", "flags", flags)` with `flags: list[str]` failed type checking
    (`list` is invariant), and a tuple was refused at run time: `tuple is not a config type`.
    """
    entry = await set_config(db, "plain", "given", given)  # type: ignore[arg-type]  # as read
    assert (entry.type, entry.value) == (kind, stored)
    if kind is ConfigType.LIST:
        assert_same(await get_config_value(db, "plain", "given", list), stored)
    else:
        assert_same(await get_config_value(db, "plain", "given", dict), stored)
    assert_same(entry.value, stored)


@pytest.mark.parametrize(
    "given",
    [b"x", bytearray(b"x"), memoryview(b"x"), {1, 2}, UserString("x"), array.array("b", b"x")],
)
async def test_set_config_refuses_bytes_and_sets_before_anything_is_written(
    db: Database, given: object
) -> None:
    """Bytes are a sequence of ints to the type checker, and no config type: refused, unkept."""
    with pytest.raises(ValidationError, match="is not a config type"):
        await set_config(db, "plain", "given", given)  # type: ignore[arg-type]  # bad on purpose
    assert await find_config_entry_by_key(db, "plain", "given") is None


def test_result_rows_hold_their_columns_in_the_order_they_are_read() -> None:
    """`result_from_row` unpacks a row's first 13 columns by position, in this order.

    Types alone would not catch two columns of one type swapped in the generated rows
    (`error_message` and `output`; the three counts): a change of the query's column order
    must fail here, naming the order, before any value lands in the wrong field.
    """
    read_in_order = (
        "id",
        "test_type",
        "status",
        "execution_time",
        "memory_usage",
        "test_cases_passed",
        "test_cases_total",
        "error_message",
        "output",
        "created_at",
        "metadata",
        "run_id",
        "test_id",
    )
    assert queries.TestResultsRow._fields[:13] == read_in_order
    assert queries.SearchTestResultsRow._fields[:13] == read_in_order
