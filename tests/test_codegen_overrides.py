"""The generator's `-- type:` overrides of columns and parameters, and their errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from _codegen_helpers import (
    ENGINES,
    SPELLING,
    Json,
    both,
    column,
    error_of,
    gen,
    param,
    query,
    request,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


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
    assert "decode_json_column(given, 0, 'tags.tags', None)" in generated.source  # no id


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
