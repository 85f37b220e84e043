"""Rows to models and models to query parameters, by hand and by column name.

The mappers are typed against the generated row and parameter types, so a column renamed in
sql/ fails type checking here. Rows come from tables whose constraints hold most of the models'
rules, so a row mapper fills the frozen instance without checking again, and fast: it fills a
twin class of the same slots and no checks, then makes the instance the model (`__class__`,
allowed between classes of one layout): a third of the cost of `object.__setattr__` per field.
What the CHECKs let through (SQLite's loose column types, NUL characters, a time past the
model's limit) a cheap look at the row catches first, and the model's own checks then name.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import math
import operator
from collections.abc import Callable
from operator import length_hint
from typing import Final, Protocol, TypeVar, cast

import attrs

from persistence._guards import (
    FIRST_INSTANT,
    LAST_INSTANT,
    MAX_KEY_BYTES,
    json_value,
    key_length_problem,
)
from persistence._interface import JsonObject
from persistence._json_pieces import JSON_PIECE, encode_in_pieces, encoded_ahead, loads_in_pieces
from persistence._json_recheck import plain_json, still_json
from persistence._loop import OFF_LOOP_SIZE, off_loop
from persistence.exceptions import NotFoundError, ValidationError
from persistence.models import (
    MAX_EXECUTION_TIME,
    PYTHON_TYPES,
    ConfigEntry,
    ConfigType,
    ConfigValue,
    FileRecord,
    TestResult,
    TestStatus,
    TestType,
)
from persistence.queries import (
    ConfigEntriesRow,
    FileRecordsRow,
    InsertTestResultParams,
    SearchTestResultsRow,
    TestResultsRow,
    UpsertConfigEntryParams,
    UpsertFileRecordParams,
)

_T = TypeVar("_T")
_M = TypeVar("_M")
_P = TypeVar("_P")
_M_contra = TypeVar("_M_contra", contravariant=True)
_P_co = TypeVar("_P_co", covariant=True)

_new = object.__new__
_set = object.__setattr__
# Dict lookups: the Enum constructor costs several times more per row.
TEST_TYPES = {member.value: member for member in TestType}
TEST_STATUSES = {member.value: member for member in TestStatus}
_CONFIG_TYPES = {member.value: member for member in ConfigType}
_CONFIG_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
"""Writes a config value as `json.dumps(value, ensure_ascii=False, allow_nan=False)` does."""

_SHORT_KEY = MAX_KEY_BYTES // 4
"""A text of this many characters or fewer is within MAX_KEY_BYTES in UTF-8."""

_SHA256_DIGITS = 64
_HEX_DIGITS = "0123456789abcdef"

_RESULT_FIELDS = tuple(field.name for field in attrs.fields(TestResult))
_RESULT_VALUES = operator.attrgetter(*_RESULT_FIELDS)  # in one call, in the fields' order


class _ResultFill:
    """TestResult's slots without its checks or its frozen `__setattr__`."""

    __slots__ = _RESULT_FIELDS
    id: int | None
    test_type: TestType
    status: TestStatus
    execution_time: float
    memory_usage: int
    test_cases_passed: int
    test_cases_total: int
    error_message: str | None
    output: str | None
    created_at: dt.datetime
    metadata: JsonObject
    run_id: int | None
    test_id: str | None


class _FileRecordFill:
    """FileRecord's slots without its checks or its frozen `__setattr__`."""

    __slots__ = tuple(field.name for field in attrs.fields(FileRecord))
    id: int | None
    path: str
    size: int
    hash: str
    created_at: dt.datetime
    accessed_at: dt.datetime
    metadata: JsonObject


def found(model: str, key: object, item: _T | None, argument: str | None = None) -> _T:
    """Give `item`, or raise NotFoundError for `key` (held by `argument`) when it is None."""
    if item is None:
        raise NotFoundError(model, key, argument=argument)
    return item


_FILE_FIELDS = tuple(field.name for field in attrs.fields(FileRecord))
_FILE_VALUES = operator.attrgetter(*_FILE_FIELDS)
_LAYOUTS: dict[type, tuple[type, tuple[str, ...], Callable[[object], tuple[object, ...]]]] = {
    TestResult: (_ResultFill, _RESULT_FIELDS, _RESULT_VALUES),
    FileRecord: (_FileRecordFill, _FILE_FIELDS, _FILE_VALUES),
}


