"""Every rule of every model, the converters, and the JSON-ready dict forms."""

from __future__ import annotations

import array
import collections
import datetime as dt
import json
import math
import pathlib
from types import MappingProxyType
from typing import Any, Final

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _model_helpers import AWARE, UTC_PLUS_5, Cls, attempt, build, from_data, short_id
from persistence import (
    ConfigEntry,
    ConfigType,
    FileRecord,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    to_dict,
)
from persistence._guards import MIN_INT
from persistence.converters import Model, make_converter
from persistence.models import MAX_EXECUTION_TIME, MAX_INT
from strategies import IN_MEMORY
from strategies.hostile import hostile_values, out_of_range_datetimes
from strategies.values import SQL_LOOKING, aware_datetimes, config_entries, file_records, results

_PLAIN: Final = {"a": [1, [2]], "b": {"c": []}}
"""The metadata that mappings and sequences are held as."""

NAIVE: Final = dt.datetime(2024, 1, 2, 3, 4, 5)  # noqa: DTZ001  # naive on purpose
BEFORE_YEAR_1_IN_UTC: Final = dt.datetime(1, 1, 1, tzinfo=UTC_PLUS_5)
AFTER_9999_IN_UTC: Final = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5)))


def _text_cases(cls: Cls, field: str, *, nullable: bool, non_empty: bool) -> list[Any]:
    bad: list[object] = ["a\x00b", "\x00", "\ud800", "x\udfff", b"bytes", 1, 1.5, True, ["a"]]
    if not nullable:
        bad.append(None)
    if non_empty:
        bad.append("")
    return [(cls, field, value) for value in bad]


def _int_cases(cls: Cls, field: str) -> list[Any]:
    bad = [-1, -(2**63), MAX_INT + 1, 2**70, 1.0, True, False, "1", None, b"1"]
    return [(cls, field, value) for value in bad]


def _time_cases(cls: Cls, field: str) -> list[Any]:
    bad = [NAIVE, BEFORE_YEAR_1_IN_UTC, AFTER_9999_IN_UTC, AWARE.isoformat(), AWARE.date(), 0, None]
    return [(cls, field, value) for value in bad]


def _metadata_cases(cls: Cls) -> list[Any]:
    bad: list[object] = [
        None,
        [],
        "{}",
        {"a": math.nan},
        {"a": math.inf},
        {"a": [-math.inf]},
        {1: "x"},
        {None: "x"},
        {"a": b"x"},
        {"a": bytearray(b"x")},
        {"a": memoryview(b"x")},
        {"a": collections.UserString("text, no array")},
        {"a": array.array("b", b"hi")},
        {"a": {1, 2}},
        {"a": frozenset()},
        {"a": 2.0**53},
        {"a": -(2.0**60)},
        {"a": 2**63},
        {"a": -(2**63) - 1},
        {"a": [2**100]},
        {"a": {"b": [-(2**64)]}},
        {"a\x00": 1},
        {"\ud800": 1},
        {"a": "\x00"},
        {"a": {"b": ["\udc00"]}},
        {"a": dt.datetime.now(dt.UTC)},
        {"a": object()},
    ]
    return [(cls, "metadata", value) for value in bad]


def _id_cases(cls: Cls) -> list[Any]:
    return [(cls, "id", value) for value in (MIN_INT - 1, MAX_INT + 1, 2**70, True, "1", 1.0, b"1")]


