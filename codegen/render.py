"""The generated files written out: the typed interface module, and each engine's aiosql file.

The module's text is left for `ruff format` to lay out, as `make generate` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codegen.methods import Method, camel
from codegen.model import COMMANDS, ENGINE_FILES, Engine, Field, snake_case

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["render_module", "render_sql"]


_INDENT = "    "


def _kind(annotation: str) -> str:
    """Say how a backend encodes or decodes a value of this annotation ("" for as it is)."""
    base = annotation.removesuffix(" | None")
    if base.startswith("list["):
        return "list"
    return {"datetime.datetime": "datetime", "JsonObject": "json", "bool": "bool"}.get(base, "")


def _docstring(lines: Sequence[str], depth: int) -> list[str]:
    indent = _INDENT * depth
    escaped = [line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for line in lines]
    if escaped[-1].endswith('"'):
        escaped[-1] = escaped[-1][:-1] + '\\"'
    if len(escaped) == 1:
        return [f'{indent}"""{escaped[0]}"""']
    first, *rest = escaped
    return [
        f'{indent}"""{first}',
        *(f"{indent}{line}" if line else "" for line in rest),
        f'{indent}"""',
    ]


def _class(name: str, base: str, doc: str, fields: tuple[Field, ...]) -> list[str]:
    return [
        "",
        "",
        f"class {name}({base}):",
        *_docstring([doc], 1),
        "",
        *(f"{_INDENT}{field.name}: {field.annotation}" for field in fields),
    ]


def _signature(method: Method) -> str:
    query = method.query
    items = ["self", "conn: Connection"]
    if query.command == ":copyfrom":
        items += [f"rows: Iterable[{method.params_type}]", "/"]
    elif query.parameters:
        items += ["*", *(f"{p.name}: {p.annotation}" for p in query.parameters)]
    returns = COMMANDS[query.command].returns.format(row=method.row)
    return f"async def {method.method}({', '.join(items)}) -> {returns}:"


_DECODERS = {"bool": "decode_bool"}
"""How SQLite's integer holds each kind of column read row by row, and the codec that reads it."""

_COLUMN_DECODERS = {"datetime": "decode_datetime_column", "json": "decode_json_column"}
"""How SQLite's text holds each kind of column, and the codec that reads a column of rows."""

_ONE_ROW_DECODERS = {"datetime": "decode_datetime", "json": "decode_json"}
"""The same codecs for one value: a single row (a `:one` query's) is read in place."""


def _mappers(row: str, columns: tuple[Field, ...]) -> list[str]:
    """Write the row mappers of one row type: the rows each engine's driver gives, as `row`.

    PostgreSQL's driver gives every column as its Python value already; SQLite's stores
    datetimes and JSON as text, which the codecs read a whole column of the slice at a time
    (one JSON decode per slice, not per row), and booleans as integers, read by position.
    """
    values = []
    one_row = []  # the values of a single row, each read in place
    decoded: list[tuple[str, str]] = []
    # A refusal of a stored value names it by the row type's table (or query) and column, and
    # by its row's id, where the row has one.
    table = snake_case(row.removesuffix("Row"))
    id_at = next((index for index, column in enumerate(columns) if column.name == "id"), None)
    for index, column in enumerate(columns):
        kind = _kind(column.annotation)
        kind = "json" if kind == "list" else kind
        if kind in _COLUMN_DECODERS:
            label = f"{table}.{column.name}"
            decoded.append(
                (f"c{index}", f"{_COLUMN_DECODERS[kind]}(given, {index}, {label!r}, {id_at})")
            )
            values.append(f"c{index}")
            row_id = "None" if id_at is None else f"r[{id_at}]"
            one_row.append(f"{_ONE_ROW_DECODERS[kind]}(r[{index}], {label!r}, {row_id})")
        elif kind in _DECODERS:
            values.append(f"{_DECODERS[kind]}(r[{index}])")
            one_row.append(values[-1])
        else:
            values.append(f"r[{index}]")
            one_row.append(values[-1])
    plain_values = [f"r[{index}]" for index in range(len(columns))]
    plain = [f"return list(map(_new, repeat({row}), rows))"]
    packed = f"({values[0]},)" if len(values) == 1 else f"({', '.join(values)})"
    if decoded:
        targets = ", ".join(["r", *(name for name, _ in decoded)])
        sources = ", ".join(["given", *(call for _, call in decoded)])
        sqlite = [
            "given = rows if isinstance(rows, list) else list(rows)",
            "if len(given) == 1:  # one row: read in place, without a pass per column",
            "    r = given[0]",
            f"    return [_new({row}, ({', '.join(one_row)}))]",
            f"return [_new({row}, {packed}) for {targets} in zip({sources}, strict=True)]",
        ]
    else:
        sqlite = [f"return [_new({row}, {packed}) for r in rows]"]
    bodies = {"postgres": plain, "sqlite": sqlite if values != plain_values else plain}
    lines: list[str] = []
    for engine, body in bodies.items():
        lines += [
            "",
            "",
            f"def {_mapper_name(engine, row)}(rows: Iterable[Any]) -> list[{row}]:",
            *(_INDENT + line for line in body),
        ]
    json_columns = _json_columns(columns)
    if len(json_columns) > 1:
        texts = ", ".join(f"r[{index}]" for index in json_columns)
        lines += [
            "",
            "",
            f"def {_large_name(row)}(r: tuple[Any, ...]) -> object:",
            f"{_INDENT}return max(({texts}), key=length_hint)",
        ]
    return lines