def with_own_metadata(model: TestResult | FileRecord) -> TestResult | FileRecord:
    """Return a copy of a checked result or file record whose metadata no other copy holds.

    Its other fields are immutable. Without checks: about a tenth of `copy.copy`'s cost.
    """
    fill, fields, values = _LAYOUTS[type(model)]
    fresh: object = _new(fill)
    for name, value in zip(fields, values(model), strict=True):
        _set(fresh, name, value)
    _set(fresh, "metadata", copy.deepcopy(model.metadata) if model.metadata else {})
    fresh.__class__ = type(model)  # one layout: see the module doc
    return cast("TestResult | FileRecord", fresh)


def with_id(model: TestResult, new_id: int) -> TestResult:
    """Return a copy of a checked model with the id the database gave it, without checking again."""
    copy = _new(_ResultFill)
    (
        copy.test_type,
        copy.status,
        copy.execution_time,
        copy.memory_usage,
        copy.test_cases_passed,
        copy.test_cases_total,
        copy.error_message,
        copy.output,
        copy.created_at,
        copy.metadata,
        _,
        copy.run_id,
        copy.test_id,
    ) = _RESULT_VALUES(model)
    copy.id = new_id
    copy.__class__ = TestResult  # type: ignore[assignment]  # one layout: see the module doc
    return copy  # type: ignore[return-value]  # a TestResult now


def refused_row(table: str, row_id: object, build: Callable[[], object]) -> ValidationError:
    """Name what breaks the model's rules in a stored row, by the model's own check, `build`."""
    try:
        build()
    except ValidationError as error:
        return ValidationError(
            "stored row", f"{table}.{error.field}", f"id {row_id}: {error.reason}"
        )
    return ValidationError("stored row", table, f"id {row_id} does not fit its model")


def _checked_result(row: TestResultsRow | SearchTestResultsRow) -> TestResult:
    """Build a result from its row through the model's checks (its id and run id apart)."""
    return TestResult(
        test_type=row.test_type,  # type: ignore[arg-type]  # the converter takes the text
        status=row.status,  # type: ignore[arg-type]  # the converter takes the text
        execution_time=row.execution_time,
        memory_usage=row.memory_usage,
        test_cases_passed=row.test_cases_passed,
        test_cases_total=row.test_cases_total,
        error_message=row.error_message,
        output=row.output,
        created_at=finite_time("TestResult", "created_at", row.created_at),
        metadata=row.metadata,
        run_id=row.run_id,
        test_id=row.test_id,
    )


_TEXT_CHECK_FASTER: Final = 32
"""How many times faster a text is checked (for a NUL) than JSON of its length is decoded."""


