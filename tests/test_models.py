"""Every rule of every model, the converters, and the JSON-ready dict forms."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import pathlib
from collections.abc import Mapping
from typing import Any, Final, overload

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import (
    ConfigEntry,
    ConfigType,
    FileRecord,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    from_dict,
    make_converter,
    queries,
    to_dict,
)
from persistence._interface import JsonObject
from persistence._rows import (
    config_from_row,
    config_params,
    decode_config_value,
    encode_config_value,
    file_record_from_row,
    file_record_params,
    result_from_row,
    result_params,
    with_id,
)
from persistence.converters import Model
from persistence.models import MAX_EXECUTION_TIME, MAX_INT
from strategies import (
    ENORMOUS_INTS,
    EXTREME_DATETIMES,
    IN_MEMORY,
    PLAIN_JSON,
    SQL_LOOKING,
    SUBCLASSED_JSON,
    Attributes,
    aware_datetimes,
    config_entries,
    config_values,
    exactly,
    file_records,
    hostile_values,
    out_of_range_datetimes,
    results,
)

Cls = type[TestResult] | type[ConfigEntry] | type[FileRecord]

UTC_PLUS_5: Final = dt.timezone(dt.timedelta(hours=5))
NAIVE: Final = dt.datetime(2024, 1, 2, 3, 4, 5)  # noqa: DTZ001  # naive on purpose
AWARE: Final = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC_PLUS_5)
BEFORE_YEAR_1_IN_UTC: Final = dt.datetime(1, 1, 1, tzinfo=UTC_PLUS_5)
AFTER_9999_IN_UTC: Final = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(-dt.timedelta(hours=5)))


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DEEP_LIST: Final = _nested(5000)

REQUIRED: Final[dict[Cls, dict[str, Any]]] = {
    TestResult: {"test_type": "unit", "status": "passed"},
    ConfigEntry: {"section": "run", "key": "jobs", "value": "4", "type": "str"},
    FileRecord: {"path": "src/main.py"},
}
"""The fewest arguments each model takes."""


@overload
def build(cls: type[TestResult], **changes: object) -> TestResult: ...
@overload
def build(cls: type[ConfigEntry], **changes: object) -> ConfigEntry: ...
@overload
def build(cls: type[FileRecord], **changes: object) -> FileRecord: ...
@overload
def build(cls: Cls, **changes: object) -> Model: ...
def build(cls: Cls, **changes: object) -> Model:
    """Build a model from its required arguments, changed as given."""
    arguments: dict[str, Any] = {**REQUIRED[cls], **changes}
    return cls(**arguments)


def attempt(cls: Cls, **changes: object) -> Model | ValidationError:
    """Build a model as `build` does; give back the ValidationError instead of raising it."""
    try:
        return build(cls, **changes)
    except ValidationError as error:
        return error


def from_data(cls: Cls, data: Mapping[str, object]) -> Model:
    """Call `from_dict` for whichever model `cls` is."""
    if issubclass(cls, TestResult):
        return from_dict(TestResult, data)
    if issubclass(cls, ConfigEntry):
        return from_dict(ConfigEntry, data)
    return from_dict(FileRecord, data)


def short_id(value: object) -> str | None:
    """Name an int too long to print by its size; leave other ids to pytest."""
    if isinstance(value, int) and value.bit_length() > 256:  # long enough
        return f"int_of_{value.bit_length()}_bits"
    return None


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
        {"a": (1, 2)},
        {"a": {1, 2}},
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
    return [(cls, "id", value) for value in (0, -1, MAX_INT + 1, 2**70, True, "1", 1.0, b"1")]


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
    (ConfigType.LIST, (1, 2)),
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
    (TestResult, "id", 1, 1),
    (TestResult, "id", MAX_INT, MAX_INT),
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

MISSING: Final = [(cls, name) for cls, required in REQUIRED.items() for name in required]
"""(model, required field) pairs."""

BAD_STORED_CONFIG: Final = [
    (ConfigType.INT, "1.5"),
    (ConfigType.INT, "true"),
    (ConfigType.INT, "NaN"),
    (ConfigType.INT, ""),
    (ConfigType.BOOL, "1"),
    (ConfigType.BOOL, "True"),
    (ConfigType.FLOAT, "one"),
    (ConfigType.FLOAT, ""),
    (ConfigType.LIST, "{}"),
    (ConfigType.LIST, "[1"),
    (ConfigType.DICT, "[]"),
    (ConfigType.DICT, "null"),
]
"""(declared type, stored text) that cannot be read as the declared type."""


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


CONVERTER: Final = make_converter()

DATETIME_FIELDS: Final = frozenset({"created_at", "updated_at", "accessed_at"})
"""Fields whose JSON form is ISO 8601 text."""

models_with_ids = st.builds(
    lambda model, row_id: attrs.evolve(model, id=row_id),
    st.one_of(results(), config_entries(), file_records()),
    st.integers(1, MAX_INT),
)


def structured(cls: Cls, data: object) -> Model:
    """Structure data with the converter `make_converter` gives, as whichever model `cls` is."""
    if issubclass(cls, TestResult):
        return CONVERTER.structure(data, TestResult)
    if issubclass(cls, ConfigEntry):
        return CONVERTER.structure(data, ConfigEntry)
    return CONVERTER.structure(data, FileRecord)


@IN_MEMORY
@given(model=models_with_ids)
def test_converter_round_trip_keeps_the_id(model: Model) -> None:
    """`make_converter()` turns a model with its id into JSON and back into an equal model."""
    data = CONVERTER.unstructure(model)
    assert data["id"] == model.id
    assert data == to_dict(model)
    through_json = json.loads(json.dumps(data, allow_nan=False))
    assert exactly(structured(type(model), through_json)) == exactly(model)


@IN_MEMORY
@given(model=models_with_ids, data=st.data())
def test_converter_keeps_every_model_rule(model: Model, data: st.DataObject) -> None:
    """Structuring refuses a bad value as the constructor does, naming the same field."""
    field = data.draw(st.sampled_from([f.name for f in attrs.fields(type(model))]), label="field")
    value = data.draw(hostile_values(), label="value")
    if field in DATETIME_FIELDS and isinstance(value, str):
        return  # ISO text is a datetime's JSON form, which the constructor does not take
    changes: dict[str, Any] = {field: value}
    try:
        expected: Model | ValidationError = attrs.evolve(model, **changes)
    except ValidationError as error:
        expected = error
    given = {**to_dict(model), field: value}
    for structure in (structured, from_data):
        try:
            found: Model | ValidationError = structure(type(model), given)
        except ValidationError as error:
            found = error
        if isinstance(expected, ValidationError):
            assert isinstance(found, ValidationError), found
            assert (found.model, found.field) == (expected.model, expected.field)
        else:
            assert exactly(found) == exactly(expected)


@pytest.mark.parametrize("data", [[], None, 1, ["path"], b"{}", ("path", "p")])
def test_from_dict_refuses_what_is_not_a_dict(data: object) -> None:
    """`from_dict` refuses data that is no dict, naming the model and its argument."""
    hostile: Any = data
    with pytest.raises(ValidationError) as caught:
        from_dict(FileRecord, hostile)
    assert (caught.value.model, caught.value.field) == ("FileRecord", "argument")


@IN_MEMORY
@given(
    unknown=st.dictionaries(
        st.one_of(
            st.integers(),
            st.none(),
            st.text(max_size=5).filter(lambda name: name not in attrs.fields_dict(FileRecord)),
        ),
        st.integers(),
        min_size=1,
    )
)
def test_from_dict_names_an_unknown_key_of_any_type(unknown: dict[object, int]) -> None:
    """`from_dict` refuses keys of any type that are not fields, naming one of them as text."""
    data: Any = {"path": "p", **unknown}
    for structure in (structured, from_data):
        with pytest.raises(ValidationError) as caught:
            structure(FileRecord, data)
        assert caught.value.field in {str(key) for key in unknown}


def row_of(model: Model, row_id: int) -> Model:
    """Map a model to its query parameters and back from them as a row, as the repository does."""
    if isinstance(model, TestResult):
        return result_from_row(queries.TestResultsRow(id=row_id, **result_params(model)))
    if isinstance(model, ConfigEntry):
        return config_from_row(queries.ConfigEntriesRow(id=row_id, **config_params(model)))
    return file_record_from_row(queries.FileRecordsRow(id=row_id, **file_record_params(model)))


@IN_MEMORY
@given(model=st.one_of(results(), config_entries(), file_records()), row_id=st.integers(1, MAX_INT))
def test_row_round_trip(model: Model, row_id: int) -> None:
    """The row mappers read back, with its id, exactly what the parameter mappers write."""
    assert exactly(row_of(model, row_id)) == exactly(attrs.evolve(model, id=row_id))


@IN_MEMORY
@given(model=results(), new_id=st.integers(1, MAX_INT))
def test_a_saved_result_is_copied_whole_with_its_new_id(model: TestResult, new_id: int) -> None:
    """`with_id` copies every field, in place, and only the id changes: a frozen TestResult."""
    copy = with_id(model, new_id)
    assert type(copy) is TestResult
    assert exactly(copy) == exactly(attrs.evolve(model, id=new_id))
    assert all(
        getattr(copy, field.name) is getattr(model, field.name)
        for field in attrs.fields(TestResult)
        if field.name != "id"
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        copy.id = 3  # type: ignore[misc]  # what is refused


def test_models_read_from_rows_are_the_frozen_models() -> None:
    """A model the row mappers fill is of the model's class: frozen, equal, hashable as one."""
    made = (
        TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, id=1),
        FileRecord(path="p", id=2),
    )
    for model in made:
        read = row_of(model, model.id or 0)
        assert type(read) is type(model)
        assert read == model
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            read.id = 3  # type: ignore[misc]  # what is refused
        assert attrs.evolve(read, id=4).id == 4


