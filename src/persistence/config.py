"""Typed configuration: one value per (section, key), read back as its declared type."""

from __future__ import annotations

import copy
import operator
from collections.abc import Mapping
from typing import Final, Protocol, TypeVar, overload

import attrs
from attrs.validators import optional as optional_check

from persistence._blocks import every_item_in_one_state
from persistence._codecs import json_size
from persistence._database_value import require_database
from persistence._guards import (
    instance_of,
    is_json_container,
    key_id,
    nonempty_key,
    nonempty_text,
    of_type,
    type_among,
)
from persistence._interface import JsonValue
from persistence._loans import run_query
from persistence._loop import OFF_LOOP_SIZE, off_loop_if_large, share_loop
from persistence._paging import (
    AFTER_EVERY_KEY,
    READ_PAGE,
    Page,
    continued_filter,
    page_limit,
    page_of,
)
from persistence._rows import config_from_row, config_params, found
from persistence.database import Database
from persistence.exceptions import NotFoundError, ValidationError
from persistence.models import PYTHON_TYPES, ConfigEntry, ConfigInput, ConfigType
from persistence.queries import ConfigEntriesRow

__all__ = [
    "TABLE",
    "ConfigEntryCursor",
    "ConfigEntryFilter",
    "EntrySource",
    "all_config_entries",
    "config_type_of",
    "delete_config_entry",
    "find_config_entry",
    "find_config_entry_by_key",
    "get_config_entry",
    "get_config_entry_by_key",
    "get_config_value",
    "list_config_entries",
    "save_config_entry",
    "set_config",
    "value_of",
]

TABLE = "config_entries"
"""The table these functions read and write; caches key their invalidation on it."""

_S = TypeVar("_S", str, int, float, bool)

_VALUE: Final = operator.attrgetter("value")
"""A row's stored value: text, or what plain SQL stored in SQLite (a blob, a number)."""

_TYPES_OF: dict[type, ConfigType] = {python: kind for kind, python in PYTHON_TYPES.items()}
_EXACT_FLOAT_INT: Final = 2**53
"""The largest int a float holds exactly: one past it, as a default for a float, is refused."""


@attrs.frozen(kw_only=True)
class ConfigEntryFilter:
    """Which config entries to list: each field that is set narrows the listing, in SQL."""

    section: str | None = attrs.field(default=None, validator=optional_check(nonempty_key))
    """The entries of this section only."""


@attrs.frozen
class ConfigEntryCursor:
    """Where the next page of config entries starts: after this (section, key), with its filter."""

    section: str = attrs.field(validator=nonempty_key)
    key: str = attrs.field(validator=nonempty_key)
    where: ConfigEntryFilter = attrs.field(
        factory=ConfigEntryFilter, validator=instance_of(ConfigEntryFilter)
    )


def config_type_of(value: ConfigInput) -> ConfigType:
    """Tell the declared type a value would get from `set_config`."""
    kind = _TYPES_OF.get(type(value))
    if kind is None and is_json_container(value):  # an OrderedDict, a tuple: kept as plain
        kind = ConfigType.DICT if isinstance(value, Mapping) else ConfigType.LIST
    if kind is None:
        raise ValidationError(
            "ConfigEntry", "value", f"{type(value).__name__} is not a config type"
        )
    return kind


async def find_config_entry(db: Database, entry_id: int) -> ConfigEntry | None:
    """Return the entry with this id, or None."""
    entry_id = key_id("ConfigEntry", entry_id)
    row = await run_query(db, lambda conn: db.queries.get_config_entry(conn, id=entry_id))
    return None if row is None else await _entry_of(row)


async def _entry_of(row: ConfigEntriesRow) -> ConfigEntry:
    """Map a row to its entry: the value of megabytes decoded and checked in a worker thread."""
    return await off_loop_if_large(_stored_size(row), lambda: config_from_row(row))


def _stored_size(row: ConfigEntriesRow) -> int:
    """Give the length of a row's stored value, read without decoding it."""
    stored: object = row.value  # SQLite gives what plain SQL wrote there: a blob, a number
    return len(stored) if isinstance(stored, str) else 0


