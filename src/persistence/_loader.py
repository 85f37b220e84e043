"""Read the query files, written in sqlc's form, and hand them to aiosql in its own form.

sqlc and aiosql read the same files, so nothing is written twice. The translation:

- `-- name: GetTestResult :one` becomes `-- name: get_test_result(id)^`;
- `@id`, `sqlc.arg(id)` and `sqlc.narg(id)` become `:id`;
- the comment lines under the name stay as the query's docstring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeGuard

import aiosql
import aiosql.queries
import attrs

from persistence._interface import COMMANDS, Command, QueryShape
from persistence.exceptions import QueryFileError, QueryInterfaceError, SqlFilesMissingError
from persistence.queries import QUERY_SHAPES

if TYPE_CHECKING:
    from persistence.queries import Queries

__all__ = [
    "ParsedQuery",
    "load_queries",
    "parse_query_file",
    "parse_query_text",
    "read_queries",
    "snake_case",
    "sql_root",
    "to_aiosql",
]

_DIRECTIVES: Final = ("type:", "params:")
"""Comment lines that speak to the generator, not to the reader."""
_NAME_LINE = re.compile(r"--\s*name:\s*(?P<rest>.*)$")
_NAME_AND_COMMAND = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9]*)\s+(?P<command>:[a-z]+)")
# The generator (codegen/queries.py) names the interface's methods by the same rule.
_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# One token at a time: the parts that may hold an `@` or `:` that is not a parameter come first.
_TOKENS = re.compile(
    r"""
      (?P<squote>'(?:[^']|'')*')
    | (?P<dquote>"(?:[^"]|"")*")
    | (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<cast>::)
    | sqlc\.(?P<macro>arg|narg)\(\s*(?P<macro_name>[A-Za-z_][A-Za-z0-9_]*)\s*\)
    | sqlc\.(?P<unsupported>[a-z_]+)\(
    | @(?P<at_name>[A-Za-z_][A-Za-z0-9_]*)
    | :(?P<colon_name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<other>[^'"\-/:@s]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)


@attrs.frozen
class ParsedQuery:
    """One query of a file, in both forms."""

    name: str
    method: str
    command: Command
    doc: str
    sql: str
    parameters: tuple[str, ...]
    path: str
    line: int


def snake_case(name: str) -> str:
    """Turn a sqlc query name such as `GetTestResultsByType` into `get_test_results_by_type`."""
    return _SNAKE_BOUNDARY.sub("_", name).lower()


def parse_query_file(path: Path) -> list[ParsedQuery]:
    """Parse every query of one file; an error names the file, the line and the reason."""
    return parse_query_text(path.read_text(encoding="utf-8"), path=str(path))


def parse_query_text(text: str, *, path: str) -> list[ParsedQuery]:
    """Parse every `-- name:` block of a query file's text."""
    queries: list[ParsedQuery] = []
    header: tuple[str, Command, int] | None = None
    doc: list[str] = []
    body: list[str] = []
    in_doc = False

    def finish() -> None:
        if header is not None:
            queries.append(_build(header, doc, body, path))

    for number, line in enumerate(text.splitlines(), start=1):
        match = _NAME_LINE.match(line.strip())
        if match:
            finish()
            header = _parse_header(match["rest"], path, number)
            doc, body, in_doc = [], [], True
        elif header is None:
            if line.strip() and not line.strip().startswith("--"):
                raise QueryFileError(path, number, "SQL before the first '-- name:' line")
        elif in_doc and line.strip().startswith("--"):
            doc.append(line.strip()[2:].strip())
        else:
            in_doc = False
            body.append(line)
    finish()
    names = [query.method for query in queries]
    for query in queries:
        if names.count(query.method) > 1:
            raise QueryFileError(path, query.line, f"query {query.name} is defined twice")
    return queries


def _parse_header(rest: str, path: str, line: int) -> tuple[str, Command, int]:
    match = _NAME_AND_COMMAND.fullmatch(rest.strip())
    if match is None:
        raise QueryFileError(
            path, line, f"expected '-- name: QueryName :command', got '-- name: {rest.strip()}'"
        )
    command = _command(match["command"])
    if command is None:
        known = ", ".join(COMMANDS)
        raise QueryFileError(path, line, f"unknown command {match['command']}; known: {known}")
    return match["name"], command, line


def _command(text: str) -> Command | None:
    return next((command for command in COMMANDS if command == text), None)


def _build(
    header: tuple[str, Command, int], doc: list[str], body: list[str], path: str
) -> ParsedQuery:
    name, command, line = header
    if not doc or not doc[0]:
        raise QueryFileError(path, line, f"query {name} needs a '--' comment saying what it does")
    sql = "\n".join(body).strip()
    if not sql:
        raise QueryFileError(path, line, f"query {name} has no SQL")
    translated, parameters = _translate_parameters(sql, path, line, name)
    return ParsedQuery(
        name=name,
        method=snake_case(name),
        command=command,
        doc=" ".join(part for part in doc if part and not part.startswith(_DIRECTIVES)),
        sql=translated,
        parameters=parameters,
        path=path,
        line=line,
    )


def _translate_parameters(sql: str, path: str, line: int, name: str) -> tuple[str, tuple[str, ...]]:
    out: list[str] = []
    parameters: list[str] = []
    for token in _TOKENS.finditer(sql):
        parameter = token["macro_name"] or token["at_name"] or token["colon_name"]
        if token["unsupported"]:
            raise QueryFileError(
                path, line, f"query {name}: sqlc.{token['unsupported']}() is not supported"
            )
        if parameter is None:
            out.append(token.group())
            continue
        if parameter not in parameters:
            parameters.append(parameter)
        out.append(f":{parameter}")
    return "".join(out), tuple(parameters)


def to_aiosql(queries: list[ParsedQuery]) -> str:
    """Write parsed queries in aiosql's form, each with its mandatory parameter list."""
    blocks = []
    for query in queries:
        suffix = COMMANDS[query.command].suffix
        header = f"-- name: {query.method}({', '.join(query.parameters)}){suffix}"
        blocks.append(f"{header}\n-- {query.doc}\n{query.sql}\n")
    return "\n".join(blocks)


def sql_root() -> Path:
    """Find the SQL files: in the installed package, or in the checkout an editable install runs.

    The wheel ships the repository's sql/ folder as `persistence/sql`.
    """
    packaged = resources.files("persistence") / "sql"
    checkout = Path(__file__).parents[2] / "sql"
    for folder in (packaged, checkout):
        # A package imported from a zip file gives no folder on disk: the SQL counts as missing.
        if isinstance(folder, Path) and (folder / "queries").is_dir():
            return folder
    raise SqlFilesMissingError((Path(str(packaged)), checkout))


def read_queries(folder: Path | None = None, *, engine: str | None = None) -> list[ParsedQuery]:
    """Parse the shared query files of `folder` (default: sql/queries), then one engine's own.

    An engine's variants live in `<folder>/<engine>/` (sqlite or postgres), for queries whose
    SQL must differ. Such a query is written once per engine, under the same name, and never
    in the shared files: a name defined twice is an error naming both places.
    """
    folder = folder or sql_root() / "queries"
    paths = sorted(folder.glob("*.sql"))
    if engine is not None:
        paths += sorted((folder / engine).glob("*.sql"))
    queries: list[ParsedQuery] = []
    for path in paths:
        queries.extend(parse_query_file(path))
    seen: dict[str, ParsedQuery] = {}
    for query in queries:
        if query.method in seen:
            first = seen[query.method]
            raise QueryFileError(
                query.path,
                query.line,
                f"query {query.name} is also defined at {first.path}:{first.line}",
            )
        seen[query.method] = query
    return queries


def load_queries(
    adapter: Callable[[], object], folder: Path | None = None, *, engine: str | None = None
) -> Queries:
    """Load one engine's queries through aiosql and check them against the generated interface."""
    parsed = read_queries(folder, engine=engine)
    loaded = aiosql.from_str(to_aiosql(parsed), adapter)  # type: ignore[arg-type]  # aiosql wants its protocol; both adapters follow it
    if not _matches_interface(loaded, QUERY_SHAPES):
        raise AssertionError  # pragma: no cover  # _matches_interface raises with the reason
    return loaded


def _matches_interface(
    loaded: aiosql.queries.Queries, shapes: Mapping[str, QueryShape]
) -> TypeGuard[Queries]:
    """Check that the loaded queries are exactly the generated ones, or say what differs."""
    # aiosql adds a `<name>_cursor` context manager beside each select; the interface skips them.
    available = {
        name
        for name in loaded.available_queries
        if not (
            name.endswith("_cursor") and name.removesuffix("_cursor") in loaded.available_queries
        )
    }
    problems = [
        f"query {name} is in the generated interface but not in sql/queries"
        for name in sorted(set(shapes) - available)
    ]
    problems += [
        f"query {name} is in sql/queries but not in the generated interface"
        for name in sorted(available - set(shapes))
    ]
    for name in sorted(available & set(shapes)):
        query = getattr(loaded, name)
        shape = shapes[name]
        if query.operation is not COMMANDS[shape.command].operation:
            problems.append(
                f"query {name}: the interface expects {shape.command}, "
                f"sql/queries has {query.operation.name}"
            )
        if tuple(query.parameters or ()) != shape.parameters:
            problems.append(
                f"query {name}: the interface expects parameters {shape.parameters}, "
                f"sql/queries has {tuple(query.parameters or ())}"
            )
    if problems:
        raise QueryInterfaceError(
            "the SQL and the generated interface drifted (run 'make generate'): "
            + "; ".join(problems)
        )
    return True
