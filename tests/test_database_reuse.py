"""A test database given back is reused only once it holds what a fresh copy of its template does.

Rows written and removed, and sequences moved on, are put back, and a later take gets the same
database. A change of the schema, the database's settings, or a connection left open on it,
and it is dropped instead: no later test sees what an earlier one left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

import _database_reset
from _database_reset import Outcome, reference, reset
from _test_databases import REUSE_VARIABLE, DatabaseService
from conftest import with_database
from persistence import connect, migrate
from test_test_databases import existing, log, logged

__all__ = ["log"]  # the fixture, for this module's tests

TAKEN_WAIT = 60
"""How long a reset or a drop may take on a busy server, in seconds."""


@pytest.fixture
def service(postgres_admin: str, log: Path) -> Iterator[DatabaseService]:
    """A database process of this test's own, which must end with nothing left."""
    del log
    started = DatabaseService(postgres_admin)
    try:
        yield started
    finally:
        failures = started.close()
    assert failures == []


@pytest.fixture
def template(_migrated_template: str) -> str:
    """The migrated template of this test process."""
    return _migrated_template


def outcome(log: Path, name: str, *, after: int = 0) -> str:
    """The log's line on whether `name` was reset, once it has one; `after` earlier ones."""
    deadline = time.monotonic() + TAKEN_WAIT
    while time.monotonic() < deadline:
        lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
        said = [
            line
            for line in lines
            if line == f"reset {name}" or line.startswith(f"not reset {name}:")
        ]
        if len(said) > after:
            return said[after]
        time.sleep(0.02)
    raise AssertionError(f"no reset of {name} logged")


