"""Tests of the generator, codegen/ (run as codegen.queries), that writes `persistence.queries`."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import shutil
import subprocess
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen.model import CodegenError, snake_case
from codegen.queries import generate, generate_sql, main
from persistence import queries
from persistence._codecs import (
    _JOINED_FROM,  # the size from which a column is read at once
    decode_datetime,
    decode_datetime_column,
    decode_json,
    decode_json_column,
    decode_json_text,
)
from persistence.queries import ROW_MAPPERS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from persistence._interface import RowMapper

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("sqlite", "postgresql")

Json = dict[str, object]

# The same Python type, spelt as each engine's sqlc output spells it.
SPELLING: dict[str, dict[str, str]] = {
    "sqlite": {
        "int": "INTEGER",
        "str": "TEXT",
        "float": "REAL",
        "bool": "BOOLEAN",
        "bytes": "BLOB",
        "datetime.datetime": "TIMESTAMP_TEXT",
        "JsonObject": "JSON_TEXT",
    },
    "postgresql": {
        "int": "int8",
        "str": "text",
        "float": "float8",
        "bool": "bool",
        "bytes": "bytea",
        "datetime.datetime": "timestamptz",
        "JsonObject": "jsonb",
    },
}


# --- building synthetic codegen requests ------------------------------------------------------


def column(
    name: str,
    type_name: str,
    *,
    not_null: bool = True,
    is_array: bool = False,
    table: str | None = None,
    schema: str = "",
) -> Json:
    """Build one column as sqlc reports it."""
    return {
        "name": name,
        "not_null": not_null,
        "is_array": is_array,
        "array_dims": 1 if is_array else 0,
        "table": None if table is None else {"catalog": "", "schema": "", "name": table},
        "type": {"catalog": "", "schema": schema, "name": type_name},
    }


def param(number: int, name: str, type_name: str, **options: typing.Any) -> Json:  # noqa: ANN401
    """Build one numbered parameter as sqlc reports it."""
    return {"number": number, "column": column(name, type_name, **options)}


def query(
    name: str,
    cmd: str,
    *,
    params: Sequence[Json] = (),
    columns: Sequence[Json] = (),
    comments: Sequence[str] = (),
    text: str = "",
) -> Json:
    """Build one analysed query."""
    return {
        "name": name,
        "cmd": cmd,
        "text": text,
        "filename": "queries.sql",
        "params": list(params),
        "columns": list(columns),
        "comments": list(comments),
    }


def request(
    engine: str, *queries: Json, tables: Mapping[str, Sequence[Json]] | None = None
) -> Json:
    """Build the codegen request of one engine."""
    schema = "main" if engine == "sqlite" else "public"
    return {
        "settings": {"engine": engine},
        "catalog": {
            "default_schema": schema,
            "schemas": [
                {
                    "name": schema,
                    "tables": [
                        {"rel": {"catalog": "", "schema": "", "name": name}, "columns": list(cols)}
                        for name, cols in (tables or {}).items()
                    ],
                }
            ],
        },
        "queries": list(queries),
    }


def things_table(engine: str) -> list[Json]:
    """Columns of a `things` table: id, name (nullable) and created_at."""
    spell = SPELLING[engine]
    return [
        column("id", spell["int"], table="things"),
        column("name", spell["str"], not_null=False, table="things"),
        column("created_at", spell["datetime.datetime"], table="things"),
    ]


def one_column(engine: str, type_name: str, **options: typing.Any) -> Json:  # noqa: ANN401
    """Build a request whose one query returns one column `value` and takes `@value`."""
    return request(
        engine,
        query(
            "GetValue",
            ":one",
            params=[param(1, "value", type_name, **options)],
            columns=[column("value", type_name, **options)],
        ),
    )


# --- reading the generated source -------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One method of the generated protocol."""

    keyword: str
    args: str
    returns: str
    doc: str | None


@dataclass(frozen=True)
class Generated:
    """The parts of a generated module that the tests look at."""

    source: str
    methods: dict[str, Method]
    typed_dicts: dict[str, dict[str, str]]
    shapes: dict[str, tuple[str, tuple[str, ...]]]


HEADER = re.compile(r"-- name: (?P<method>\w+)\((?P<parameters>[^)]*)\)(?P<suffix>\S*)")


def parse(source: str, sql: str = "") -> Generated:
    """Parse a generated module into its methods and TypedDicts, and aiosql's file into shapes.

    A shape is a query's aiosql suffix (its operation) and its declared parameters.
    """
    tree = ast.parse(source)
    methods: dict[str, Method] = {}
    typed_dicts: dict[str, dict[str, str]] = {}
    shapes: dict[str, tuple[str, tuple[str, ...]]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Queries":
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert item.returns is not None
                    methods[item.name] = Method(
                        keyword="async def" if isinstance(item, ast.AsyncFunctionDef) else "def",
                        args=ast.unparse(item.args),
                        returns=ast.unparse(item.returns),
                        doc=ast.get_docstring(item),
                    )
        elif isinstance(node, ast.ClassDef):
            typed_dicts[node.name] = {
                ast.unparse(item.target): ast.unparse(item.annotation)
                for item in node.body
                if isinstance(item, ast.AnnAssign)
            }
    for line in sql.splitlines():
        header = HEADER.fullmatch(line)
        if header is not None:
            parameters = tuple(p.strip() for p in header["parameters"].split(",") if p.strip())
            shapes[header["method"]] = (header["suffix"], parameters)
    return Generated(source, methods, typed_dicts, shapes)


def gen(*requests: Json) -> Generated:
    """Generate from the requests and parse the result, with the first engine's aiosql file."""
    files = generate_sql(requests)
    return parse(generate(requests), files[min(files)])


def error_of(*requests: Json) -> str:
    """Generate from the requests, which must fail, and return the error message."""
    with pytest.raises(CodegenError) as caught:
        generate(requests)
    return str(caught.value)


def both(build: typing.Callable[[str], Json]) -> list[Json]:
    """Build the same request for both engines."""
    return [build(engine) for engine in ENGINES]


# --- method names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GetTestResult", "get_test_result"),
        ("GetTestResultsByType", "get_test_results_by_type"),
        ("ListHTTPServers", "list_http_servers"),
        ("GetX2Y", "get_x2_y"),
        ("Get2Things", "get2_things"),
        ("Simple", "simple"),
        ("already_snake", "already_snake"),
        ("ABC", "abc"),
    ],
)
def test_snake_case_examples(name: str, expected: str) -> None:
    """Sqlc's CamelCase query names become the loader's snake_case method names."""
    assert snake_case(name) == expected


