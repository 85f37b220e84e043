"""PostgreSQL faults, told truly: the figures in errors, the default bounds, and quiet logs.

A proxy on 127.0.0.1 stands between the package and the server, as in test_network.py.
Limits are short here, as a caller may set them, except where a default is what is tested.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
from typing import Any

import asyncpg
import pytest

from _proxy import Proxy, proxied
from persistence import (
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    find_result,
    get_config_value,
    migrate,
    open_database,
    save_result,
    save_results,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence._loans import borrow
from persistence._postgres.adapter import COPY_ROWS
from persistence._postgres.backend import PostgresBackend
from persistence._postgres.connections import as_pg
from persistence.database import close_database, connection

pytestmark = pytest.mark.usefixtures("postgres_admin")

COMMAND_TIMEOUT = 1.0
LONG_RELEASE = 3.0
"""A release limit far longer than the command limit, so that waiting on it shows."""
MARGIN = 0.6
"""Time allowed past a limit; a second wait of the limit (asyncpg's wait on its cancel
request, which a silent server never answers) would exceed it."""
BOUND = 10.0


def result() -> TestResult:
    """A plain result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


async def migrated(postgres_url: str) -> None:
    """Migrate the test's database directly, not through the proxy."""
    async with connect(postgres_url) as db:
        await migrate(db)


async def test_a_statement_timeout_comes_when_the_command_timeout_says(postgres_url: str) -> None:
    """The error names the command timeout, and comes then: not a release limit later."""
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url, connect_timeout=1.0, command_timeout=COMMAND_TIMEOUT, release_timeout=LONG_RELEASE
        )
        try:
            saved = await save_result(db, result())
            proxy.silence()
            started = time.monotonic()
            with pytest.raises(DatabaseError, match=r"within the command timeout \(1s\)"):
                async with asyncio.timeout(BOUND):
                    await find_result(db, saved.id or 0)
            took = time.monotonic() - started
            assert COMMAND_TIMEOUT <= took < COMMAND_TIMEOUT + MARGIN, took
        finally:
            proxy.cut()
            await close_database(db)


async def test_a_statement_timeout_in_a_block_comes_when_the_command_timeout_says(
    postgres_url: str,
) -> None:
    """Inside transaction(), the timed-out statement ends the block at the command timeout."""
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url, connect_timeout=1.0, command_timeout=COMMAND_TIMEOUT, release_timeout=LONG_RELEASE
        )
        try:
            started = 0.0
            with pytest.raises(DatabaseError, match=r"within the command timeout \(1s\)"):
                async with asyncio.timeout(BOUND), transaction(db) as tx:
                    await save_result(tx, result())
                    proxy.silence()
                    started = time.monotonic()
                    await save_result(tx, result())
            took = time.monotonic() - started
            assert COMMAND_TIMEOUT <= took < COMMAND_TIMEOUT + MARGIN, took
        finally:
            proxy.cut()
            await close_database(db)
    async with connect(postgres_url) as plain:
        assert await all_results(plain) == []


async def test_a_batch_of_several_copies_times_out_when_the_command_timeout_says(
    postgres_url: str,
) -> None:
    """A batch past one COPY goes in a transaction of its own; a silence fails it once, in time.

    That transaction was asyncpg's, whose exit sent ROLLBACK on the silent connection and waited
    a second command timeout for it: the error came twice as late as it said.
    """
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url, connect_timeout=1.0, command_timeout=COMMAND_TIMEOUT, release_timeout=LONG_RELEASE
        )
        try:
            batch = [result() for _ in range(2 * COPY_ROWS + 1)]
            silenced: list[float] = []

            def silence() -> None:
                proxy.silence()
                silenced.append(time.monotonic())

            asyncio.get_running_loop().call_later(0.05, silence)
            with pytest.raises(DatabaseError, match=r"within the command timeout \(1s\)"):
                async with asyncio.timeout(BOUND):
                    await save_results(db, batch)
            took = time.monotonic() - silenced[0]
            assert took < COMMAND_TIMEOUT + MARGIN, took
        finally:
            proxy.cut()
            await close_database(db)
    async with connect(postgres_url) as plain:
        assert await all_results(plain) == []