def _json_columns(columns: tuple[Field, ...]) -> list[int]:
    """Give the places of a SQLite row's JSON columns."""
    return [index for index, column in enumerate(columns) if _is_json(column)]


def _is_json(column: Field) -> bool:
    """Whether SQLite holds the column as JSON text, which its row mapper decodes."""
    return _kind(column.annotation) in {"json", "list"}


def _large_name(row: str) -> str:
    return f"_sqlite_{snake_case(row)}_large"


def _large_value(row: str, columns: tuple[Field, ...]) -> str:
    """Give the getter of a SQLite row's JSON text, the longest of them if it has several."""
    json_columns = _json_columns(columns)
    if len(json_columns) > 1:
        return _large_name(row)
    return f"itemgetter({json_columns[0]})"


def _row_to_params(methods: Sequence[Method], rows: Mapping[str, tuple[Field, ...]]) -> list[str]:
    """Write `<method>_params(row)` for each :copyfrom query that writes back a row of its table.

    Such a query (a copy's write) takes as many parameters as the row has columns. The function
    passes the row's fields by name, so that a renamed column or parameter is a type error.
    """
    lines: list[str] = []
    for method in methods:
        query = method.query
        if query.command != ":copyfrom" or len(query.writes) != 1:
            continue
        table = query.writes[0]
        fields = rows.get(f"{camel(table)}Row")
        if fields is None or len(fields) != len(query.parameters):
            continue
        items = ", ".join(f'"{f.name}": row.{f.name}' for f in fields)
        lines += [
            "",
            "",
            f"def {method.method}_params(row: {camel(table)}Row) -> {method.params_type}:",
            *_docstring([f"Give a row of {table} as the parameters of {method.method}."], 1),
            f"{_INDENT}return {{{items}}}",
        ]
    return lines


def _mapper_name(engine: str, row: str) -> str:
    return f"_{engine}_{snake_case(row)}"


def _operator_import(methods: Sequence[Method]) -> list[str]:
    """Import what `SQLITE_LARGE_VALUES` uses: a getter of one JSON column, or `length_hint`."""
    counts = {sum(map(_is_json, m.query.columns)) for m in methods if m.row}
    names = [
        *(["itemgetter"] if 1 in counts else []),
        *(["length_hint"] if max(counts, default=0) > 1 else []),
    ]
    return [f"from operator import {', '.join(names)}"] if names else []