@given(st.lists(st.from_regex(r"[a-z]{2}[a-z0-9]{0,5}", fullmatch=True), min_size=1, max_size=5))
def test_snake_case_splits_camel_words(words: list[str]) -> None:
    """Joining capitalised words and converting back gives the words joined by underscores."""
    camel = "".join(word[0].upper() + word[1:] for word in words)
    assert snake_case(camel) == "_".join(words)


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,20}", fullmatch=True))
def test_snake_case_is_idempotent(name: str) -> None:
    """Converting an already converted name changes nothing."""
    once = snake_case(name)
    assert snake_case(once) == once
    assert once == once.lower()


# --- commands ---------------------------------------------------------------------------------


def every_command(engine: str) -> Json:
    """Build a request with one query of each command over the `things` table."""
    spell = SPELLING[engine]
    table = things_table(engine)
    return request(
        engine,
        query("GetThing", ":one", params=[param(1, "id", spell["int"])], columns=table),
        query("ListThings", ":many", columns=table),
        query("RecordThing", ":exec", params=[param(1, "name", spell["str"], not_null=False)]),
        query(
            "RenameThing",
            ":execrows",
            params=[param(1, "name", spell["str"]), param(2, "id", spell["int"])],
        ),
        query(
            "InsertThing",
            ":execlastid",
            params=[param(1, "name", spell["str"])],
            columns=[column("id", spell["int"], table="things")],
        ),
        query(
            "InsertThings",
            ":copyfrom",
            params=[
                param(1, "name", spell["str"], not_null=False),
                param(2, "created_at", spell["datetime.datetime"]),
            ],
        ),
        tables={"things": table},
    )


@pytest.mark.parametrize("engines", [("sqlite",), ("postgresql",), ENGINES])
def test_every_command_has_its_signature(engines: tuple[str, ...]) -> None:
    """Each command gets its return type, keyword-only parameters, and :copyfrom a row list."""
    generated = gen(*(every_command(engine) for engine in engines))
    row = "ThingsRow | None"
    assert generated.methods == {
        "get_thing": Method("async def", "self, conn: Connection, *, id: int", row, None),
        "list_things": Method("async def", "self, conn: Connection", "list[ThingsRow]", None),
        "record_thing": Method(
            "async def", "self, conn: Connection, *, name: str | None", "None", None
        ),
        "rename_thing": Method(
            "async def", "self, conn: Connection, *, name: str, id: int", "int", None
        ),
        "insert_thing": Method("async def", "self, conn: Connection, *, name: str", "int", None),
        "insert_things": Method(
            "async def",
            "self, conn: Connection, rows: Iterable[InsertThingsParams], /",
            "None",
            None,
        ),
    }
    assert generated.typed_dicts == {
        "ThingsRow": {"id": "int", "name": "str | None", "created_at": "datetime.datetime"},
        "InsertThingsParams": {"name": "str | None", "created_at": "datetime.datetime"},
    }
    assert generated.shapes == {
        "get_thing": ("^", ("id",)),
        "list_things": ("", ()),
        "record_thing": ("!", ("name",)),
        "rename_thing": ("!", ("name", "id")),
        "insert_thing": ("<!", ("name",)),
        "insert_things": ("*!", ("name", "created_at")),
    }


def test_module_header_and_imports() -> None:
    """The module says it is generated by `make generate` and imports only typing names."""
    tree = ast.parse(gen(*both(every_command)).source)
    doc = ast.get_docstring(tree)
    assert doc is not None
    assert "Generated by `make generate`" in doc
    assert "do not edit by hand" in doc
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in imports}
    assert modules == {
        "__future__",
        "datetime",
        "collections.abc",
        "itertools",
        "typing",
        "persistence._codecs",
        "persistence._interface",
    }


def test_rows_are_named_tuples_and_parameters_typed_dicts() -> None:
    """Rows are NamedTuples, as the backends make them; :copyfrom rows are TypedDicts."""
    tree = ast.parse(gen(*both(every_command)).source)
    bases = {
        node.name: ast.unparse(node.bases[0])
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name != "Queries"
    }
    assert bases == {"ThingsRow": "NamedTuple", "InsertThingsParams": "TypedDict"}


