"""A migration script's quotes and comments, as each engine's splitter reads them.

A string, quoted name, dollar quote or block comment never closed is refused before any
statement of the file runs, naming the line where it opens, on both engines alike.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import asyncpg
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import Database, MigrationError, connect, migrate, migration_status
from persistence._postgres import split_postgres
from persistence._sqlite import split_sqlite
from persistence.database import Engine
from strategies import IN_MEMORY


@attrs.frozen
class Quoted:
    r"""One quoted element of a statement: its opening, its body's parts, and its closing.

    A part is kept whole (an escape such as `''` or `\'`, a nested comment): a script cut
    after any whole part leaves the element open.
    """

    opening: str
    parts: tuple[str, ...]
    closing: str
    says: str  # what the error says is never closed

    @property
    def text(self) -> str:
        """The element as written, closed."""
        return self.opening + "".join(self.parts) + self.closing


STRING: Final = "a string"
NAME: Final = "a quoted name"
COMMENT: Final = "a /* comment"

_CHARS: Final = st.sampled_from(list("ab ;\n$\\/-*\"'`[]é"))


def _free(forbidden: str) -> st.SearchStrategy[str]:
    """One character of a body, other than the ones that would end or open something."""
    return _CHARS.filter(lambda char: char not in forbidden)


def _quoted(
    opening: str, closing: str, says: str, part: st.SearchStrategy[str]
) -> st.SearchStrategy[Quoted]:
    return st.lists(part, max_size=8).map(
        lambda parts: Quoted(opening, tuple(parts), closing, says)
    )


@st.composite
def _dollar(draw: st.DrawFn) -> Quoted:
    """A dollar quote, its body holding no closing tag before its end."""
    tag = "$" + draw(st.sampled_from(["", "t", "body"])) + "$"
    parts = draw(
        st.lists(_free(""), max_size=8).filter(
            lambda parts: ("".join(parts) + tag).find(tag) == len("".join(parts))
        )
    )
    return Quoted(tag, tuple(parts), tag, f"a dollar quote {tag}")


def _comment(depth: int) -> st.SearchStrategy[Quoted]:
    """A block comment; on PostgreSQL (`depth` > 0) it may hold nested ones."""
    part = _free("*/")
    if depth:
        part = part | _comment(depth - 1).map(lambda inner: inner.text)
    return _quoted("/*", "*/", COMMENT, part)


COMMON: Final = st.one_of(
    _quoted("'", "'", STRING, _free("'") | st.just("''")),
    _quoted('"', '"', NAME, _free('"') | st.just('""')),
)
POSTGRES: Final = st.one_of(
    COMMON,
    _quoted("E'", "'", "an E'...' string", _free("'\\") | st.sampled_from(["''", "\\'", "\\\\"])),
    _dollar(),
    _comment(2),
)
SQLITE: Final = st.one_of(
    COMMON,
    _quoted("`", "`", NAME, _free("`") | st.just("``")),
    _quoted("[", "]", NAME, _free("]")),
    _comment(0),
)
ELEMENTS: Final = {Engine.POSTGRES: POSTGRES, Engine.SQLITE: SQLITE}
SPLIT: Final = {Engine.POSTGRES: split_postgres, Engine.SQLITE: split_sqlite}
GAPS: Final = st.sampled_from([" ", "\n", " -- a; 'comment\n", "\n\n"])


@st.composite
def scripts(draw: st.DrawFn, engine: Engine) -> list[list[tuple[str, Quoted]]]:
    """Statements `SELECT 1` with quoted elements after it, each after a gap of its own."""
    return draw(
        st.lists(st.lists(st.tuples(GAPS, ELEMENTS[engine]), max_size=4), min_size=1, max_size=4)
    )


def render(statements: list[list[tuple[str, Quoted]]]) -> str:
    """The script of these statements, each on a line of its own at least."""
    return "".join(
        "SELECT 1" + "".join(gap + quoted.text for gap, quoted in elements) + ";\n"
        for elements in statements
    )


@IN_MEMORY
@pytest.mark.parametrize("engine", list(Engine))
@given(data=st.data())
def test_legal_quotes_split_as_written(engine: Engine, data: st.DataObject) -> None:
    """Strings, quoted names, dollar quotes and comments holding `;`, quotes and backslashes."""
    statements = data.draw(scripts(engine))
    script = render(statements)
    assert len(SPLIT[engine](script)) == len(statements), script


@IN_MEMORY
@pytest.mark.parametrize("engine", list(Engine))
@given(data=st.data())
def test_a_quote_cut_short_is_named_by_its_line(engine: Engine, data: st.DataObject) -> None:
    """A legal script cut inside one of its quoted elements names where that element opens."""
    statements = data.draw(scripts(engine).filter(any))
    which = data.draw(st.sampled_from([i for i, elements in enumerate(statements) if elements]))
    element = data.draw(st.integers(0, len(statements[which]) - 1))
    gap, quoted = statements[which][element]
    kept = data.draw(st.integers(0, len(quoted.parts)))
    before = render(statements[:which]) + "SELECT 1"
    before += "".join(g + q.text for g, q in statements[which][:element]) + gap
    script = before + quoted.opening + "".join(quoted.parts[:kept])
    line = before.count("\n") + 1
    with pytest.raises(MigrationError) as raised:
        SPLIT[engine](script)
    assert str(raised.value).startswith(f"{quoted.says}"), (script, str(raised.value))
    assert "opened here is never closed" in str(raised.value)
    assert raised.value.line == line, (script, str(raised.value))


NEVER_CLOSED: Final = {
    "string": ("SELECT 'it;\nSELECT 2", "a string", list(Engine)),
    "escaped quote": ("SELECT 'it''s;\nSELECT 2", "a string", list(Engine)),
    "quoted name": ('SELECT "it;\nSELECT 2', "a quoted name", list(Engine)),
    "comment": ("SELECT 1 /* it;\nSELECT 2", "a /* comment", list(Engine)),
    "E string": ("SELECT E'it\\';\nSELECT 2", "an E'...' string", [Engine.POSTGRES]),
    "dollar quote": ("SELECT $f$it;\nSELECT 2", "a dollar quote $f$", [Engine.POSTGRES]),
    "nested comment": ("SELECT 1 /* a /* b */;\nSELECT 2", "a /* comment", [Engine.POSTGRES]),
    "string then dollar": ("SELECT 'a $$;\nSELECT $$ x", "a string", list(Engine)),
    "bracket name": ("SELECT [it;\nSELECT 2", "a quoted name", [Engine.SQLITE]),
    "backtick name": ("SELECT `it;\nSELECT 2", "a quoted name", [Engine.SQLITE]),
}
"""A statement opening something never closed, on line 3 of its file, and what is named."""

CASES: Final = [
    pytest.param(engine, kind, id=f"{engine.value}-{kind}")
    for kind, (_, _, engines) in NEVER_CLOSED.items()
    for engine in engines
]


@pytest.fixture(name="url")
def engine_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of the test's engine, empty."""
    engine: Engine = request.node.callspec.params["engine"]
    if engine is Engine.SQLITE:
        return f"sqlite:///{tmp_path / 'edges.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(name="db")
