"""The stored values: test results, config entries and file records.

Each model is a frozen attrs class whose rules are checked at construction, so an
invalid value never reaches the database. Every text field refuses NUL characters
and lone surrogates, which no engine stores faithfully; every datetime is aware and
kept in UTC; metadata is a JSON object.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from typing import ClassVar, TypeAlias, TypeVar

import attrs

from persistence._sqltypes import JsonObject, JsonValue
from persistence.exceptions import ValidationError

__all__ = [
    "MAX_INT",
    "MAX_KEY_BYTES",
    "ConfigEntry",
    "ConfigType",
    "ConfigValue",
    "FileRecord",
    "TestResult",
    "TestStatus",
    "TestType",
    "utc_now",
]

_T = TypeVar("_T")

MAX_INT = 2**63 - 1
"""The largest integer both engines store in an integer column."""

MAX_EXECUTION_TIME = 1e12
"""The longest execution time in seconds (about 31,700 years): sums of many stay finite."""

MAX_JSON_DEPTH = 64
"""How deeply metadata may nest; SQLite's JSON functions stop at 1,000 levels."""

_FIRST_INSTANT = dt.datetime.min.replace(tzinfo=dt.UTC)
_LAST_INSTANT = dt.datetime.max.replace(tzinfo=dt.UTC)

MAX_KEY_BYTES = 1024
"""The longest section, key or path, in UTF-8 bytes, on both engines alike.

These columns are indexed, and a PostgreSQL btree index row holds at most 2,704 bytes:
without this limit a long key would be stored on SQLite and refused on PostgreSQL.
"""

MAX_JSON_FLOAT = 2.0**53
"""Metadata floats must be below this: PostgreSQL's jsonb rewrites larger ones as integers."""

ConfigValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue]"
"""What a config entry can hold; its `type` says which."""

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


class ConfigType(enum.StrEnum):
    """The declared Python type of a config value."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    DICT = "dict"


def utc_now() -> dt.datetime:
    """Return the current time, aware and in UTC."""
    return dt.datetime.now(dt.UTC)


def utc_instant(model: str, field: str, value: object) -> dt.datetime:
    """Check that value is an aware datetime both engines store, and give it in UTC."""
    if not isinstance(value, dt.datetime):
        raise ValidationError(model, field, f"expected datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValidationError(model, field, "must be timezone-aware")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValidationError(model, field, f"{value} is out of range in UTC") from None
    if utc in {_FIRST_INSTANT, _LAST_INSTANT}:
        # asyncpg stores these two as -infinity and infinity, and reads them back naive.
        raise ValidationError(
            model, field, f"{utc} is reserved: use a time after year 1 and before the end of 9999"
        )
    return utc


def key_id(model: str, value: object, field: str = "id") -> int:
    """Check an id given to look a row up by: an int that an id column can hold."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(model, field, f"expected int, got {type(value).__name__}")
    if not 1 <= value <= MAX_INT:
        raise ValidationError(model, field, f"must be between 1 and {MAX_INT}, got {value}")
    return value


def key_text(model: str, field: str, value: object) -> str:
    """Check a text given to look a row up by, such as a path or a config key."""
    if not isinstance(value, str):
        raise ValidationError(model, field, f"expected str, got {type(value).__name__}")
    problem = text_problem(value) or key_length_problem(value)
    if problem is not None:
        raise ValidationError(model, field, problem)
    return value


