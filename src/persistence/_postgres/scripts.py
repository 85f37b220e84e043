"""Migration scripts on PostgreSQL: split on the semicolons that end statements."""

from __future__ import annotations

import re

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


def split_postgres(script: str) -> list[str]:
    """Split a PostgreSQL script on the semicolons that end statements."""
    pieces: list[str] = []
    current: list[str] = []
    position = 0
    while position < len(script):
        match = _TOKEN.match(script, position)
        if match is None:  # pragma: no cover  # `.` matches any character
            break
        position = match.end()
        kind = match.lastgroup
        if kind == "block":
            position = _end_of_block_comment(script, position)
            current.append(" ")
        elif kind == "dollar":
            end = script.find(match.group(), position)
            if end < 0:
                raise MigrationError(f"unterminated dollar quote {match.group()}")
            current.append(script[match.start() : end + len(match.group())])
            position = end + len(match.group())
        elif kind == "semi":
            pieces.append("".join(current))
            current = []
        elif kind != "line":
            current.append(match.group())
    pieces.append("".join(current))
    return [text for piece in pieces if (text := piece.strip())]


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