async def database(url: str) -> AsyncIterator[Database]:
    """The database at `url`, open."""
    async with connect(url) as db:
        yield db


async def tables(db: Database, url: str) -> set[str]:
    """The tables of the database, past the runner's own."""
    if db.engine is Engine.SQLITE:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as file:
            rows = file.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {str(row[0]) for row in rows} - {"persistence_migrations"}
    server = await asyncpg.connect(url)
    try:
        rows = await server.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await server.close()
    return {str(row[0]) for row in rows} - {"persistence_migrations"}


@pytest.mark.parametrize(("engine", "kind"), CASES)
async def test_never_closed_is_refused_before_anything_runs(
    db: Database, url: str, tmp_path: Path, engine: Engine, kind: str
) -> None:
    """The error names the file, the line where the quote or comment opens, and what it is.

    On PostgreSQL the server answered with its syntax error, naming no line or the wrong
    one, or the splitter refused naming no line; on SQLite "an incomplete statement".
    """
    statement, says, _ = NEVER_CLOSED[kind]
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_first.sql").write_text("CREATE TABLE first (n integer);\n")
    text = f"CREATE TABLE second (n integer);\n-- then\n{statement};\nSELECT 3;\n"
    (folder / "0002_open.sql").write_text(text)
    with pytest.raises(MigrationError) as raised:
        await migrate(db, package_folder=folder)
    assert db.engine is engine
    assert str(raised.value) == f"0002_open.sql:3: {says} opened here is never closed"
    assert raised.value.line == 3
    assert raised.value.migration == "0002_open"
    assert await tables(db, url) == set()
    status = await migration_status(db, package_folder=folder)
    assert [m.version for m in status.pending] == [1, 2]


BACKSLASHES: Final = (
    "CREATE TABLE said (n integer, note text);\n"
    "INSERT INTO said VALUES (1, 'ends in \\');\n"
    "INSERT INTO said VALUES (2, 'semi\\;colon');\n"
)
"""Strings holding backslashes, which standard_conforming_strings = on reads as themselves."""
READ_AS_ON: Final = [(1, "ends in \\"), (2, "semi\\;colon")]


async def said(url: str) -> list[tuple[int, str]]:
    """The rows of the table the migrations write, in order."""
    server = await asyncpg.connect(url)
    try:
        rows = await server.fetch("SELECT n, note FROM said ORDER BY n")
    finally:
        await server.close()
    return [(int(row["n"]), str(row["note"])) for row in rows]