@pytest.mark.parametrize("kind", list(ConfigType))
@IN_MEMORY
@given(data=st.data())
def test_config_value_text_round_trip(kind: ConfigType, data: st.DataObject) -> None:
    """A config value's stored text reads back as an equal value of the declared type."""
    value = data.draw(config_values(kind))
    text = encode_config_value(kind, value)
    assert isinstance(text, str)
    decoded = decode_config_value(kind, text)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(("kind", "text"), BAD_STORED_CONFIG)
def test_bad_stored_config_text_is_refused(kind: ConfigType, text: str) -> None:
    """Stored text that is not the declared type raises ValidationError naming `value`."""
    with pytest.raises(ValidationError) as caught:
        decode_config_value(kind, text)
    assert (caught.value.model, caught.value.field) == ("ConfigEntry", "value")


@pytest.mark.parametrize("cls", list(REQUIRED))
@IN_MEMORY
@given(name=st.text(min_size=1, max_size=10))
def test_from_dict_refuses_unknown_fields(cls: Cls, name: str) -> None:
    """`from_dict` refuses a field the model does not have, naming it."""
    if name in attrs.fields_dict(cls):
        return
    with pytest.raises(ValidationError) as caught:
        from_data(cls, {**REQUIRED[cls], name: 1})
    assert (caught.value.model, caught.value.field) == (cls.__name__, name)


