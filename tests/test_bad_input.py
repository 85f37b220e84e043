"""Hostile input to every public repository function and model, on each engine.

Each call either succeeds and reads back unchanged, or raises the package's own error
(ValidationError naming the field, or NotFoundError / ConflictError where documented).
A driver's error, or any other exception, must never reach the caller.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigType,
    ConflictError,
    Database,
    FileRecord,
    NotFoundError,
    Page,
    PageCursor,
    ResultFilter,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
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
    get_config_entry_by_key,
    get_config_value,
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
from persistence._guards import MIN_INT
from persistence.models import MAX_EXECUTION_TIME, MAX_INT
from strategies import (
    ON_DATABASE,
    aware_datetimes,
    config_entries,
    exactly,
    file_records,
    finite_floats,
    hostile_ids,
    hostile_text,
    hostile_values,
    matches,
    naive_datetimes,
    out_of_range_datetimes,
    result_filters,
    results,
    safe_text,
    storable_ints,
    unique,
    wrong_types,
)

_T = TypeVar("_T")

Expected = ValidationError | NotFoundError | ConflictError

SEED_RESULT: Final = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
SEED_ENTRY: Final = ConfigEntry(section="seed", key="entry", value=1, type=ConfigType.INT)
SEED_RECORD: Final = FileRecord(path="seed/file")

MODEL_FIELDS: Final = [
    (cls, field.name)
    for cls in (TestResult, ConfigEntry, FileRecord)
    for field in attrs.fields(cls)
    if field.name != "id"  # an id is the key: saving with one is tested on its own
]
"""(model, field) for every stored field of every model."""

ALSO_BLAMED: Final = {(ConfigEntry, "type"): "value"}
"""A changed declared type makes the value the wrong one."""


async def attempt(make: Callable[[], Awaitable[_T]]) -> _T | Expected:
    """Make the call and await it, so that building its arguments is part of the attempt."""
    try:
        call = make()
    except (ValidationError, NotFoundError, ConflictError) as error:
        return error
    return await outcome(call)


async def outcome(call: Awaitable[_T]) -> _T | Expected:
    """Await a call; give back the error it raises if it is one a caller should expect.

    Any other exception, a driver's above all, propagates and fails the test.
    """
    try:
        return await call
    except (ValidationError, NotFoundError, ConflictError) as error:
        return error


def assert_refused(error: object, model: str, *fields: str) -> None:
    """Assert a call raised exactly ValidationError, naming the model and one of the fields."""
    assert type(error) is ValidationError, f"expected ValidationError, got {error!r}"
    assert error.model == model
    assert error.field in fields, f"{error.field!r} is not one of {fields}"


def assert_same(found: object, expected: object) -> None:
    """Assert two values are equal in value and in type, all the way down."""
    assert exactly(found) == exactly(expected)


async def seed(db: Database) -> tuple[TestResult, ConfigEntry, FileRecord]:
    """Make sure one row of each table exists, and return them."""
    result = (await list_results(db, limit=1)).items
    entry = await find_config_entry_by_key(db, SEED_ENTRY.section, SEED_ENTRY.key)
    record = await find_file_record_by_path(db, SEED_RECORD.path)
    return (
        result[0] if result else await save_result(db, SEED_RESULT),
        entry or await save_config_entry(db, SEED_ENTRY),
        record or await save_file_record(db, SEED_RECORD),
    )


def build(cls: type[TestResult | ConfigEntry | FileRecord], field: str, value: object) -> object:
    """Build a model with one field set to value; give back the ValidationError if refused."""
    required: dict[type, dict[str, Any]] = {
        TestResult: {"test_type": "unit", "status": "passed"},
        ConfigEntry: {"section": unique("s"), "key": "k", "value": "v", "type": "str"},
        FileRecord: {"path": unique("p")},
    }
    arguments: dict[str, Any] = {**required[cls], field: value}
    try:
        return cls(**arguments)
    except ValidationError as error:
        return error


# Lookups by id ------------------------------------------------------------------------


async def _check_id_lookups(db: Database, key: Any) -> None:  # noqa: ANN401  # hostile on purpose
    """Look up and delete by this id in every table; each gives None, False or NotFound.

    An id that no id column can hold (not an int from 1 to 2**63 - 1) is refused instead.
    """
    result, entry, record = await seed(db)
    if type(key) is not int or not 1 <= key <= MAX_INT:
        await _check_hostile_id_lookups(db, key)
        return
    found_result = await outcome(find_result(db, key))
    assert found_result is None or (key == result.id and exactly(found_result) == exactly(result))
    gotten = await outcome(get_result(db, key))
    assert type(gotten) is NotFoundError or exactly(gotten) == exactly(found_result)
    found_entry = await outcome(find_config_entry(db, key))
    assert found_entry is None or (key == entry.id and exactly(found_entry) == exactly(entry))
    found_record = await outcome(find_file_record(db, key))
    assert found_record is None or (key == record.id and exactly(found_record) == exactly(record))
    for delete, row in (
        (delete_result, result),
        (delete_config_entry, entry),
        (delete_file_record, record),
    ):
        deleted = await outcome(delete(db, key))
        assert type(deleted) is bool
        assert deleted == (key == row.id)


@ON_DATABASE
@given(key=st.one_of(st.none(), storable_ints(), st.integers(-(2**63), 0), st.integers(1, 4)))
async def test_lookup_by_any_storable_id(db: Database, key: int | None) -> None:
    """Any id a column can hold finds its row or nothing; deleting by it says which."""
    await _check_id_lookups(db, key)


async def _list_after(db: Database, created_at: dt.datetime, key: Any) -> object:  # noqa: ANN401
    """List the page after a cursor built here, so that building it is part of the call."""
    return await list_results(db, after=PageCursor(created_at, key))


async def _check_hostile_id_lookups(db: Database, key: Any) -> None:  # noqa: ANN401  # hostile
    result, _, _ = await seed(db)
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", lambda: find_result(db, key)),
        ("TestResult", lambda: get_result(db, key)),
        ("TestResult", lambda: delete_result(db, key)),
        ("PageCursor", lambda: _list_after(db, result.created_at, key)),
        ("ConfigEntry", lambda: find_config_entry(db, key)),
        ("ConfigEntry", lambda: delete_config_entry(db, key)),
        ("FileRecord", lambda: find_file_record(db, key)),
        ("FileRecord", lambda: delete_file_record(db, key)),
    ]
    # A cursor may stop at any id a column holds: plain SQL may write ids of 0 and below.
    stops = type(key) is int and MIN_INT <= key <= MAX_INT
    for model, call in calls:
        answer = await outcome(call())
        if isinstance(answer, ValidationError):
            assert_refused(answer, model, "id", "after")
            assert not (stops and model == "PageCursor"), answer
        elif model == "PageCursor" and stops:
            assert isinstance(answer, Page), answer
        else:
            assert answer is None or answer is False or type(answer) is NotFoundError, answer


@ON_DATABASE
@example(key=2**63)
@example(key="1")
@given(key=hostile_ids())
async def test_lookup_by_hostile_id(db: Database, key: object) -> None:
    """An id that no row can have finds nothing or is refused as an invalid id."""
    await _check_hostile_id_lookups(db, key)


# Lookups by text ----------------------------------------------------------------------


async def _check_text_lookups(db: Database, section: Any, key: Any) -> None:  # noqa: ANN401  # hostile
    """Look up and delete by this text; each gives None, False, NotFound or the default."""
    _, entry, record = await seed(db)
    found = await outcome(find_config_entry_by_key(db, section, key))
    assert found is None or exactly(found) == exactly(entry)
    if found is None:
        assert type(await outcome(get_config_entry_by_key(db, section, key))) is NotFoundError
        assert type(await outcome(get_config_value(db, section, key, int))) is NotFoundError
        assert await outcome(get_config_value(db, section, key, int, -7)) == -7
    found_record = await outcome(find_file_record_by_path(db, key))
    assert found_record is None or exactly(found_record) == exactly(record)
    deleted = await outcome(delete_file_record_by_path(db, key))
    assert deleted is (found_record is not None)


@ON_DATABASE
@given(section=safe_text(), key=safe_text())
@example(section="seed", key="entry")
@example(section="'; DROP TABLE config_entries; --", key="seed/file")
async def test_lookup_by_any_text(db: Database, section: str, key: str) -> None:
    """Any text, SQL-looking or not, finds its row or nothing: it is never run as SQL."""
    await _check_text_lookups(db, section, key)


@ON_DATABASE
@example(text="\ud800")
@example(text="a\x00b")
@given(text=st.one_of(hostile_text(), wrong_types()))
async def test_lookup_by_hostile_text(db: Database, text: object) -> None:
    """Text no row can hold finds nothing or is refused, naming the field."""
    await seed(db)
    hostile: Any = text
    calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("ConfigEntry", "section", lambda: find_config_entry_by_key(db, hostile, "k")),
        ("ConfigEntry", "key", lambda: find_config_entry_by_key(db, "seed", hostile)),
        ("ConfigEntry", "section", lambda: get_config_entry_by_key(db, hostile, "k")),
        ("ConfigEntry", "key", lambda: get_config_value(db, "seed", hostile, int)),
        ("FileRecord", "path", lambda: find_file_record_by_path(db, hostile)),
        ("FileRecord", "path", lambda: delete_file_record_by_path(db, hostile)),
    ]
    for model, field, call in calls:
        answer = await outcome(call())
        if isinstance(answer, ValidationError):
            assert_refused(answer, model, field)
        else:
            assert answer is None or answer is False or type(answer) is NotFoundError, answer


# Listing and deleting results ---------------------------------------------------------

limits = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([0, 10_000, 10_001, 2**63, 2**70, -(2**70)]),
    st.sampled_from([True, False, 1.0, "5", None, b"5", [5]]),
)


positions = st.one_of(st.none(), st.tuples(aware_datetimes(), storable_ints(min_value=1)))


@ON_DATABASE
@given(
    page=st.tuples(limits, positions),
    where=result_filters(),
    by_value=st.booleans(),
    batch=st.lists(results(), max_size=3),
)
async def test_list_results_with_any_valid_filter(
    db: Database,
    page: tuple[object, tuple[dt.datetime, int] | None],
    where: ResultFilter,
    by_value: bool,  # noqa: FBT001  # hypothesis passes each argument by name
    batch: list[TestResult],
) -> None:
    """A listing keeps to every filter and the cursor, or refuses a bad limit by name."""
    await save_results(db, batch)
    limit, position = page
    if by_value:  # the enums' string values filter just as the members do
        values: Any = {
            "test_type": where.test_type and where.test_type.value,
            "status": where.status and where.status.value,
            "statuses": None if where.statuses is None else [s.value for s in where.statuses],
        }
        assert attrs.evolve(where, **values) == where
        where = attrs.evolve(where, **values)
    cursor = None if position is None else PageCursor(*position, where)
    bad_limit: Any = limit
    listed = await outcome(list_results(db, where, limit=bad_limit, after=cursor))
    if type(limit) is not int or not 1 <= limit <= 10_000:
        assert_refused(listed, "ResultFilter", "limit")
        return
    assert not isinstance(listed, Expected)
    assert len(listed.items) <= limit
    for item in listed.items:
        assert matches(where, item)
        assert item.id is not None
        assert cursor is None or (item.created_at, item.id) < (cursor.created_at, cursor.id)
        assert_same(await find_result(db, item.id), item)
    if where.test_type is not None:
        by_type = await results_by_type(db, where.test_type)
        assert all(item.test_type == where.test_type for item in by_type)


@ON_DATABASE
@given(
    cutoff=st.one_of(aware_datetimes(), naive_datetimes()), batch=st.lists(results(), max_size=3)
)
async def test_delete_results_before_any_datetime(
    db: Database, cutoff: dt.datetime, batch: list[TestResult]
) -> None:
    """Retention deletes exactly the results made before an aware cutoff; a naive one is refused."""
    await save_results(db, batch)
    before = await all_results(db)
    deleted = await outcome(delete_results_before(db, cutoff))
    if cutoff.utcoffset() is None:
        assert_refused(deleted, "TestResult", "cutoff")
        return
    assert deleted == sum(result.created_at < cutoff for result in before)
    assert all(result.created_at >= cutoff for result in await all_results(db))


@ON_DATABASE
@example(moment=dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))))
@example(moment="2024-01-01T00:00:00+00:00")
@given(moment=st.one_of(out_of_range_datetimes(), wrong_types().filter(lambda v: v is not None)))
async def test_hostile_datetimes_in_result_queries(db: Database, moment: object) -> None:
    """A datetime argument that is no aware datetime in UTC's calendar is refused by name."""
    hostile: Any = moment
    calls: list[tuple[str, str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", "cutoff", lambda: delete_results_before(db, hostile)),
        (
            "ResultFilter",
            "created_from",
            lambda: list_results(db, ResultFilter(created_from=hostile)),
        ),
        (
            "ResultFilter",
            "created_until",
            lambda: list_results(db, ResultFilter(created_until=hostile)),
        ),
        ("PageCursor", "created_at", lambda: list_results(db, after=PageCursor(hostile, 1))),
    ]
    for model, field, call in calls:
        assert_refused(await attempt(call), model, field)


@ON_DATABASE
@example(value="bogus")
@given(
    value=st.one_of(safe_text().filter(lambda v: v not in {*TestType, *TestStatus}), wrong_types())
)
async def test_hostile_filter_fields(db: Database, value: object) -> None:
    """A test type or status that is none of the enum's is refused, naming the field."""
    if value is None:
        return
    hostile: Any = value
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("test_type", lambda: list_results(db, ResultFilter(test_type=hostile))),
        ("status", lambda: list_results(db, ResultFilter(status=hostile))),
        ("test_type", lambda: results_by_type(db, hostile)),
    ]
    for field, call in calls:
        assert_refused(await attempt(call), "ResultFilter", field)


