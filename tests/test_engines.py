"""Choosing the engine by URL, and how each engine behaves when things go wrong."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, cast

import asyncpg
import asyncpg.exceptions._base as asyncpg_base  # its DataError: an argument refused before sending
import attrs
import pytest
from aiosql.adapters.asyncpg import AsyncPGAdapter

from _server import kill_own_connections, no_connection_left
from persistence import (
    ConflictError,
    Database,
    DatabaseError,
    Engine,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    close_database,
    connect,
    connection,
    find_result,
    migrate,
    open_database,
    result_stats,
    save_result,
    save_results,
    transaction,
)
from persistence._database_value import backend_of
from persistence._postgres import adapter as pg_adapter
from persistence._postgres import backend as postgres_backend
from persistence._postgres.connections import left_broken
from persistence.database import DEFAULT_DATABASE, engine_of

URLS = [
    (None, Engine.SQLITE, str(DEFAULT_DATABASE)),
    ("", Engine.SQLITE, str(DEFAULT_DATABASE)),
    ("results.db", Engine.SQLITE, "results.db"),
    ("/abs/results.db", Engine.SQLITE, "/abs/results.db"),
    ("sqlite:///relative/x.db", Engine.SQLITE, "relative/x.db"),
    ("sqlite:////absolute/x.db", Engine.SQLITE, "/absolute/x.db"),
    ("postgresql://u@h:5432/db", Engine.POSTGRES, "postgresql://u@h:5432/db"),
    ("postgres://u@h/db", Engine.POSTGRES, "postgres://u@h/db"),
]


@pytest.mark.parametrize(("url", "engine", "target"), URLS)
def test_the_url_chooses_the_engine(url: str | None, engine: Engine, target: str) -> None:
    """postgresql:// selects PostgreSQL; a path or sqlite:/// selects SQLite."""
    assert engine_of(url) == (engine, target)


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://"])
def test_unusable_urls_are_refused(url: str) -> None:
    """A scheme this package does not speak, or a URL naming no file, is a clear error."""
    with pytest.raises(DatabaseError, match=url.split(":", maxsplit=1)[0]):
        engine_of(url)


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    """SQLite opens in WAL mode, with foreign keys on and a full sync on commit."""
    async with connect(tmp_path / "x.db") as db:
        writer = backend_of(db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # SQLite's writer, read only here
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


async def test_unreachable_server_fails_fast() -> None:
    """An unreachable server gives a clear DatabaseError within the connect timeout."""
    started = time.monotonic()
    with pytest.raises(DatabaseError, match="cannot connect to PostgreSQL"):
        await open_database("postgresql://x@127.0.0.1:1/none", connect_timeout=2)
    assert time.monotonic() - started < 5


async def test_password_is_not_in_the_error() -> None:
    """The connection error names the server but not the password."""
    with pytest.raises(DatabaseError) as raised:
        await open_database("postgresql://user:s3cret@127.0.0.1:1/none", connect_timeout=2)
    assert "s3cret" not in str(raised.value)
    assert "***" in str(raised.value)


def result() -> TestResult:
    """A plain result."""
    return TestResult(test_type=TestType.STRESS, status=TestStatus.RUNNING)


async def test_dropped_connection_is_replaced(postgres_url: str) -> None:
    """After the server drops every connection, a call may fail clearly, and the next succeeds."""
    async with connect(postgres_url) as db:
        await migrate(db)
        await save_result(db, result())
        assert await kill_own_connections(postgres_url) >= 1
        try:
            await save_result(db, result())
            first_failed = False
        except DatabaseError:
            first_failed = True
        await save_result(db, result())
        assert len(await all_results(db)) == (2 if first_failed else 3)


async def test_save_results_uses_copy_on_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the batch insert goes through COPY, once, and stores every row."""
    copies: list[int] = []
    original = asyncpg.Connection.copy_records_to_table

    async def spy(
        self: asyncpg.Connection[asyncpg.Record],
        table: str,
        *,
        records: AsyncIterable[tuple[object, ...]],
        columns: list[str],
    ) -> str:
        given = [record async for record in records]  # a slice at a time, as the loop allows
        copies.append(len(given))
        return await original(self, table, records=given, columns=columns)

    monkeypatch.setattr(asyncpg.Connection, "copy_records_to_table", spy)
    async with connect(postgres_url) as db:
        await migrate(db)
        assert await save_results(db, [result() for _ in range(1000)]) == 1000
        assert len(await all_results(db)) == 1000
    assert copies == [1000]


def test_sqlite_process_state_is_untouched(tmp_path: Path) -> None:
    """Opening, using and closing a database leaves sqlite3's adapters and converters as they were.

    A host application's own sqlite3 use behaves as in a process that never imported this
    package: a dict is still not a value sqlite3 stores, and no converter is registered.
    """
    adapters, converters = dict(sqlite3.adapters), dict(sqlite3.converters)

    async def use() -> None:
        async with connect(tmp_path / "x.db") as db:
            await migrate(db)
            await save_result(db, result())
            assert len(await all_results(db)) == 1

    asyncio.run(use())
    assert dict(sqlite3.adapters) == adapters
    assert dict(sqlite3.converters) == converters
    host = sqlite3.connect(tmp_path / "host.db", detect_types=sqlite3.PARSE_DECLTYPES)
    try:
        host.execute("CREATE TABLE t (doc JSON_TEXT, at TIMESTAMP_TEXT)")
        with pytest.raises(sqlite3.ProgrammingError):
            host.execute("INSERT INTO t (doc) VALUES (?)", ({"a": 1},))
        host.execute("INSERT INTO t (doc, at) VALUES ('{}', '2026-01-01T00:00:00')")
        assert host.execute("SELECT doc, at FROM t").fetchone() == ("{}", "2026-01-01T00:00:00")
    finally:
        host.close()


async def test_concurrent_calls_all_succeed(db: Database) -> None:
    """Many tasks calling at once all get their answers, whichever connection serves them."""
    saved = [await save_result(db, result()) for _ in range(5)]
    ids = [r.id for r in saved if r.id is not None]
    found = await asyncio.gather(*(find_result(db, ids[n % 5]) for n in range(40)))
    assert [r.id if r else None for r in found] == [ids[n % 5] for n in range(40)]


async def test_a_failing_batch_raises_the_packages_error_on_sqlite(tmp_path: Path) -> None:
    """A batch that SQLite refuses mid-way raises DatabaseError, and stores none of it."""
    path = tmp_path / "x.db"
    async with connect(path) as db:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(path)) as other:
            other.execute(
                "CREATE TRIGGER every_tenth AFTER INSERT ON test_results "
                "WHEN NEW.id % 10 = 0 BEGIN INSERT INTO no_such_table VALUES (1); END"
            )
            other.commit()
        with pytest.raises(DatabaseError, match="no such table") as raised:
            await save_results(db, [result() for _ in range(50)])
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert await all_results(db) == []


async def test_a_cancelled_batch_raises_the_packages_error_on_postgres(
    postgres_url: str, postgres_admin: str
) -> None:
    """A COPY that the server cancels raises DatabaseError, and stores none of it."""
    async with connect(postgres_url) as db:
        await migrate(db)
        admin = await asyncpg.connect(postgres_admin)
        locker = await asyncpg.connect(postgres_url)
        try:
            await locker.execute("BEGIN; LOCK TABLE test_results IN ACCESS EXCLUSIVE MODE")

            async def cancel_the_copy() -> None:
                for _ in range(500):
                    await asyncio.sleep(0.01)
                    if await admin.fetchval(
                        "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = $1 AND wait_event_type = 'Lock'",
                        postgres_url.rsplit("/", 1)[1],
                    ):
                        return

            canceller = asyncio.create_task(cancel_the_copy())
            with pytest.raises(DatabaseError, match="cancel") as raised:
                await save_results(db, [result() for _ in range(100)])
            await canceller
            assert isinstance(raised.value.__cause__, asyncpg.QueryCanceledError)
        finally:
            await locker.close()
            await admin.close()
        assert await all_results(db) == []


async def test_a_pool_of_one_connection_still_runs_transactions(postgres_url: str) -> None:
    """With one connection, a statement does not keep it from the next transaction."""
    async with connect(postgres_url, pool_size=1) as db:
        await migrate(db)
        first = await save_result(db, result())
        async with asyncio.timeout(10), transaction(db) as tx:
            second = await save_result(tx, result())
        assert {r.id for r in await all_results(db)} == {first.id, second.id}


async def test_a_long_bulk_save_is_several_copies_and_still_all_or_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each COPY stays within the statement bound; a failure in a later one keeps nothing."""
    monkeypatch.setattr(pg_adapter, "COPY_ROWS", 3)
    copies: list[str] = []
    copy = asyncpg.Connection.copy_records_to_table

    async def counted(self: asyncpg.Connection, table: str, **options: Any) -> str:  # noqa: ANN401  # passed through as asyncpg takes them
        copies.append(table)
        return await copy(self, table, **options)

    monkeypatch.setattr(asyncpg.Connection, "copy_records_to_table", counted)
    async with connect(postgres_url) as db:
        await migrate(db)
        assert await save_results(db, [result() for _ in range(10)]) == 10
        assert copies == ["test_results"] * 4
        assert len(await all_results(db)) == 10
        bad = [result() for _ in range(7)] + [attrs.evolve(result(), run_id=999_999)]
        with pytest.raises(ConflictError, match="run_id"):
            await save_results(db, bad)
        assert len(await all_results(db)) == 10  # the first two copies rolled back too


async def test_a_postgres_conflict_says_its_detail_once_on_one_line(
    migrated_postgres_url: str,
) -> None:
    """The server's detail follows its message once, after a colon: not after str()'s own copy."""
    async with connect(migrated_postgres_url) as db:
        with pytest.raises(ConflictError) as caught:
            await save_result(
                db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=999_999)
            )
    assert str(caught.value) == (
        'insert or update on table "test_results" violates foreign key constraint '
        '"test_results_run_id_fkey": Key (run_id)=(999999) is not present in table "runs".'
    )