def test_params_typed_asks_for_a_parameters_type() -> None:
    """A query whose comment says `params: typed` gets a TypedDict of its parameters."""
    generated = gen(
        request(
            "sqlite",
            query(
                "Rename",
                ":exec",
                params=[param(1, "name", "TEXT"), param(2, "at", "TIMESTAMP_TEXT")],
                comments=[" Rename it.", " params: typed"],
            ),
        )
    )
    assert generated.typed_dicts == {"RenameParams": {"name": "str", "at": "datetime.datetime"}}
    assert generated.methods["rename"].doc == "Rename it."


def test_params_typed_without_parameters_is_an_error() -> None:
    """Asking for a parameters type of a query without parameters is an error naming it."""
    message = error_of(request("sqlite", query("Touch", ":exec", comments=[" params: typed"])))
    assert "Touch" in message


def test_runs_long_lists_the_query_for_its_engine_only() -> None:
    """A query marked `runs: long` on one engine is in that engine's RUNS_LONG, not its doc."""

    def build(engine: str) -> Json:
        marks = [" Purge them.", " runs: long"] if engine == "sqlite" else [" Purge them."]
        return request(engine, query("PurgeThings", ":exec", comments=marks))

    source = generate(both(build))
    (assign,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "RUNS_LONG"
    ]
    assert assign.value is not None
    runs_long = eval(ast.unparse(assign.value), {"frozenset": frozenset})  # noqa: S307  # the generated value
    assert runs_long == {"postgres": frozenset(), "sqlite": frozenset({"purge_things"})}
    assert parse(source).methods["purge_things"].doc == "Purge them."


def test_aiosql_files_carry_operations_record_classes_and_named_sql() -> None:
    """Each engine's file names each query's parameters, operation and record class.

    Its SQL is sqlc's text, each numbered placeholder named again.
    """
    files = generate_sql(both(every_command))
    assert set(files) == {"sqlite.sql", "postgres.sql"}
    text = files["sqlite.sql"]
    assert "-- name: get_thing(id)^\n-- record_class: ThingsRow\n" in text
    assert "-- name: insert_things(name, created_at)*!\n" in text
    assert "?" not in text.replace("-- ", "")


def test_placeholders_are_named_outside_quotes_and_comments() -> None:
    """`?1` and `$1` become `:name`; in a string or a comment they stay or go, never change."""
    built = request(
        "postgresql",
        query(
            "Find",
            ":exec",
            params=[param(1, "name", "text"), param(2, "id", "int8")],
            text="UPDATE things SET name = $1 -- $2 here\nWHERE note = '$1' AND id = $2::int8",
        ),
        tables={"things": things_table("postgresql")},  # a write names a table of the schema
    )
    (text,) = generate_sql([built]).values()
    assert "UPDATE things SET name = :name\nWHERE note = '$1' AND id = :id::int8;" in text


def test_rows_are_mapped_with_each_engine_codecs() -> None:
    """SQLite's mapper reads a column of datetimes at once; PostgreSQL's takes rows as given."""
    source = " ".join(gen(*both(every_command)).source.split())
    assert (
        "_new(ThingsRow, (r[0], r[1], c2)) for r, c2 in zip(given, "
        "decode_datetime_column(given, 2), strict=True)"
    ) in source
    assert "return list(map(_new, repeat(ThingsRow), rows))" in source
    assert '"sqlite": { "ThingsRow": _sqlite_things_row, }' in source


def test_column_decoders_read_each_row_as_the_row_decoders_do() -> None:
    """A column read at once gives what each row read alone gives, odd values included."""
    rows = [
        (1, '{"a":[1,2]}', "2026-01-01T00:00:00.000001+00:00"),
        (2, "{}", "2026-01-02T00:00:00.000000+00:00"),
        (3, ' { "a" : 1 } ', None),
    ]
    assert decode_json_column(rows, 1) == [decode_json(row[1]) for row in rows]
    assert decode_datetime_column(rows, 2) == [decode_datetime(row[2]) for row in rows]
    assert decode_json_column([(None,), ("[1]",)], 0) == [None, [1]]
    assert decode_json_column([], 0) == []
    many = decode_json_column([(f'{{"key":{n}}}',) for n in range(_JOINED_FROM)], 0)
    first, second = many[0], many[-1]
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert next(iter(first)) is next(iter(second))  # one string for a key repeated in rows
    with pytest.raises(ValueError, match="Expecting"):
        decode_json_column([("{}",), ("{",)], 0)
    for text in ('{"a":[1,2.5,"x"]}', ' {"a":1} ', "null", '"s"', "[]"):
        assert decode_json_text(text) == json.loads(text)
    for bad in ("", "{", '{"a":1} x', "[1,]"):  # json's reason: 3.13 names a trailing comma
        with pytest.raises(ValueError, match=r"Expecting|Extra data|Illegal trailing comma"):
            decode_json_text(bad)


_STORED = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda moment: moment.isoformat()),
    st.sampled_from(["{}", '{"a":[1,2]}', "[]", " [1] ", "null", "{", '"x"']),
)
"""What a SQLite column may hold: odd values included, for the mapper to read or refuse."""


def _mapped(mapper: RowMapper, rows: list[tuple[object, ...]]) -> object:
    """The first row as `mapper` maps it among `rows`, or the kind of error it raises."""
    try:
        return mapper(rows)[0]
    except (ValueError, TypeError) as error:
        return type(error)


