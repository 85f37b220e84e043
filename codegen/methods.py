"""The methods of the generated interface: the engines read and compared, then one per query.

Every engine must have the same queries, with the same commands, parameters, columns and
written tables. Each query then becomes a method, with the names of its row type and its
parameters' `TypedDict`, checked not to clash.
"""

from __future__ import annotations

import itertools
import keyword
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegen.analysis import PARAMS_LINE, read_engine
from codegen.model import ROW_COMMANDS, CodegenError, Engine, Field, Query, snake_case

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["Method", "camel", "plan_methods", "read_engines"]


_RESERVED_NAMES = frozenset(
    {
        "annotations",
        "datetime",
        "AsyncIterator",
        "Iterable",
        "Final",
        "Protocol",
        "TypedDict",
        "NamedTuple",
        "Connection",
        "JsonObject",
        "Queries",
        "ROW_MAPPERS",
        "RUNS_LONG",
        "SQLITE_LARGE_VALUES",
        "itemgetter",
        "length_hint",
        "Any",
        "repeat",
        "decode_bool",
        "decode_datetime",
        "decode_datetime_column",
        "decode_json",
        "decode_json_column",
        "QUERY_WRITES",
        "QUERY_FACTS",
        "QueryFacts",
    }
)
"""Names that the generated module defines or imports: no row or parameter type may take one."""


@dataclass(frozen=True)
class Method:
    """One query of the generated interface."""

    query: Query
    method: str
    row: str | None
    params_type: str | None


def read_engines(requests: Iterable[Mapping[str, object]]) -> list[Engine]:
    """Read the requests, one per engine, and check that the engines agree."""
    engines = sorted((read_engine(r) for r in requests), key=lambda e: e.name)
    if not engines:
        raise CodegenError("no codegen request given")
    for first, second in itertools.pairwise(engines):
        if first.name == second.name:
            raise CodegenError(f"two codegen requests for engine {first.name}")
    for other in engines[1:]:
        _compare(engines[0], other)
        _compare_writes(engines[0], other)
    return engines


def _compare(first: Engine, other: Engine) -> None:
    for name in first.queries.keys() - other.queries.keys():
        raise CodegenError(f"query {name} is in {first.name} but not in {other.name}")
    for name in other.queries.keys() - first.queries.keys():
        raise CodegenError(f"query {name} is in {other.name} but not in {first.name}")
    for name, one in first.queries.items():
        two = other.queries[name]
        if one.command != two.command:
            raise CodegenError(
                f"query {name}: command is {one.command} on {first.name} "
                f"but {two.command} on {other.name}"
            )
        _compare_fields(
            name,
            kind="parameter @",
            first=first.name,
            one=one.parameters,
            other=other.name,
            two=two.parameters,
        )
        if one.column_names != two.column_names:
            raise CodegenError(
                f"query {name}: columns are ({', '.join(one.column_names)}) on {first.name} "
                f"but ({', '.join(two.column_names)}) on {other.name}"
            )
        _compare_fields(
            name,
            kind="column ",
            first=first.name,
            one=one.columns,
            other=other.name,
            two=two.columns,
        )


def _compare_fields(
    query: str,
    *,
    kind: str,
    first: str,
    one: tuple[Field, ...],
    other: str,
    two: tuple[Field, ...],
) -> None:
    for a, b in zip(one, two, strict=False):
        if a.name != b.name:
            raise CodegenError(
                f"query {query}: {kind}{a.name} on {first} is {kind}{b.name} on {other}; "
                "parameters must have the same names in the same order"
            )
        if a.annotation != b.annotation:
            raise CodegenError(
                f"query {query}: {kind}{a.name} is {a.annotation} on {first} but "
                f"{b.annotation} on {other}; fix the schema or add a '-- type:' override"
            )
    if len(one) != len(two):
        longer, engine = (one, first) if len(one) > len(two) else (two, other)
        extra = longer[min(len(one), len(two))].name
        raise CodegenError(f"query {query}: {kind}{extra} is only on {engine}")


def _compare_writes(first: Engine, other: Engine) -> None:
    for name, one in first.queries.items():
        two = other.queries[name].writes
        if one.writes != two:
            raise CodegenError(
                f"query {name} writes ({', '.join(one.writes)}) on {first.name} "
                f"but ({', '.join(two)}) on {other.name}"
            )


def plan_methods(engines: Sequence[Engine]) -> list[Method]:
    """Decide method, row and parameter type names; check that they do not clash."""
    methods: list[Method] = []
    shapes: dict[str, tuple[tuple[Field, ...], str]] = {}
    method_names: dict[str, str] = {}
    for name, query in engines[0].queries.items():
        method = snake_case(name)
        if method in method_names:
            raise CodegenError(
                f"queries {method_names[method]} and {name} both become method {method}"
            )
        if not method.isidentifier() or keyword.iskeyword(method):
            raise CodegenError(f"query {name}: {method!r} is not a valid method name")
        method_names[method] = name
        row = params_type = None
        if query.command in ROW_COMMANDS:
            tables = {engine.queries[name].table for engine in engines}
            table = tables.pop() if len(tables) == 1 else None
            row = f"{camel(table)}Row" if table is not None else f"{name}Row"
            _claim(shapes, row, query.columns, name)
        if query.command == ":copyfrom" and not query.parameters:
            raise CodegenError(f"query {name}: :copyfrom query takes no parameters")
        if query.typed_params and not query.parameters:
            raise CodegenError(f"query {name}: '-- {PARAMS_LINE}', but it takes no parameters")
        if query.command == ":copyfrom" or query.typed_params:
            params_type = f"{name}Params"
            _claim(shapes, params_type, query.parameters, name)
        methods.append(Method(query, method, row, params_type))
    return methods


def camel(table: str) -> str:
    """Turn a table name such as `test_results` into `TestResults`, its row type's name less Row."""
    return "".join(part[:1].upper() + part[1:] for part in table.split("_"))


def _claim(
    shapes: dict[str, tuple[tuple[Field, ...], str]],
    type_name: str,
    fields: tuple[Field, ...],
    query: str,
) -> None:
    if not type_name.isidentifier() or type_name in _RESERVED_NAMES:
        raise CodegenError(f"query {query}: type name {type_name} is not usable")
    seen = shapes.get(type_name)
    if seen is None:
        shapes[type_name] = (fields, query)
    elif seen[0] != fields:
        raise CodegenError(
            f"queries {seen[1]} and {query} would both define {type_name}, with different "
            "fields; rename one of the queries"
        )
