"""Models, and the cursors and filters of the listings, as JSON-ready dicts and back, on cattrs.

A dict comes back through the class's constructor, so its rules apply (a tampered cursor is
refused) and an unknown key is refused, each error a ValidationError naming the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import functools
import operator
from collections.abc import Callable, Mapping
from typing import TypeVar

import attrs
import cattrs
from attrs import AttrsInstance
from cattrs.preconf.json import make_converter as make_json_converter

from persistence._guards import type_among
from persistence._interface import JsonValue
from persistence.config import ConfigEntryCursor, ConfigEntryFilter
from persistence.exceptions import ValidationError
from persistence.file_records import FileRecordCursor, FileRecordFilter
from persistence.models import (
    ConfigEntry,
    ConfigType,
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
)
from persistence.results import PageCursor, ResultFilter
from persistence.run_history import TestHistoryCursor
from persistence.runs import RunCursor, RunFilter
from persistence.search import SearchCursor

__all__ = ["Model", "from_dict", "make_converter", "to_dict"]

Model = TestResult | ConfigEntry | FileRecord
_M = TypeVar("_M", TestResult, ConfigEntry, FileRecord, Run)
_MODELS: tuple[type[Model | Run], ...] = (TestResult, ConfigEntry, FileRecord, Run)
_FILTERS: tuple[type, ...] = (ResultFilter, FileRecordFilter, ConfigEntryFilter, RunFilter)
_CURSORS: tuple[type, ...] = (
    PageCursor,
    SearchCursor,
    FileRecordCursor,
    ConfigEntryCursor,
    RunCursor,
    TestHistoryCursor,
)


def make_converter() -> cattrs.Converter:
    """Build a converter between models and JSON-ready dicts, ids included; the caller owns it.

    The dicts it gives hold copies of a model's dicts and lists: changed, they change nothing.
    """
    return _built(copies=True)


def encoding_converter() -> cattrs.Converter:
    """Build the converter of `make_converter`, whose dicts share a model's dicts and lists.

    For what encodes the dict at once and keeps none of it (the Redis tier): a copy of a
    config value of megabytes held the loop 200 ms.
    """
    return _built(copies=False)


def _built(*, copies: bool) -> cattrs.Converter:
    converter = make_json_converter(forbid_extra_keys=True)
    for kind in (TestType, TestStatus, ConfigType):
        # Plain text: cattrs would pass a str enum through as it is.
        converter.register_unstructure_hook(kind, operator.attrgetter("value"))
    for plain in (*_MODELS, *_FILTERS, *_CURSORS):
        # By predicate: registering the class itself would resolve its type hints, some of
        # which name types that exist for the type checker only.
        converter.register_unstructure_hook_func(
            functools.partial(operator.is_, plain),
            functools.partial(_plain_fields, converter=converter, copies=copies),
        )
        converter.register_structure_hook_func(
            functools.partial(operator.is_, plain), _plain_structure_fn(plain, converter)
        )
    return converter


def to_dict(model: Model | Run) -> dict[str, JsonValue]:
    """Give a model as a JSON-ready dict: enums as values, datetimes as ISO 8601 text."""
    given: object = model  # callers without type checking may pass anything, None too
    if type(given) not in _MODELS:
        names = ", ".join(kind.__name__ for kind in _MODELS)
        problem = f"expected one of the models {names}, got {type(given).__name__}"
        raise ValidationError("to_dict", "model", problem)
    data: dict[str, JsonValue] = _converter().unstructure(model)
    return data


def from_dict(cls: type[_M], data: Mapping[str, object]) -> _M:
    """Build a model from a dict such as `to_dict` gives, checking every rule."""
    return _converter().structure(data, type_among("from_dict", "cls", cls, _MODELS))


@functools.cache
def _converter() -> cattrs.Converter:
    return make_converter()


def _plain_fields(
    value: AttrsInstance, converter: cattrs.Converter, *, copies: bool
) -> dict[str, object]:
    return {
        field.name: _plain(getattr(value, field.name), converter, copies=copies)
        for field in attrs.fields(type(value))
    }


def _plain(value: object, converter: cattrs.Converter, *, copies: bool) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, frozenset | set):
        return sorted(_plain(item, converter, copies=copies) for item in value)  # type: ignore[type-var]  # enum values: all str
    if attrs.has(type(value)):
        return converter.unstructure(value)
    if copies and isinstance(value, dict | list):  # given out, it would change the model
        return copy.deepcopy(value)
    return value  # None, int, str


def _plain_structure_fn(
    cls: type, converter: cattrs.Converter
) -> Callable[[object, object], object]:
    model = cls.__name__
    fields = attrs.fields(cls)
    names = tuple(field.name for field in fields)
    required = [field.name for field in fields if field.default is attrs.NOTHING]
    # The annotations are text (postponed): read the filter's name and the datetime in them.
    filters = {kind.__name__: kind for kind in _FILTERS}
    nested = {field.name: filters[str(field.type)] for field in fields if field.type in filters}
    times = {field.name for field in fields if "datetime" in str(field.type)}

    def field_value(name: str, value: object) -> object:
        if name in nested:
            if not isinstance(value, Mapping):
                raise ValidationError(model, name, f"expected a dict, got {type(value).__name__}")
            return converter.structure(value, nested[name])
        if isinstance(value, str) and name in times:
            try:
                return dt.datetime.fromisoformat(value)
            except ValueError:
                raise ValidationError(
                    model, name, f"{value!r} is not an ISO 8601 datetime"
                ) from None
        return value  # the class's own converters and validators check it

    def structure(data: object, _: object) -> object:
        if not isinstance(data, Mapping):
            raise ValidationError(model, "argument", f"expected a dict, got {type(data).__name__}")
        unknown = sorted(
            key if isinstance(key, str) else repr(key) for key in data if key not in names
        )
        if unknown:
            raise ValidationError(model, unknown[0], "is not a field of this model")
        missing = [name for name in required if name not in data]
        if missing:
            raise ValidationError(model, missing[0], "is required")
        return cls(**{name: field_value(name, data[name]) for name in names if name in data})

    return structure