def gone(postgres_admin: str, log: Path, name: str) -> bool:
    """Whether `name` is dropped, once the log says so."""
    deadline = time.monotonic() + TAKEN_WAIT
    while name not in logged(log)[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    return existing(postgres_admin, [name]) == set()


def another(service: DatabaseService, template: str, name: str) -> bool:
    """Whether a take now gets a database other than `name`; it is given back."""
    taken = service.take(template)
    service.give(taken)
    return taken != name


async def _run(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _contents(url: str) -> dict[str, object]:
    """Every row of every table of the public schema, and every sequence's state."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
        )
        found: dict[str, object] = {}
        for (table,) in tables:
            rows = await connection.fetch(f'SELECT * FROM "{table}"')  # noqa: S608  # catalog name
            found[table] = sorted(tuple(map(repr, row)) for row in rows)
        found["sequences"] = [
            tuple(row) for row in await connection.fetch("SELECT * FROM pg_sequences ORDER BY 2")
        ]
    finally:
        await connection.close()
    return found


def test_changed_rows_and_sequences_are_put_back_and_the_database_reused(
    postgres_admin: str, template: str, service: DatabaseService, log: Path
) -> None:
    """Rows added and removed and a sequence moved on: the next take gets it as it was."""
    name = service.take(template)
    url = with_database(postgres_admin, name)
    fresh = asyncio.run(_contents(url))
    assert fresh["persistence_migrations"], "the template holds its migrations"
    asyncio.run(
        _run(
            url,
            "INSERT INTO runs (started_at) SELECT now() FROM generate_series(1, 50)",
            "DELETE FROM persistence_migrations WHERE version = (SELECT max(version)"
            " FROM persistence_migrations)",
            "UPDATE persistence_migrations SET checksum = 'changed'",
            "SELECT nextval('test_results_id_seq')",
        )
    )
    assert asyncio.run(_contents(url)) != fresh
    service.give(name)
    assert outcome(log, name) == f"reset {name}"
    assert service.take(template) == name
    assert asyncio.run(_contents(url)) == fresh
    service.give(name)


SCHEMA_CHANGES = {
    "a table added": "CREATE TABLE extra (x int)",
    "a column added": "ALTER TABLE runs ADD COLUMN extra int",
    "an index added": "CREATE INDEX extra ON runs (started_at)",
    "a trigger disabled": "ALTER TABLE test_results DISABLE TRIGGER USER",
    "a trigger function replaced": (
        "CREATE OR REPLACE FUNCTION persistence_notify_change() RETURNS trigger"
        " LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
    ),
    "a column's default dropped": "ALTER TABLE runs ALTER COLUMN labels DROP DEFAULT",
    "a comment": "COMMENT ON TABLE runs IS 'changed'",
    "a grant": "GRANT SELECT ON runs TO PUBLIC",
    "a large object": "SELECT lo_create(0)",
    "a table dropped": "DROP TABLE result_artifacts",
}


DATABASE_CHANGES = {
    "a connection limit": "ALTER DATABASE {name} CONNECTION LIMIT 7",
    "a grant on it": "GRANT CREATE ON DATABASE {name} TO PUBLIC",
    "a comment on it": "COMMENT ON DATABASE {name} IS 'changed'",
}
"""Changes to the database's own row or settings, made from the server's admin database."""

CHANGES = {
    **{case: (False, change) for case, change in SCHEMA_CHANGES.items()},
    **{case: (True, change) for case, change in DATABASE_CHANGES.items()},
}


@pytest.mark.parametrize(("as_admin", "change"), CHANGES.values(), ids=CHANGES.keys())
def test_a_changed_database_is_dropped_not_reused(
    postgres_admin: str,
    template: str,
    service: DatabaseService,
    log: Path,
    *,
    as_admin: bool,
    change: str,
) -> None:
    """Any change to its catalogs, own row or settings: dropped; a later take gets another."""
    name = service.take(template)
    where = postgres_admin if as_admin else with_database(postgres_admin, name)
    asyncio.run(_run(where, change.format(name=name)))
    service.give(name)
    reason = "its database settings" if as_admin else "its catalogs differ"
    assert outcome(log, name).startswith(f"not reset {name}: {reason}")
    assert another(service, template, name)
    assert gone(postgres_admin, log, name)


async def _work_mem(url: str) -> str:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return str(await connection.fetchval("SHOW work_mem"))
    finally:
        await connection.close()


def test_settings_set_on_a_database_are_removed_and_it_is_reused(
    postgres_admin: str, template: str, service: DatabaseService, log: Path
) -> None:
    """Its own settings and a role's in it are removed: the next take gets it, as fresh."""
    name = service.take(template)
    url = with_database(postgres_admin, name)
    fresh = asyncio.run(_work_mem(url))
    asyncio.run(
        _run(
            postgres_admin,
            f"ALTER DATABASE {name} SET work_mem = '1MB'",
            f"ALTER ROLE CURRENT_USER IN DATABASE {name} SET work_mem = '2MB'",
        )
    )
    assert asyncio.run(_work_mem(url)) == "2MB"
    service.give(name)
    assert outcome(log, name) == f"reset {name}"
    assert service.take(template) == name
    assert asyncio.run(_work_mem(url)) == fresh
    service.give(name)


@pytest.mark.parametrize("change", SCHEMA_CHANGES.values(), ids=SCHEMA_CHANGES.keys())
def test_a_reused_database_changed_is_dropped_not_reused(
    postgres_admin: str, template: str, service: DatabaseService, log: Path, change: str
) -> None:
    """A copy reset before, whose catalogs the reset trusts while their write count stays."""
    name = service.take(template)
    service.give(name)
    assert outcome(log, name) == f"reset {name}"
    assert service.take(template) == name
    asyncio.run(_run(with_database(postgres_admin, name), change))
    service.give(name)
    assert outcome(log, name, after=1).startswith(f"not reset {name}: its catalogs differ")
    assert another(service, template, name)
    assert gone(postgres_admin, log, name)


def test_catalogs_unwritten_since_the_last_reset_are_not_read_again(
    postgres_admin: str, template: str, service: DatabaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows changed, catalogs not: the write count stands in for reading every catalog.

    It stands in until a catalog is written, even in a transaction rolled back.
    """
    name = service.take(template)
    url = with_database(postgres_admin, name)
    ref = asyncio.run(reference(postgres_admin, url, name))
    first = asyncio.run(reset(postgres_admin, url, name, ref))
    assert first.problem is None
    assert first.writes is not None
    read: list[object] = []
    real = _database_reset._catalog_marks  # noqa: SLF001  # the reading it stands in for

    async def counted(connection: asyncpg.Connection) -> tuple[tuple[str, str], ...]:
        read.append(connection)
        return await real(connection)

    monkeypatch.setattr(_database_reset, "_catalog_marks", counted)
    asyncio.run(_run(url, "INSERT INTO runs (started_at) VALUES (now())"))
    second = asyncio.run(reset(postgres_admin, url, name, ref, first.writes))
    assert (second, read) == (Outcome(None, first.writes), [])
    asyncio.run(_run(url, "BEGIN", "CREATE TABLE gone (x int)", "ROLLBACK"))
    third = asyncio.run(reset(postgres_admin, url, name, ref, second.writes))
    assert third.problem is None
    assert third.writes != second.writes
    assert len(read) == 1
    asyncio.run(_run(url, "COMMENT ON TABLE runs IS 'changed'"))
    fourth = asyncio.run(reset(postgres_admin, url, name, ref, third.writes))
    assert fourth == Outcome("its catalogs differ: pg_description")
    service.give(name)


async def _given_back_with_a_connection_open(
    url: str, service: DatabaseService, log: Path, name: str
) -> str:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        service.give(name)
        return await asyncio.to_thread(outcome, log, name)
    finally:
        await connection.close()


def test_a_database_given_back_with_a_connection_open_is_dropped(
    postgres_admin: str, template: str, service: DatabaseService, log: Path
) -> None:
    """A connection left open could write after the reset: the database is dropped."""
    name = service.take(template)
    url = with_database(postgres_admin, name)
    said = asyncio.run(_given_back_with_a_connection_open(url, service, log, name))
    assert said == f"not reset {name}: connections left open on it"
    assert another(service, template, name)
    assert gone(postgres_admin, log, name)


def test_closed_while_resets_are_under_way_it_drops_them_all(
    postgres_admin: str, template: str, log: Path
) -> None:
    """Databases given back just before the close are dropped with the rest."""
    service = DatabaseService(postgres_admin)
    try:
        names = [service.take(template) for _ in range(4)]
        for name in names:
            service.give(name)
    finally:
        failures = service.close()
    assert failures == []
    made, dropped = logged(log)
    assert set(names) <= set(made)
    assert sorted(dropped) == sorted(made)
    assert existing(postgres_admin, made) == set()


def test_with_reuse_off_every_database_given_back_is_dropped(
    postgres_admin: str, template: str, log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PERSISTENCE_TEST_DATABASES_REUSE=0: no reset, each database given back is dropped."""
    monkeypatch.setenv(REUSE_VARIABLE, "0")
    service = DatabaseService(postgres_admin)
    try:
        name = service.take(template)
        service.give(name)
        assert gone(postgres_admin, log, name)
        assert another(service, template, name)
    finally:
        failures = service.close()
    assert failures == []
    assert not [line for line in log.read_text(encoding="utf-8").splitlines() if "reset" in line]


async def _migrated_with_more(url: str) -> None:
    async with connect(url) as db:
        await migrate(db)
    await _run(
        url,
        "CREATE SCHEMA other",
        "CREATE TABLE other.kept (x int)",
        "CREATE TYPE mood AS ENUM ('a', 'b')",
        "CREATE DOMAIN small AS int CHECK (VALUE < 10)",
        "CREATE TYPE pair AS (a int, b int)",
        "CREATE SEQUENCE loose",
        "CREATE VIEW recent AS SELECT * FROM runs",
        "CREATE MATERIALIZED VIEW counted AS SELECT count(*) FROM runs",
        "CREATE PROCEDURE nothing() LANGUAGE sql AS 'SELECT 1'",
        "CREATE FUNCTION \"odd name\"(mood) RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "INSERT INTO runs (started_at) VALUES (now())",
    )


async def _own_objects(url: str) -> list[str]:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT IN"
            " ('pg_catalog', 'information_schema', 'public') AND nspname !~ '^pg_toast'"
            " UNION ALL SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            " UNION ALL SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace"
        )
    finally:
        await connection.close()
    return sorted(str(name) for (name,) in rows)


def test_an_empty_database_migrated_by_its_test_is_wiped_and_reused(
    postgres_admin: str, service: DatabaseService, log: Path
) -> None:
    """A copy of template0 that its test migrated, and filled with more: back to empty."""
    name = service.take("template0")
    url = with_database(postgres_admin, name)
    asyncio.run(_migrated_with_more(url))
    assert len(asyncio.run(_own_objects(url))) > 40
    service.give(name)
    assert outcome(log, name) == f"reset {name}"
    assert service.take("template0") == name
    assert asyncio.run(_own_objects(url)) == []
    service.give(name)


EMPTY_TEMPLATE_CHANGES = {
    "a large object": "SELECT lo_create(0)",
    "a grant on the public schema": "GRANT CREATE ON SCHEMA public TO PUBLIC",
    "a comment on the public schema": "COMMENT ON SCHEMA public IS 'changed'",
    "a cast": "CREATE CAST (date AS bool) WITH INOUT",
}


@pytest.mark.parametrize("change", EMPTY_TEMPLATE_CHANGES.values(), ids=EMPTY_TEMPLATE_CHANGES)
def test_an_empty_database_that_the_wipe_cannot_bring_back_is_dropped(
    postgres_admin: str, service: DatabaseService, log: Path, change: str
) -> None:
    """What no drop of the public schema's objects undoes: dropped, as any other change."""
    name = service.take("template0")
    url = with_database(postgres_admin, name)
    asyncio.run(_migrated_with_more(url))
    asyncio.run(_run(url, change))
    service.give(name)
    assert outcome(log, name).startswith(f"not reset {name}: its catalogs differ")
    assert another(service, "template0", name)
    assert gone(postgres_admin, log, name)