INVALID: Final[list[tuple[Cls, str, object]]] = [
    *[(TestResult, "test_type", v) for v in ("bogus", "UNIT", "", " unit", None, 1, b"unit")],
    (TestResult, "test_type", TestStatus.PASSED),
    (TestResult, "test_type", ConfigType.INT),
    *[(TestResult, "status", v) for v in ("unit", "PASSED", "", None, 3, ["passed"])],
    *[
        (TestResult, "execution_time", v)
        for v in (-1.0, -1e-300, -1, math.nan, math.inf, -math.inf, "1.0", True, None, [1.0])
    ],
    *[
        (TestResult, "execution_time", v)
        for v in (MAX_EXECUTION_TIME * 1.01, MAX_INT, 1.7976931348623157e308)
    ],
    *_int_cases(TestResult, "memory_usage"),
    *_int_cases(TestResult, "test_cases_passed"),
    *_int_cases(TestResult, "test_cases_total"),
    *_text_cases(TestResult, "error_message", nullable=True, non_empty=False),
    *_text_cases(TestResult, "output", nullable=True, non_empty=False),
    *_time_cases(TestResult, "created_at"),
    *_metadata_cases(TestResult),
    *_id_cases(TestResult),
    *_text_cases(ConfigEntry, "section", nullable=False, non_empty=True),
    *_text_cases(ConfigEntry, "key", nullable=False, non_empty=True),
    *[(ConfigEntry, "type", v) for v in ("bogus", "STR", "string", "", None, str, 1)],
    *_text_cases(ConfigEntry, "description", nullable=True, non_empty=False),
    *_time_cases(ConfigEntry, "updated_at"),
    *_id_cases(ConfigEntry),
    *_text_cases(FileRecord, "path", nullable=False, non_empty=True),
    (FileRecord, "path", pathlib.PurePosixPath("a/b")),
    *_int_cases(FileRecord, "size"),
    *[
        (FileRecord, "hash", v)
        for v in ("A" * 64, "0" * 63, "0" * 65, "g" * 64, " " + "0" * 63, "0" * 64 + "\n", None, 0)
    ],
    *_time_cases(FileRecord, "created_at"),
    *_time_cases(FileRecord, "accessed_at"),
    *_metadata_cases(FileRecord),
    *_id_cases(FileRecord),
]
"""(model, field, value): each value breaks a rule of that field."""

INVALID_CONFIG_VALUES: Final[list[tuple[ConfigType, object]]] = [
    (ConfigType.STR, 1),
    (ConfigType.STR, None),
    (ConfigType.STR, b"x"),
    (ConfigType.STR, "a\x00"),
    (ConfigType.STR, "\ud800"),
    (ConfigType.INT, True),
    (ConfigType.INT, 1.0),
    (ConfigType.INT, "1"),
    (ConfigType.INT, None),
    (ConfigType.INT, 10**5000),
    (ConfigType.INT, 2**63),
    (ConfigType.INT, -(2**63) - 1),
    (ConfigType.INT, 2**100),
    (ConfigType.FLOAT, 1),
    (ConfigType.FLOAT, True),
    (ConfigType.FLOAT, "1.0"),
    (ConfigType.FLOAT, math.nan),
    (ConfigType.FLOAT, math.inf),
    (ConfigType.FLOAT, -math.inf),
    (ConfigType.BOOL, 1),
    (ConfigType.BOOL, 0),
    (ConfigType.BOOL, "true"),
    (ConfigType.BOOL, None),
    (ConfigType.LIST, b"\x01\x02"),  # a sequence of ints to the type checker: no list here
    (ConfigType.LIST, frozenset({1})),
    (ConfigType.DICT, (("a", 1),)),  # a tuple is a list, even of pairs
    (ConfigType.LIST, {}),
    (ConfigType.LIST, "[1]"),
    (ConfigType.LIST, [math.nan]),
    (ConfigType.LIST, [b"x"]),
    (ConfigType.LIST, ["\x00"]),
    (ConfigType.LIST, [10**5000]),
    (ConfigType.LIST, [2**63]),
    (ConfigType.LIST, [[-(2**63) - 1]]),
    (ConfigType.LIST, [{"n": 2**100}]),
    (ConfigType.DICT, []),
    (ConfigType.DICT, "{}"),
    (ConfigType.DICT, {1: 2}),
    (ConfigType.DICT, {"a": math.inf}),
    (ConfigType.DICT, {"\ud800": 1}),
    (ConfigType.DICT, {"a": 2**64}),
    (ConfigType.DICT, {"a": {"b": [2**100]}}),
]
"""(declared type, value): each value does not fit its declared type."""