@given(row=st.lists(_STORED, min_size=20, max_size=20), copies=st.integers(2, _JOINED_FROM + 1))
def test_a_single_row_maps_as_it_does_among_others(row: list[object], copies: int) -> None:
    """Each SQLite mapper reads one row in place; it gives what its column passes give.

    A `:one` query maps a single row, so the generated mapper reads it value by value instead
    of a column at a time: the two ways must agree on every value, and refuse the same ones.
    """
    for name, mapper in ROW_MAPPERS["sqlite"].items():
        width = len(getattr(queries, name)._fields)
        stored = tuple(row[:width])
        assert _mapped(mapper, [stored]) == _mapped(mapper, [stored] * copies), name


def test_parameters_follow_sqlc_numbering() -> None:
    """Parameters come in sqlc's number order, whatever order the request lists them in."""
    generated = gen(
        request(
            "sqlite",
            query(
                "Update",
                ":exec",
                params=[param(2, "b", "TEXT"), param(1, "a", "INTEGER"), param(3, "c", "REAL")],
            ),
        )
    )
    assert generated.shapes["update"] == ("!", ("a", "b", "c"))
    assert generated.methods["update"].args == "self, conn: Connection, *, a: int, b: str, c: float"


def test_parameters_follow_their_first_use_in_the_sql() -> None:
    """Parameters come in the order they first appear in the text, as the loader lists them.

    sqlc numbers OFFSET's parameter before LIMIT's, though LIMIT comes first in SQLite's text.
    """
    built = request(
        "sqlite",
        query(
            "Page",
            ":exec",
            params=[param(1, "skip", "INTEGER"), param(2, "page_size", "INTEGER")],
            text="SELECT 1 FROM things LIMIT ?2 OFFSET ?1",
        ),
    )
    generated = gen(built)
    assert generated.shapes["page"] == ("!", ("page_size", "skip"))


def test_comments_become_docstrings() -> None:
    """The comment lines under a query's name become its method's docstring."""
    generated = gen(
        request(
            "sqlite",
            query(
                "Touch",
                ":exec",
                comments=[" Touch everything.", ' Even "quoted" things\\.'],
            ),
        )
    )
    assert generated.methods["touch"].doc == 'Touch everything.\nEven "quoted" things\\.'


@pytest.mark.parametrize("command", [":batchexec", ":execresult", ":one!"])
def test_unsupported_command_is_an_error(command: str) -> None:
    """A command the loader does not understand is an error naming the query."""
    message = error_of(request("sqlite", query("Odd", command)))
    assert "Odd" in message
    assert command in message


@pytest.mark.parametrize("command", [":one", ":many"])
def test_row_query_without_columns_is_an_error(command: str) -> None:
    """A :one or :many query that returns nothing is an error."""
    assert "Empty" in error_of(request("sqlite", query("Empty", command)))


# --- types ------------------------------------------------------------------------------------

TYPE_CASES = [
    *(
        ("sqlite", name, expected)
        for expected, names in {
            "int": ["INTEGER", "INT", "BIGINT", "integer", "Int"],
            "str": ["TEXT", "text"],
            "float": ["REAL", "DOUBLE PRECISION", "doubleprecision", "FLOAT", "real"],
            "datetime.datetime": ["TIMESTAMP_TEXT", "timestamp_text"],
            "JsonObject": ["JSON_TEXT"],
            "bytes": ["BLOB"],
            "bool": ["BOOLEAN"],
        }.items()
        for name in names
    ),
    *(
        ("postgresql", name, expected)
        for expected, names in {
            "int": [
                "int2",
                "int4",
                "int8",
                "smallint",
                "integer",
                "bigint",
                "serial",
                "bigserial",
                "pg_catalog.int8",
                "INT4",
            ],
            "str": ["text", "varchar", "bpchar", "pg_catalog.varchar"],
            "float": ["float4", "float8", "real", "double precision", "pg_catalog.float8"],
            "datetime.datetime": ["timestamptz"],
            "JsonObject": ["json", "jsonb"],
            "bool": ["bool", "boolean", "pg_catalog.bool"],
            "bytes": ["bytea"],
        }.items()
        for name in names
    ),
]


@pytest.mark.parametrize(("engine", "type_name", "expected"), TYPE_CASES)
def test_types_map_to_python(engine: str, type_name: str, expected: str) -> None:
    """Each schema type of each engine gives its Python type, for columns and parameters."""
    generated = gen(one_column(engine, type_name))
    assert generated.typed_dicts["GetValueRow"] == {"value": expected}
    assert generated.methods["get_value"].args == f"self, conn: Connection, *, value: {expected}"


@pytest.mark.parametrize("type_name", ["int8", "float8", "bool", "varchar"])
def test_pg_catalog_schema_is_stripped(type_name: str) -> None:
    """A postgresql type given with schema `pg_catalog` maps like the bare name."""
    bare = gen(one_column("postgresql", type_name))
    qualified = gen(one_column("postgresql", type_name, schema="pg_catalog"))
    assert qualified.typed_dicts == bare.typed_dicts


@pytest.mark.parametrize("engine", ENGINES)
def test_nullable_becomes_optional(engine: str) -> None:
    """A column or parameter that may be NULL is `X | None`."""
    generated = gen(one_column(engine, SPELLING[engine]["str"], not_null=False))
    assert generated.typed_dicts["GetValueRow"] == {"value": "str | None"}
    assert generated.methods["get_value"].args.endswith("value: str | None")


