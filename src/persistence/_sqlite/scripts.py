"""Migration scripts on SQLite: split into statements, and checked before they commit."""

from __future__ import annotations

import re
import sqlite3
from typing import Final

from persistence._backend import EXPLAINED, ScriptStatement, line_at, never_closed, refuse_nul
from persistence.exceptions import MigrationError

_COMMENTS: Final = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_TOKEN: Final = re.compile(
    r"""
      '(?:[^']|'')*+' | "(?:[^"]|"")*+" | `(?:[^`]|``)*+` | \[[^\]]*+\]
    | (?P<comment>--[^\n]* | /\*.*?\*/ | \s+)
    | (?P<open>['"`\[]|/\*)
    | (?P<semi>;)
    | [^'"`\[\-/;\s]+ | .
    """,
    re.VERBOSE | re.DOTALL,
)
"""SQLite's quotes, comments (with blank space) and semicolons, and (`open`) the opening of a
quote or comment that nothing closes."""
_OPENED: Final = {
    "'": "a string",
    '"': "a quoted name",
    "`": "a quoted name",
    "[": "a quoted name",
    "/*": "a /* comment",
}
_BEFORE_CODE: Final = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)
"""The blank space and comments before a statement's first word."""
_NAME: Final = r"""
    "(?:[^"]|"")*" | `(?:[^`]|``)*` | \[[^\]]*\] | '(?:[^']|'')*'
    | [^\x00-\x40\x5b-\x5e\x60\x7b-\x7f][^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]*
"""
"""A name as SQLite reads it: quoted in any of its four ways, or bare (any non-ASCII character
is part of a bare name to SQLite, blank space or not). The bare name's two sets are written as
what they leave out, the ASCII that is not a letter, `_` (or, after the first, a digit or `$`):
`[A-Za-z_\x80-\U0010ffff]` is the same set, but Python takes 60 ms to compile it without case,
and every process that imports the package would pay that."""
_PRAGMA: Final = re.compile(
    rf"""PRAGMA(?![^\x00-\x23\x25-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]) \s*
    (?: (?P<first>{_NAME}) (?: \s*\.\s* (?P<second>{_NAME}) )? )?""",
    re.IGNORECASE | re.VERBOSE,
)
"""A PRAGMA with its name, schema-qualified or not; SQLite needs no blank space between the
keyword and a quoted name (`PRAGMA"query_only"`), nor around the `.`."""
_ATTACH: Final = re.compile(r"(ATTACH|DETACH)\b", re.IGNORECASE)
_MIGRATION_PRAGMAS: Final = frozenset(
    {
        # the database's own values, kept in the file and in the migration's transaction
        "user_version",
        "application_id",
        "defer_foreign_keys",
        # questions that change nothing
        "foreign_key_check",
        "foreign_key_list",
        "integrity_check",
        "quick_check",
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "optimize",
    }
)
"""The PRAGMAs a migration may run. Any other sets the package's connection, where it would
outlive the migration (`query_only`, `locking_mode`, `busy_timeout`, ...), or cannot take effect
inside the migration's transaction (`journal_mode`, `synchronous`, `foreign_keys`, ...)."""


def split_sqlite(script: str) -> list[ScriptStatement]:
    """Split a script into statements, keeping trigger bodies whole.

    A statement ends at the first `;` that completes it, as SQLite reads it, not at a line's
    end: several statements may share a line, and the driver runs one at a time.
    """
    refuse_nul(script)
    statements, start = _complete_statements(script)
    pending = script[start:]
    if _has_code(pending):
        raise MigrationError(
            f"the script ends in an incomplete statement (is its ';' missing?): "
            f"{pending.strip()[:80]!r}",
            line=line_at(script, _code_start(script, start)),
        )
    for statement in statements:
        opening = _COMMENTS.sub(" ", statement.text).lstrip(" \t\n\r\f\ufeff")
        if (explained := EXPLAINED.match(opening)) is not None:
            opening = opening[explained.end() :]
        if (attach := _ATTACH.match(opening)) is not None:
            raise MigrationError(
                f"{attach[1].upper()} is not allowed in a migration: an attached database stays "
                "on the package's connection, and no rollback detaches it",
                line=line_at(script, statement.start),
            )
        pragma = _pragma_name(opening)
        if pragma is not None and not (pragma.isascii() and pragma.lower() in _MIGRATION_PRAGMAS):
            raise MigrationError(
                f"PRAGMA {pragma} is not allowed in a migration: it would stay set on the "
                "package's connection after the migration, or cannot take effect inside its "
                "transaction (the runner turns foreign keys off and checks them itself)",
                line=line_at(script, statement.start),
            )
    return statements