def _imports(methods: Sequence[Method]) -> list[str]:
    text = " ".join(
        f.annotation
        for m in methods
        for f in (
            *(m.query.parameters if m.params_type else ()),
            *(m.query.columns if m.row else ()),
        )
    )
    kinds = {_kind(f.annotation) for m in methods if m.row for f in m.query.columns}
    kinds = {"json" if kind == "list" else kind for kind in kinds}
    codecs = [
        *(_DECODERS[kind] for kind in kinds if kind in _DECODERS),
        *(_COLUMN_DECODERS[kind] for kind in kinds if kind in _COLUMN_DECODERS),
        *(_ONE_ROW_DECODERS[kind] for kind in kinds if kind in _ONE_ROW_DECODERS),
    ]
    typing = ["Any", "Final"]
    if any(m.row for m in methods):
        typing.append("NamedTuple")
    typing.append("Protocol")
    if any(m.params_type for m in methods):
        typing.append("TypedDict")
    ours = [
        "Connection",
        *(["JsonObject"] if "JsonObject" in text else []),
        "QueryFacts",
        "RowMapper",
    ]
    return [
        "from __future__ import annotations",
        "",
        *(["import datetime"] if "datetime.datetime" in text else []),
        "from collections.abc import Callable, Iterable, Mapping",
        "from itertools import repeat",
        *_operator_import(methods),
        f"from typing import {', '.join(typing)}",
        "",
        *([f"from persistence._codecs import {', '.join(sorted(codecs))}"] if codecs else []),
        f"from persistence._interface import {', '.join(ours)}",
    ]


def _writes_constant(methods: Sequence[Method]) -> list[str]:
    """Write the generated `QUERY_WRITES`: the tables each write query changes, by method."""
    lines = ["", "", "QUERY_WRITES: Final[dict[str, frozenset[str]]] = {"]
    for method in methods:
        if method.query.writes:
            names = ", ".join(f'"{table}"' for table in method.query.writes)
            lines.append(f'{_INDENT}"{method.method}": frozenset(({names},)),')
    lines += [
        "}",
        '"""The tables each query changes, by method name; a query that only reads is absent.',
        "",
        "A backend's adapter reports each write query it runs, and `database.py` tells the",
        'caches these tables once the write has committed."""',
        "",
    ]
    return lines


def _facts_constant(methods: Sequence[Method], engines: Sequence[Engine]) -> list[str]:
    """Write the generated `QUERY_FACTS`: each query's facts, by engine and method."""
    lines = ["", "", "QUERY_FACTS: Final[Mapping[str, Mapping[str, QueryFacts]]] = {"]
    for engine in sorted(engines, key=lambda e: ENGINE_FILES[e.name]):
        lines.append(f'{_INDENT}"{ENGINE_FILES[engine.name]}": {{')
        for method in methods:
            query = engine.queries[method.query.name]
            table = "None" if query.collection is None else f'"{query.collection}"'
            lines.append(
                f'{_INDENT * 2}"{method.method}": '
                f'QueryFacts("{query.name}", "{query.operation}", {table}),'
            )
        lines.append(f"{_INDENT}}},")
    lines += [
        "}",
        '"""Each engine\'s queries by method name: what their spans and metrics name."""',
        "",
    ]
    return lines


_QUERIES_DOC = (
    "Every query under sql/queries/, as aiosql loads them from sql/aiosql/.",
    "",
    "This protocol only types the calls. At start-up the loader binds each method to the",
    "engine's aiosql adapter, and a call runs there (see `persistence._loader`). A :many",
    "query gives a list of rows, a :one query a row or None, each row mapped into the row",
    "types above by the engine's mapper below.",
)


