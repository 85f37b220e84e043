"""A caller's short statement timeout on a lent connection does not cut its reset short.

The reset runs on the caller's session settings until it resets them: with `statement_timeout`
at 1 ms, dropping the caller's temporary tables took longer than that, the reset failed, and
the connection was closed instead of handed back (PostgreSQL).
"""

from __future__ import annotations

import pytest

from persistence import connect, connection
from persistence._postgres import backend as postgres_backend
from persistence._postgres import connections
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg

MANY_TEMPORARY_TABLES = (
    "DO $$BEGIN FOR i IN 1..300 LOOP"
    " EXECUTE format('CREATE TEMP TABLE t%s (x int)', i); END LOOP; END$$"
)


async def test_a_short_statement_timeout_does_not_cut_the_reset(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 temporary tables, then a 1 ms timeout: the reset runs whole, the connection stays."""
    tidy = connections.tidy
    failures: list[BaseException] = []

    async def watched(conn: PgConnection, *, full: bool, sessions: bool) -> None:
        try:
            await tidy(conn, full=full, sessions=sessions)
        except BaseException as error:
            failures.append(error)
            raise

    monkeypatch.setattr(postgres_backend, "tidy", watched)
    async with connect(migrated_postgres_url, pool_size=1) as db:
        async with connection(db) as lent:
            conn = as_pg(lent)
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute(MANY_TEMPORARY_TABLES)
            await conn.execute("SET statement_timeout = 1")
        assert failures == []
        async with connection(db) as lent:
            conn = as_pg(lent)
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            temporary = "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"
            assert await conn.fetchval(temporary) == 0
