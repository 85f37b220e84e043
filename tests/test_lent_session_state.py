"""What a caller's own SQL sets on a connection that `connection(db)` lent ends with the loan.

On PostgreSQL the caller gets asyncpg's connection, and may set session state on it (a plain
SET, a temporary table, LISTEN, a session advisory lock, PREPARE, a held cursor). The loan
gives it back reset in full; the package's own calls keep the cheap hand-back, which only
rolls back. On SQLite the lent session runs the generated queries only, no SQL of the caller's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from _lent_helpers import ALL_LENDERS, pooled
from _server import no_connection_left
from persistence import (
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connection,
    save_result,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence._postgres import backend as postgres_backend
from persistence._postgres import connections
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg
from persistence.database import Database, close_database, open_database
from persistence.run_history import list_test_history

KINDS: dict[str, tuple[str, str]] = {
    "search_path": ("SET search_path = elsewhere", "SELECT current_setting('search_path')"),
    "statement_timeout": ("SET statement_timeout = 54321", "SHOW statement_timeout"),
    "time zone": ("SET TIME ZONE 'Pacific/Kiritimati'", "SHOW TimeZone"),
    "standard_conforming_strings": (
        "SET standard_conforming_strings = off",
        "SHOW standard_conforming_strings",
    ),
    "role": ("SET ROLE pg_monitor", "SELECT current_user"),
    "temporary table": (
        "CREATE TEMP TABLE test_results (id int)",
        "SELECT count(*)::text FROM pg_class WHERE relpersistence = 't'",
    ),
    "listen": ("LISTEN leftover", "SELECT count(*)::text FROM pg_listening_channels()"),
    "advisory lock": (
        "SELECT pg_advisory_lock(1)",
        (
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid()"
        ),
    ),
    "prepared statement": (
        "PREPARE leftover AS SELECT 1",
        "SELECT count(*)::text FROM pg_prepared_statements WHERE from_sql",
    ),
    "catalog shadowed": (
        (
            "CREATE SCHEMA IF NOT EXISTS shadow; CREATE OR REPLACE VIEW "
            "shadow.pg_prepared_statements AS SELECT ''::text AS name, false AS from_sql "
            "WHERE false; SET search_path = shadow, pg_catalog; PREPARE hidden AS SELECT 1"
        ),
        "SELECT count(*)::text FROM pg_catalog.pg_prepared_statements WHERE from_sql",
    ),
    "held cursor": (
        "DECLARE leftover CURSOR WITH HOLD FOR SELECT 1",
        "SELECT count(*)::text FROM pg_cursors WHERE name = 'leftover'",
    ),
}
"""Each kind of session state: the caller's SQL that sets it, and a probe of its value."""

NEEDS_A_TRANSACTION = frozenset({"held cursor"})
NEEDS_WRITES = frozenset({"temporary table", "catalog shadowed"})  # read_snapshot() is READ ONLY

LENDERS = ALL_LENDERS


def result() -> TestResult:
    """A small result to save."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


async def probe(db: Database, sql: str) -> tuple[int, str]:
    """The lent connection's server process, and what `sql` reads on it."""
    async with connection(db) as lent:
        conn = as_pg(lent)
        return int(await conn.fetchval("SELECT pg_backend_pid()")), str(await conn.fetchval(sql))


@pytest.fixture
async def sole(migrated_postgres_url: str) -> AsyncIterator[Database]:
    """A database of one pooled connection (so no lane), whose own default differs from ours.

    The database sets standard_conforming_strings off; the package sets it on at connect, and
    a RESET ALL must go back to that, not to the database's.
    """
    admin = await asyncpg.connect(migrated_postgres_url)
    try:
        name = await admin.fetchval("SELECT current_database()")
        await admin.execute(f'ALTER DATABASE "{name}" SET standard_conforming_strings = off')
    finally:
        await admin.close()
    async with pooled(migrated_postgres_url, 1) as db:
        yield db


