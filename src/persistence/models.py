"""The stored values: test results, config entries, file records and runs.

Frozen attrs classes whose fields carry their rules as converters and validators, so an invalid
value never reaches the database. No weak-reference slot: 8 bytes less a model, and the layout
the row mappers of `persistence._rows` fill in place.
"""

from __future__ import annotations

import builtins
import datetime as dt
import enum
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, TypeAlias

import attrs
from attrs.converters import optional as optional_converter
from attrs.validators import optional

from persistence._guards import (
    MAX_INT,
    MAX_KEY_BYTES,
    argument,
    as_json_object,
    as_utc,
    converter,
    count,
    int_problem,
    is_json_container,
    json_value,
    member_of,
    nonempty_key,
    row_id,
    text,
    text_problem,
)
from persistence._interface import JsonInput, JsonObject, JsonValue
from persistence.exceptions import ValidationError

__all__ = [
    "MAX_INT",
    "MAX_KEY_BYTES",
    "ConfigEntry",
    "ConfigInput",
    "ConfigType",
    "ConfigValue",
    "FileRecord",
    "Run",
    "TestResult",
    "TestStatus",
    "TestType",
    "utc_now",
]

MAX_EXECUTION_TIME = 1e12
"""The longest execution time in seconds (about 31,700 years): sums of many stay finite."""

ConfigValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue]"
"""What a config entry can hold; its `type` says which."""

ConfigInput: TypeAlias = "str | int | float | bool | Sequence[JsonInput] | Mapping[str, JsonInput]"
"""What a config value may be given as: a list or a dict in the caller's own types, any
sequence (bytes aside) or mapping, held as the plain list or dict of ConfigValue."""

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class TestType(enum.StrEnum):
    """The kinds of test the tool runs."""

    __test__ = False

    STRESS = "stress"
    TLE = "tle"
    UNIT = "unit"
    INTEGRATION = "integration"


class TestStatus(enum.StrEnum):
    """Where a test run stands, or how it ended."""

    __test__ = False

    PENDING = "pending"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"
    """Not run (a JUnit `<skipped/>`): neither passed nor failed."""


class ConfigType(enum.StrEnum):
    """The declared Python type of a config value: each value is the name of the type."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    DICT = "dict"


def utc_now() -> dt.datetime:
    """Return the current time, aware and in UTC."""
    return dt.datetime.now(dt.UTC)


def _to_seconds(value: object, result: object, field: attrs.Attribute[object]) -> float:
    if type(value) is float and 0.0 <= value <= MAX_EXECUTION_TIME:
        return value + 0.0  # -0.0 is 0.0: PostgreSQL would keep its sign, SQLite drops it
    name = type(result).__name__
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, field.name, f"expected float, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValidationError(
            name, field.name, f"must be at most {MAX_EXECUTION_TIME:g} seconds"
        ) from None
    if not math.isfinite(seconds):
        raise ValidationError(name, field.name, f"must be finite, got {seconds}")
    if seconds < 0:
        raise ValidationError(name, field.name, f"must not be negative, got {seconds}")
    if seconds > MAX_EXECUTION_TIME:
        raise ValidationError(
            name, field.name, f"must be at most {MAX_EXECUTION_TIME:g} seconds, got {seconds}"
        )
    return seconds + 0.0


def _to_config_value(value: object, entry: object, field: attrs.Attribute[object]) -> object:
    # The declared type is checked once every field is set: see ConfigEntry._fits_type.
    problem = None
    if isinstance(value, list | dict) or is_json_container(value):
        return json_value(value, type(entry).__name__, field.name)
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        problem = int_problem(value)
    elif isinstance(value, float) and not math.isfinite(value):
        problem = f"must be finite, got {value}"
    if problem is not None:
        raise ValidationError(type(entry).__name__, field.name, problem)
    return value


if TYPE_CHECKING:
    # mypy's attrs plugin takes a field's __init__ type from its converter only when the
    # converter is a named function (python/mypy#15736): these give it the field types.

    def as_test_type(value: TestType, /) -> TestType:
        """Convert a test type, or its value, to the member."""

    def as_test_status(value: TestStatus, /) -> TestStatus:
        """Convert a status, or its value, to the member."""

    def as_config_type(value: ConfigType, /) -> ConfigType:
        """Convert a config type, or its value, to the member."""

    def as_seconds(value: float, /) -> float:
        """Convert an execution time to a float number of seconds."""

    def as_config_value(value: ConfigInput, /) -> ConfigValue:
        """Check a config value's contents; ConfigEntry checks its declared type."""

else:
    as_test_type = member_of(TestType)
    as_test_status = member_of(TestStatus)
    as_config_type = member_of(ConfigType)
    as_seconds = converter(_to_seconds)
    as_config_value = converter(_to_config_value)


