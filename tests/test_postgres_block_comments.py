"""PostgreSQL's nested block comments in a migration script: where each ends, read once.

PostgreSQL nests `/* ... */` comments: the splitter finds the end of each by the openings and
closings inside it, and must not read the rest of the script again for each of them.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Final, SupportsIndex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import MigrationError
from persistence.database import Engine, split_script


def counted(script: str, read: list[int]) -> str:
    """Give `script` as a string whose `find` adds to `read` how many characters it read."""

    class Counted(str):
        __slots__ = ()

        def find(
            self, sub: str, start: SupportsIndex | None = None, end: SupportsIndex | None = None, /
        ) -> int:
            found = super().find(sub, start, end)
            begin = 0 if start is None else operator.index(start)
            read.append((len(self) if found < 0 else found + len(sub)) - begin)
            return found

    return Counted(script)


LONG: Final = {
    "nested comments": "SELECT 1 /* " + "/* " * 20_000 + "*/ " * 20_001 + ";",
    "openings, one closing": "/* " * 40_000 + "*/",
}
"""Scripts in which each opening or closing of a comment once read the rest of the script."""


@pytest.mark.parametrize("kind", list(LONG))
def test_nested_comments_read_the_script_a_bounded_number_of_times(kind: str) -> None:
    """Each character is read a few times, not once per `/*` or `*/` before it.

    The next opening and the next closing were both searched for again at each of them:
    40,000 openings and one closing, 120 KB, took about nine seconds to refuse.
    """
    read: list[int] = []
    with contextlib.suppress(MigrationError):
        split_script(Engine.POSTGRES, counted(LONG[kind], read))
    assert sum(read) <= 4 * len(LONG[kind]), (kind, len(read), sum(read))


def reference(script: str) -> tuple[list[str], int | None]:
    """Split a script of words, `*`, `/` and blank space, as PostgreSQL's lexer reads it.

    Give its statement's text, comments as one space, and the line of a comment never closed.
    """
    kept: list[str] = []
    depth, position, opened = 0, 0, 0
    while position < len(script):
        two = script[position : position + 2]
        if two == "/*":
            if not depth:
                kept.append(" ")
                opened = position
            depth, position = depth + 1, position + 2
        elif depth and two == "*/":
            depth, position = depth - 1, position + 2
        else:
            if not depth:
                kept.append(script[position])
            position += 1
    if depth:
        return [], script.count("\n", 0, opened) + 1
    text = "".join(kept).strip()
    return ([text] if text else []), None


PIECES: Final = st.sampled_from(["/*", "*/", "/", "*", "**", " ", "\n", "x"])


@given(st.lists(PIECES, max_size=40).map("".join))
def test_a_comment_ends_where_postgres_ends_it(script: str) -> None:
    """Nested comments end where the lexer ends them; one never closed names its line."""
    expected, line = reference(script)
    if line is not None:
        with pytest.raises(
            MigrationError, match=r"a /\* comment opened here is never closed"
        ) as refused:
            split_script(Engine.POSTGRES, script)
        assert refused.value.line == line, script
        return
    statements = split_script(Engine.POSTGRES, script)
    assert [statement.text for statement in statements] == expected, script