def result_texts(row: TestResultsRow | SearchTestResultsRow) -> range:
    """Weigh a row's longest text for `map_in_slices` (`stored_of`), as JSON is weighed.

    Its check is a scan of it, about 1 ns a character: a row of tens of MB held the loop for
    20 ms and more, in one slice no pace cuts. One of about a million characters and more goes
    to a worker thread; a `range` is a length made without a copy.
    """
    longest = max(length_hint(row.output), length_hint(row.error_message))
    return range(longest // _TEXT_CHECK_FASTER)


def result_from_row(row: TestResultsRow | SearchTestResultsRow) -> TestResult:
    """Map a test_results row, or the result columns of a search row, to a model, by name."""
    # Unpacked by position, in one step: a row's field by name is a lookup of its own.
    (
        row_id,
        type_text,
        status_text,
        seconds,
        memory,
        passed,
        total,
        error_message,
        output,
        created_at,
        metadata,
        run_id,
        test_id,
    ) = row[:13]
    test_type = TEST_TYPES.get(type_text)
    status = TEST_STATUSES.get(status_text)
    # What the CHECKs leave to the model: SQLite's loose types, NUL characters, the limits.
    if not (
        test_type is not None
        and status is not None
        and type(seconds) is float
        and 0.0 <= seconds <= MAX_EXECUTION_TIME
        and type(memory) is int
        and type(passed) is int
        and type(total) is int
        and (run_id is None or type(run_id) is int)
        and created_at.tzinfo is not None  # PostgreSQL's infinities read naive
        and (created_at.year not in _EDGE_YEARS or created_at not in _RESERVED)  # model_instant's
        and (error_message is None or (type(error_message) is str and "\x00" not in error_message))
        and (output is None or (type(output) is str and "\x00" not in output))
        and (
            test_id is None
            or (
                type(test_id) is str
                and "\x00" not in test_id
                and (len(test_id) <= _SHORT_KEY or key_length_problem(test_id) is None)
            )
        )
    ):
        raise refused_row("test_results", row_id, lambda: _checked_result(row))
    model = _new(_ResultFill)
    model.id = row_id
    model.test_type = test_type
    model.status = status
    model.execution_time = seconds
    model.memory_usage = memory
    model.test_cases_passed = passed
    model.test_cases_total = total
    model.error_message = error_message
    model.output = output
    model.created_at = created_at
    model.metadata = metadata
    model.run_id = run_id
    model.test_id = test_id
    model.__class__ = TestResult  # type: ignore[assignment]  # one layout: see the module doc
    return model  # type: ignore[return-value]  # a TestResult now


class _ParamsOf(Protocol[_M_contra, _P_co]):
    """`result_params` or `file_record_params`: a model's parameters, its metadata checked."""

    def __call__(
        self, model: _M_contra, /, *, checked: bool = False, ahead: bool = False
    ) -> _P_co: ...


async def saved_params(model: _M, params_of: _ParamsOf[_M, _P], metadata: JsonObject) -> _P:
    """Give `params_of(model)`, in a worker thread if its `metadata` is large or needs a look.

    Small and plain, the metadata is taken as it is; else it is checked in full, and encoded,
    a run of items at a time (`encoded_ahead`), in the thread.
    """
    params = params_now(model, params_of, metadata)
    return params if params is not None else await params_off_loop(model, params_of)


async def params_off_loop(model: _M, params_of: _ParamsOf[_M, _P]) -> _P:
    """Give `params_of(model)` from a worker thread, its metadata checked in full and encoded."""
    return await off_loop(functools.partial(params_of, model, ahead=True))


def params_now(model: _M, params_of: _ParamsOf[_M, _P], metadata: JsonObject) -> _P | None:
    """Give `params_of(model)` if its `metadata` is small and plain; else None, for a thread.

    The look `saved_params` makes, without a coroutine: a batch makes it for each row.
    """
    return params_of(model, checked=True) if plain_json(metadata, OFF_LOOP_SIZE) else None


def result_params(
    result: TestResult, /, *, checked: bool = False, ahead: bool = False
) -> InsertTestResultParams:
    """Map a model to the parameters that insert and update take (the id goes apart).

    Its metadata is checked again (`still_json`) unless `checked`: a caller may have changed
    it in place since the model was built. With `ahead`, it is encoded now (`encoded_ahead`).
    """
    metadata = result.metadata if checked else _metadata(result.metadata, "TestResult", ahead=ahead)
    return {
        "test_type": result.test_type.value,
        "status": result.status.value,
        "execution_time": result.execution_time,
        "memory_usage": result.memory_usage,
        "test_cases_passed": result.test_cases_passed,
        "test_cases_total": result.test_cases_total,
        "error_message": result.error_message,
        "output": result.output,
        "created_at": result.created_at,
        "metadata": metadata,
        "run_id": result.run_id,
        "test_id": result.test_id,
    }


def _metadata(metadata: JsonObject, model: str, *, ahead: bool) -> JsonObject:
    """Give a model's metadata for its row, checked again, and encoded now if `ahead`."""
    checked = still_json(metadata, model, "metadata")
    return encoded_ahead(checked) if ahead else checked


def file_record_from_row(row: FileRecordsRow) -> FileRecord:
    """Map a file_records row to a model, by column name."""
    path, size, sha256 = row.path, row.size, row.hash
    # What the CHECKs leave to the model: the hash's form, SQLite's loose types, NULs, length.
    if not (
        type(size) is int
        and type(sha256) is str
        and (not sha256 or (len(sha256) == _SHA256_DIGITS and not sha256.strip(_HEX_DIGITS)))
        and type(path) is str
        and "\x00" not in path
        and (len(path) <= _SHORT_KEY or key_length_problem(path) is None)
        and model_instant(row.created_at)
        and model_instant(row.accessed_at)
    ):
        raise refused_row("file_records", row.id, lambda: _checked_file_record(row))
    model = _new(_FileRecordFill)
    model.id = row.id
    model.path = path
    model.size = size
    model.hash = sha256
    model.created_at = row.created_at
    model.accessed_at = row.accessed_at
    model.metadata = row.metadata
    model.__class__ = FileRecord  # type: ignore[assignment]  # one layout: see the module doc
    return model  # type: ignore[return-value]  # a FileRecord now


def _checked_file_record(row: FileRecordsRow) -> FileRecord:
    """Build a file record from its row through the model's checks (its id apart)."""
    return FileRecord(
        path=row.path,
        size=row.size,
        hash=row.hash,
        created_at=finite_time("FileRecord", "created_at", row.created_at),
        accessed_at=finite_time("FileRecord", "accessed_at", row.accessed_at),
        metadata=row.metadata,
    )


_INFINITIES = {
    dt.datetime.max: "infinity",  # noqa: DTZ901  # naive on purpose: asyncpg reads it so
    dt.datetime.min: "-infinity",  # noqa: DTZ901  # naive on purpose: asyncpg reads it so
}
"""How asyncpg reads PostgreSQL's infinite times: naive, at the ends of Python's range."""
_RESERVED: Final = frozenset({FIRST_INSTANT, LAST_INSTANT})
_EDGE_YEARS: Final = (1, 9999)
"""The years of the two instants of `_RESERVED`, in any offset: a cheap look first."""


def model_instant(stored: dt.datetime) -> bool:
    """Tell whether a stored time is one that a model holds: aware, and not reserved."""
    return stored.tzinfo is not None and (stored.year not in _EDGE_YEARS or stored not in _RESERVED)


def finite_time(model: str, field: str, stored: dt.datetime) -> dt.datetime:
    """Give a stored time as read, unless no model holds it: refuse those.

    PostgreSQL's infinities read naive; the first and last instants of Python's range, which
    plain SQL may store as text on SQLite, are refused by the models (asyncpg writes them as
    the infinities), so a copy to PostgreSQL, a cursor or an export's import failed on them.
    """
    if stored.tzinfo is None:
        infinity = _INFINITIES.get(stored)
        if infinity is not None:
            reason = (
                f"stored {infinity} is no instant (PostgreSQL's timestamptz holds it, no model)"
            )
            raise ValidationError(model, field, reason)
    elif stored in _RESERVED:
        reason = f"stored {stored} is reserved: no model holds the first or last instant of 1-9999"
        raise ValidationError(model, field, reason)
    return stored


def file_record_params(
    record: FileRecord, /, *, checked: bool = False, ahead: bool = False
) -> UpsertFileRecordParams:
    """Map a model to the parameters that upsert and update take, as `result_params` does."""
    metadata = record.metadata if checked else _metadata(record.metadata, "FileRecord", ahead=ahead)
    return {
        "path": record.path,
        "size": record.size,
        "hash": record.hash,
        "created_at": record.created_at,
        "accessed_at": record.accessed_at,
        "metadata": metadata,
    }


def config_from_row(row: ConfigEntriesRow) -> ConfigEntry:
    """Map a config_entries row to a model, decoding the value as its declared type."""
    kind = _CONFIG_TYPES[row.type]
    section, key, description = row.section, row.key, row.description
    # What the CHECKs leave to the model: SQLite's loose types, NULs, a key too long to be one.
    if not (
        _is_key(section)
        and _is_key(key)
        and (description is None or (type(description) is str and "\x00" not in description))
        and model_instant(row.updated_at)
    ):
        raise refused_row("config_entries", row.id, lambda: _checked_config(row))
    updated = row.updated_at
    if updated.utcoffset():  # another offset, as plain SQL may store it on SQLite: no CHECK
        updated = _in_utc(row.id, updated)
    model: ConfigEntry = _new(ConfigEntry)
    _set(model, "id", row.id)
    _set(model, "section", section)
    _set(model, "key", key)
    try:
        value = decode_config_value(kind, row.value)
    except ValidationError as error:  # named by its row: one such row failed every listing
        reason = f"id {row.id} ({section!r:.80}, {key!r:.80}): {error.reason}"
        raise ValidationError("ConfigEntry", "value", reason) from None
    _set(model, "value", value)
    _set(model, "type", kind)
    _set(model, "description", description)
    _set(model, "updated_at", updated)
    return model


def _in_utc(row_id: object, stored: dt.datetime) -> dt.datetime:
    """Give a config entry's stored time in UTC, as every time the package gives is."""
    try:
        return stored.astimezone(dt.UTC)
    except OverflowError:
        reason = f"id {row_id}: {stored.isoformat()} is outside the years 1 to 9999 in UTC"
        raise ValidationError("stored row", "config_entries.updated_at", reason) from None


def _is_key(value: object) -> bool:
    """Tell, at little cost, if a stored section or key is text the model takes as one.

    The table's CHECK holds it non-empty; this, that it is text without NUL characters, of at
    most MAX_KEY_BYTES.
    """
    return (
        type(value) is str
        and "\x00" not in value
        and (len(value) <= _SHORT_KEY or key_length_problem(value) is None)
    )


def _checked_config(row: ConfigEntriesRow) -> ConfigEntry:
    """Build a config entry from its row through the model's checks (its id apart)."""
    return ConfigEntry(
        section=row.section,
        key=row.key,
        value=decode_config_value(_CONFIG_TYPES[row.type], row.value),
        type=row.type,  # type: ignore[arg-type]  # the converter takes the text
        description=row.description,
        updated_at=finite_time("ConfigEntry", "updated_at", row.updated_at),
    )


def config_params(entry: ConfigEntry, *, in_pieces: bool = False) -> UpsertConfigEntryParams:
    """Map a model to the parameters that upsert and update take (the id goes apart).

    `in_pieces`: the value is large, and encoded in a worker thread (`encode_config_value`).
    """
    return {
        "section": entry.section,
        "key": entry.key,
        "value": encode_config_value(entry.type, _still_config(entry.value), in_pieces=in_pieces),
        "type": entry.type.value,
        "description": entry.description,
        "updated_at": entry.updated_at,
    }


def _still_config(value: ConfigValue) -> ConfigValue:
    """Check a JSON config value again, which its caller may have changed in place."""
    if isinstance(value, list | dict):
        return still_json(value, "ConfigEntry", "value")
    return value  # a float past 2**53 is a FLOAT entry's, where JSON's floats stop short


def encode_config_value(kind: ConfigType, value: ConfigValue, *, in_pieces: bool = False) -> str:
    """Write a config value as the text stored in its row.

    `in_pieces`, for a large value encoded in a worker thread: the same text, written a run of
    items at a time (`encode_in_pieces`), so that the thread lets the event loop run between.
    """
    if kind is ConfigType.STR:
        return str(value)
    if kind is ConfigType.BOOL:
        return "true" if value else "false"
    if kind is ConfigType.FLOAT:
        return repr(value)
    if in_pieces:
        return encode_in_pieces(_CONFIG_JSON, value)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _as_written(text: str) -> float:
    """Read a JSON float as a config value's converter writes it: -0.0 as 0.0."""
    return float(text) + 0.0


_CONFIG_JSON_READ: Final = json.JSONDecoder(parse_float=_as_written)
"""Reads a list or dict value as the models hold it: plain SQL's `{"a": -0.0}` read -0.0 from
the database and 0.0 from a Redis entry, rebuilt through the converter."""


def _read_json(text: str) -> object:
    """Read a list or dict value; a text of megabytes, read in a worker thread, in pieces."""
    if type(text) is str and len(text) > JSON_PIECE:
        return loads_in_pieces(text, decoder=_CONFIG_JSON_READ)
    return _CONFIG_JSON_READ.decode(text)


_A: Final = {
    kind: f"{'an' if kind.value[0] in 'aeiou' else 'a'} {kind.value}" for kind in ConfigType
}
"""Each type's name with its article, as an error says it: `an int`, `a float`."""


def decode_config_value(kind: ConfigType, text: str) -> ConfigValue:
    """Read a config value's stored text as its declared Python type, held to the model's rules.

    The column holds any text that plain SQL writes there: a value that `set_config` would
    refuse (NaN, an int beyond 64 bits, a NUL character) is refused as unreadable text is.
    A text of megabytes, read in a worker thread, is read a run of items at a time
    (`loads_in_pieces`), so that the thread lets the event loop run between.
    """
    decoded = _decoded(kind, text)
    if type(decoded) is not PYTHON_TYPES[kind]:
        raise ValidationError("ConfigEntry", "value", f"stored text {text!r:.80} is not {_A[kind]}")
    assert decoded is not None  # noqa: S101  # of the declared type
    if isinstance(decoded, float):  # a float setting is any finite float, as the model says
        if math.isfinite(decoded):
            return decoded
        problem = f"must be finite, got {decoded}"
    else:
        try:
            json_value(decoded, "ConfigEntry", "value")  # the model's rules for the rest
        except ValidationError as error:
            problem = error.reason
        else:
            return decoded
    raise ValidationError("ConfigEntry", "value", f"stored text {text!r:.80}: {problem}")


def _decoded(kind: ConfigType, text: str) -> ConfigValue | None:
    """Read stored text as `kind` reads it; None if it reads as none."""
    if type(text) is not str:  # SQLite's column takes a blob, which json.loads would read
        stored = f"stored {type(text).__name__} {text!r:.80}"
        raise ValidationError("ConfigEntry", "value", f"{stored} is not text")
    try:
        if kind is ConfigType.STR:
            return text
        if kind is ConfigType.BOOL:
            return {"true": True, "false": False}[text]
        if kind is ConfigType.FLOAT:  # digits as JSON and SQL write them, as an int's are
            return float(text) if text.isascii() and "_" not in text else None
        return _read_json(text)  # type: ignore[return-value]  # its type is checked after
    except (ValueError, KeyError, RecursionError):  # RecursionError: JSON nested too deep
        return None  # refused after, as a value of another type is