async def test_cancelling_a_batch_of_several_copies_on_a_silent_network_returns_at_once(
    postgres_url: str,
) -> None:
    """Cancelled on a silent network, a batch of several COPYs ends as the caller asked.

    Its transaction was asyncpg's, whose end on a cancellation sent ROLLBACK and waited for it
    the whole command timeout, then raised that timeout in the cancellation's place.
    """
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(url, command_timeout=8.0, release_timeout=0.5)
        try:
            await save_result(db, result())
            batch = [result() for _ in range(2 * COPY_ROWS + 1)]
            saving = asyncio.ensure_future(save_results(db, batch))
            asyncio.get_running_loop().call_later(0.05, proxy.silence)
            await asyncio.sleep(0.5)
            assert not saving.done()
            started = time.monotonic()
            saving.cancel()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(BOUND):
                    await saving
            assert time.monotonic() - started < 0.5 + MARGIN
        finally:
            proxy.cut()
            await close_database(db)
    async with connect(postgres_url) as plain:
        assert len(await all_results(plain)) == 1


@pytest.mark.parametrize("statement", ["BEGIN", "COMMIT"])
async def test_a_batch_of_several_copies_cut_in_its_begin_or_commit_leaves_nothing_behind(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, statement: str
) -> None:
    """Cancelled while BEGIN or COMMIT waits for its answer: all of the batch or none.

    Cut in BEGIN, asyncpg's transaction handed its connection back with a transaction it took
    for open, and logged "Resetting connection with an active transaction".
    """
    await migrated(postgres_url)
    execute = asyncpg.Connection.execute
    cut: list[str] = []
    caller = asyncio.current_task()
    assert caller is not None

    async def cut_in(self: asyncpg.Connection[asyncpg.Record], query: str, *args: object) -> str:
        if query.rstrip(";").startswith(statement) and not cut:  # BEGIN ISOLATION LEVEL ...
            cut.append(query)
            asyncio.get_running_loop().call_soon(caller.cancel)  # while it waits for its answer
        return await execute(self, query, *args)

    loop = asyncio.get_running_loop()
    said: list[str] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: said.append(str(context.get("message"))))
    batch = [result() for _ in range(COPY_ROWS + 1)]
    try:
        async with connect(postgres_url) as db:
            monkeypatch.setattr(asyncpg.Connection, "execute", cut_in)
            with pytest.raises(asyncio.CancelledError):
                await save_results(db, batch)
            monkeypatch.undo()
            assert cut
            assert len(await all_results(db)) in {0, len(batch)}
            stored = len(await all_results(db))
            assert await save_results(db, batch) == len(batch)  # the next one goes in
            assert len(await all_results(db)) == stored + len(batch)
            gc.collect()
            await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(handler)
    assert said == []


async def test_cancelling_on_a_silent_network_with_the_defaults_keeps_the_stated_bound(
    postgres_url: str,
) -> None:
    """With the default limits, cancelling a stuck call returns within release_timeout (1 s)."""
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(url)
        try:
            await save_result(db, result())
            proxy.silence()
            task = asyncio.ensure_future(all_results(db))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(BOUND):
                    await task
            assert time.monotonic() - started < 1.5
        finally:
            proxy.cut()
            async with asyncio.timeout(BOUND):
                await close_database(db)


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def partition(proxy: Proxy, db: Database, seconds: float) -> None:
    """Refuse the server for `seconds`, calling the database now and then, then heal."""
    server = proxy.target_port
    proxy.target_port = closed_port()  # new connections are accepted, then reset
    proxy.cut()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with pytest.raises(DatabaseError):
            await find_result(db, 1)
        await asyncio.sleep(0.2)
    proxy.target_port = server


