"""What the SQL text of a query says of it: the tables it writes, its operation and its table.

Both are read from sqlc's text of a query, with comments and string literals left out, and
the generated module carries them: `QUERY_WRITES` for the caches, `QUERY_FACTS` for traces.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from codegen.model import CodegenError, json_object, json_str

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["query_facts", "written_tables"]


# --- the tables a query writes ---------------------------------------------------------------

_SQL_NOISE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", re.DOTALL)
_WRITE_TARGET = re.compile(
    r"\b(?P<lead>DO\s+|FOR\s+(?:NO\s+KEY\s+)?)?"
    r"(?P<verb>UPDATE|DELETE\s+FROM|(?:INSERT|REPLACE)(?:\s+OR\s+\w+)?\s+INTO|TRUNCATE(?:\s+TABLE)?)"
    r"\s+(?:ONLY\s+)?(?P<table>\"[^\"]+\"|\w+)",
    re.IGNORECASE,
)


def written_tables(
    engine: str, query: str, raw: Mapping[str, object], tables: Mapping[str, object]
) -> tuple[str, ...]:
    """Name the tables a query changes, sorted: the facts that caches are told after a commit.

    sqlc reports an INSERT's table (`insert_into_table`); UPDATE, DELETE, REPLACE and
    TRUNCATE targets, in the statement or in its WITH clauses, are read from the SQL text,
    with comments and string literals left out (`ON CONFLICT DO UPDATE` and `FOR UPDATE` are
    not writes of their own). A target that is not a table of the schema is an error, so that
    no write goes unannounced.
    """
    found: set[str] = set()
    into = raw.get("insert_into_table")
    if into is not None:
        found.add(
            json_str(json_object(into, f"query {query} insert_into_table").get("name"), query)
        )
    text = _SQL_NOISE.sub(" ", json_str(raw.get("text", ""), f"query {query} text"))
    for match in _WRITE_TARGET.finditer(text):
        if match["lead"]:
            continue
        found.add(match["table"].strip('"'))
    for table in sorted(found):
        if table not in tables:
            raise CodegenError(
                f"{engine}: query {query} writes {table!r}, which is not a table of the schema"
            )
    return tuple(sorted(found))


# --- what traces say of a query -------------------------------------------------------------

_VERB_OR_PAREN = re.compile(r"[()]|\b(?:WITH|SELECT|INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_TABLE_NAMED = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(?:ONLY\s+)?(?P<table>\"[^\"]+\"|\w+)", re.IGNORECASE
)


def query_facts(text: str, tables: Mapping[str, object]) -> tuple[str, str | None]:
    """Give the operation and the table that a query's spans name (`QUERY_FACTS`).

    The operation is the verb of the outermost statement, after any WITH clauses ("" when
    there is none, as in a call of a function). The
    table is the one table of the schema named after FROM, JOIN, INTO or UPDATE anywhere
    in the query; None when it names several (or none), as the tracing conventions ask.
    """
    clean = _SQL_NOISE.sub(" ", text)
    depth = 0
    operation = ""
    for match in _VERB_OR_PAREN.finditer(clean):
        word = match[0].upper()
        if word in "()":
            depth += 1 if word == "(" else -1
        elif depth == 0 and word != "WITH":
            operation = word
            break
    named = {m["table"].strip('"') for m in _TABLE_NAMED.finditer(clean)} & tables.keys()
    return operation, named.pop() if len(named) == 1 else None