@attrs.frozen(kw_only=True, weakref_slot=False)
class TestResult:
    """One run of a stress, time-limit, unit or integration test, and what came of it."""

    __test__: ClassVar[bool] = False

    test_type: TestType = attrs.field(converter=as_test_type)
    status: TestStatus = attrs.field(converter=as_test_status)
    execution_time: float = attrs.field(default=0.0, converter=as_seconds)
    """Seconds, from 0 to MAX_EXECUTION_TIME; an int is kept as a float, -0.0 as 0.0."""
    memory_usage: int = attrs.field(default=0, validator=count)
    test_cases_passed: int = attrs.field(default=0, validator=count)
    test_cases_total: int = attrs.field(default=0, validator=count)
    error_message: str | None = attrs.field(default=None, validator=optional(text))
    output: str | None = attrs.field(default=None, validator=optional(text))
    created_at: dt.datetime = attrs.field(factory=utc_now, converter=as_utc)
    metadata: JsonObject = attrs.field(factory=dict, converter=as_json_object)
    id: int | None = attrs.field(default=None, validator=optional(row_id))
    run_id: int | None = attrs.field(default=None, validator=optional(row_id))
    """The run this result belongs to (see `Run`), or None."""
    test_id: str | None = attrs.field(default=None, validator=optional(nonempty_key))
    """What was tested, as the caller names it (`a.cpp#stress`), or None; unique within a run."""

    @test_cases_total.validator
    def _not_below_passed(self, _: attrs.Attribute[int], total: int) -> None:
        if self.test_cases_passed > total:
            raise ValidationError(
                "TestResult",
                "test_cases_passed",
                f"{self.test_cases_passed} passed is more than {total} in total",
            )


PYTHON_TYPES: dict[ConfigType, type] = {kind: getattr(builtins, kind.value) for kind in ConfigType}
"""Each config type's Python type, which its value names."""


@attrs.frozen(kw_only=True, weakref_slot=False)
class ConfigEntry:
    """One typed setting, unique by (section, key)."""

    section: str = attrs.field(validator=nonempty_key)
    key: str = attrs.field(validator=nonempty_key)
    value: ConfigValue = attrs.field(converter=as_config_value)
    """Of exactly the declared type (a bool is not an int); lists and dicts hold JSON."""
    type: ConfigType = attrs.field(converter=as_config_type)
    description: str | None = attrs.field(default=None, validator=optional(text))
    updated_at: dt.datetime = attrs.field(factory=utc_now, converter=as_utc)
    id: int | None = attrs.field(default=None, validator=optional(row_id))

    @value.validator
    def _fits_type(self, _: attrs.Attribute[ConfigValue], value: ConfigValue) -> None:
        if type(value) is not PYTHON_TYPES[self.type]:
            raise ValidationError(
                "ConfigEntry",
                "value",
                f"declared {self.type.value}, but the value is {type(value).__name__}: "
                f"{value!r:.80}",
            )


def _sha256_or_empty(record: object, field: attrs.Attribute[str], value: str) -> None:
    name = type(record).__name__
    if argument(name, field.name, str, value) and not _SHA256_HEX.fullmatch(value):
        raise ValidationError(
            name, field.name, "must be empty or 64 lower-case hex digits (SHA-256)"
        )


@attrs.frozen(kw_only=True, weakref_slot=False)
class FileRecord:
    """A file the tool tracks: its path, size, SHA-256 and when it was last used."""

    path: str = attrs.field(validator=nonempty_key)
    size: int = attrs.field(default=0, validator=count)
    hash: str = attrs.field(default="", validator=_sha256_or_empty)
    """Empty, or the SHA-256 as 64 lower-case hex digits."""
    created_at: dt.datetime = attrs.field(factory=utc_now, converter=as_utc)
    accessed_at: dt.datetime = attrs.field(factory=utc_now, converter=as_utc)
    metadata: JsonObject = attrs.field(factory=dict, converter=as_json_object)
    id: int | None = attrs.field(default=None, validator=optional(row_id))


@attrs.frozen(kw_only=True, weakref_slot=False)
class Run:
    """One invocation of the tool: its start and end, and labels (`commit`, `branch`, `host`)."""

    started_at: dt.datetime = attrs.field(factory=utc_now, converter=as_utc)
    ended_at: dt.datetime | None = attrs.field(default=None, converter=optional_converter(as_utc))
    """None while the run goes on."""
    labels: JsonObject = attrs.field(factory=dict, converter=as_json_object)
    id: int | None = attrs.field(default=None, validator=optional(row_id))

    @ended_at.validator
    def _not_before_start(self, _: attrs.Attribute[dt.datetime | None], ended: object) -> None:
        if isinstance(ended, dt.datetime) and ended < self.started_at:
            raise ValidationError(
                "Run",
                "ended_at",
                f"{ended.isoformat()} is before started_at {self.started_at.isoformat()}",
            )
