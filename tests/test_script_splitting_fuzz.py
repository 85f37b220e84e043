"""A migration script of any text, thrown at each engine's splitter.

Whatever the text, the splitter gives statements or refuses with a `MigrationError`: never
another exception. A quote or comment never closed is named by the line where it opens.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from persistence import MigrationError
from persistence._backend import ScriptStatement
from persistence._postgres import split_postgres
from persistence._sqlite import split_sqlite
from persistence.database import Engine
from strategies import IN_MEMORY

SPLIT: Final[dict[Engine, Callable[[str], list[ScriptStatement]]]] = {
    Engine.POSTGRES: split_postgres,
    Engine.SQLITE: split_sqlite,
}
PIECES: Final = st.sampled_from(
    [
        *"'\"`[]$/*-;Ee\n\r \\(),.é\x00",
        "''",
        "$$",
        "$t$",
        "/*",
        "*/",
        "--",
        "E'",
        "SELECT 1",
        "BEGIN",
        "ATOMIC",
        "END",
        "CASE",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql ",
        "CREATE TRIGGER t AFTER INSERT ON x ",
        "PRAGMA user_version = 1",
        "ATTACH",
    ]
)
SQLISH: Final = st.lists(PIECES, max_size=60).map("".join)
"""Text made of quotes, comment marks, semicolons and the words the splitters look for."""
TEXTS: Final = st.one_of(
    SQLISH, st.text(max_size=200), st.text("'\"`[]$/*-;Ee\n\r \\", max_size=200)
)


def split_or_refuse(engine: Engine, script: str) -> list[ScriptStatement] | MigrationError:
    """Split `script`, or give the `MigrationError` that refused it."""
    try:
        return SPLIT[engine](script)
    except MigrationError as refused:
        return refused


@settings(IN_MEMORY, max_examples=300)
@pytest.mark.parametrize("engine", list(Engine))
@given(script=TEXTS)
@example(script="\x00;")
def test_any_text_splits_or_is_refused_as_a_migration_error(engine: Engine, script: str) -> None:
    """Statements lie inside the script, in order, each holding something; or a refusal."""
    assert len(script) <= 2_000
    split = split_or_refuse(engine, script)
    if isinstance(split, MigrationError):
        assert str(split)
        return
    ends = 0
    for statement in split:
        assert ends <= statement.start <= statement.end <= len(script), (script, split)
        assert statement.text.strip(), (script, split)
        ends = statement.end


@IN_MEMORY
@pytest.mark.parametrize("engine", list(Engine))
@given(
    before=st.lists(st.sampled_from(["SELECT 1;", "-- a\n", "\n", "/* b\n */", " "]), max_size=8),
    at=st.sampled_from(["\x00;", "SELECT '\x00';", "-- \x00\n", "\x00", "/* \x00 */;"]),
    after=st.sampled_from(["", "\nSELECT 2;", "'", "/*"]),
)
def test_a_nul_character_is_refused_naming_its_line(
    engine: Engine, before: list[str], at: str, after: str
) -> None:
    """No engine takes a NUL in SQL text: SQLite's splitter raised a bare ValueError for it."""
    script = "".join(before) + at + after
    with pytest.raises(MigrationError) as raised:
        SPLIT[engine](script)
    assert str(raised.value) == "a NUL character is here, which no engine takes in SQL"
    assert raised.value.line == script[: script.index("\x00")].count("\n") + 1


LONG: Final = {
    "semicolons in a string": "INSERT INTO t VALUES ('" + ";" * 20_000 + "');\n",
    "semicolons in a comment": "SELECT 1; /* " + ";" * 20_000 + " */ SELECT 2;",
    "semicolons in a quoted name": 'SELECT 1 AS "' + ";" * 20_000 + '";',
    "a trigger's many statements": (
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN " + "SELECT 1;" * 2_000 + " END;"
    ),
    "a trigger's cases ending in END;": (
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN "
        + "UPDATE x SET a = CASE WHEN 1 THEN 2 END;" * 500
        + " END;"
    ),
    "a trigger's names ending in end;": (
        "CREATE TRIGGER t AFTER INSERT ON x BEGIN " + "SELECT 1; x.end;" * 1_000 + " END;"
    ),
    "a string never closed": "SELECT 1;\nSELECT '" + ";" * 20_000,
}
"""Scripts whose every `;` the SQLite splitter once tried as a statement's end."""


@pytest.mark.parametrize("kind", list(LONG))
def test_sqlite_reads_a_script_a_bounded_number_of_times(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's statement check reads each character a few times, not once per `;` after it.

    It was asked of the text up to each `;`, from the statement's start: 20,000 semicolons
    in a string read 200 million characters, and a 200 KB script took seconds to split.
    """
    script = LONG[kind]
    read: list[int] = []
    check = sqlite3.complete_statement

    def counted(text: str) -> bool:
        read.append(len(text))
        return check(text)

    monkeypatch.setattr(sqlite3, "complete_statement", counted)
    split_or_refuse(Engine.SQLITE, script)
    assert sum(read) <= 4 * len(script), (kind, len(read), sum(read))


TRIGGERISH: Final = st.lists(
    st.sampled_from(
        [
            ";",
            " ",
            "\n",
            "END",
            "end",
            "x.end",
            "(end",
            "end)",
            "CASE WHEN 1 THEN 2 END",
            "SELECT 1",
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN ",
            "CREATE TEMP TRIGGER t AFTER INSERT ON x BEGIN ",
            "EXPLAIN ",
            "-- c\n",
            "/* ; END ; */",
            "'; END ;'",
        ]
    ),
    max_size=40,
).map("".join)


def ends_sqlite_reads(script: str) -> list[int] | None:
    """Where SQLite ends each statement holding code, asked at every `;` from its start.

    None when the script ends in an incomplete statement.
    """
    ends: list[int] = []
    start = 0
    for at, character in enumerate(script):
        if character == ";" and sqlite3.complete_statement(script[start : at + 1]):
            if split_or_refuse(Engine.SQLITE, script[start : at + 1]) != []:
                ends.append(at)
            start = at + 1
    return None if split_or_refuse(Engine.SQLITE, script[start:] + "\n") != [] else ends


@settings(IN_MEMORY, max_examples=400)
@given(script=TRIGGERISH)
@example(script="CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1; end; SELECT 1;")
@example(script="CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;x.end; END;")
def test_sqlite_statements_end_where_sqlite_says_they_are_complete(script: str) -> None:
    """The splitter asks SQLite at few `;`, and still ends each statement where SQLite does."""
    split = split_or_refuse(Engine.SQLITE, script)
    ends = None if isinstance(split, MigrationError) else [one.end for one in split]
    assert ends == ends_sqlite_reads(script), (script, split)