async def get_config_entry(db: Database, entry_id: int) -> ConfigEntry:
    """Return the entry with this id, or raise NotFoundError."""
    return found("ConfigEntry", entry_id, await find_config_entry(db, entry_id))


async def find_config_entry_by_key(db: Database, section: str, key: str) -> ConfigEntry | None:
    """Return the entry of (section, key), or None."""
    section = nonempty_text("ConfigEntry", "section", section)
    key = nonempty_text("ConfigEntry", "key", key)
    row = await run_query(
        db, lambda conn: db.queries.get_config_entry_by_key(conn, section=section, key=key)
    )
    return None if row is None else await _entry_of(row)


async def get_config_entry_by_key(db: Database, section: str, key: str) -> ConfigEntry:
    """Return the entry of (section, key), or raise NotFoundError."""
    return found("ConfigEntry", (section, key), await find_config_entry_by_key(db, section, key))


class EntrySource(Protocol):
    """Where `get_config_value` may read besides a database: a cache (`persistence.cache`).

    Its two methods give the entry held, not copied (`get_config_value` copies a list or
    dict it gives): private, so that no caller changes what every later read gives.
    """

    def _held_config_entry(self, section: str, key: str) -> tuple[ConfigEntry | None] | None:
        """Give the entry of (section, key) as a 1-tuple if held and trusted, else None."""

    async def _load_config_entry(self, section: str, key: str) -> ConfigEntry | None:
        """Look the entry of (section, key) up, slower: in a shared tier or the database."""


@overload
async def get_config_value(
    db: Database | EntrySource,
    section: str,
    key: str,
    kind: type[list[JsonValue]],
    default: list[JsonValue] | None = None,
) -> list[JsonValue]: ...
@overload
async def get_config_value(
    db: Database | EntrySource,
    section: str,
    key: str,
    kind: type[dict[str, JsonValue]],
    default: dict[str, JsonValue] | None = None,
) -> dict[str, JsonValue]: ...
@overload
async def get_config_value(
    db: Database | EntrySource, section: str, key: str, kind: type[_S], default: _S | None = None
) -> _S: ...
async def get_config_value(
    db: Database | EntrySource, section: str, key: str, kind: type[object], default: object = None
) -> object:
    """Return the value of (section, key) as `kind`, checked against its declared type.

    `kind` is `str`, `int`, `float`, `bool`, `list` or `dict` (typed as JSON); any other is
    refused (ValidationError) before anything is read, and so is a `default` of another type
    (an int for a float is taken as that float, when it is one exactly, as type checkers take it).
    A missing entry gives `default`, else NotFoundError. `db` may be a cache, whose
    `get_config_value` method is this function, so that one set of signatures types them all.
    """
    type_among("get_config_value", "kind", kind, _TYPES_OF)
    if kind is float and type(default) is int and abs(default) <= _EXACT_FLOAT_INT:
        default = float(default)  # a type checker takes an int where a float is asked for
    if default is not None and type(default) is not kind:  # given back as it is: never checked
        wanted = getattr(kind, "__name__", kind)
        raise ValidationError(
            "get_config_value",
            "default",
            f"expected {wanted}, as kind says, got {type(default).__name__}",
        )
    if isinstance(db, Database) or not hasattr(db, "_held_config_entry"):  # else a cache
        entry = await find_config_entry_by_key(require_database(db), section, key)
        return value_of(entry, section, key, kind, default)
    held = db._held_config_entry(section, key)  # noqa: SLF001  # the protocol's own
    if held is not None:
        await share_loop()  # a hit never waits: thousands in a row would hold the loop
    entry = held[0] if held is not None else await db._load_config_entry(section, key)  # noqa: SLF001
    value = value_of(entry, section, key, kind, default)
    if type(value) not in {list, dict}:
        return value
    size = json_size(value, OFF_LOOP_SIZE)
    return await off_loop_if_large(size, lambda: copy.deepcopy(value))  # a private copy


