"""Migration scripts on PostgreSQL: split on the semicolons that end statements, and sent whole.

The script goes in one round trip, a marker before each statement: a `DO` block raising an
INFO message that names it, which the server sends at once and whatever `client_min_messages`
says, so that the statement an error stopped is known without running any statement again.
"""

from __future__ import annotations

import bisect
import functools
import re
import secrets
from typing import TYPE_CHECKING, Final

import attrs

from persistence._backend import ScriptStatement, line_at, never_closed, refuse_nul
from persistence.exceptions import MigrationError

if TYPE_CHECKING:  # asyncpg is imported when a PostgreSQL URL is first opened
    from persistence._postgres.adapter import PgConnection


@functools.cache
def _token() -> re.Pattern[str]:
    """Compile the pattern of one token at the first split rather than at import: 20 ms."""
    return re.compile(
        r"""
          (?P<estring>[Ee]'(?:[^'\\]|''|\\.)*+')
        | (?P<squote>[BbXxUu]?'(?:[^']|'')*+')
        | (?P<dquote>"(?:[^"]|"")*+")
        | (?P<open>[Ee]'|[BbXxUu]?'|")
        | (?P<line>--[^\n\r]*)
        | (?P<block>/\*)
        | (?P<dollar>\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$)
        | (?P<semi>;)
        | (?P<word>[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*)
        | (?P<paren>[()])
        | (?P<other>[^'"\-/$;()A-Za-z_\u0080-\U0010ffff]+|.)
        """,
        re.VERBOSE | re.DOTALL,
    )


_ROUTINE: Final = re.compile(r"CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE)\b")
"""The opening of the statements that may hold a `BEGIN ATOMIC ... END` body."""
_OPENING_WORDS: Final = 4
"""How many of a statement's first words tell whether it is one of those."""
_OPENED: Final = {"'": "a string", '"': "a quoted name", "E'": "an E'...' string"}
"""What a quote that the script never closes opens, by its opening."""
_LABELS: Final = frozenset({"AS", "."})
"""What comes before a word that is a name, though it is spelled like CASE or END."""


@attrs.define
class _Body:
    """Where a statement is in a SQL-standard routine body, `BEGIN ATOMIC ... END`.

    Such a body holds statements, and their semicolons end no statement of the script. It ends
    at the END that matches its BEGIN ATOMIC, past the `CASE ... END` expressions inside it, as
    PostgreSQL's own psql finds it: words outside parentheses, in a CREATE FUNCTION or
    CREATE PROCEDURE statement.
    """

    opening: list[str] = attrs.Factory(list)  # the statement's first words
    previous: str = ""  # the last word or sign before this one, past comments
    parentheses: int = 0
    depth: int = 0  # 1 in the body, 2 in a CASE in it, ...

    def see(self, kind: str | None, text: str) -> None:
        """Follow one token of the statement."""
        if kind == "word":
            word = text.upper()
            if len(self.opening) < _OPENING_WORDS:
                self.opening.append(word)
            if self.parentheses == 0 and self.previous not in _LABELS and self._in_routine():
                opens = word == "ATOMIC" and self.previous == "BEGIN"
                if opens or (self.depth and word == "CASE"):
                    self.depth += 1
                elif self.depth and word == "END":
                    self.depth -= 1
            self.previous = word
        elif kind == "paren":
            self.parentheses = self.parentheses + 1 if text == "(" else max(self.parentheses - 1, 0)
            self.previous = text
        elif kind not in ("line", "block") and text.strip():
            self.previous = text.strip()

    def _in_routine(self) -> bool:
        return _ROUTINE.match(" ".join(self.opening)) is not None


