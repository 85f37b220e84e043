"""What the generator's steps pass on: its error, the sqlc commands, and each query as values.

`CodegenError` is what every step raises. The `json_*` readers take one value of sqlc's
`codegen_request.json` as the type it must have, or name what is wrong. A `Query` is one query
of one engine with Python types, and an `Engine` holds one engine's queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "COMMANDS",
    "ENGINE_FILES",
    "ROW_COMMANDS",
    "CodegenError",
    "CommandSpec",
    "Engine",
    "Field",
    "Query",
    "json_int",
    "json_list",
    "json_object",
    "json_str",
    "snake_case",
]


@dataclass(frozen=True)
class CommandSpec:
    """What one sqlc command becomes."""

    suffix: str
    """aiosql's suffix for the operation, which says which adapter method runs it."""
    returns: str
    """The generated method's return annotation; `{row}` stands for the row type."""
    rows: bool
    """Whether the query returns rows, mapped into the generated row type."""


COMMANDS: dict[str, CommandSpec] = {
    ":one": CommandSpec("^", "{row} | None", rows=True),
    ":many": CommandSpec("", "list[{row}]", rows=True),
    ":exec": CommandSpec("!", "None", rows=False),
    ":execrows": CommandSpec("!", "int", rows=False),
    ":execlastid": CommandSpec("<!", "int", rows=False),
    ":copyfrom": CommandSpec("*!", "None", rows=False),
}
"""The sqlc commands this generator understands: aiosql's operation and what a call gives."""

ENGINE_FILES: dict[str, str] = {"sqlite": "sqlite", "postgresql": "postgres"}
"""The name of each engine's aiosql file and row mappers, as the package names the engine."""

ROW_COMMANDS = tuple(name for name, spec in COMMANDS.items() if spec.rows)
"""The commands whose queries return rows."""

_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class CodegenError(Exception):
    """The analysed queries cannot be turned into a typed interface; the message says why."""


def snake_case(name: str) -> str:
    """Turn a sqlc query name such as `GetTestResultsByType` into `get_test_results_by_type`.

    An underscore goes before each upper-case letter that follows a lower-case letter or a
    digit, and before the last upper-case letter of a run when a lower-case letter follows it
    (`HTTPServer` gives `http_server`); then everything is lower-cased.
    """
    return _SNAKE_BOUNDARY.sub("_", name).lower()


def json_object(value: object, what: str) -> dict[str, object]:
    """Take `value` as a JSON object, or raise `CodegenError` naming `what`."""
    if not isinstance(value, dict):
        raise CodegenError(f"malformed codegen request: {what} is not an object")
    return {str(key): item for key, item in value.items()}


def json_list(value: object, what: str) -> list[object]:
    """Take `value` as a JSON array (null as an empty one), or raise naming `what`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise CodegenError(f"malformed codegen request: {what} is not a list")
    return list(value)


def json_str(value: object, what: str) -> str:
    """Take `value` as a JSON string, or raise `CodegenError` naming `what`."""
    if not isinstance(value, str):
        raise CodegenError(f"malformed codegen request: {what} is not a string")
    return value


def json_int(value: object, what: str) -> int:
    """Take `value` as a JSON integer (not a boolean), or raise `CodegenError` naming `what`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise CodegenError(f"malformed codegen request: {what} is not an integer")
    return value


@dataclass(frozen=True)
class Field:
    """A name with its Python annotation."""

    name: str
    annotation: str


@dataclass(frozen=True)
class Query:
    """One query of one engine, with Python types."""

    name: str
    command: str
    doc: tuple[str, ...]
    parameters: tuple[Field, ...]
    column_names: tuple[str, ...]
    columns: tuple[Field, ...]
    table: str | None
    typed_params: bool = False
    runs_long: bool = False
    """Marked `-- runs: long`: the engine's adapter runs it off the event loop."""
    sql: str = ""
    """The query's SQL in aiosql's form: named placeholders, no comments."""
    writes: tuple[str, ...] = ()
    """The tables the query changes: see `facts.written_tables`."""
    operation: str = ""
    """The verb of its outermost statement (SELECT, INSERT, ...): `facts.query_facts`."""
    collection: str | None = None
    """The one table of the schema it names, None when it names several: `facts.query_facts`."""


@dataclass(frozen=True)
class Engine:
    """The queries of one engine, in sqlc's order."""

    name: str
    queries: dict[str, Query]
