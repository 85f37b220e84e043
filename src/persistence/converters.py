"""Mapping between models, database rows and JSON-ready dicts, by name.

`make_converter()` builds a cattrs converter that:

- structures a row (any mapping from column name to value, such as sqlite3.Row or an
  asyncpg Record) into a model without checking it again, since the database's
  constraints already did;
- unstructures a model into the parameters the queries take: enums as their values,
  datetimes and metadata as they are, a config value as its stored text, and no id (the
  id is the key, passed on its own).

`to_dict` and `from_dict` are the seed's JSON-ready forms, with ISO 8601 datetimes;
`from_dict` goes through the model's constructor, so its rules apply.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from persistence._sqltypes import JsonObject, JsonValue
from persistence.exceptions import ValidationError
from persistence.models import (
    ConfigEntry,
    ConfigType,
    ConfigValue,
    FileRecord,
    TestResult,
    TestStatus,
    TestType,
)

__all__ = [
    "Model",
    "configure_converter",
    "decode_config_value",
    "encode_config_value",
    "from_dict",
    "make_converter",
    "to_dict",
]

Model = TestResult | ConfigEntry | FileRecord
_M = TypeVar("_M", TestResult, ConfigEntry, FileRecord)


def make_converter() -> cattrs.Converter:
    """Build a converter with this package's hooks; the caller owns it."""
    converter = cattrs.Converter()
    configure_converter(converter)
    return converter


def configure_converter(converter: cattrs.Converter) -> None:
    """Register the row hooks of every model on `converter`."""
    converter.register_structure_hook(
        TestResult, _trusted_row_hook(TestResult, {"test_type": TestType, "status": TestStatus})
    )
    converter.register_structure_hook(FileRecord, _trusted_row_hook(FileRecord, {}))
    converter.register_structure_hook(ConfigEntry, _config_from_row)
    converter.register_structure_hook(dt.datetime, _datetime_from_json)
    for cls in (TestResult, FileRecord):
        converter.register_unstructure_hook(
            cls,
            make_dict_unstructure_fn(
                cls, converter, id=override(omit=True), metadata=override(unstruct_hook=_same)
            ),
        )
    converter.register_unstructure_hook(ConfigEntry, _config_to_row)


def _same(value: JsonObject) -> JsonObject:
    return value


def _trusted_row_hook(
    cls: type[_M], enums: Mapping[str, Callable[[str], object]]
) -> Callable[[Mapping[str, Any], object], _M]:
    """Build a row-to-model hook that skips the constructor's checks.

    Rows come from tables whose CHECK constraints hold the same rules, so checking them
    again would cost more than reading them.
    """
    names = tuple(field.name for field in attrs.fields(cls))
    plain = tuple(name for name in names if name not in enums)
    converted = tuple(enums.items())
    new = object.__new__
    set_field = object.__setattr__

    def structure(row: Mapping[str, Any], _: object) -> _M:
        model = new(cls)
        for name in plain:
            set_field(model, name, row[name])
        for name, convert in converted:
            set_field(model, name, convert(row[name]))
        return model

    return structure


def _config_from_row(row: Mapping[str, Any], _: object) -> ConfigEntry:
    kind = ConfigType(row["type"])
    return ConfigEntry(
        id=row["id"],
        section=row["section"],
        key=row["key"],
        value=decode_config_value(kind, row["value"]),
        type=kind,
        description=row["description"],
        updated_at=row["updated_at"],
    )


def _config_to_row(entry: ConfigEntry) -> dict[str, object]:
    return {
        "section": entry.section,
        "key": entry.key,
        "value": encode_config_value(entry.type, entry.value),
        "type": entry.type.value,
        "description": entry.description,
        "updated_at": entry.updated_at,
    }


def encode_config_value(kind: ConfigType, value: ConfigValue) -> str:
    """Write a config value as the text stored in its row."""
    if kind is ConfigType.STR:
        return str(value)
    if kind is ConfigType.BOOL:
        return "true" if value else "false"
    if kind is ConfigType.FLOAT:
        return repr(value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def decode_config_value(kind: ConfigType, text: str) -> ConfigValue:
    """Read a config value's stored text as its declared Python type."""
    try:
        if kind is ConfigType.STR:
            return text
        if kind is ConfigType.BOOL:
            return {"true": True, "false": False}[text]
        if kind is ConfigType.FLOAT:
            return float(text)
        decoded: ConfigValue = json.loads(text)
    except (ValueError, KeyError):
        raise ValidationError(
            "ConfigEntry", "value", f"stored text {text!r:.80} is not a {kind.value}"
        ) from None
    if type(decoded) is not {"int": int, "list": list, "dict": dict}[kind.value]:
        raise ValidationError(
            "ConfigEntry", "value", f"stored text {text!r:.80} is not a {kind.value}"
        )
    return decoded


def _datetime_from_json(value: object, _: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return dt.datetime.fromisoformat(value)


def to_dict(model: Model) -> dict[str, JsonValue]:
    """Give a model as a JSON-ready dict: enums as values, datetimes as ISO 8601 text."""
    result: dict[str, JsonValue] = {}
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        if isinstance(value, dt.datetime):
            result[field.name] = value.isoformat()
        elif isinstance(value, ConfigType | TestType | TestStatus):
            result[field.name] = value.value
        else:
            result[field.name] = value
    return result


def from_dict(cls: type[_M], data: Mapping[str, object], converter: cattrs.Converter) -> _M:
    """Build a model from a dict such as `to_dict` gives, checking every rule."""
    fields = attrs.fields_dict(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValidationError(cls.__name__, unknown[0], "is not a field of this model")
    arguments: dict[str, Any] = {}
    for name, value in data.items():
        if fields[name].type in {"dt.datetime", dt.datetime} and isinstance(value, str):
            try:
                arguments[name] = converter.structure(value, dt.datetime)
            except ValueError:
                raise ValidationError(
                    cls.__name__, name, f"{value!r} is not an ISO 8601 datetime"
                ) from None
        else:
            arguments[name] = value
    try:
        return cls(**arguments)
    except TypeError as error:  # a required field is missing
        raise ValidationError(cls.__name__, _missing_field(cls, data), str(error)) from None


def _missing_field(cls: type[Model], data: Mapping[str, object]) -> str:
    missing = [
        name
        for name, field in attrs.fields_dict(cls).items()
        if field.default is attrs.NOTHING and name not in data
    ]
    return missing[0] if missing else "?"