# Saving -------------------------------------------------------------------------------


async def _save_and_read_back(db: Database, model: object) -> None:
    """Save an accepted model, or set it as a config value, and read it back unchanged.

    Its section or path gets a unique suffix, so no example updates another's row.
    """
    if isinstance(model, TestResult) and model.run_id is not None:
        # run_id is a foreign key, and this test saves no run: nothing is written (test_runs.py).
        stored = len(await all_results(db))
        assert isinstance(await outcome(save_result(db, model)), ConflictError)
        assert len(await all_results(db)) == stored
    elif isinstance(model, TestResult):
        saved = await save_result(db, model)
        assert saved.id is not None
        assert_same(await get_result(db, saved.id), saved)
        assert await save_results(db, [model]) == 1
    elif isinstance(model, ConfigEntry):
        model = attrs.evolve(model, section=unique(model.section))
        saved_entry = await save_config_entry(db, model)
        assert_same(saved_entry, attrs.evolve(model, id=saved_entry.id))
        assert_same(await get_config_entry_by_key(db, model.section, model.key), saved_entry)
        by_value = await set_config(db, model.section, model.key, model.value)
        assert_same(by_value.value, model.value)
        assert by_value.type is model.type
    else:
        assert isinstance(model, FileRecord)
        model = attrs.evolve(model, path=unique(model.path))
        saved_record = await save_file_record(db, model)
        assert_same(saved_record, attrs.evolve(model, id=saved_record.id))
        assert_same(await find_file_record_by_path(db, model.path), saved_record)