@pytest.mark.parametrize(
    ("not_null", "expected"), [(True, "list[str]"), (False, "list[str] | None")]
)
def test_arrays_become_lists(not_null: bool, expected: str) -> None:  # noqa: FBT001
    """An array column or parameter is a list of its element type."""
    generated = gen(one_column("postgresql", "text", is_array=True, not_null=not_null))
    assert generated.typed_dicts["GetValueRow"] == {"value": expected}
    assert generated.methods["get_value"].args.endswith(f"value: {expected}")


@pytest.mark.parametrize(
    ("engine", "type_name"),
    [
        ("sqlite", "any"),
        ("sqlite", "TIMESTAMP"),
        ("sqlite", "JSON"),
        ("postgresql", "any"),
        ("postgresql", "anyarray"),
        ("postgresql", "numeric"),
        ("postgresql", "timestamp"),
    ],
)
def test_unknown_column_type_names_engine_query_and_column(engine: str, type_name: str) -> None:
    """An unmapped column type is an error naming the engine, the query and the column."""
    message = error_of(
        request(engine, query("Broken", ":many", columns=[column("mystery", type_name)]))
    )
    assert engine in message
    assert "Broken" in message
    assert "mystery" in message
    assert type_name in message


@pytest.mark.parametrize("engine", ENGINES)
def test_unknown_parameter_type_names_engine_query_and_parameter(engine: str) -> None:
    """An unmapped parameter type (sqlc's `any`) is an error naming the parameter."""
    message = error_of(request(engine, query("Filter", ":exec", params=[param(1, "ids", "any")])))
    assert engine in message
    assert "Filter" in message
    assert "@ids" in message


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(SPELLING["sqlite"])), st.booleans()),
        min_size=1,
        max_size=8,
    )
)
def test_random_rows_keep_order_and_types(fields: list[tuple[str, bool]]) -> None:
    """Any mix of types and nullability comes out as the same fields, in column order."""

    def build(engine: str) -> Json:
        columns = [
            column(f"c{i}", SPELLING[engine][python], not_null=not_null)
            for i, (python, not_null) in enumerate(fields)
        ]
        return request(engine, query("Pick", ":many", columns=columns))

    generated = gen(*both(build))
    assert generated.typed_dicts["PickRow"] == {
        f"c{i}": python if not_null else f"{python} | None"
        for i, (python, not_null) in enumerate(fields)
    }


# --- row names --------------------------------------------------------------------------------


def test_table_shaped_queries_share_the_table_row() -> None:
    """Queries returning every column of a table, in order, share `<Table>Row`."""
    generated = gen(*both(every_command))
    assert generated.methods["get_thing"].returns == "ThingsRow | None"
    assert generated.methods["list_things"].returns == "list[ThingsRow]"
    assert "GetThingRow" not in generated.typed_dicts


@pytest.mark.parametrize(
    "order",
    [
        ["id", "name"],  # a subset
        ["name", "id", "created_at"],  # another order
    ],
)
def test_other_shapes_get_the_query_row(order: list[str]) -> None:
    """A query returning some columns, or all in another order, gets `<Query>Row`."""

    def build(engine: str) -> Json:
        table = things_table(engine)
        by_name = {str(c["name"]): c for c in table}
        return request(
            engine,
            query("Peek", ":many", columns=[by_name[name] for name in order]),
            tables={"things": table},
        )

    generated = gen(*both(build))
    assert generated.methods["peek"].returns == "list[PeekRow]"
    assert list(generated.typed_dicts["PeekRow"]) == order


def test_overridden_table_columns_get_the_query_row() -> None:
    """Overriding a table column's type makes the shape the query's own."""

    def build(engine: str) -> Json:
        table = things_table(engine)
        return request(
            engine,
            query("Named", ":one", columns=table, comments=[" type: name !"]),
            tables={"things": table},
        )

    generated = gen(*both(build))
    assert generated.methods["named"].returns == "NamedRow | None"
    assert generated.typed_dicts["NamedRow"]["name"] == "str"


def test_search_index_columns_are_left_out_of_the_table_row() -> None:
    """A postgresql tsvector column is not part of its table's row, so both engines share it."""

    def build(engine: str) -> Json:
        table = things_table(engine)
        catalog = table
        if engine == "postgresql":
            catalog = [*table, column("search", "tsvector", table="things")]
        return request(engine, query("GetThing", ":one", columns=table), tables={"things": catalog})

    generated = gen(*both(build))
    assert generated.methods["get_thing"].returns == "ThingsRow | None"
    assert "search" not in generated.typed_dicts["ThingsRow"]


def test_selecting_a_search_index_is_an_error() -> None:
    """A query that returns a tsvector column is an error that says to list the columns."""
    built = request(
        "postgresql",
        query("Everything", ":many", columns=[column("search", "tsvector", table="things")]),
    )
    message = error_of(built)
    assert "Everything" in message
    assert "search index" in message


def test_two_shapes_with_one_name_is_an_error() -> None:
    """A query named like a table row but with another shape is an error naming both."""
    table = things_table("sqlite")
    message = error_of(
        request(
            "sqlite",
            query("ListThings", ":many", columns=table),
            query("Things", ":many", columns=table[:1]),
            tables={"things": table},
        )
    )
    assert "ThingsRow" in message
    assert "ListThings" in message
    assert "Things" in message


def test_duplicate_column_names_are_an_error() -> None:
    """A row with two columns of the same name (a join) is an error naming the column."""
    message = error_of(
        request(
            "sqlite",
            query("Join", ":many", columns=[column("id", "INTEGER"), column("id", "INTEGER")]),
        )
    )
    assert "Join" in message
    assert "'id'" in message


