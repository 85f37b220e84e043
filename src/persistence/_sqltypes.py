"""Types shared by the generated query interface and the code that calls it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

import attrs

if TYPE_CHECKING:
    from persistence._postgres import PgConnection
    from persistence._sqlite import SqliteSession

JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value that JSON can hold."""

JsonObject: TypeAlias = "dict[str, JsonValue]"
"""A JSON object: what metadata columns hold."""

Connection: TypeAlias = "SqliteSession | PgConnection"
"""A connection of either engine, as the loaded queries take it."""

Command: TypeAlias = Literal[":one", ":many", ":exec", ":execrows", ":execlastid", ":copyfrom"]
"""The sqlc commands that the loader understands."""


@attrs.frozen
class QueryShape:
    """What the generated interface expects of one loaded query: its command and parameters."""

    command: Command
    parameters: tuple[str, ...]