@ON_DATABASE
@given(data=st.data())
async def test_hostile_field_values(db: Database, data: st.DataObject) -> None:
    """A hostile value in any field is refused naming it, or saved and read back unchanged."""
    cls, field = data.draw(st.sampled_from(MODEL_FIELDS), label="field")
    value = data.draw(hostile_values(), label="value")
    model = build(cls, field, value)
    if isinstance(model, ValidationError):
        assert_refused(model, cls.__name__, field, ALSO_BLAMED.get((cls, field), field))
        return
    await _save_and_read_back(db, model)


@ON_DATABASE
@given(
    section=st.one_of(safe_text(), hostile_text(), wrong_types()),
    key=st.one_of(safe_text(), hostile_text(), wrong_types()),
    value=hostile_values(),
    description=st.one_of(st.none(), safe_text(), hostile_text(), wrong_types()),
)
async def test_set_config_with_hostile_arguments(
    db: Database, section: object, key: object, value: object, description: object
) -> None:
    """`set_config` refuses a bad argument by name, or stores the value as its own type."""
    hostile: list[Any] = [section, key, value, description]
    entry = await outcome(set_config(db, *hostile[:3], description=hostile[3]))
    kind: Any = type(value)
    if isinstance(entry, Expected):
        assert_refused(entry, "ConfigEntry", "section", "key", "value", "description")
        return
    assert_same(entry.value, value)
    stored = await get_config_entry_by_key(db, entry.section, entry.key)
    assert_same(stored, entry)
    assert_same(await get_config_value(db, entry.section, entry.key, kind), value)
    assert entry.id is not None
    assert await delete_config_entry(db, entry.id)