@pytest.mark.parametrize(("kind", "name"), [("param", "class"), ("param", "conn"), ("col", "a b")])
def test_unusable_names_are_errors(kind: str, name: str) -> None:
    """A parameter or column that cannot be a Python name here is an error naming it."""
    if kind == "param":
        built = query("Bad", ":exec", params=[param(1, name, "TEXT")])
    else:
        built = query("Bad", ":many", columns=[column(name, "TEXT")])
    message = error_of(request("sqlite", built))
    assert "Bad" in message
    assert name in message


def test_method_name_clash_is_an_error() -> None:
    """Two query names that give the same method name are an error naming both."""
    message = error_of(request("sqlite", query("GetHTTP", ":exec"), query("GetHttp", ":exec")))
    assert "GetHTTP" in message
    assert "GetHttp" in message


# --- overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("type: value int", "int | None"),
        ("type: value str", "str | None"),
        ("type: value float", "float | None"),
        ("type: value bool", "bool | None"),
        ("type: value bytes", "bytes | None"),
        ("type: value datetime", "datetime.datetime | None"),
        ("type: value json", "JsonObject | None"),
        ("type: value float?", "float | None"),
        ("type: value datetime!", "datetime.datetime"),
        ("type: value ?", "str | None"),
        ("type: value !", "str"),
        ("type:   value    int?  ", "int | None"),
    ],
)
@pytest.mark.parametrize("engine", ENGINES)
def test_column_overrides(engine: str, line: str, expected: str) -> None:
    """A `-- type: <column> <pytype>` line sets the type; a `?` or `!` suffix the nullability."""
    built = request(
        engine,
        query(
            "GetValue",
            ":one",
            columns=[column("value", SPELLING[engine]["str"], not_null=False)],
            comments=[" The value.", " " + line],
        ),
    )
    generated = gen(built)
    assert generated.typed_dicts["GetValueRow"] == {"value": expected}
    assert generated.methods["get_value"].doc == "The value."


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("type: @ids str", "str"),
        ("type: @ids json?", "JsonObject | None"),
        ("type: @ids int!", "int"),
    ],
)
def test_parameter_overrides(line: str, expected: str) -> None:
    """A `-- type: @<param> <pytype>` line types a parameter sqlc could not, on both engines."""

    def build(engine: str) -> Json:
        return request(
            engine,
            query("ByIds", ":exec", params=[param(1, "ids", "any")], comments=[line]),
        )

    generated = gen(*both(build))
    assert generated.methods["by_ids"].args == f"self, conn: Connection, *, ids: {expected}"


def test_override_keeps_arrays() -> None:
    """An override of an array parameter changes its element type."""
    built = request(
        "postgresql",
        query(
            "ByIds",
            ":exec",
            params=[param(1, "ids", "text", is_array=True)],
            comments=["type: @ids int"],
        ),
    )
    assert gen(built).methods["by_ids"].args.endswith("ids: list[int]")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("type: @ids str[]", "list[str]"),
        ("type: @ids str[]?", "list[str] | None"),
        ("type: @ids int[]!", "list[int]"),
    ],
)
def test_list_overrides_type_a_list_on_both_engines(line: str, expected: str) -> None:
    """`str[]` makes sqlite's untyped parameter and postgresql's array the same list."""
    sqlite = request(
        "sqlite", query("ByIds", ":exec", params=[param(1, "ids", "any")], comments=[line])
    )
    postgres = request(
        "postgresql",
        query("ByIds", ":exec", params=[param(1, "ids", "text", is_array=True)], comments=[line]),
    )
    generated = gen(sqlite, postgres)
    assert generated.methods["by_ids"].args == f"self, conn: Connection, *, ids: {expected}"


def test_without_a_list_override_the_engines_disagree() -> None:
    """A plain `str` override leaves sqlite's parameter a str and postgresql's a list: an error."""
    line = "type: @ids str"
    sqlite = request(
        "sqlite", query("ByIds", ":exec", params=[param(1, "ids", "any")], comments=[line])
    )
    postgres = request(
        "postgresql",
        query("ByIds", ":exec", params=[param(1, "ids", "text", is_array=True)], comments=[line]),
    )
    message = error_of(sqlite, postgres)
    assert "parameter @ids is list[str] on postgresql but str on sqlite" in message


def test_list_override_of_a_column_is_a_list() -> None:
    """A column may be overridden as a list too; the backend decodes it as JSON on sqlite."""
    built = request(
        "sqlite",
        query("Tags", ":one", columns=[column("tags", "any")], comments=["type: tags str[]!"]),
    )
    generated = gen(built)
    assert generated.typed_dicts["TagsRow"] == {"tags": "list[str]"}
    assert "decode_json_column(given, 0)" in generated.source


def test_max_needs_and_takes_an_override() -> None:
    """`-- type: max_time float?` corrects the NOT NULL that sqlc gives MAX, on both engines."""

    def build(comments: Sequence[str]) -> list[Json]:
        return [
            request(
                engine,
                query(
                    "TestResultStats",
                    ":many",
                    columns=[
                        column("test_type", SPELLING[engine]["str"], table="test_results"),
                        column("result_count", "integer" if engine == "sqlite" else "bigint"),
                        column("max_time", "doubleprecision" if engine == "sqlite" else "float8"),
                    ],
                    comments=comments,
                ),
            )
            for engine in ENGINES
        ]

    without = gen(*build([" Stats."])).typed_dicts["TestResultStatsRow"]
    assert without["max_time"] == "float"
    fixed = gen(*build([" Stats.", " type: max_time float?"])).typed_dicts["TestResultStatsRow"]
    assert fixed == {"test_type": "str", "result_count": "int", "max_time": "float | None"}


