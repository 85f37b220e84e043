"""The vocabulary of the generated query interface, shared by the generator and the loader.

- `COMMANDS`: the one table of sqlc commands this package understands, with what each
  becomes in aiosql and in the generated `Queries` protocol.
- `QueryShape`: what the generated interface knows of one query, which the loader checks
  at start-up and the backends read to decode rows and encode parameters.
- `Connection` and the JSON value types that the generated signatures use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, Protocol, TypeAlias, get_args

import attrs
from aiosql.types import SQLOperationType

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value that JSON can hold."""

JsonObject: TypeAlias = "dict[str, JsonValue]"
"""A JSON object: what metadata columns hold."""


class Connection(Protocol):
    """An open connection of some engine, as the loaded queries take it: opaque here.

    Each backend lends its own (a SQLite session, an asyncpg connection) and narrows it back
    where it runs a statement; nothing below the backends knows which engine it is.
    """


Command: TypeAlias = Literal[":one", ":many", ":exec", ":execrows", ":execlastid", ":copyfrom"]
"""The sqlc commands that the loader understands; `COMMANDS` says what each becomes."""

Kind: TypeAlias = Literal["", "datetime", "json", "bool", "list"]
"""How a backend may have to encode a parameter or decode a column: "" for as it is."""


@attrs.frozen
class CommandSpec:
    """What one sqlc command becomes."""

    suffix: str
    """aiosql's suffix for the operation."""
    operation: SQLOperationType
    """aiosql's operation, which the loader checks."""
    returns: str
    """The generated method's return annotation; `{row}` stands for the row type."""
    rows: bool
    """Whether the query returns rows, decoded into the generated row type."""


COMMANDS: Final[Mapping[Command, CommandSpec]] = {
    ":one": CommandSpec("^", SQLOperationType.SELECT_ONE, "{row} | None", rows=True),
    # Every row is fetched before any is decoded, on both engines: one await gives the list,
    # where an async iterator would cost two generator steps a row and promise a stream.
    # aiosql's `^` operation carries it; the adapters know a :many query by its shape.
    ":many": CommandSpec("^", SQLOperationType.SELECT_ONE, "list[{row}]", rows=True),
    ":exec": CommandSpec("!", SQLOperationType.INSERT_UPDATE_DELETE, "None", rows=False),
    ":execrows": CommandSpec("!", SQLOperationType.INSERT_UPDATE_DELETE, "int", rows=False),
    ":execlastid": CommandSpec("<!", SQLOperationType.INSERT_RETURNING, "int", rows=False),
    ":copyfrom": CommandSpec("*!", SQLOperationType.INSERT_UPDATE_DELETE_MANY, "None", rows=False),
}
if set(COMMANDS) != set(get_args(Command)):  # pragma: no cover  # a table edited alone
    msg = "COMMANDS and Command name different commands"
    raise AssertionError(msg)


@attrs.frozen
class QueryShape:
    """What the generated interface knows of one query.

    The loader checks `command` and `parameters` against the loaded SQL at start-up; a
    backend checks `columns` against what the query really returns the first time it
    runs, and decodes each row by position into `row`.
    """

    command: Command
    parameters: tuple[str, ...] = ()
    parameter_kinds: tuple[Kind, ...] = ()
    row: type | None = None
    columns: tuple[str, ...] = ()
    column_kinds: tuple[Kind, ...] = ()