@ON_DATABASE
@given(
    result=results(),
    entry=config_entries(),
    record=file_records(),
    missing=st.integers(10**6, MAX_INT),
)
async def test_saving_by_id_that_does_not_exist(
    db: Database, result: TestResult, entry: ConfigEntry, record: FileRecord, missing: int
) -> None:
    """Overwriting an id that does not exist raises NotFoundError and stores nothing."""
    entry = attrs.evolve(entry, section=unique(entry.section))
    record = attrs.evolve(record, path=unique(record.path))
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", lambda: save_result(db, attrs.evolve(result, id=missing))),
        ("ConfigEntry", lambda: save_config_entry(db, attrs.evolve(entry, id=missing))),
        ("FileRecord", lambda: save_file_record(db, attrs.evolve(record, id=missing))),
    ]
    for model, call in calls:
        error = await outcome(call())
        assert type(error) is NotFoundError
        assert (error.model, error.key) == (model, missing)
    assert await find_result(db, missing) is None
    assert await find_config_entry_by_key(db, entry.section, entry.key) is None
    assert await find_file_record_by_path(db, record.path) is None


@ON_DATABASE
@given(first=config_entries(), second=config_entries(), one=file_records(), two=file_records())
async def test_overwriting_onto_another_key_conflicts(
    db: Database, first: ConfigEntry, second: ConfigEntry, one: FileRecord, two: FileRecord
) -> None:
    """Moving an entry or record by id onto another's key raises ConflictError, changing nothing."""
    a = await save_config_entry(db, attrs.evolve(first, section=unique(first.section)))
    b = await save_config_entry(db, attrs.evolve(second, section=unique(second.section)))
    clash = await outcome(save_config_entry(db, attrs.evolve(b, section=a.section, key=a.key)))
    assert type(clash) is ConflictError
    assert_same(await get_config_entry_by_key(db, b.section, b.key), b)

    x = await save_file_record(db, attrs.evolve(one, path=unique(one.path)))
    y = await save_file_record(db, attrs.evolve(two, path=unique(two.path)))
    moved = await outcome(save_file_record(db, attrs.evolve(y, path=x.path)))
    assert type(moved) is ConflictError
    assert_same(await find_file_record_by_path(db, y.path), y)


