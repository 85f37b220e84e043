"""sqlc's analysis of one engine read into typed values: its queries, with Python types.

A query's Python types come from the schema types that sqlc reports (`SQLITE_TYPES`,
`POSTGRESQL_TYPES`), changed by the query's `-- type:` comment lines; its other comment lines
are its doc and its marks (`-- params: typed`, `-- runs: long`). Its SQL is turned into
aiosql's form here too, with named placeholders.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codegen.facts import query_facts, written_tables
from codegen.model import (
    COMMANDS,
    ROW_COMMANDS,
    CodegenError,
    Engine,
    Field,
    Query,
    json_int,
    json_list,
    json_object,
    json_str,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["PARAMS_LINE", "POSTGRESQL_TYPES", "SEARCH_INDEX_TYPES", "SQLITE_TYPES", "read_engine"]


SQLITE_TYPES: dict[str, str] = {
    "integer": "int",
    "int": "int",
    "bigint": "int",
    "text": "str",
    "real": "float",
    "double precision": "float",
    "doubleprecision": "float",
    "float": "float",
    "timestamp_text": "datetime.datetime",
    "json_text": "JsonObject",
    "blob": "bytes",
    "boolean": "bool",
}
"""Python annotation of each sqlite type name, lower-case."""

POSTGRESQL_TYPES: dict[str, str] = {
    "int2": "int",
    "int4": "int",
    "int8": "int",
    "int": "int",
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "serial": "int",
    "bigserial": "int",
    "text": "str",
    "varchar": "str",
    "bpchar": "str",
    "float4": "float",
    "float8": "float",
    "real": "float",
    "double precision": "float",
    "timestamptz": "datetime.datetime",
    "json": "JsonObject",
    "jsonb": "JsonObject",
    "bool": "bool",
    "boolean": "bool",
    "bytea": "bytes",
}
"""Python annotation of each postgresql type name, lower-case, without `pg_catalog.`."""

SEARCH_INDEX_TYPES: dict[str, frozenset[str]] = {
    "postgresql": frozenset({"tsvector"}),
    "sqlite": frozenset(),
}
"""Column types that hold a search index, not a value: left out of their table's row type."""

_ENGINE_TYPES: dict[str, dict[str, str]] = {
    "postgresql": POSTGRESQL_TYPES,
    "sqlite": SQLITE_TYPES,
}

_OVERRIDE_TYPES: dict[str, str] = {
    "int": "int",
    "str": "str",
    "float": "float",
    "bool": "bool",
    "bytes": "bytes",
    "datetime": "datetime.datetime",
    "json": "JsonObject",
}