def split_postgres(script: str) -> list[ScriptStatement]:
    """Split a PostgreSQL script on the semicolons that end statements.

    A semicolon inside parentheses (a rule's actions) or a SQL-standard routine body,
    `BEGIN ATOMIC ... END`, ends none. A `--` comment ends at a CR as at an LF, as the server
    reads it.
    """
    refuse_nul(script)
    statements: list[ScriptStatement] = []
    current: list[str] = []
    start: int | None = None  # where the statement's first word is
    body = _Body()
    position = 0
    token = _token()
    while position < len(script):
        match = token.match(script, position)
        if match is None:  # pragma: no cover  # `.` matches any character
            break
        kind = match.lastgroup
        position, text = _token_text(script, match)
        if kind == "semi" and not body.depth and not body.parentheses:  # as psql ends one
            if start is not None:
                statements.append(ScriptStatement("".join(current).strip(), start, match.start()))
            current, start, body = [], None, _Body()
            continue
        body.see(kind, match.group())
        current.append(text)
        if start is None and text.strip():
            start = match.start() + len(text) - len(text.lstrip())
    if body.depth and start is not None:
        line = line_at(script, start)
        raise MigrationError(
            f"the statement at line {line} opens a BEGIN ATOMIC body that no END closes"
        )
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
    script before any statement runs), else the last whose marker was heard. A position just
    past a statement is its: the `;` that ends it, or the end of the script (`syntax error at
    end of input`, a `)` left out), which named no statement.
    """
    if position is not None and position.isdigit():
        offset = int(position) - 1  # the server counts characters from 1
        index = bisect.bisect_right(starts, offset) - 1
        if index >= 0 and offset <= starts[index] + len(statements[index]):
            return index
    return heard[-1] if heard else None


def _token_text(script: str, token: re.Match[str]) -> tuple[int, str]:
    """Give where `token` ends, past a comment or dollar quote it opens, and its text to send.

    A comment is left out, a block comment kept as a space between the words around it.
    """
    kind = token.lastgroup
    if kind == "open":
        opening = token.group().upper()
        raise never_closed(script, token.start(), _OPENED.get(opening, _OPENED[opening[-1]]))
    if kind == "block":
        return _end_of_block_comment(script, token.start()), " "
    if kind == "dollar":
        end = _end_of_dollar_quote(script, token)
        return end, script[token.start() : end]
    return token.end(), "" if kind == "line" else token.group()


def _end_of_dollar_quote(script: str, opening: re.Match[str]) -> int:
    """Give where the dollar quote that `opening` opens ends; refuse one never closed."""
    end = script.find(opening.group(), opening.end())
    if end < 0:
        raise never_closed(script, opening.start(), f"a dollar quote {opening.group()}")
    return end + len(opening.group())


def _end_of_block_comment(script: str, start: int) -> int:
    """Give where the block comment opening at `start` ends, past the ones nested in it.

    The next opening and closing are searched for again only once passed: each search from
    every one of them read the rest of the script again, in time growing with their square.
    """
    depth, position = 1, start + 2
    opening, closing = script.find("/*", position), script.find("*/", position)
    while True:
        if closing < 0:
            raise never_closed(script, start, "a /* comment")
        if 0 <= opening < closing:
            depth, position = depth + 1, opening + 2
        else:
            depth, position = depth - 1, closing + 2
            if not depth:
                return position
        if 0 <= opening < position:  # `/*/` opens, and `*/*` closes: the `*` is not reused
            opening = script.find("/*", position)
        if closing < position:
            closing = script.find("*/", position)


_TABLE_COLUMNS: Final = """
SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
WHERE c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident($1))
  AND c.relkind IN ('r', 'p', 'v', 'f') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
"""The columns of the table the search path finds by that name, as every query of the package
finds it. It was the current schema's: a user migration's `CREATE SCHEMA postgres` (the role's
name, first in the default search path) hid the history in `public`, and the next `migrate`
applied every migration again, into the new schema."""


async def table_columns(connection: PgConnection, table: str) -> tuple[str, ...]:
    """Give the column names of `table`, as the search path finds it, in order; none if absent.

    Read from the catalogs, not `information_schema.columns`: the view took about 6 ms of the
    server's time a call in a new session, and a migration asks twice.
    """
    rows = await connection.fetch(_TABLE_COLUMNS, table)
    return tuple(str(row[0]) for row in rows)