VALID: Final[list[tuple[Cls, str, object, object]]] = [
    *[(TestResult, "test_type", kind.value, kind) for kind in TestType],
    *[(TestResult, "test_type", kind, kind) for kind in TestType],
    *[(TestResult, "status", status.value, status) for status in TestStatus],
    (TestResult, "execution_time", 0, 0.0),
    (TestResult, "execution_time", 3, 3.0),
    (TestResult, "execution_time", 10**12, MAX_EXECUTION_TIME),
    (TestResult, "execution_time", -0.0, 0.0),
    (TestResult, "execution_time", 5e-324, 5e-324),
    (TestResult, "execution_time", MAX_EXECUTION_TIME, MAX_EXECUTION_TIME),
    (TestResult, "memory_usage", MAX_INT, MAX_INT),
    (TestResult, "test_cases_total", MAX_INT, MAX_INT),
    (TestResult, "error_message", "", ""),
    (TestResult, "error_message", "\U0010ffff\ufffe\u200b", "\U0010ffff\ufffe\u200b"),
    *[(TestResult, "output", text, text) for text in SQL_LOOKING],
    (TestResult, "created_at", AWARE, AWARE),
    (TestResult, "metadata", {"a": [1, 2.5, None, True, {"b": "c"}]}, None),
    (TestResult, "metadata", {"big": 2**63 - 1, "small": -(2**63), "float": 2.0**53 - 1}, None),
    # Any mapping and any sequence but bytes, held as plain dicts and lists (JsonInput).
    (TestResult, "metadata", {"a": (1, (2,)), "b": MappingProxyType({"c": ()})}, _PLAIN),
    (TestResult, "metadata", MappingProxyType({"a": (1, (2,)), "b": {"c": []}}), _PLAIN),
    (FileRecord, "metadata", collections.OrderedDict(a=collections.deque([1])), {"a": [1]}),
    (TestResult, "id", 1, 1),
    (TestResult, "id", MAX_INT, MAX_INT),
    (TestResult, "id", 0, 0),  # plain SQL may store ids of 0 and below, which listings read
    (TestResult, "id", MIN_INT, MIN_INT),
    *[(ConfigEntry, "type", kind.value, kind) for kind in (ConfigType.STR,)],
    (ConfigEntry, "section", "'; DROP TABLE config_entries; --", None),
    (ConfigEntry, "key", ":key", None),
    (FileRecord, "hash", "", ""),
    (FileRecord, "hash", "0123456789abcdef" * 4, "0123456789abcdef" * 4),
    (FileRecord, "size", MAX_INT, MAX_INT),
    (FileRecord, "path", "/etc/passwd\\..\\%s", None),
    (FileRecord, "accessed_at", AWARE, AWARE),
]
"""(model, field, value, kept): the value is accepted and kept as `kept` (None: as given)."""

CONFIG_SAMPLES: Final[dict[ConfigType, object]] = {
    ConfigType.STR: "1",
    ConfigType.INT: 1,
    ConfigType.FLOAT: 1.0,
    ConfigType.BOOL: True,
    ConfigType.LIST: [1],
    ConfigType.DICT: {"a": 1},
}
"""One value of each declared type."""

CONFIG_MATRIX: Final = [(kind, given) for kind in ConfigType for given in ConfigType]
"""Every declared type against a value of every declared type."""

FIELDS: Final[list[tuple[Cls, str]]] = [
    (cls, field.name)
    for cls in (TestResult, ConfigEntry, FileRecord)
    for field in attrs.fields(cls)
]
"""(model, field) for every field of every model."""

ALSO_BLAMED: Final[dict[tuple[Cls, str], frozenset[str]]] = {
    # The declared type decides which values fit; a changed type makes the value wrong.
    (ConfigEntry, "type"): frozenset({"value"}),
}


@pytest.mark.parametrize(("cls", "field", "value"), INVALID)
def test_invalid_value_is_refused(cls: Cls, field: str, value: object) -> None:
    """A value that breaks a field's rule raises ValidationError naming model and field."""
    with pytest.raises(ValidationError) as caught:
        build(cls, **{field: value})
    assert (caught.value.model, caught.value.field) == (cls.__name__, field)


@pytest.mark.parametrize(("kind", "value"), INVALID_CONFIG_VALUES, ids=short_id)
def test_config_value_must_fit_declared_type(kind: ConfigType, value: object) -> None:
    """A config value that does not fit its declared type is refused, naming `value`."""
    with pytest.raises(ValidationError) as caught:
        build(ConfigEntry, type=kind, value=value)
    assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")


def test_more_passed_than_total_is_refused() -> None:
    """More passed test cases than there are in total is refused, naming the passed count."""
    with pytest.raises(ValidationError) as caught:
        build(TestResult, test_cases_passed=3, test_cases_total=2)
    assert (caught.value.model, caught.value.field) == ("TestResult", "test_cases_passed")


