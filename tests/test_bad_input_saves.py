"""Hostile values saved through every write function, on each engine.

Each value is refused, naming its field, or saved and read back unchanged; saving by an id
that is not there, onto another's key, or what is no model raises the package's own error.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from _bad_input_helpers import Expected, assert_refused, assert_same, outcome
from persistence import (
    ConfigEntry,
    ConfigType,
    ConflictError,
    Database,
    FileRecord,
    NotFoundError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    all_runs,
    delete_config_entry,
    find_config_entry_by_key,
    find_file_record_by_path,
    find_result,
    get_config_entry_by_key,
    get_config_value,
    get_result,
    list_results,
    result_stats,
    save_config_entry,
    save_file_record,
    save_result,
    save_results,
    save_run,
    set_config,
)
from persistence._guards import MIN_INT
from persistence.file_records import FileRecordCursor
from persistence.models import MAX_EXECUTION_TIME, MAX_INT
from strategies import ON_DATABASE
from strategies.hostile import hostile_text, hostile_values, wrong_types
from strategies.values import (
    config_entries,
    file_records,
    finite_floats,
    results,
    safe_text,
    storable_ints,
    unique,
)

MODEL_FIELDS: Final = [
    (cls, field.name)
    for cls in (TestResult, ConfigEntry, FileRecord)
    for field in attrs.fields(cls)
    if field.name != "id"  # an id is the key: saving with one is tested on its own
]
"""(model, field) for every stored field of every model."""

ALSO_BLAMED: Final = {(ConfigEntry, "type"): "value"}
"""A changed declared type makes the value the wrong one."""


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
    assert_refused(await outcome(save_results(db, not_a_result)), "TestResult", f"results[{index}]")
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
@given(
    default=st.one_of(st.booleans(), st.integers(MIN_INT, MAX_INT), finite_floats(), safe_text())
)
@example(default=3)
@example(default=2**53 + 1)
async def test_get_config_value_refuses_a_default_of_another_type(
    db: Database, default: object
) -> None:
    """A default is given back as it is: one of another type than `kind` is refused first.

    A missing `int` gave a default of `True`, `8.5` or `"8"` back as the int asked for. An
    int for a `float` is that float, when it is one exactly, as a type checker takes it: it
    was refused, though `mypy --strict` had passed the call.
    """
    section = unique("defaulted")
    hostile: Any = default
    kinds: list[Any] = [bool, int, float, str, list, dict]
    for kind in kinds:
        answer = await outcome(get_config_value(db, section, "missing", kind, hostile))
        if kind is type(default):
            assert_same(answer, default)
        elif kind is float and type(default) is int and abs(default) <= 2**53:
            assert_same(answer, float(default))
        else:
            assert_refused(answer, "get_config_value", "default")


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


async def test_a_dict_given_empty_and_filled_later_changes_no_model(db: Database) -> None:
    """A model copies an empty dict too: the caller's own, filled after, never reaches the row.

    An empty dict was kept as given: filled after the model was built, with a value the model
    refuses (an int past 64 bits), it was stored, and every listing of the table then failed.
    """
    metadata: dict[str, Any] = {}
    labels: dict[str, Any] = {}
    result = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=metadata)
    run = Run(labels=labels)
    metadata["seed"] = 2**64
    labels["host"] = "box\x00"
    assert (result.metadata, run.labels) == ({}, {})
    saved = await save_result(db, result)
    assert saved.metadata == {}
    assert (await save_run(db, run)).labels == {}


async def test_a_run_whose_labels_were_changed_in_place_is_refused_before_its_write(
    db: Database,
) -> None:
    """`run.labels[...] = ...` on a built run: its save checks it again, before the INSERT.

    The check ran after the INSERT: the caller was told the run was refused, and it was stored.
    """
    run = Run(labels={"host": "box"})
    run.labels["host"] = "box\x00"
    with pytest.raises(ValidationError, match=r"Run\.labels"):
        await save_run(db, run)
    assert await all_runs(db) == []


def _nested(levels: int) -> object:
    value: object = []
    for _ in range(levels):
        value = [value]
    return value


IN_PLACE: Final[list[object]] = [
    math.nan,
    math.inf,
    2**64,
    2.0**60,
    "box\x00",
    "\ud800",
    {1: "a key that is no str"},
    _nested(100),
    object(),
]
"""Values a model refuses, set in its JSON after it was built: each is checked again at a save."""


def _changed(result: TestResult, bad: Any) -> TestResult:  # noqa: ANN401  # refused by its types
    """A copy of the result, whose metadata its caller then changed in place."""
    result = attrs.evolve(result)
    result.metadata["k"] = bad
    return result


@pytest.mark.parametrize("bad", IN_PLACE, ids=lambda value: type(value).__name__)
async def test_json_changed_in_place_after_the_build_is_refused_at_its_save(
    db: Database,
    bad: Any,  # noqa: ANN401  # values their types refuse: the mistake tested
) -> None:
    """A result's, file record's or JSON config entry's value changed in place is checked again.

    Before, its check ran only when the model was built: NaN was a bare `ValueError` of the
    encoder, and an int past 64 bits or a NUL was stored, after which every listing failed.
    """
    new = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"k": 1})
    saved = await save_result(db, new)
    for call in (
        save_result(db, _changed(new, bad)),
        save_result(db, _changed(saved, bad)),
        save_results(db, [_changed(new, bad)]),
    ):
        with pytest.raises(ValidationError, match=r"TestResult\.metadata"):
            await call
    assert await all_results(db) == [saved]
    record = FileRecord(path=unique("p"), size=1, hash="", metadata={"k": [1]})
    record.metadata["k"] = [bad]
    with pytest.raises(ValidationError, match=r"FileRecord\.metadata"):
        await save_file_record(db, record)
    assert await find_file_record_by_path(db, record.path) is None
    entry = ConfigEntry(section=unique("s"), key="k", value={"k": 1}, type=ConfigType.DICT)
    assert isinstance(entry.value, dict)
    entry.value["k"] = bad
    with pytest.raises(ValidationError, match=r"ConfigEntry\.value"):
        await save_config_entry(db, entry)
    assert await find_config_entry_by_key(db, entry.section, "k") is None


async def test_a_minus_zero_set_in_place_is_stored_as_the_zero_a_build_gives(
    db: Database,
) -> None:
    """-0.0 set after the build is stored as 0.0, as a model built with it holds it."""
    result = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"k": 1})
    result.metadata["k"] = -0.0
    await save_result(db, result)
    stored = [r.metadata["k"] for r in await all_results(db)]
    assert stored == [0.0]
    assert [math.copysign(1.0, value) for value in stored if isinstance(value, float)] == [1.0]


async def test_a_value_of_the_wrong_kind_is_refused_naming_the_parameter(db: Database) -> None:
    """The error names the parameter the caller passed it as, not "argument".

    `list_results(db, {"status": ...})` was refused as `ResultFilter.argument`, and a cursor of
    another listing as `PageCursor.argument`: which of the call's arguments was left to guess.
    """
    other_cursor: Any = FileRecordCursor(path="a")
    wrong: Any = {"status": "failed"}
    calls: list[tuple[Awaitable[object], str]] = [
        (save_result(db, wrong), r"^TestResult\.result: expected TestResult, got dict"),
        (save_results(db, [wrong]), r"^TestResult\.results\[0\]:"),
        (list_results(db, wrong), r"^ResultFilter\.where: expected ResultFilter, got dict"),
        (list_results(db, after=other_cursor), r"^PageCursor\.after: expected PageCursor"),
        (save_file_record(db, wrong), r"^FileRecord\.record:"),
        (save_config_entry(db, wrong), r"^ConfigEntry\.entry:"),
        (save_run(db, wrong), r"^Run\.run:"),
    ]
    for call, named in calls:
        with pytest.raises(ValidationError, match=named):
            await call