def test_overrides_make_engines_agree() -> None:
    """An override applies to each engine before they are compared."""
    comments = [" type: longest float?"]
    sqlite = request(
        "sqlite", query("Longest", ":one", columns=[column("longest", "any")], comments=comments)
    )
    postgres = request(
        "postgresql",
        query("Longest", ":one", columns=[column("longest", "anyarray")], comments=comments),
    )
    assert gen(sqlite, postgres).typed_dicts["LongestRow"] == {"longest": "float | None"}


@pytest.mark.parametrize(
    "line",
    [
        "type:",
        "type: value",
        "type: @value",
        "type: value int extra",
        "type: value integer",
        "type: value Int",
        "type: value int?!",
        "type: value ??",
        "type: value ?int",
        "type: 1value int",
        "type: @ int",
        "type: value-x int",
        "type: @@value int",
        "type: value []",
        "type: value []?",
        "type: value str[][]",
        "type: value str []",
        "type: value str?[]",
    ],
)
def test_malformed_overrides_are_errors(line: str) -> None:
    """Each malformed `-- type:` line is an error naming the query and the line."""
    built = request(
        "sqlite",
        query(
            "GetValue",
            ":one",
            params=[param(1, "value", "TEXT")],
            columns=[column("value", "TEXT")],
            comments=[" " + line],
        ),
    )
    message = error_of(built)
    assert "GetValue" in message
    assert "malformed override" in message
    assert line.strip() in message


@pytest.mark.parametrize(
    ("line", "named"),
    [("type: missing int", "'missing'"), ("type: @missing int", "@missing")],
)
def test_override_of_unknown_name_is_an_error(line: str, named: str) -> None:
    """An override of a column or parameter the query does not have is an error naming both."""
    built = request(
        "sqlite",
        query(
            "GetValue",
            ":one",
            params=[param(1, "value", "TEXT")],
            columns=[column("value", "TEXT")],
            comments=[line],
        ),
    )
    message = error_of(built)
    assert "GetValue" in message
    assert named in message


def test_parameter_override_does_not_touch_the_column_of_that_name() -> None:
    """`@value` and `value` are different targets: a parameter override leaves the column alone."""
    built = request(
        "sqlite",
        query(
            "GetValue",
            ":one",
            params=[param(1, "value", "TEXT")],
            columns=[column("value", "TEXT")],
            comments=["type: @value int"],
        ),
    )
    generated = gen(built)
    assert generated.typed_dicts["GetValueRow"] == {"value": "str"}
    assert generated.methods["get_value"].args.endswith("value: int")


def test_repeated_override_is_an_error() -> None:
    """Overriding the same column twice is an error naming the query."""
    built = request(
        "sqlite",
        query(
            "GetValue",
            ":one",
            columns=[column("value", "TEXT")],
            comments=["type: value int", "type: value str"],
        ),
    )
    assert "GetValue" in error_of(built)


# --- two engines ------------------------------------------------------------------------------


def pair(sqlite: Sequence[Json], postgres: Sequence[Json]) -> tuple[Json, Json]:
    """Build the two engines' requests from their queries."""
    return request("sqlite", *sqlite), request("postgresql", *postgres)


@pytest.mark.parametrize(
    ("sqlite", "postgres", "named"),
    [
        pytest.param(
            [query("Only", ":exec")], [], ["Only", "postgresql"], id="missing-on-postgresql"
        ),
        pytest.param([], [query("Only", ":exec")], ["Only", "sqlite"], id="missing-on-sqlite"),
        pytest.param(
            [query("Cmd", ":exec")], [query("Cmd", ":execrows")], ["Cmd", ":execrows"], id="command"
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT"), param(2, "b", "TEXT")])],
            [query("P", ":exec", params=[param(1, "b", "text"), param(2, "a", "text")])],
            ["P", "@a", "@b"],
            id="parameter-order",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "text"), param(2, "extra", "text")])],
            ["P", "@extra"],
            id="extra-parameter",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "int8")])],
            ["P", "@a", "str", "int"],
            id="parameter-type",
        ),
        pytest.param(
            [query("P", ":exec", params=[param(1, "a", "TEXT")])],
            [query("P", ":exec", params=[param(1, "a", "text", not_null=False)])],
            ["P", "@a", "str | None"],
            id="parameter-nullability",
        ),
        pytest.param(
            [query("C", ":many", columns=[column("a", "TEXT")])],
            [query("C", ":many", columns=[column("b", "text")])],
            ["C", "(a)", "(b)"],
            id="column-names",
        ),
        pytest.param(
            [query("C", ":many", columns=[column("a", "REAL")])],
            [query("C", ":many", columns=[column("a", "int8")])],
            ["C", "column a", "float", "int"],
            id="column-type",
        ),
        pytest.param(
            [query("C", ":one", columns=[column("a", "TEXT", not_null=False)])],
            [query("C", ":one", columns=[column("a", "text")])],
            ["C", "column a", "str | None"],
            id="column-nullability",
        ),
    ],
)
def test_engine_disagreements_are_errors(
    sqlite: Sequence[Json], postgres: Sequence[Json], named: Sequence[str]
) -> None:
    """Any difference between the engines' views of a query is an error naming what differs."""
    message = error_of(*pair(sqlite, postgres))
    for part in named:
        assert part in message