def key_length_problem(value: str) -> str | None:
    """Say why `value` is too long to be an indexed key (section, key or path), or None."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_BYTES:
        return f"must be at most {MAX_KEY_BYTES} bytes in UTF-8, got {size}"
    return None


def of_type(kind: type[_T], value: object, index: int | None = None) -> _T:
    """Check that a repository function was given the model it stores."""
    if not isinstance(value, kind):
        where = "argument" if index is None else f"[{index}]"
        raise ValidationError(
            kind.__name__, where, f"expected {kind.__name__}, got {type(value).__name__}"
        )
    return value


class _Check:
    """Field checks that raise ValidationError naming the model and the field."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.name = type(model).__name__

    def fail(self, field: str, reason: str) -> ValidationError:
        return ValidationError(self.name, field, reason)

    def set(self, field: str, value: object) -> None:
        object.__setattr__(self.model, field, value)

    def enum(self, field: str, kind: type[enum.StrEnum]) -> None:
        value = getattr(self.model, field)
        if isinstance(value, kind):
            return
        allowed = ", ".join(member.value for member in kind)
        if isinstance(value, str):
            try:
                self.set(field, kind(value))
            except ValueError:
                raise self.fail(field, f"{value!r} is not one of: {allowed}") from None
            return
        raise self.fail(field, f"expected one of {allowed}, got {type(value).__name__}")

    def text(
        self, field: str, *, nullable: bool = False, non_empty: bool = False, key: bool = False
    ) -> None:
        value = getattr(self.model, field)
        if value is None and nullable:
            return
        if not isinstance(value, str):
            raise self.fail(field, f"expected str, got {type(value).__name__}")
        if non_empty and not value:
            raise self.fail(field, "must not be empty")
        _check_text(self, field, value)
        problem = key_length_problem(value) if key else None
        if problem is not None:
            raise self.fail(field, problem)

    def integer(self, field: str) -> None:
        value = getattr(self.model, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected int, got {type(value).__name__}")
        if value < 0:
            raise self.fail(field, f"must not be negative, got {value}")
        if value > MAX_INT:
            raise self.fail(field, f"must be at most {MAX_INT}, got {value}")

    def execution_time(self, field: str) -> None:
        value = getattr(self.model, field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(field, f"expected float, got {type(value).__name__}")
        try:
            seconds = float(value)
        except OverflowError:
            raise self.fail(field, f"must be at most {MAX_EXECUTION_TIME:g} seconds") from None
        if not math.isfinite(seconds):
            raise self.fail(field, f"must be finite, got {seconds}")
        if seconds < 0:
            raise self.fail(field, f"must not be negative, got {seconds}")
        if seconds > MAX_EXECUTION_TIME:
            raise self.fail(field, f"must be at most {MAX_EXECUTION_TIME:g} seconds, got {seconds}")
        self.set(field, seconds)

    def timestamp(self, field: str) -> None:
        self.set(field, utc_instant(self.name, field, getattr(self.model, field)))

    def json_object(self, field: str) -> None:
        value = getattr(self.model, field)
        if not isinstance(value, dict):
            raise self.fail(field, f"expected a JSON object (dict), got {type(value).__name__}")
        _check_json(self, field, value)


def text_problem(value: str) -> str | None:
    """Say why no engine would store this text faithfully, or None when it is fine."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (it holds a lone surrogate)"
    return None


def _check_text(check: _Check, field: str, value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise check.fail(field, problem)


def _check_json(check: _Check, field: str, value: object, depth: int = 0) -> None:
    """Check that value is JSON that both engines store and give back unchanged."""
    if depth > MAX_JSON_DEPTH:
        raise check.fail(field, f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list):
        for item in value:
            _check_json(check, field, item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise check.fail(field, f"JSON object keys must be str, got {type(key).__name__}")
            _check_text(check, field, key)
            _check_json(check, field, item, depth + 1)
    else:
        _check_json_scalar(check, field, value)


def _check_json_scalar(check: _Check, field: str, value: object) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        _check_text(check, field, value)
    elif isinstance(value, int):
        try:
            str(value)
        except ValueError:
            raise check.fail(field, "a JSON integer has too many digits to write") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise check.fail(field, f"JSON numbers must be finite, got {value}")
        if abs(value) >= MAX_JSON_FLOAT:
            raise check.fail(field, f"JSON floats must be below 2**53 in magnitude, got {value}")
    else:
        raise check.fail(field, f"{type(value).__name__} is not a JSON value")


@attrs.frozen(kw_only=True)
class TestResult:
    """One run of a stress, time-limit, unit or integration test, and what came of it."""

    __test__: ClassVar[bool] = False

    test_type: TestType
    status: TestStatus
    execution_time: float = 0.0
    memory_usage: int = 0
    test_cases_passed: int = 0
    test_cases_total: int = 0
    error_message: str | None = None
    output: str | None = None
    created_at: dt.datetime = attrs.field(factory=utc_now)
    metadata: JsonObject = attrs.field(factory=dict)
    id: int | None = None

    def __attrs_post_init__(self) -> None:
        check = _Check(self)
        check.enum("test_type", TestType)
        check.enum("status", TestStatus)
        check.execution_time("execution_time")
        for field in ("memory_usage", "test_cases_passed", "test_cases_total"):
            check.integer(field)
        if self.test_cases_passed > self.test_cases_total:
            raise check.fail(
                "test_cases_passed",
                f"{self.test_cases_passed} passed is more than {self.test_cases_total} in total",
            )
        check.text("error_message", nullable=True)
        check.text("output", nullable=True)
        check.timestamp("created_at")
        check.json_object("metadata")
        _check_id(check, self.id)


@attrs.frozen(kw_only=True)
class ConfigEntry:
    """One typed setting, unique by (section, key)."""

    section: str
    key: str
    value: ConfigValue
    type: ConfigType
    description: str | None = None
    updated_at: dt.datetime = attrs.field(factory=utc_now)
    id: int | None = None

    def __attrs_post_init__(self) -> None:
        check = _Check(self)
        check.text("section", non_empty=True, key=True)
        check.text("key", non_empty=True, key=True)
        check.enum("type", ConfigType)
        _check_config_value(check, self.type, self.value)
        check.text("description", nullable=True)
        check.timestamp("updated_at")
        _check_id(check, self.id)


_CONFIG_PYTHON_TYPES: dict[ConfigType, type] = {
    ConfigType.STR: str,
    ConfigType.INT: int,
    ConfigType.FLOAT: float,
    ConfigType.BOOL: bool,
    ConfigType.LIST: list,
    ConfigType.DICT: dict,
}


def _check_config_value(check: _Check, kind: ConfigType, value: object) -> None:
    expected = _CONFIG_PYTHON_TYPES[kind]
    # bool is a subclass of int: an int setting must not silently accept True.
    if type(value) is not expected:
        raise check.fail(
            "value",
            f"declared {kind.value}, but the value is {type(value).__name__}: {value!r:.80}",
        )
    if isinstance(value, str):
        _check_text(check, "value", value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise check.fail("value", f"must be finite, got {value}")
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            raise check.fail("value", "the integer has too many digits to store") from None
    elif isinstance(value, list | dict):
        _check_json(check, "value", value)
        try:
            json.dumps(value, allow_nan=False)
        except ValueError as error:
            raise check.fail("value", str(error)) from None


@attrs.frozen(kw_only=True)
class FileRecord:
    """A file the tool tracks: its path, size, SHA-256 and when it was last used."""

    path: str
    size: int = 0
    hash: str = ""
    created_at: dt.datetime = attrs.field(factory=utc_now)
    accessed_at: dt.datetime = attrs.field(factory=utc_now)
    metadata: JsonObject = attrs.field(factory=dict)
    id: int | None = None

    def __attrs_post_init__(self) -> None:
        check = _Check(self)
        check.text("path", non_empty=True, key=True)
        check.integer("size")
        check.text("hash")
        if self.hash and not _SHA256_HEX.fullmatch(self.hash):
            raise check.fail("hash", "must be empty or 64 lower-case hex digits (SHA-256)")
        check.timestamp("created_at")
        check.timestamp("accessed_at")
        check.json_object("metadata")
        _check_id(check, self.id)


def _check_id(check: _Check, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise check.fail("id", f"expected int or None, got {type(value).__name__}")
    if not 1 <= value <= MAX_INT:
        raise check.fail("id", f"must be between 1 and {MAX_INT}, got {value}")