_RESERVED_PARAMETERS = frozenset({"self", "conn"})
_OVERRIDE_LINE = re.compile(r"type:(?P<rest>.*)")
PARAMS_LINE = "params: typed"
"""The comment line that asks for a `TypedDict` of a query's parameters."""
_RUNS_LONG_LINE = "runs: long"
_OVERRIDE_TARGET = re.compile(r"(?P<param>@?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_OVERRIDE_SPEC = re.compile(r"(?:(?P<type>[a-z]+)(?P<list>\[\])?)?(?P<null>[?!])?")


@dataclass(frozen=True)
class _Column:
    """A column or parameter as sqlc reports it."""

    name: str
    type_name: str
    not_null: bool
    is_array: bool
    table: str | None


@dataclass(frozen=True)
class _Override:
    """What one `-- type:` line changes."""

    annotation: str | None
    nullable: bool | None
    is_list: bool = False


def _read_column(raw: object, what: str) -> _Column:
    column = json_object(raw, what)
    kind = json_object(column.get("type"), f"{what}.type")
    schema = json_str(kind.get("schema", ""), f"{what}.type.schema")
    type_name = json_str(kind.get("name"), f"{what}.type.name")
    table = column.get("table")
    return _Column(
        name=json_str(column.get("name"), f"{what}.name"),
        type_name=f"{schema}.{type_name}" if schema else type_name,
        not_null=column.get("not_null") is True,
        is_array=column.get("is_array") is True or (column.get("array_dims") or 0) != 0,
        table=None
        if table is None
        else json_str(json_object(table, f"{what}.table").get("name"), what),
    )


def _normalise_type(type_name: str) -> str:
    name = " ".join(type_name.lower().split())
    return name.removeprefix("pg_catalog.")


def _is_search_index(engine: str, column: _Column) -> bool:
    return _normalise_type(column.type_name) in SEARCH_INDEX_TYPES[engine]


def _annotation(
    engine: str, query: str, what: str, column: _Column, override: _Override | None
) -> str:
    base = override.annotation if override is not None else None
    # postgresql binds a parameter as the type it inferred, whatever the method says:
    # `@ids str` given to json_each(json) fails with `bigint = json`. (sqlite binds any value
    # to any parameter, and a column's value is decoded as it comes.)
    known = _ENGINE_TYPES[engine].get(_normalise_type(column.type_name))
    if (
        engine == "postgresql"
        and what.startswith("parameter")
        and not column.is_array
        and base not in {None, known}
        and known is not None
    ):
        raise CodegenError(
            f"{engine}: query {query}: {what}: the override says {base}, but {engine} types it "
            f"{column.type_name!r} ({known}); override only what sqlc cannot know ('any'), or "
            "write the query once per engine, in sql/queries/sqlite/ and sql/queries/postgres/"
        )
    if base is None and _is_search_index(engine, column):
        raise CodegenError(
            f"{engine}: query {query}: {what}: {column.type_name!r} is a search index, not a "
            "value; select the columns the query needs instead"
        )
    if base is None:
        found = _ENGINE_TYPES[engine].get(_normalise_type(column.type_name))
        if found is None:
            raise CodegenError(
                f"{engine}: query {query}: {what}: unknown type {column.type_name!r}; "
                "add an override such as '-- type: ...' under its '-- name:' line"
            )
        base = found
    if column.is_array or (override is not None and override.is_list):
        base = f"list[{base}]"
    nullable = not column.not_null
    if override is not None and override.nullable is not None:
        nullable = override.nullable
    return f"{base} | None" if nullable else base


@dataclass(frozen=True)
class _Comments:
    """What a query's comment lines say: overrides, its doc, and its marks."""

    columns: dict[str, _Override]
    parameters: dict[str, _Override]
    doc: tuple[str, ...]
    typed_params: bool
    runs_long: bool


def _parse_overrides(query: str, comments: Iterable[str]) -> _Comments:
    """Split a query's comment lines into overrides, its doc and its `params`/`runs` marks."""
    columns: dict[str, _Override] = {}
    parameters: dict[str, _Override] = {}
    doc: list[str] = []
    marks = {PARAMS_LINE: False, _RUNS_LONG_LINE: False}
    for comment in comments:
        line = comment.strip()
        if line in marks:
            marks[line] = True
            continue
        match = _OVERRIDE_LINE.fullmatch(line)
        if match is None:
            doc.append(line)
            continue
        tokens = match["rest"].split()
        if len(tokens) != 2:  # noqa: PLR2004 - a target and a type
            raise CodegenError(
                f"query {query}: malformed override {line!r}: expected "
                "'-- type: <column> <pytype>' or '-- type: @<param> <pytype>'"
            )
        target = _OVERRIDE_TARGET.fullmatch(tokens[0])
        if target is None:
            raise CodegenError(
                f"query {query}: malformed override {line!r}: {tokens[0]!r} is not a column "
                "name or an @parameter name"
            )
        overrides = parameters if target["param"] else columns
        if target["name"] in overrides:
            raise CodegenError(f"query {query}: more than one override of {tokens[0]}")
        overrides[target["name"]] = _parse_spec(query, line, tokens[1])
    while doc and not doc[0]:
        doc.pop(0)
    while doc and not doc[-1]:
        doc.pop()
    return _Comments(columns, parameters, tuple(doc), marks[PARAMS_LINE], marks[_RUNS_LONG_LINE])


def _parse_spec(query: str, line: str, spec: str) -> _Override:
    match = _OVERRIDE_SPEC.fullmatch(spec)
    if match is None or not spec or (match["type"] and match["type"] not in _OVERRIDE_TYPES):
        raise CodegenError(
            f"query {query}: malformed override {line!r}: {spec!r} is not a type; expected "
            f"one of {', '.join(_OVERRIDE_TYPES)}, optionally followed by '[]' (a list) and "
            "'?' (nullable) or '!' (not null), or just '?' or '!'"
        )
    null = match["null"]
    return _Override(
        annotation=_OVERRIDE_TYPES[match["type"]] if match["type"] else None,
        nullable=None if null is None else null == "?",
        is_list=match["list"] is not None,
    )


def _check_identifier(engine: str, query: str, what: str, name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise CodegenError(
            f"{engine}: query {query}: {what} {name!r} is not a valid Python name; "
            "rename it in the SQL"
        )


def read_engine(request: Mapping[str, object]) -> Engine:
    """Read one engine's codegen request into its queries, with Python types."""
    settings = json_object(request.get("settings"), "settings")
    engine = json_str(settings.get("engine"), "settings.engine")
    if engine not in _ENGINE_TYPES:
        raise CodegenError(f"unsupported engine {engine!r}: expected sqlite or postgresql")
    tables = _read_catalog(engine, request.get("catalog"))
    queries: dict[str, Query] = {}
    for index, raw in enumerate(json_list(request.get("queries"), "queries")):
        query = _read_query(
            engine, tables, json_object(raw, f"queries[{index}]"), f"queries[{index}]"
        )
        if query.name in queries:
            raise CodegenError(f"{engine}: query {query.name} is defined twice")
        queries[query.name] = query
    return Engine(engine, queries)


def _read_catalog(engine: str, raw: object) -> dict[str, tuple[Field, ...] | None]:
    """Map each table name to its columns' Python fields (None when a type is unknown)."""
    tables: dict[str, tuple[Field, ...] | None] = {}
    if raw is None:
        return tables
    for schema in json_list(json_object(raw, "catalog").get("schemas"), "catalog.schemas"):
        schema_obj = json_object(schema, "catalog schema")
        if schema_obj.get("name") in {"pg_catalog", "information_schema"}:
            continue
        for table in json_list(schema_obj.get("tables"), "catalog tables"):
            table_obj = json_object(table, "catalog table")
            name = json_str(
                json_object(table_obj.get("rel"), "table rel").get("name"), "table name"
            )
            columns = [
                _read_column(column, f"table {name} column")
                for column in json_list(table_obj.get("columns"), f"table {name} columns")
            ]
            columns = [c for c in columns if not _is_search_index(engine, c)]
            try:
                fields: tuple[Field, ...] | None = tuple(
                    Field(c.name, _annotation(engine, name, c.name, c, None)) for c in columns
                )
            except CodegenError:
                fields = None
            tables[name] = fields
    return tables


def _read_query(
    engine: str,
    tables: Mapping[str, tuple[Field, ...] | None],
    raw: Mapping[str, object],
    what: str,
) -> Query:
    name = json_str(raw.get("name"), f"{what}.name")
    command = json_str(raw.get("cmd"), f"{what}.cmd")
    if command not in COMMANDS:
        raise CodegenError(
            f"{engine}: query {name}: command {command} is not supported; "
            f"use one of {', '.join(COMMANDS)}"
        )
    comments = [json_str(c, f"{what}.comments") for c in json_list(raw.get("comments"), what)]
    marked = _parse_overrides(name, comments)
    column_overrides = marked.columns
    text = json_str(raw.get("text", ""), f"{what}.text")
    parameters = _read_parameters(engine, name, raw.get("params"), marked.parameters, text)
    sql = _named_placeholders(engine, name, text, _parameter_names(name, raw.get("params")))
    operation, collection = query_facts(text, tables)
    columns = [_read_column(c, f"query {name} column") for c in json_list(raw.get("columns"), what)]
    column_names = tuple(c.name for c in columns)
    for column_name in column_overrides:
        if column_name not in column_names:
            raise CodegenError(
                f"query {name}: override of column {column_name!r}, which the query does not "
                f"return (its columns: {', '.join(column_names) or 'none'})"
            )
    fields: tuple[Field, ...] = ()
    if command in ROW_COMMANDS:
        if not columns:
            raise CodegenError(f"{engine}: query {name}: {command} query returns no columns")
        if len(set(column_names)) != len(column_names):
            duplicates = sorted({c for c in column_names if column_names.count(c) > 1})
            raise CodegenError(
                f"{engine}: query {name}: column {duplicates[0]!r} appears more than once; "
                "give the columns distinct names with AS"
            )
        for column in columns:
            _check_identifier(engine, name, "column", column.name)
        fields = tuple(
            Field(
                c.name,
                _annotation(engine, name, f"column {c.name!r}", c, column_overrides.get(c.name)),
            )
            for c in columns
        )
    return Query(
        name=name,
        command=command,
        doc=marked.doc,
        parameters=parameters,
        column_names=column_names,
        columns=fields,
        table=_table_of(tables, columns, fields),
        typed_params=marked.typed_params,
        runs_long=marked.runs_long,
        sql=sql,
        writes=written_tables(engine, name, raw, tables),
        operation=operation,
        collection=collection,
    )


_PLACEHOLDER = re.compile(
    r"""
      (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | [?$](?P<number>\d+)
    """,
    re.VERBOSE | re.DOTALL,
)


def _parameter_names(query: str, raw: object) -> dict[int, str]:
    """Map each placeholder number of sqlc's text to its parameter's name."""
    names: dict[int, str] = {}
    for param in json_list(raw, f"query {query} params"):
        param_obj = json_object(param, f"query {query} param")
        number = json_int(param_obj.get("number"), f"query {query} param number")
        column = json_object(param_obj.get("column"), f"query {query} param column")
        names[number] = json_str(column.get("name"), f"query {query} param name")
    return names


def _named_placeholders(engine: str, query: str, text: str, names: Mapping[int, str]) -> str:
    """Turn sqlc's text of a query into aiosql's: `?1` or `$1` becomes `:name`, comments go."""

    def replace(match: re.Match[str]) -> str:
        if match["quoted"]:
            return match["quoted"]
        if match["comment"]:
            return " "
        name = names.get(int(match["number"]))
        if name is None:
            raise CodegenError(
                f"{engine}: query {query}: placeholder {match.group()} names no parameter"
            )
        return f":{name}"

    lines = _PLACEHOLDER.sub(replace, text).strip().rstrip(";").splitlines()
    return "\n".join(line.rstrip() for line in lines if line.strip()) + ";"


def _read_parameters(
    engine: str, query: str, raw: object, overrides: Mapping[str, _Override], text: str = ""
) -> tuple[Field, ...]:
    numbered: list[tuple[int, _Column]] = []
    for param in json_list(raw, f"query {query} params"):
        param_obj = json_object(param, f"query {query} param")
        number = json_int(param_obj.get("number"), f"query {query} param number")
        numbered.append((number, _read_column(param_obj.get("column"), f"query {query} param")))
    numbered.sort(key=lambda item: (_first_use(text, item[0]), item[0]))
    fields: dict[str, Field] = {}
    for _, column in numbered:
        _check_identifier(engine, query, "parameter", column.name)
        if column.name in _RESERVED_PARAMETERS:
            raise CodegenError(
                f"{engine}: query {query}: parameter @{column.name} clashes with the "
                "method's own argument of that name; rename it in the SQL"
            )
        what = f"parameter @{column.name}"
        field = Field(
            column.name,
            _annotation(engine, query, what, column, overrides.get(column.name)),
        )
        seen = fields.get(column.name)
        if seen is not None and seen != field:
            raise CodegenError(
                f"{engine}: query {query}: {what} has two types: "
                f"{seen.annotation} and {field.annotation}"
            )
        fields.setdefault(column.name, field)
    for name in overrides:
        if name not in fields:
            raise CodegenError(
                f"query {query}: override of parameter @{name}, which the query does not "
                f"have (its parameters: {', '.join('@' + f for f in fields) or 'none'})"
            )
    return tuple(fields.values())


def _first_use(text: str, number: int) -> int:
    """Where parameter `number` first appears in sqlc's text of a query (`?1` or `$1`).

    The loader lists a query's parameters in the order they first appear, and sqlc numbers
    them in the order it walks the statement (OFFSET before LIMIT): parameters are put in the
    loader's order, so that both agree. Without a text, sqlc's numbers give the order.
    """
    match = re.search(rf"[?$]{number}(?!\d)", text)
    return -1 if match is None else match.start()


def _table_of(
    tables: Mapping[str, tuple[Field, ...] | None],
    columns: Sequence[_Column],
    fields: tuple[Field, ...],
) -> str | None:
    """Name the table whose every column, in order and with the same types, the query returns."""
    if not columns or not fields:
        return None
    table = columns[0].table
    if table is None or any(c.table != table for c in columns):
        return None
    return table if tables.get(table) == fields else None