@ON_DATABASE
@given(batch=st.lists(results(), min_size=1, max_size=3), data=st.data())
async def test_save_results_refuses_a_bad_item(
    db: Database, batch: list[TestResult], data: st.DataObject
) -> None:
    """A batch with an item that has an id or is no result is refused whole, naming it."""
    before = len(await all_results(db))
    index = data.draw(st.integers(0, len(batch) - 1), label="index")
    with_id = [*batch]
    with_id[index] = attrs.evolve(batch[index], id=data.draw(storable_ints(min_value=1)))
    assert_refused(await outcome(save_results(db, with_id)), "TestResult", "id")
    not_a_result: list[Any] = [*batch]
    not_a_result[index] = data.draw(hostile_values(), label="item")
    assert_refused(await outcome(save_results(db, not_a_result)), "TestResult", f"[{index}]")
    assert len(await all_results(db)) == before


@ON_DATABASE
@given(value=st.one_of(st.booleans(), st.integers(MIN_INT, MAX_INT), finite_floats(), safe_text()))
async def test_get_config_value_checks_the_declared_type(db: Database, value: object) -> None:
    """Reading a value as another type than declared is refused: bool is not int, nor int float."""
    section = unique("typed")
    hostile: Any = value
    await set_config(db, section, "k", hostile)
    kinds: list[Any] = [bool, int, float, str, list, dict]
    for kind in kinds:
        answer = await outcome(get_config_value(db, section, "k", kind))
        if kind is type(value):
            assert_same(answer, value)
        else:
            assert_refused(answer, "ConfigEntry", "value")