async def test_a_postgres_exclusion_conflict_is_a_conflict_as_a_unique_one_is(
    migrated_postgres_url: str,
) -> None:
    """An exclusion constraint is a uniqueness rule too: its violation is a `ConflictError`.

    It was a `DatabaseError` prefixed `PostgreSQL: `, where a unique violation of the same
    rows, in the same call, is a `ConflictError` naming its constraint.
    """
    async with connect(migrated_postgres_url) as db:
        async with connection(db) as conn:
            server = cast("asyncpg.Connection[asyncpg.Record]", conn)
            await server.execute("CREATE TABLE booked (n int, EXCLUDE USING btree (n WITH =))")
            await server.execute("INSERT INTO booked VALUES (1)")
        with pytest.raises(ConflictError, match=r"^conflicting key value") as caught:
            async with connection(db) as conn:
                await cast("asyncpg.Connection[asyncpg.Record]", conn).execute(
                    "INSERT INTO booked VALUES (1)"
                )
    assert caught.value.constraint == "booked_n_excl"
    assert 'exclusion constraint "booked_n_excl" on table "booked"' in str(caught.value)


async def test_a_postgres_unique_conflict_names_its_table(migrated_postgres_url: str) -> None:
    """PostgreSQL's message names the constraint alone; SQLite's names `table.column`.

    The table was in the driver error's fields only, so a conflict in one of several tables
    written in one call (or a migration's) did not say which.
    """
    async with connect(migrated_postgres_url) as db:
        async with connection(db) as conn:
            server = cast("asyncpg.Connection[asyncpg.Record]", conn)
            await server.execute("CREATE TABLE once (n int CONSTRAINT only_one UNIQUE)")
            await server.execute("INSERT INTO once VALUES (1)")
        with pytest.raises(ConflictError) as caught:
            async with connection(db) as conn:
                await cast("asyncpg.Connection[asyncpg.Record]", conn).execute(
                    "INSERT INTO once VALUES (1)"
                )
    assert str(caught.value) == (
        'duplicate key value violates unique constraint "only_one" on table "once": '
        "Key (n)=(1) already exists."
    )
    assert caught.value.constraint == "only_one"


