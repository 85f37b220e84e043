"""The neutral vocabulary below the backends: what the generated interface and the guards use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, TypeAlias

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value that JSON can hold."""

JsonObject: TypeAlias = "dict[str, JsonValue]"
"""A JSON object: what metadata columns hold."""

RowMapper: TypeAlias = Callable[[Iterable[Any]], list[Any]]
"""Turns the untyped rows a driver fetched into the generated row type, by position."""


class QueryFacts(NamedTuple):
    """What the traces of a query name: its name in sql/queries/, its verb and its table."""

    name: str
    operation: str
    """The verb of its outermost statement (SELECT, INSERT, ...); empty when it has none."""
    table: str | None
    """The one table of the schema that it names; None when it names several."""


class Connection(Protocol):
    """An open connection of some engine, as the loaded queries take it: opaque here."""
