"""Migration scripts on PostgreSQL: split on the semicolons that end statements, and sent whole.

The script goes in one round trip, a marker before each statement: a `DO` block raising an
INFO message that names it, which the server sends at once and whatever `client_min_messages`
says, so that the statement an error stopped is known without running any statement again.
"""

from __future__ import annotations

import bisect
import re
import secrets
from typing import Final

from persistence._backend import ScriptStatement
from persistence.exceptions import MigrationError

_TOKEN = re.compile(
    r"""
      (?P<squote>[EeBbXxUu]?'(?:[^']|'')*')
    | (?P<dquote>"(?:[^"]|"")*")
    | (?P<line>--[^\n]*)
    | (?P<block>/\*)
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)
    | (?P<semi>;)
    | (?P<other>[^'"\-/$;]+|.)
    """,
    re.VERBOSE | re.DOTALL,
)


def split_postgres(script: str) -> list[ScriptStatement]:
    """Split a PostgreSQL script on the semicolons that end statements."""
    statements: list[ScriptStatement] = []
    current: list[str] = []
    start: int | None = None  # where the statement's first word is
    position = 0
    while position < len(script):
        match = _TOKEN.match(script, position)
        if match is None:  # pragma: no cover  # `.` matches any character
            break
        position = match.end()
        kind = match.lastgroup
        if kind == "semi":
            if start is not None:
                statements.append(ScriptStatement("".join(current).strip(), start, match.start()))
            current, start = [], None
            continue
        if kind == "block":
            position = _end_of_block_comment(script, position)
            current.append(" ")
            continue
        if kind == "dollar":
            position = _end_of_dollar_quote(script, match)
            current.append(script[match.start() : position])
        elif kind != "line":
            current.append(match.group())
        if start is None and kind != "line" and match.group().strip():
            start = match.start() + len(match.group()) - len(match.group().lstrip())
    if start is not None:
        statements.append(ScriptStatement("".join(current).strip(), start, len(script)))
    return statements


_MARKER: Final = "DO $persistence$BEGIN RAISE INFO '{}'; END$persistence$"
_MARKED: Final = re.compile(r"persistence migration (?P<run>[0-9a-f]+): statement (?P<index>\d+)")


def marked_script(statements: list[str]) -> tuple[str, str, list[int]]:
    """Give the script to send, with a marker before each statement.

    Also its run's token, which the markers' messages carry, and where each statement starts.
    """
    run = secrets.token_hex(6)
    parts: list[str] = []
    starts: list[int] = []
    length = 0
    for index, statement in enumerate(statements):
        marker = _MARKER.format(f"persistence migration {run}: statement {index}")
        parts += [marker, statement]
        length += len(marker) + 2
        starts.append(length)
        length += len(statement) + 2
    return ";\n".join(parts), run, starts


def marked_statement(message: str, run: str) -> int | None:
    """Give the statement that a message of the server says starts: None for another message."""
    marked = _MARKED.fullmatch(message)
    return int(marked["index"]) if marked and marked["run"] == run else None


def failed_statement(
    position: str | None, statements: list[str], starts: list[int], heard: list[int]
) -> int | None:
    """Name the statement that failed, by its index: None if the server did not tell.

    It is the one holding the error's position, if the error has one (a syntax error stops the
    script before any statement runs), else the last whose marker was heard.
    """
    if position is not None and position.isdigit():
        offset = int(position) - 1  # the server counts characters from 1
        index = bisect.bisect_right(starts, offset) - 1
        if index >= 0 and offset < starts[index] + len(statements[index]):
            return index
    return heard[-1] if heard else None


def _end_of_dollar_quote(script: str, opening: re.Match[str]) -> int:
    """Give where the dollar quote that `opening` opens ends; refuse one never closed."""
    end = script.find(opening.group(), opening.end())
    if end < 0:
        raise MigrationError(f"unterminated dollar quote {opening.group()}")
    return end + len(opening.group())


def _end_of_block_comment(script: str, position: int) -> int:
    depth = 1
    while depth:
        opening, closing = script.find("/*", position), script.find("*/", position)
        if closing < 0:
            raise MigrationError("unterminated /* comment")
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
    return position