async def test_a_database_whose_strings_read_backslashes_migrates_as_the_splitter_reads(
    postgres_url: str, tmp_path: Path
) -> None:
    r"""A database set to standard_conforming_strings = off is migrated with it on, alone.

    The splitter reads strings as PostgreSQL does by default since 9.1; on such a database the
    server read `\'` as a quote inside the string, and the migration failed with a syntax
    error (at or near "persistence", inside the runner's markers). The package's connections
    now ask for it on when they connect; the database's setting stays for every other session.
    """
    name = postgres_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET standard_conforming_strings = off')
    finally:
        await admin.close()
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_said.sql").write_text(BACKSLASHES)
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1]
    assert await said(postgres_url) == READ_AS_ON
    server = await asyncpg.connect(postgres_url)
    try:
        assert await server.fetchval("SHOW standard_conforming_strings") == "off"
    finally:
        await server.close()


@pytest.mark.parametrize(
    "setting",
    [
        "SET standard_conforming_strings = off",
        "set session STANDARD_CONFORMING_STRINGS to 'off'",
        "SET LOCAL standard_conforming_strings=false",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "RESET standard_conforming_strings",
    ],
)
async def test_a_migration_turning_it_off_is_still_read_as_the_splitter_reads(
    postgres_url: str, tmp_path: Path, setting: str
) -> None:
    """A migration setting standard_conforming_strings off changes no string of its files.

    The server reads the file's statements when it receives them, all at once, before the
    setting runs; the next file runs on a connection of its own, with the setting on.
    """
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_off.sql").write_text(f"{setting};\n{BACKSLASHES}")
    (folder / "0002_more.sql").write_text("INSERT INTO said VALUES (3, 'then \\');\n")
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1, 2]
    assert await said(postgres_url) == [*READ_AS_ON, (3, "then \\")]


async def test_a_rule_of_several_actions_migrates_as_psql_runs_it(
    postgres_url: str, tmp_path: Path
) -> None:
    """`pg_dump --schema-only`'s form of a rule with two actions, in parentheses, applies.

    The splitter cut at the `;` between them: the server got half a rule and a lone `)`,
    refused with a syntax error at the runner's own `DO` marker.
    """
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_rule.sql").write_text(
        "CREATE TABLE src (x int); CREATE TABLE a (x int); CREATE TABLE b (x int);\n"
        "CREATE RULE r AS\n    ON INSERT TO src DO ( INSERT INTO a (x)\n  VALUES (new.x);\n"
        " INSERT INTO b (x)\n  VALUES (new.x);\n);\n"
        "INSERT INTO src VALUES (7);\n"
    )
    async with connect(postgres_url) as db:
        assert [m.version for m in await migrate(db, package_folder=folder)] == [1]
    plain = await asyncpg.connect(postgres_url)
    try:
        rows = [await plain.fetchval(f"SELECT array_agg(x) FROM {t}") for t in ("a", "b")]  # noqa: S608  # two names of this test's
    finally:
        await plain.close()
    assert rows == [[7], [7]]


AT_COMMIT: Final = {
    "unique": (
        "CREATE TABLE u (n integer UNIQUE DEFERRABLE INITIALLY DEFERRED);\n",
        'unique constraint "u_n_key"',
    ),
    "exclusion": (
        (
            "CREATE TABLE u (n integer, CONSTRAINT one_n EXCLUDE USING btree (n WITH =) "
            "DEFERRABLE INITIALLY DEFERRED);\n"
        ),
        'exclusion constraint "one_n"',
    ),
}
"""Deferred constraints whose server message, at the commit, names no table."""


@pytest.mark.parametrize("kind", list(AT_COMMIT))
async def test_a_deferred_constraint_failing_at_the_commit_names_its_table(
    postgres_url: str, tmp_path: Path, kind: str
) -> None:
    """The error names the file, the constraint and its table.

    PostgreSQL's message of a unique or exclusion constraint names the constraint alone; its
    table was in the error's fields only. (A foreign key's message names both already; SQLite
    checks a unique constraint at each statement, naming `u.n`.)
    """
    table, constraint = AT_COMMIT[kind]
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_u.sql").write_text(table)
    (folder / "0002_twice.sql").write_text("INSERT INTO u VALUES (1);\nINSERT INTO u VALUES (1);\n")
    async with connect(postgres_url) as db:
        with pytest.raises(MigrationError) as raised:
            await migrate(db, package_folder=folder)
    message = str(raised.value)
    assert message.startswith("0002_twice.sql: at its commit: "), message
    assert constraint in message, message
    assert 'on table "u"' in message, message
    assert raised.value.migration == "0002_twice"