@pytest.mark.parametrize(
    ("error", "broken"),
    [
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            True,
        ),
        (asyncpg.InternalClientError("cannot switch to state 21"), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (asyncpg_base.DataError("invalid input for query argument $1"), False),
        (asyncpg.UniqueViolationError("duplicate key"), False),
    ],
    ids=["busy", "state", "reset", "timeout", "argument", "server"],
)
def test_only_a_connection_left_in_doubt_is_dropped(
    error: Exception,
    broken: bool,  # noqa: FBT001  # a parameter of the test
) -> None:
    """A connection whose call failed as a connection is terminated, and only such.

    One that refused a value before sending it, or got the server's answer, goes back to the
    pool as it was: a reconnect for each bad value would cost a new server process each.
    """
    assert left_broken(error) is broken  # the rule itself
    wrapped = DatabaseError("wrapped")
    wrapped.__cause__ = error
    assert left_broken(wrapped) is broken


async def test_a_call_with_the_lane_free_takes_it_without_a_context(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a call finding the lane free takes it at once, not through `lend()`.

    Entering and leaving `lend()`'s context cost three coroutines and two objects a call: a
    point read cost 1.6 times the instructions of asyncpg by hand. A failed call still hands
    the lane's connection back, and a close that begins while a call holds the lane waits
    for it and leaves no connection open.
    """
    lent: list[object] = []
    lend = postgres_backend.PostgresBackend.lend

    def counted(backend: postgres_backend.PostgresBackend) -> object:
        lent.append(backend)
        return lend(backend)

    db = await open_database(migrated_postgres_url)
    saved = await save_result(db, result())  # the lane's connection comes at the first call
    monkeypatch.setattr(postgres_backend.PostgresBackend, "lend", counted)
    assert await find_result(db, saved.id or 0) == saved
    again = await save_result(db, saved)
    assert lent == []
    with pytest.raises(ConflictError):  # no such run: the foreign key refuses it
        await save_result(db, attrs.evolve(result(), run_id=10**9))
    assert await find_result(db, again.id or 0) == saved
    reading = asyncio.ensure_future(find_result(db, saved.id or 0))
    await asyncio.sleep(0)  # the read holds the lane, its statement sent
    assert not reading.done()
    await close_database(db)
    assert await reading == saved
    await no_connection_left(migrated_postgres_url)


async def test_query_values_reach_asyncpg_in_the_sqls_order_in_one_call(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: each query's values are picked in its $1, $2... order by one call.

    aiosql's `maybe_order_params` built each list in two Python calls, a method and its list
    comprehension: about a tenth of the adapter's own cost on a point read. Queries of no
    value, one and many, and a COPY, still run.
    """

    def refused(*_: object) -> None:
        raise AssertionError("aiosql's maybe_order_params was called")

    monkeypatch.setattr(AsyncPGAdapter, "maybe_order_params", refused)
    async with connect(migrated_postgres_url) as db:
        saved = await save_result(db, result())  # twelve values
        assert await find_result(db, saved.id or 0) == saved  # one
        assert await save_results(db, [result(), result()]) == 2  # COPY's records
        assert (await result_stats(db))[TestType.STRESS].total == 3  # none


async def test_a_second_open_rewrites_no_postgres_query_again(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: each query's parameters are rewritten as $1, $2... once a process.

    Every open used to run aiosql's rewriting of all the queries again, about 3 ms of the
    open. A second open takes the first one's, and its queries run, COPY included.
    """
    async with connect(migrated_postgres_url):
        pass  # the process has rewritten each query by now

    def refused(*_: object) -> None:
        raise AssertionError("aiosql's process_sql rewrote a query again")

    monkeypatch.setattr(AsyncPGAdapter, "process_sql", refused)
    async with connect(migrated_postgres_url) as db:
        saved = await save_result(db, result())
        assert await find_result(db, saved.id or 0) == saved
        assert await save_results(db, [result(), result()]) == 2
        assert (await result_stats(db))[TestType.STRESS].total == 3
