"""What the model tests share: each model built from its fewest arguments, or refused."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, overload

from persistence import ConfigEntry, FileRecord, TestResult, ValidationError, from_dict
from persistence.converters import Model

Cls = type[TestResult] | type[ConfigEntry] | type[FileRecord]

UTC_PLUS_5: Final = dt.timezone(dt.timedelta(hours=5))
AWARE: Final = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC_PLUS_5)


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
