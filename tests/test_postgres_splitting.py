"""How the PostgreSQL splitter cuts a migration script into statements, with no server."""

from __future__ import annotations

from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence._postgres import split_postgres
from persistence.exceptions import MigrationError
from strategies import IN_MEMORY

ROUTINES: Final = (
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND",
    (
        "create or replace procedure p(begin int) language sql begin atomic\n"
        "  insert into t values (case when begin > 0 then 'a;b' else 'END;' end);\nend"
    ),
    (
        "CREATE FUNCTION g(x int) RETURNS text LANGUAGE sql\nBEGIN /* then; */ ATOMIC\n"
        "  SELECT CASE x WHEN 1 THEN 'one' ELSE CASE WHEN x < 0 THEN 'neg' END END;\nEND"
    ),
    (
        "CREATE FUNCTION h() RETURNS int LANGUAGE sql BEGIN\n-- ATOMIC on its own line;\nATOMIC\n"
        '  SELECT 1 AS end;\n  SELECT t.case FROM (SELECT 2 AS "case") AS t;\nEND'
    ),
    "CREATE FUNCTION k() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT $x$;END;$x$; END",
)
"""Routines whose SQL-standard bodies hold semicolons, with CASE, strings, comments, labels."""

OTHERS: Final = (
    "CREATE TABLE t (note text DEFAULT ';')",
    "SELECT begin atomic FROM t",
    'CREATE TABLE "begin" (atomic integer)',
    "SELECT CASE WHEN true THEN 1 END",
    "CREATE FUNCTION one() RETURNS int LANGUAGE sql RETURN 1",
    "CREATE FUNCTION two() RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN 2; END$$",
)
"""Statements that open no routine body, some of them spelling BEGIN ATOMIC or CASE."""


def spans(script: str) -> list[str]:
    """The text of `script` that each statement the splitter gives spans, as written."""
    return [script[statement.start : statement.end] for statement in split_postgres(script)]


@pytest.mark.parametrize("routine", ROUTINES)
def test_a_routine_body_is_one_statement(routine: str) -> None:
    """A `BEGIN ATOMIC ... END` body stays within its statement, and what follows is apart.

    The splitter cut at the semicolons inside it, so that a migration holding one was refused:
    "END is not allowed in a migration".
    """
    script = f"SELECT 0;\n{routine};\nSELECT 3;\n"
    assert spans(script) == ["SELECT 0", routine, "SELECT 3"]


_RULES: Final = (
    (
        "CREATE RULE r AS ON INSERT TO src DO ALSO (INSERT INTO a VALUES (NEW.x); "
        "INSERT INTO b VALUES (NEW.x))"
    ),
    (
        "CREATE RULE r AS\n    ON INSERT TO public.src DO ( INSERT INTO public.a (x)\n"
        "  VALUES (new.x);\n INSERT INTO public.b (x)\n  VALUES (new.x);\n)"
    ),
)
"""A rule of several actions, as written by hand and as `pg_dump --schema-only` writes it."""


@pytest.mark.parametrize("rule", _RULES)
def test_a_semicolon_inside_parentheses_ends_no_statement(rule: str) -> None:
    """As psql reads a script: a rule's actions, in parentheses, are one statement.

    The splitter cut at each `;`, and the server was sent `CREATE RULE ... (INSERT ...` alone
    (a syntax error naming the runner's own `DO` marker); pg_dump's form left a lone `)`.
    """
    script = f"CREATE TABLE src (x int);\n{rule};\nSELECT 3;\n"
    assert spans(script) == ["CREATE TABLE src (x int)", rule, "SELECT 3"]


@pytest.mark.parametrize("control", ["BEGIN", "END", "COMMIT", "begin atomic", "BEGIN ATOMIC"])
def test_transaction_control_stays_a_statement_of_its_own(control: str) -> None:
    """A bare BEGIN, END or COMMIT (or BEGIN ATOMIC outside a routine) ends at its semicolon."""
    assert spans(f"{control};\nSELECT 1;\nEND;\n") == [control, "SELECT 1", "END"]


def test_a_body_never_ended_is_refused_with_its_line() -> None:
    """A routine body with no END would take the rest of the file: it is refused, named."""
    with pytest.raises(MigrationError, match="statement at line 2 opens a BEGIN ATOMIC body"):
        split_postgres("SELECT 1;\nCREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1;\n")


@IN_MEMORY
@given(
    chosen=st.lists(st.sampled_from(ROUTINES + OTHERS), min_size=1, max_size=6),
    gaps=st.lists(st.sampled_from([" ", "\n", "\n-- a; comment\n", "/* ; */"]), min_size=7),
)
def test_statements_come_back_as_written(chosen: list[str], gaps: list[str]) -> None:
    """Any sequence of these statements, with comments between, splits back into itself."""
    script = "".join(f"{gap}{statement};" for gap, statement in zip(gaps, chosen, strict=False))
    assert spans(script) == chosen


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT E'it\\'s; fine';SELECT 2;", ["SELECT E'it\\'s; fine'", "SELECT 2"]),
        ("SELECT e'\\\\';SELECT 'a\\';", ["SELECT e'\\\\'", "SELECT 'a\\'"]),
        ("SELECT E'\\''; COMMIT; --'\n", ["SELECT E'\\''", "COMMIT"]),
        ("SELECT E'\\';COMMIT;';", ["SELECT E'\\';COMMIT;'"]),
    ],
    ids=["quote", "backslash", "commit-after", "commit-inside"],
)
def test_escape_strings_end_where_the_server_ends_them(script: str, expected: list[str]) -> None:
    r"""In `E'...'` a backslash escapes the quote after it, as PostgreSQL reads it.

    The splitter ended such a string at `\'`: it cut `E'it\'s; fine'` in two, so that a valid
    migration failed, and in `E'\''; COMMIT; --'` it read the COMMIT as part of the string, so
    that the check let it through and the migration's transaction ended half way.
    """
    assert spans(script) == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT 1 AS a$b$;SELECT 2;", ["SELECT 1 AS a$b$", "SELECT 2"]),
        (
            "SELECT 1 AS x$y$; COMMIT; SELECT 2 AS z$y$;",
            ["SELECT 1 AS x$y$", "COMMIT", "SELECT 2 AS z$y$"],
        ),
        ("SELECT $y$;$y$, a$$b;", ["SELECT $y$;$y$, a$$b"]),
    ],
    ids=["alone", "commit-between", "quote-then-name"],
)
def test_a_dollar_inside_a_name_opens_no_quote(script: str, expected: list[str]) -> None:
    """A `$` inside a name (`a$b$`, as PostgreSQL allows) is part of it, not a dollar quote.

    The splitter took the `$b$` of `a$b$` for the start of a dollar quote: a valid migration was
    refused ("unterminated dollar quote"), or the quote ran to a later `$y$` and a COMMIT
    between passed the check of transaction control.
    """
    assert spans(script) == expected


def test_a_dollar_quote_tag_may_hold_any_letter() -> None:
    """A dollar quote's tag may hold letters beyond ASCII (`$é$`), as PostgreSQL allows.

    The splitter read such a quote as code: it cut `$é$BEGIN RETURN 1; END$é$` at its `;`, and
    the migration was refused ("END is not allowed in a migration").
    """
    body = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $é$BEGIN RETURN 1; END$é$"
    assert spans(f"{body};\nSELECT $ä_1$;$ä_1$;\n") == [body, "SELECT $ä_1$;$ä_1$"]
