"""Rows to models and models to query parameters, mapped by hand, by column name.

These mappers are typed against the generated row and parameter types, so a column or
parameter renamed in sql/ fails type checking here. Repository functions call them
directly: mypy sees the types, and no dispatch is paid per row. Rows come from tables
whose constraints hold the models' rules, so the row mappers fill the frozen instance
without running the models' checks again.
"""

from __future__ import annotations

import json
from typing import TypeVar

import attrs

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
from persistence.queries import (
    ConfigEntriesRow,
    FileRecordsRow,
    InsertTestResultParams,
    SearchTestResultsRow,
    TestResultsRow,
    UpsertConfigEntryParams,
    UpsertFileRecordParams,
)

__all__ = [
    "config_from_row",
    "config_params",
    "decode_config_value",
    "encode_config_value",
    "file_record_from_row",
    "file_record_params",
    "result_from_row",
    "result_params",
    "with_id",
]

_M = TypeVar("_M", TestResult, ConfigEntry, FileRecord)

_new = object.__new__
_set = object.__setattr__
# Dict lookups: the Enum constructor costs several times more per row.
_TEST_TYPES = {member.value: member for member in TestType}
_TEST_STATUSES = {member.value: member for member in TestStatus}
_CONFIG_TYPES = {member.value: member for member in ConfigType}

_FIELD_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(field.name for field in attrs.fields(cls))
    for cls in (TestResult, ConfigEntry, FileRecord)
}


def with_id(model: _M, new_id: int) -> _M:
    """Return a copy of a checked model with the id the database gave it, without checking again."""
    copy: _M = _new(type(model))
    for name in _FIELD_NAMES[type(model)]:
        _set(copy, name, getattr(model, name))
    _set(copy, "id", new_id)
    return copy


def result_from_row(row: TestResultsRow | SearchTestResultsRow) -> TestResult:
    """Map a test_results row, or the result columns of a search row, to a model, by name."""
    model: TestResult = _new(TestResult)
    _set(model, "id", row.id)
    _set(model, "test_type", _TEST_TYPES[row.test_type])
    _set(model, "status", _TEST_STATUSES[row.status])
    _set(model, "execution_time", row.execution_time)
    _set(model, "memory_usage", row.memory_usage)
    _set(model, "test_cases_passed", row.test_cases_passed)
    _set(model, "test_cases_total", row.test_cases_total)
    _set(model, "error_message", row.error_message)
    _set(model, "output", row.output)
    _set(model, "created_at", row.created_at)
    _set(model, "metadata", row.metadata)
    _set(model, "run_id", row.run_id)
    _set(model, "test_id", row.test_id)
    return model


def result_params(result: TestResult) -> InsertTestResultParams:
    """Map a model to the parameters that insert and update take (the id goes apart)."""
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
        "metadata": result.metadata,
        "run_id": result.run_id,
        "test_id": result.test_id,
    }


def file_record_from_row(row: FileRecordsRow) -> FileRecord:
    """Map a file_records row to a model, by column name."""
    model: FileRecord = _new(FileRecord)
    _set(model, "id", row.id)
    _set(model, "path", row.path)
    _set(model, "size", row.size)
    _set(model, "hash", row.hash)
    _set(model, "created_at", row.created_at)
    _set(model, "accessed_at", row.accessed_at)
    _set(model, "metadata", row.metadata)
    return model


def file_record_params(record: FileRecord) -> UpsertFileRecordParams:
    """Map a model to the parameters that upsert and update take (the id goes apart)."""
    return {
        "path": record.path,
        "size": record.size,
        "hash": record.hash,
        "created_at": record.created_at,
        "accessed_at": record.accessed_at,
        "metadata": record.metadata,
    }


def config_from_row(row: ConfigEntriesRow) -> ConfigEntry:
    """Map a config_entries row to a model, decoding the value as its declared type."""
    kind = _CONFIG_TYPES[row.type]
    model: ConfigEntry = _new(ConfigEntry)
    _set(model, "id", row.id)
    _set(model, "section", row.section)
    _set(model, "key", row.key)
    _set(model, "value", decode_config_value(kind, row.value))
    _set(model, "type", kind)
    _set(model, "description", row.description)
    _set(model, "updated_at", row.updated_at)
    return model


def config_params(entry: ConfigEntry) -> UpsertConfigEntryParams:
    """Map a model to the parameters that upsert and update take (the id goes apart)."""
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