async def test_a_partition_logs_once_at_the_packages_logger(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No traceback per reconnect: one warning when the change watch is lost, one note back."""
    await migrated(postgres_url)
    caplog.set_level(logging.DEBUG)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(url, connect_timeout=0.5, command_timeout=0.5, release_timeout=0.3)
        watch = await backend_of(db).watch_changes(heartbeat=0.2)
        try:
            await save_result(db, result())
            await partition(proxy, db, 3.5)
            async with asyncio.timeout(BOUND):
                for _ in range(int(BOUND / 0.05)):  # the watch is polled, as a cache does
                    if watch.version("test_results") is not None:
                        break
                    await asyncio.sleep(0.05)
            assert watch.version("test_results") is not None
            assert await find_result(db, 1) is not None
        finally:
            await watch.close()
            await close_database(db)
    from_asyncpg = [r for r in caplog.records if r.name.startswith("asyncpg")]
    assert from_asyncpg == [], [r.getMessage() for r in from_asyncpg]
    ours = [r for r in caplog.records if r.name.startswith("persistence")]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.INFO], [
        r.getMessage() for r in ours
    ]
    assert all(r.exc_info is None for r in ours)
    assert "change notifications" in ours[0].getMessage()


async def no_lock_waits(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Wait, 5 s at most, until no other connection of this database waits on a lock."""
    for _ in range(100):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        if not waiting:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the statement given up still waits on the lock, on the server")


async def test_a_write_given_up_at_the_command_timeout_is_cancelled_on_the_server(
    postgres_url: str,
) -> None:
    """A statement that outlives the command timeout is cancelled on the server, not just left.

    The connection was closed at the timeout, but a server waiting on a lock does not see a
    close: the upsert ran on, and committed once the lock was freed, though its caller had been
    told it failed. A retry after that error applied the write twice.
    """
    await migrated(postgres_url)
    db = await open_database(postgres_url, command_timeout=0.5)
    try:
        await set_config(db, "s", "k", 0)
        blocker = await asyncpg.connect(postgres_url)
        try:
            await blocker.execute("BEGIN; LOCK TABLE config_entries IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(DatabaseError, match=r"command timeout \(0.5s\)"):
                await set_config(db, "s", "k", 99)
            await no_lock_waits(blocker)
        finally:
            await blocker.execute("COMMIT")
            await blocker.close()
        assert await get_config_value(db, "s", "k", int) == 0
    finally:
        await close_database(db)


async def test_a_write_given_up_is_cancelled_before_its_caller_hears_of_it(
    postgres_url: str,
) -> None:
    """The lock freed as soon as the caller is told: the write given up still never commits.

    The cancel request was made in a task of its own, after the caller had been told that the
    server was asked to cancel: the caller's own other transaction, letting go of the row's
    lock as its next step, let the write commit in 19 tries of 20.
    """
    await migrated(postgres_url)
    db = await open_database(postgres_url, command_timeout=0.3)
    holder = await asyncpg.connect(postgres_url)
    try:
        await set_config(db, "s", "k", 0)
        for attempt in range(1, 6):
            await holder.execute("BEGIN")
            await holder.execute("UPDATE config_entries SET description = 'held' WHERE key = 'k'")
            with pytest.raises(DatabaseError, match=r"command timeout \(0.3s\)"):
                await set_config(db, "s", "k", attempt)
            await holder.execute("ROLLBACK")  # at once, as the caller's next step
            await asyncio.sleep(0.2)  # time for a write that ran on to commit
            assert await get_config_value(db, "s", "k", int) == 0, attempt
    finally:
        await holder.close()
        await close_database(db)


async def test_a_refused_connect_says_so_not_that_a_call_was_cut(postgres_url: str) -> None:
    """A call whose new connection the server refuses says it could not connect.

    It said the connection was lost mid-call, and that a COMMIT may have taken effect: nothing
    had been sent.
    """
    await migrated(postgres_url)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(url, connect_timeout=1.0, command_timeout=COMMAND_TIMEOUT)
        try:
            await proxy.close()  # stops listening: each new connection is refused
            errors = []
            for _ in range(2):  # the first may meet the pool's connection, closed under it
                with pytest.raises(DatabaseError) as caught:
                    await find_result(db, 1)
                errors.append(str(caught.value))
            assert "cannot connect to the server" in errors[-1], errors
            assert "mid-call" not in errors[-1], errors
        finally:
            await close_database(db)


async def test_a_connection_given_up_then_dropped_by_the_server_is_handed_back(
    postgres_url: str,
) -> None:
    """A block whose statement timed out, and whose connection the server then dropped, ends.

    The hand-back asked the dropped connection whether it was closed, which asyncpg answers
    with an error for a connection it has detached: that error replaced the block's, the
    connection stayed counted as out, and the close waited for it.
    """
    db = await open_database(postgres_url, command_timeout=0.5, release_timeout=0.5)
    admin = await asyncpg.connect(postgres_url)
    try:
        with pytest.raises(DatabaseError, match=r"command timeout \(0.5s\)"):
            async with transaction(db) as tx, borrow(tx) as conn:
                pid = await as_pg(conn).fetchval("SELECT pg_backend_pid()")
                try:
                    await as_pg(conn).execute("SELECT pg_sleep(5)")
                except TimeoutError:  # asyncpg's own, on a borrowed connection
                    await admin.execute("SELECT pg_terminate_backend($1)", pid)
                    await asyncio.sleep(0.2)  # the caller's own handling, before it raises
                    raise
    finally:
        await admin.close()
        started = time.monotonic()
        await close_database(db)
    assert time.monotonic() - started < 0.5


async def test_the_drivers_own_timeout_in_a_loan_is_still_translated(
    migrated_postgres_url: str,
) -> None:
    """A command timeout that asyncpg raised in `connection()` is the package's error, as before.

    The caller's own `TimeoutError` leaves the loan as it was raised: told apart by where it
    was raised, in asyncpg's code or not.
    """
    async with connect(migrated_postgres_url, command_timeout=0.2) as db:
        with pytest.raises(DatabaseError, match=r"within the command timeout \(0.2s\)"):
            async with connection(db) as conn:
                await conn.execute("SELECT pg_sleep(2)")  # type: ignore[attr-defined]  # asyncpg's
        with pytest.raises(TimeoutError):
            async with connection(db) as conn, asyncio.timeout(0.2):
                await conn.execute("SELECT pg_sleep(2)")  # type: ignore[attr-defined]  # asyncpg's
        assert await all_results(db) == []  # the pool gives a connection after both


async def test_a_caller_cancelled_as_the_cancel_request_is_made_stays_cancelled(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled in the turn that the cancel request ends, the caller gets its CancelledError.

    `asyncio.wait_for` gave it the result instead, on 3.11: the call went on to raise the
    command timeout's `DatabaseError`, and a loop that retries on it outlived its own cancel.
    """
    caller: asyncio.Task[None] | None = None
    tracked = PostgresBackend._tracked  # noqa: SLF001  # the request's task, to time the cancel

    def cancelling_as_it_ends(backend: PostgresBackend, work: Any) -> asyncio.Future[Any]:  # noqa: ANN401  # as _tracked's
        future = tracked(backend, work)
        if "cancelled_then_given_back" in getattr(work, "__qualname__", "") and caller:
            future.add_done_callback(lambda _: caller.cancel() if caller else None)
        return future

    monkeypatch.setattr(PostgresBackend, "_tracked", cancelling_as_it_ends)
    async with connect(migrated_postgres_url, command_timeout=0.3) as db:

        async def call() -> None:
            async with connection(db) as conn:
                await conn.execute("SELECT pg_sleep(2)")  # type: ignore[attr-defined]  # asyncpg's

        caller = asyncio.ensure_future(call())
        with pytest.raises(asyncio.CancelledError):
            await caller
