"""Synthetic sqlc requests for the generator's tests, and reading what it writes."""

from __future__ import annotations

import ast
import re
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from codegen.model import CodegenError
from codegen.queries import generate, generate_sql

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

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


# --- one query of each command ----------------------------------------------------------------


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