@pytest.mark.parametrize(("cls", "name"), MISSING)
def test_from_dict_refuses_missing_fields(cls: Cls, name: str) -> None:
    """`from_dict` refuses data without a required field, naming it."""
    data = {key: value for key, value in REQUIRED[cls].items() if key != name}
    with pytest.raises(ValidationError) as caught:
        from_data(cls, data)
    assert (caught.value.model, caught.value.field) == (cls.__name__, name)


@pytest.mark.parametrize(
    "text", ["yesterday", "", "2024-13-01T00:00:00+00:00", "2024-01-02T03:04:05", "0000-01-01"]
)
def test_from_dict_refuses_bad_datetimes(text: str) -> None:
    """`from_dict` refuses a datetime that is not aware ISO 8601, naming the field."""
    with pytest.raises(ValidationError) as caught:
        from_dict(FileRecord, {"path": "p", "accessed_at": text})
    assert (caught.value.model, caught.value.field) == ("FileRecord", "accessed_at")


def test_from_dict_normalises_datetimes() -> None:
    """`from_dict` reads an ISO 8601 datetime at any offset as the same instant in UTC."""
    record = from_dict(FileRecord, {"path": "p", "created_at": AWARE.isoformat()})
    assert record.created_at == AWARE
    assert record.created_at.tzinfo is dt.UTC


