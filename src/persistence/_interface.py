"""The neutral vocabulary below the backends: what the generated interface and the guards use."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value that JSON can hold."""

JsonObject: TypeAlias = "dict[str, JsonValue]"
"""A JSON object: what metadata columns hold."""

JsonInput: TypeAlias = (
    "str | int | float | bool | Sequence[JsonInput] | Mapping[str, JsonInput] | None"
)
"""What a JSON value may be given as: any mapping with str keys for an object, any sequence
for an array (bytes aside, which no check takes), copied into plain dicts and lists. `dict`
and `list` are invariant: a `dict[str, str]` is no `JsonObject`, but it is a JsonObjectInput."""

JsonObjectInput: TypeAlias = "Mapping[str, JsonInput]"
"""What a JSON object, such as metadata or labels, may be given as: see JsonInput."""

JsonScalar: TypeAlias = "str | int | float | bool | None"
"""A JSON value that is neither an object nor an array: what a metadata filter compares."""

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