def _pragma_name(opening: str) -> str | None:
    """Give the name of the PRAGMA a statement (its comments blanked) runs; None for others.

    The name is unquoted, as SQLite reads it. A PRAGMA whose name cannot be read is given as
    the text that follows it, which names no allowed PRAGMA. SQLite matches a name in ASCII
    only, so none that holds another character is allowed.
    """
    pragma = _PRAGMA.match(opening)
    if pragma is None:
        return None
    name = pragma["second"] or pragma["first"]
    if name is None:
        return repr(opening[pragma.end() : pragma.end() + 40])
    if name[0] in "\"`'[":
        quote = name[0]
        name = name[1:-1] if quote == "[" else name[1:-1].replace(quote * 2, quote)
    return name


def _complete_statements(script: str) -> tuple[list[ScriptStatement], int]:
    """Give the statements SQLite reads as complete, and where the rest of the script starts.

    A quote or comment never closed is refused.
    """
    statements: list[ScriptStatement] = []
    start = 0
    first = True  # no `;` outside quotes and comments yet since `start`
    before = earlier = ""  # the two tokens before this one, past comments and blank space
    for token in _TOKEN.finditer(script):
        kind = token.lastgroup
        if kind == "open":
            # SQLite reads it to the end of the script, leaving out what follows: refused, as
            # PostgreSQL refuses it.
            raise never_closed(script, token.start(), _OPENED[token.group()])
        if kind == "comment":
            continue
        # Past a statement's first `;` that ends nothing, it is a trigger's, which SQLite ends
        # at `; END ;` only, blank space and comments aside (sqlite3_complete's states): asking
        # at any other `;`, such as a CASE's `END;`, read the statement again for each.
        if kind == "semi" and (first or (earlier == ";" and before.lower() == "end")):
            candidate = script[start : token.end()]
            if sqlite3.complete_statement(candidate):
                if _has_code(candidate):
                    code = _code_start(script, start)
                    statements.append(ScriptStatement(candidate.strip(), code, token.start()))
                start, first, before, earlier = token.end(), True, "", ""
                continue
        first = first and kind != "semi"
        before, earlier = token.group(), before
    return statements, start


def _code_start(script: str, start: int) -> int:
    """Give where the first word after `start` starts, past blank space and comments."""
    before = _BEFORE_CODE.match(script, start)
    return start if before is None else before.end()


def _has_code(text: str) -> bool:
    """Tell whether text holds anything but comments and blank space."""
    return _COMMENTS.sub(" ", text).strip() != ""


def check_no_temporary_objects(writer: sqlite3.Connection) -> None:
    """Refuse a migration that leaves a temporary table, view, index or trigger behind.

    It would stay on the package's connection, not in the database: a temporary trigger would
    fire on the process's later writes, until it restarts. One dropped in the migration is fine.
    """
    left = writer.execute("SELECT type, name FROM temp.sqlite_master ORDER BY name").fetchall()
    if left:
        shown = ", ".join(f"the temporary {kind} {name}" for kind, name in left[:5])
        raise MigrationError(
            f"the migration leaves {shown} on the package's connection: drop it in the migration"
        )


def check_foreign_keys(writer: sqlite3.Connection) -> None:
    """Refuse a migration that leaves rows whose foreign key has no parent."""
    problems = writer.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        shown = ", ".join(
            f"{table} row {rowid} -> {parent}" for table, rowid, parent, _ in problems[:5]
        )
        raise MigrationError(
            f"the migration leaves {len(problems)} row(s) whose foreign key has no parent: {shown}"
        )
