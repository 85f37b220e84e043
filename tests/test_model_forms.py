"""Models in their other forms: the converter, from_dict, rows and stored config text."""

from __future__ import annotations

import collections
import datetime as dt
import json
from typing import Any, Final

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _model_helpers import AWARE, DEEP_LIST, REQUIRED, Cls, attempt, build, from_data, short_id
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
from persistence.models import MAX_INT
from strategies import IN_MEMORY
from strategies.hostile import ENORMOUS_INTS, EXTREME_DATETIMES, hostile_values
from strategies.values import (
    PLAIN_JSON,
    SUBCLASSED_JSON,
    Attributes,
    config_entries,
    config_values,
    exactly,
    file_records,
    results,
)

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
