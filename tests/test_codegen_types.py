"""The generator's types: each engine's schema types in Python, and the rows queries share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _codegen_helpers import (
    ENGINES,
    SPELLING,
    Json,
    both,
    column,
    error_of,
    every_command,
    gen,
    one_column,
    param,
    query,
    request,
    things_table,
)

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