def value_of(
    entry: ConfigEntry | None, section: str, key: str, kind: type[object], default: object
) -> object:
    """Give an entry's value as `kind` (else ValidationError); `default`/NotFoundError if None."""
    if entry is None:
        if default is None:
            raise NotFoundError("ConfigEntry", (section, key))
        return default
    if type(entry.value) is not kind:
        wanted = getattr(kind, "__name__", kind)
        raise ValidationError(
            "ConfigEntry", "value", f"{section}.{key} is declared {entry.type.value}, not {wanted}"
        )
    return entry.value


async def list_config_entries(
    db: Database,
    where: ConfigEntryFilter | None = None,
    *,
    limit: int = 100,
    after: ConfigEntryCursor | None = None,
) -> Page[ConfigEntry, ConfigEntryCursor]:
    """Return one page of config entries by section then key (by code point), filtered in SQL.

    Pass the page's `next_cursor` as `after` for the next page; the cursor keeps the filter,
    so `where` may be left out, and refuses another. A row holding a value of megabytes is
    read as its entry in a worker thread, as `get_config_entry` reads it.
    """
    limit = page_limit("ConfigEntryFilter", limit)
    cursor_where = None if after is None else of_type(ConfigEntryCursor, after, "after").where
    where = continued_filter(ConfigEntryFilter, "ConfigEntryCursor", where, cursor_where)
    section = where.section
    cursor_section = "" if after is None else after.section
    rows = await run_query(
        db,
        lambda conn: db.queries.list_config_entries_page(
            conn,
            # The tighter lower bound twice: SQLite's scan starts from the first (see upper_bounds).
            section_from=max("" if section is None else section, cursor_section),
            section_until=AFTER_EVERY_KEY if section is None else section,
            cursor_section=cursor_section,
            cursor_key="" if after is None else after.key,
            page_size=limit,
        ),
    )
    return await page_of(
        rows,
        config_from_row,
        limit,
        lambda last: ConfigEntryCursor(last.section, last.key, where),
        _VALUE,  # a value of megabytes is read as its entry in a worker thread
    )


async def all_config_entries(
    db: Database, where: ConfigEntryFilter | None = None
) -> list[ConfigEntry]:
    """Return every entry (matching `where`), by section then key."""
    return await every_item_in_one_state(
        db, lambda seen, after: list_config_entries(seen, where, limit=READ_PAGE, after=after)
    )


async def save_config_entry(db: Database, entry: ConfigEntry) -> ConfigEntry:
    """Store an entry and return it as stored.

    Without an id, the entry of the same (section, key) is replaced or made. With an id, that
    entry is overwritten: NotFoundError if missing, ConflictError if its (section, key) is taken.
    """
    entry = of_type(ConfigEntry, entry, "entry")
    size = json_size(entry.value, OFF_LOOP_SIZE)
    params = await off_loop_if_large(
        size, lambda: config_params(entry, in_pieces=size > OFF_LOOP_SIZE)
    )
    if entry.id is None:
        row = await run_query(db, lambda conn: db.queries.upsert_config_entry(conn, **params))
        assert row is not None  # noqa: S101  # INSERT ... RETURNING always gives the row
        return await _entry_of(row)
    entry_id = entry.id
    changed = await run_query(
        db, lambda conn: db.queries.update_config_entry(conn, id=entry_id, **params)
    )
    if changed == 0:
        raise NotFoundError("ConfigEntry", entry.id)
    return entry


async def set_config(
    db: Database, section: str, key: str, value: ConfigInput, *, description: str | None = None
) -> ConfigEntry:
    """Set (section, key) to `value`, declared as the value's own type.

    A value of megabytes is checked in a worker thread, as it is written and read back.
    """
    entry = await off_loop_if_large(
        json_size(value, OFF_LOOP_SIZE),
        lambda: ConfigEntry(
            section=section,
            key=key,
            value=value,
            type=config_type_of(value),
            description=description,
        ),
    )
    return await save_config_entry(db, entry)


async def delete_config_entry(db: Database, entry_id: int) -> bool:
    """Delete the entry with this id; return whether there was one."""
    entry_id = key_id("ConfigEntry", entry_id)
    return await run_query(db, lambda conn: db.queries.delete_config_entry(conn, id=entry_id)) > 0