def test_same_engine_twice_is_an_error() -> None:
    """Two requests for one engine are an error."""
    assert "sqlite" in error_of(request("sqlite"), request("sqlite"))


def test_unsupported_engine_is_an_error() -> None:
    """An engine other than sqlite or postgresql is an error naming it."""
    assert "mysql" in error_of(request("mysql"))


# --- stability and the command line -----------------------------------------------------------


def test_output_is_stable() -> None:
    """The same input gives the same bytes, whatever order the engines are given in."""
    sqlite, postgres = every_command("sqlite"), every_command("postgresql")
    first = generate([sqlite, postgres])
    assert generate([sqlite, postgres]) == first
    assert generate([postgres, sqlite]) == first


def test_main_writes_the_module(tmp_path: Path) -> None:
    """`main` reads the JSON files and writes the module, returning 0."""
    inputs = []
    for engine in ENGINES:
        path = tmp_path / f"{engine}.json"
        path.write_text(json.dumps(every_command(engine)), encoding="utf-8")
        inputs.append(str(path))
    output = tmp_path / "out.py"
    assert main([*inputs, "--output", str(output), "--sql-output", str(tmp_path / "sql")]) == 0
    requests = [every_command(engine) for engine in ENGINES]
    assert output.read_bytes() == generate(requests).encode()
    for name, text in generate_sql(requests).items():
        assert (tmp_path / "sql" / name).read_text(encoding="utf-8") == text


def test_main_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`main` prints a CodegenError to stderr, writes nothing and returns 1."""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(one_column("sqlite", "any")), encoding="utf-8")
    output = tmp_path / "out.py"
    assert main([str(path), "--output", str(output)]) == 1
    assert "GetValue" in capsys.readouterr().err
    assert not output.exists()
    assert main([str(tmp_path / "missing.json"), "--output", str(output)]) == 1
    assert "missing.json" in capsys.readouterr().err


# --- end to end on sql/ -----------------------------------------------------------------------


def tool(name: str) -> str | None:
    """Find a command-line tool next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def run_sqlc(workdir: Path, edit: typing.Callable[[Path], None] | None = None) -> list[Json]:
    """Copy sqlc.yaml and sql/ into workdir, apply edit, run `sqlc generate` and load its output."""
    sqlc = tool("sqlc")
    if sqlc is None:
        pytest.skip("the sqlc binary is not installed")
    shutil.copy(ROOT / "sqlc.yaml", workdir / "sqlc.yaml")
    shutil.copytree(ROOT / "sql", workdir / "sql")
    if edit is not None:
        edit(workdir)
    subprocess.run([sqlc, "generate"], cwd=workdir, check=True, capture_output=True)
    paths = sorted((workdir / "build" / "sqlc").glob("*/codegen_request.json"))
    assert len(paths) == 2
    return [json.loads(path.read_text(encoding="utf-8")) for path in paths]


@pytest.fixture(scope="module")
def real_requests(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    """Give the codegen requests that sqlc writes for the real sql/ folder."""
    return run_sqlc(tmp_path_factory.mktemp("sqlc"))


def test_real_interface_has_the_expected_shapes(real_requests: list[Json]) -> None:
    """The real queries give the table rows and commands other code relies on."""
    generated = parse(generate(real_requests), generate_sql(real_requests)["sqlite.sql"])
    assert {
        "TestResultsRow",
        "ConfigEntriesRow",
        "FileRecordsRow",
        "PersistenceMigrationsRow",
    } <= set(generated.typed_dicts)
    assert generated.methods["get_test_result"].returns == "TestResultsRow | None"
    assert generated.shapes["insert_test_results"][0] == "*!"
    stats = generated.typed_dicts["TestResultStatsRow"]
    assert stats["max_time"] == "float"  # sqlc's NOT NULL, right only because of GROUP BY


def test_override_comment_reaches_the_generator_through_sqlc(tmp_path: Path) -> None:
    """A `-- type:` line in a real query file passes through sqlc and changes the type."""

    def add_override(workdir: Path) -> None:
        path = workdir / "sql" / "queries" / "test_results.sql"
        text = path.read_text(encoding="utf-8")
        marker = "-- name: TestResultStats :many\n"
        assert marker in text
        path.write_text(
            text.replace(marker, marker + "-- type: max_time float?\n"), encoding="utf-8"
        )

    generated = parse(generate(run_sqlc(tmp_path, add_override)))
    assert generated.typed_dicts["TestResultStatsRow"]["max_time"] == "float | None"
    assert generated.methods["test_result_stats"].doc is not None
    assert "type:" not in generated.methods["test_result_stats"].doc


def test_generated_typed_dicts_resolve_at_runtime() -> None:
    """The committed module imports and its TypedDicts' annotations resolve at runtime."""
    from persistence import queries as _queries  # noqa: PLC0415 - imported here so a stale file fails one test

    hints = typing.get_type_hints(_queries.ConfigEntriesRow)
    assert hints["description"] == str | None
    rows = {name for name in dir(_queries) if name.endswith("Row")}
    assert set(_queries.ROW_MAPPERS) == {"sqlite", "postgres"}
    for mappers in _queries.ROW_MAPPERS.values():
        assert set(mappers) == rows