@pytest.mark.parametrize(
    ("kind", "where"),
    [
        (kind, where)
        for kind in KINDS
        for where in LENDERS
        if not (kind in NEEDS_WRITES and where == "in read_snapshot()")
    ],
)
async def test_state_set_in_a_loan_is_gone_for_the_next_call(
    sole: Database, kind: str, where: str
) -> None:
    """PostgreSQL: each kind of session state set through `connection()` ends with the loan.

    Inside a block it ends with the block: the transaction's connection goes back reset.
    """
    setting, reading = KINDS[kind]
    saved = await save_result(sole, result())
    pid, before = await probe(sole, reading)
    async with LENDERS[where](sole) as lender, connection(lender) as lent:
        if kind in NEEDS_A_TRANSACTION and not lender.in_transaction:
            setting = f"BEGIN; {setting}; COMMIT"
        await as_pg(lent).execute(setting)
    assert await probe(sole, reading) == (pid, before)  # the same connection, as it was
    assert await all_results(sole) == [saved]  # no other schema, no temporary table first


async def test_sequence_state_set_in_a_loan_is_gone_for_the_next_call(sole: Database) -> None:
    """The `currval` and `lastval` that the caller's `nextval` set end with the loan."""
    async with connection(sole) as lent:
        await as_pg(lent).fetchval("SELECT nextval('test_results_id_seq')")
    async with connection(sole) as lent:
        with pytest.raises(asyncpg.ObjectNotInPrerequisiteStateError, match="lastval"):
            await as_pg(lent).fetchval("SELECT lastval()")


async def test_the_package_own_calls_hand_back_without_the_reset(
    sole: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: only a loan through the public `connection()` pays the reset's round trip."""
    resets: list[bool] = []
    tidy = connections.tidy

    async def counted(conn: PgConnection, *, full: bool, sessions: bool) -> None:
        resets.append(full)
        await tidy(conn, full=full, sessions=sessions)

    monkeypatch.setattr(postgres_backend, "tidy", counted)
    await save_result(sole, result())
    await all_results(sole)
    await list_test_history(sole, "tests/test_x.py::test_y")  # an internal connection() loan
    async with transaction(sole) as tx:
        await set_config(tx, "loans", "kept", 1)
    assert True not in resets
    async with connection(sole):
        pass
    assert resets.count(True) == 1


async def test_the_lane_lent_to_a_caller_goes_back_reset(migrated_postgres_url: str) -> None:
    """PostgreSQL: a loan that took the fast lane leaves none of its state on the lane."""
    db = await open_database(migrated_postgres_url)
    try:
        saved = await save_result(db, result())  # the lane's connection comes at the first call
        async with connection(db) as lent:
            await as_pg(lent).execute("SET search_path = elsewhere; SET statement_timeout = 1")
        for _ in range(5):
            assert await all_results(db) == [saved]
    finally:
        await close_database(db)
    await no_connection_left(migrated_postgres_url)


@pytest.mark.parametrize("how", ["cancelled", "timed out"])
async def test_a_reset_cut_short_closes_the_connection(
    sole: Database, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """PostgreSQL: a loan cancelled, or out of time, mid-reset is closed, not half reset."""
    tidy = connections.tidy
    halfway = asyncio.Event()

    async def stalled(conn: PgConnection, *, full: bool, sessions: bool) -> None:
        if full:
            await conn.execute("RESET statement_timeout")  # half of it
            halfway.set()
            await asyncio.sleep(30)
        await tidy(conn, full=full, sessions=sessions)

    monkeypatch.setattr(postgres_backend, "tidy", stalled)
    saved = await save_result(sole, result())
    lent_pid: list[int] = []

    async def loan() -> None:
        async with connection(sole) as lent:
            conn = as_pg(lent)
            lent_pid.append(await conn.fetchval("SELECT pg_backend_pid()"))
            await conn.execute("SET search_path = elsewhere; SET statement_timeout = 1")

    task = asyncio.ensure_future(loan())
    await halfway.wait()
    if how == "cancelled":
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await task  # release_timeout (1 s) passes: the connection is closed, the call ends
    monkeypatch.setattr(postgres_backend, "tidy", tidy)
    assert await all_results(sole) == [saved]
    pid, path = await probe(sole, "SELECT current_setting('search_path')")
    assert pid != lent_pid[0]
    assert path == '"$user", public'


async def test_sqlite_lends_no_way_to_run_the_callers_sql(sqlite_db: Database) -> None:
    """SQLite: the lent session runs the generated queries only; nothing of the caller's stays.

    It has no `execute`, and its connections are the package's own, not reachable from it
    but through private names.
    """
    async with connection(sqlite_db) as lent:
        public = {name for name in dir(lent) if not name.startswith("_")}
    assert public == {"run"}
    backend_of(sqlite_db).lent_to_caller(lent)  # nothing to reset: a no-op