@pytest.mark.parametrize(("cls", "field", "value", "kept"), VALID)
def test_valid_value_is_kept(cls: Cls, field: str, value: object, kept: object) -> None:
    """A valid value is accepted and kept, enums and floats in their own type."""
    model = build(cls, **{field: value})
    expected = value if kept is None else kept
    stored = getattr(model, field)
    assert stored == expected
    assert type(stored) is type(expected)


@pytest.mark.parametrize(("kind", "given_kind"), CONFIG_MATRIX)
def test_config_accepts_only_its_own_type(kind: ConfigType, given_kind: ConfigType) -> None:
    """Each declared type accepts only its own Python type: bool is not int, int not float."""
    value = CONFIG_SAMPLES[given_kind]
    if kind is given_kind:
        entry = build(ConfigEntry, type=kind.value, value=value)
        assert entry.type is kind
        assert entry.value == value
        assert type(entry.value) is type(value)
    else:
        with pytest.raises(ValidationError) as caught:
            build(ConfigEntry, type=kind.value, value=value)
        assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")


@IN_MEMORY
@given(moment=aware_datetimes())
def test_datetimes_are_kept_in_utc(moment: dt.datetime) -> None:
    """An aware datetime at any offset is kept as the same instant, in UTC."""
    result = build(TestResult, created_at=moment)
    entry = build(ConfigEntry, updated_at=moment)
    record = build(FileRecord, created_at=moment, accessed_at=moment)
    for kept in (result.created_at, entry.updated_at, record.created_at, record.accessed_at):
        assert kept == moment
        assert kept.tzinfo is dt.UTC


@IN_MEMORY
@given(moment=out_of_range_datetimes())
def test_datetimes_outside_the_utc_calendar_are_refused(moment: dt.datetime) -> None:
    """An aware datetime that leaves years 1 to 9999 in UTC is refused, naming the field."""
    with pytest.raises(ValidationError) as caught:
        build(FileRecord, accessed_at=moment)
    assert caught.value.field == "accessed_at"


def test_default_datetimes_are_now_in_utc() -> None:
    """Omitted datetimes default to the current time, in UTC."""
    before = dt.datetime.now(dt.UTC)
    record = build(FileRecord)
    after = dt.datetime.now(dt.UTC)
    assert before <= record.created_at <= after
    assert record.accessed_at.tzinfo is dt.UTC


@pytest.mark.parametrize(("cls", "field"), FIELDS)
@IN_MEMORY
@given(data=st.data())
def test_any_value_is_refused_or_kept_json_ready(cls: Cls, field: str, data: st.DataObject) -> None:
    """Any value in any field is refused naming that field, or makes a JSON-ready model."""
    value = data.draw(hostile_values(), label=field)
    model = attempt(cls, **{field: value})
    if isinstance(model, ValidationError):
        assert model.model == cls.__name__
        assert model.field in {field} | ALSO_BLAMED.get((cls, field), frozenset())
        return
    encoded = json.dumps(to_dict(model), allow_nan=False)
    assert from_data(cls, json.loads(encoded)) == model


@IN_MEMORY
@given(model=st.one_of(results(), config_entries(), file_records()))
def test_dict_round_trip(model: Model) -> None:
    """`to_dict` gives JSON-ready data that `from_dict` turns back into an equal model."""
    data = to_dict(model)
    assert from_data(type(model), data) == model
    through_json = json.loads(json.dumps(data, allow_nan=False))
    assert from_data(type(model), through_json) == model


def test_to_dict_gives_a_copy_the_model_does_not_share() -> None:
    """Changing what `to_dict` (or a converter) gave changes neither the model nor the filter.

    The dict held the model's own metadata, labels or value: changed, it changed the frozen
    model, and a filter's metadata with it.
    """
    result = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"t": [1]})
    entry = ConfigEntry(section="s", key="k", value={"a": 1}, type=ConfigType.DICT)
    run = Run(labels={"commit": "c1"})
    where = ResultFilter(metadata={"a": 1})
    given: list[Any] = [to_dict(result), to_dict(entry), to_dict(run)]
    given.append(make_converter().unstructure(where))
    given[0]["metadata"]["t"].append(2)
    given[1]["value"]["a"] = 2
    given[2]["labels"]["commit"] = "zzz"
    given[3]["metadata"]["a"] = 2
    assert result.metadata == {"t": [1]}
    assert entry.value == {"a": 1}
    assert run.labels == {"commit": "c1"}
    assert where.metadata == {"a": 1}