@pytest.mark.parametrize("value", ENORMOUS_INTS, ids=short_id)
def test_enormous_int_execution_time_is_refused(value: int) -> None:
    """An int too large for a float as execution time is refused, naming the field."""
    with pytest.raises(ValidationError) as caught:
        build(TestResult, execution_time=value)
    assert caught.value.field == "execution_time"


@pytest.mark.parametrize("cls", [TestResult, FileRecord])
def test_metadata_int_beyond_json_text_is_refused(cls: Cls) -> None:
    """Metadata holding an int too long to write as JSON text is refused, naming metadata."""
    with pytest.raises(ValidationError) as caught:
        build(cls, metadata={"n": 10**4301})
    assert caught.value.field == "metadata"


@pytest.mark.parametrize("cls", [TestResult, FileRecord])
def test_deeply_nested_metadata_is_refused(cls: Cls) -> None:
    """Metadata nested deeper than JSON tools can handle is refused, naming metadata."""
    with pytest.raises(ValidationError) as caught:
        build(cls, metadata={"deep": DEEP_LIST})
    assert caught.value.field == "metadata"


SUBCLASSED_CASES: Final[list[tuple[JsonObject, JsonObject]]] = [
    (SUBCLASSED_JSON, PLAIN_JSON),
    (collections.OrderedDict(), {}),
    (Attributes(n=[Attributes(), []]), {"n": [{}, []]}),
]
"""(given, kept): JSON objects made of dict subclasses, and the plain dicts kept of them."""


@pytest.mark.parametrize(("given", "kept"), SUBCLASSED_CASES)
def test_dict_subclasses_are_kept_as_plain_dicts(given: JsonObject, kept: JsonObject) -> None:
    """Metadata and dict or list config values made of dict subclasses are kept as plain dicts."""
    kept_values = [
        build(TestResult, metadata=given).metadata,
        build(FileRecord, metadata=given).metadata,
        build(ConfigEntry, type=ConfigType.DICT, value=given).value,
        build(ConfigEntry, type=ConfigType.LIST, value=[given]).value,
    ]
    assert [exactly(value) for value in kept_values] == [
        exactly(v) for v in (kept, kept, kept, [kept])
    ]


@pytest.mark.parametrize("moment", EXTREME_DATETIMES)
def test_extreme_datetimes_are_refused(moment: dt.datetime) -> None:
    """The first and last instants of the calendar are refused by every model, naming the field.

    asyncpg writes them as -infinity and infinity and reads them back naive, so no engine
    would give them back unchanged.
    """
    refusals = [
        attempt(TestResult, created_at=moment),
        attempt(FileRecord, created_at=moment),
        attempt(FileRecord, accessed_at=moment),
        attempt(ConfigEntry, updated_at=moment),
    ]
    assert all(isinstance(refusal, ValidationError) for refusal in refusals)
    assert [r.field for r in refusals if isinstance(r, ValidationError)] == [
        "created_at",
        "created_at",
        "accessed_at",
        "updated_at",
    ]