@ON_DATABASE
@example(thing="not a model")
@example(thing=None)
@given(thing=st.one_of(wrong_types(), safe_text()))
async def test_saving_what_is_no_model(db: Database, thing: object) -> None:
    """Saving something that is not a model is refused with ValidationError."""
    hostile: Any = thing
    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("TestResult", lambda: save_result(db, hostile)),
        ("ConfigEntry", lambda: save_config_entry(db, hostile)),
        ("FileRecord", lambda: save_file_record(db, hostile)),
    ]
    for model, call in calls:
        error = await outcome(call())
        assert type(error) is ValidationError
        assert error.model == model
    if not isinstance(thing, list | tuple | set | dict | str | bytes):
        error = await outcome(save_results(db, hostile))
        assert type(error) is ValidationError


# Summaries ----------------------------------------------------------------------------


async def _check_stats(db: Database) -> None:
    """Check result_stats against the stored results, summarised here."""
    stored = await all_results(db)
    stats = await result_stats(db)
    assert set(stats) == {result.test_type for result in stored}
    for test_type, summary in stats.items():
        times = [result.execution_time for result in stored if result.test_type is test_type]
        assert summary.total == len(times)
        assert sum(summary.counts.values()) == len(times)
        for status, count in summary.counts.items():
            assert count == sum(r.status is status for r in stored if r.test_type is test_type)
        assert summary.max_time == max(times)
        assert math.isfinite(summary.mean_time)
        assert math.isclose(summary.mean_time, math.fsum(times) / len(times), rel_tol=1e-9)


@ON_DATABASE
@given(batch=st.lists(results(), min_size=1, max_size=4), times=st.data())
async def test_result_stats_of_any_results(
    db: Database, batch: list[TestResult], times: st.DataObject
) -> None:
    """Counts, mean and longest time per type match the stored results exactly."""
    bounded = st.floats(min_value=0, max_value=MAX_EXECUTION_TIME)
    batch = [attrs.evolve(r, execution_time=times.draw(bounded, label="time")) for r in batch]
    await save_results(db, batch)
    await _check_stats(db)


@ON_DATABASE
@example(times=[MAX_EXECUTION_TIME, MAX_EXECUTION_TIME])
@given(times=st.lists(st.floats(min_value=1e11, max_value=MAX_EXECUTION_TIME), min_size=2))
async def test_result_stats_of_the_longest_times(db: Database, times: list[float]) -> None:
    """Results with the longest allowed times still have a finite, exact mean."""
    await save_results(
        db,
        [
            TestResult(test_type=TestType.TLE, status=TestStatus.TIMEOUT, execution_time=t)
            for t in times
        ],
    )
    await _check_stats(db)
