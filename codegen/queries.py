r"""Generate what runs: each engine's queries in aiosql's form, and their typed interface.

Run by `make generate`::

    python -m codegen.queries build/sqlc/sqlite/codegen_request.json \
        build/sqlc/postgres/codegen_request.json --output src/persistence/queries.py \
        --sql-output sql/aiosql

Each input is the `codegen_request.json` that `sqlc generate` writes for one engine (its
`settings.engine` says which). The queries are read from sqlc's analysis, never from the
files: sqlc's text of each query, its numbered placeholders named again (`?1` or `$1` becomes
`:id`), is written to `<sql-output>/<engine>.sql` in aiosql's form (see `model.COMMANDS`),
which the package loads with `aiosql.from_path` at run time.

This module is the entry point; the steps are done in the modules beside it.
`codegen.analysis` reads each engine's request into typed queries (`codegen.model`), with
what `codegen.facts` reads from their SQL text; `codegen.methods` checks that the engines
agree and plans one method per query; `codegen.render` writes the module and the SQL files.

Parameters come in the order they first appear in the SQL. The module holds one
`NamedTuple` per result shape, in the column order sqlc reports; a `Queries` protocol with
one method per query (see `model.snake_case`); and each engine's row mappers, which aiosql hands
the adapters as the queries' record classes. A `TypedDict` of a
query's parameters is written for `:copyfrom` rows, and for a query whose comment holds
the line `-- params: typed` (for code that builds those parameters in one place). The
output is left for `ruff format` to lay out, as `make generate` does.

A query whose comment holds the line `-- runs: long` may hold the database for long in one
step that cannot be interrupted (an FTS5 merge inside a delete, bm25 over many terms): it is
listed in the engine's `RUNS_LONG`, and the adapter runs it off the event loop.

Python types come from the schema types that sqlc reports (see `analysis.SQLITE_TYPES` and
`analysis.POSTGRESQL_TYPES`); a type missing from those tables is an error, never `Any`. With
two engines, every query must have the same command, parameters and columns, with the same
Python types, on both.

Overrides
---------
Where sqlc cannot know a type or its nullability, a comment line under the query's
`-- name:` line overrides it, on every engine, before the engines are compared::

    -- type: <column> <pytype>     a result column
    -- type: @<param> <pytype>     a parameter

`<pytype>` is one of `int str float bool bytes datetime json`, optionally followed by `[]`
(a list of it) and then by `?` (nullable) or `!` (not null); without either, sqlc's nullability
stays. A lone `?` or `!` changes the nullability only. A parameter that sqlc marks as an array
stays a list of the new type. A list (`str[]`) is a list on every engine, array or not: SQLite
receives it as JSON text (`json_each(@param)` reads it) and PostgreSQL as an array. Such lines
are not part of the method's docstring. An override of a name the query does not have, a
repeated override, or a malformed one is an error.

Search-index columns
--------------------
A PostgreSQL `tsvector` column (a full-text index kept in the table) is left out of its
table's row type, so that the table's queries keep one row type on every engine. Selecting
one is an error: list the columns a query needs instead of `*`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from codegen.methods import plan_methods, read_engines
from codegen.model import ENGINE_FILES, CodegenError, json_object
from codegen.render import render_module, render_sql

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = ["generate", "generate_sql", "main"]


def generate(requests: Iterable[Mapping[str, object]]) -> str:
    """Return the source of `persistence.queries` for the codegen requests of one or more engines.

    Raise `CodegenError` when a type is unknown, an override is wrong, or the engines disagree.
    """
    engines = read_engines(requests)
    return render_module(plan_methods(engines), engines)


def generate_sql(requests: Iterable[Mapping[str, object]]) -> dict[str, str]:
    """Return each engine's queries in aiosql's form, by file name; errors as `generate`."""
    engines = read_engines(requests)
    methods = plan_methods(engines)
    return {f"{ENGINE_FILES[e.name]}.sql": render_sql(e, methods) for e in engines}


def _load(path: str) -> Mapping[str, object]:
    try:
        data: object = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise CodegenError(f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise CodegenError(f"{path} is not JSON: {error}") from error
    return json_object(data, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Write the module, and the aiosql files, from the codegen requests given; 1 on error."""
    parser = argparse.ArgumentParser(
        prog="python -m codegen.queries",
        description="Write the typed query interface from sqlc's codegen_request.json files.",
    )
    parser.add_argument("inputs", nargs="+", help="codegen_request.json, one per engine")
    parser.add_argument("--output", required=True, help="the Python module to write")
    parser.add_argument("--sql-output", help="the folder to write each engine's aiosql file in")
    args = parser.parse_args(argv)
    try:
        requests = [_load(path) for path in args.inputs]
        source = generate(requests)
        files = generate_sql(requests) if args.sql_output else {}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(source, encoding="utf-8", newline="\n")
        for name, text in files.items():
            folder = Path(args.sql_output)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text, encoding="utf-8", newline="\n")
    except CodegenError as error:
        sys.stderr.write(f"codegen: error: {error}\n")
        return 1
    except OSError as error:
        sys.stderr.write(f"codegen: error: cannot write {args.output}: {error.strerror}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