def render_module(methods: Sequence[Method], engines: Sequence[Engine]) -> str:
    """Write the source of `persistence.queries`: the planned methods, with every engine's facts."""
    lines = [
        '"""Typed interface of every query under sql/queries/, and the mappers of its rows.',
        "",
        "Generated by `make generate` from the SQL files; do not edit by hand.",
        '"""',
        "",
        *_imports(methods),
    ]
    public = {"Connection", "QUERY_FACTS", "QUERY_WRITES", "Queries", "ROW_MAPPERS", "RUNS_LONG"}
    public.add("SQLITE_LARGE_VALUES")
    public |= {m.row for m in methods if m.row} | {m.params_type for m in methods if m.params_type}
    if any("JsonObject" in line for line in lines):
        public.add("JsonObject")
    ordered = sorted(public, key=lambda name: (not name.isupper(), name))  # as ruff's RUF022
    names = ", ".join(f'"{name}"' for name in ordered)
    lines += ["", f"__all__ = [{names}]", "", "_new: Final = tuple.__new__"]
    written: set[str] = set()
    rows: dict[str, tuple[Field, ...]] = {}
    for method in methods:
        query = method.query
        if method.row is not None and method.row not in written:
            written.add(method.row)
            rows[method.row] = query.columns
            table = query.table if method.row != f"{query.name}Row" else None
            doc = f"A row of {table}." if table else f"A row that {method.method} returns."
            lines += _class(method.row, "NamedTuple", doc, query.columns)
    for method in methods:
        query = method.query
        if method.params_type is not None and method.params_type not in written:
            written.add(method.params_type)
            doc = (
                f"One row for {method.method} to insert."
                if query.command == ":copyfrom"
                else f"The parameters of {method.method}."
            )
            lines += _class(method.params_type, "TypedDict", doc, query.parameters)
    lines += _row_to_params(methods, rows)
    lines += ["", "", "class Queries(Protocol):", *_docstring(_QUERIES_DOC, 1)]
    for method in methods:
        lines += ["", _INDENT + _signature(method)]
        lines += _docstring(method.query.doc, 2) if method.query.doc else [_INDENT * 2 + "..."]
    for row, columns in rows.items():
        lines += _mappers(row, columns)
    lines += ["", "", "ROW_MAPPERS: Final[Mapping[str, Mapping[str, RowMapper]]] = {"]
    for engine in sorted(ENGINE_FILES.values()):
        lines.append(f'{_INDENT}"{engine}": {{')
        lines += [f'{_INDENT * 2}"{row}": {_mapper_name(engine, row)},' for row in rows]
        lines.append(f"{_INDENT}}},")
    lines += [
        "}",
        '"""Each engine\'s row mappers by row type, handed to the adapter as record classes."""',
        "",
        "SQLITE_LARGE_VALUES: Final[Mapping[RowMapper, Callable[[Any], object]]] = {",
    ]
    lines += [
        f"{_INDENT}{_mapper_name('sqlite', row)}: {_large_value(row, columns)},"
        for row, columns in rows.items()
        if any(map(_is_json, columns))
    ]
    lines += [
        "}",
        '"""The JSON text in one of SQLite\'s rows, by the mapper that decodes it: a cheap look.',
        "",
        "A row whose text is past `_loop.OFF_LOOP_SIZE` in length is mapped in a worker thread",
        '(`_loop.map_slices`)."""',
        "",
        "RUNS_LONG: Final[Mapping[str, frozenset[str]]] = {",
    ]
    for marked in sorted(engines, key=lambda e: ENGINE_FILES[e.name]):
        long = sorted(snake_case(q.name) for q in marked.queries.values() if q.runs_long)
        names = ", ".join(f'"{name}"' for name in long)
        value = f"frozenset({{{names}}})" if long else "frozenset()"
        lines.append(f'{_INDENT}"{ENGINE_FILES[marked.name]}": {value},')
    lines += [
        "}",
        '"""Each engine\'s queries marked `-- runs: long`, which its adapter runs off the loop."""',
        "",
    ]
    lines += _writes_constant(methods)
    lines += _facts_constant(methods, engines)
    return "\n".join(lines)


def render_sql(engine: Engine, methods: Sequence[Method]) -> str:
    """Write one engine's queries in aiosql's form, in the order of the generated interface."""
    lines = [
        f"-- Every query under sql/queries/, in aiosql's form, as sqlc analysed it: {engine.name}.",
        "-- Generated by `make generate`; do not edit by hand.",
    ]
    for method in methods:
        query = engine.queries[method.query.name]
        parameters = ", ".join(p.name for p in query.parameters)
        suffix = COMMANDS[query.command].suffix
        lines += ["", f"-- name: {method.method}({parameters}){suffix}"]
        if method.row is not None:
            lines.append(f"-- record_class: {method.row}")
        lines += [f"-- {line}".rstrip() for line in query.doc]
        lines.append(query.sql)
    return "\n".join(lines) + "\n"
