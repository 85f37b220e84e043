"""PostgreSQL behind a network that goes silent or breaks: every call ends, within its bound.

A proxy on 127.0.0.1 stands between the package and the server; the tests silence or
cut it. Every limit is short here, as a caller may set it; the defaults are longer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from _proxy import Proxy, proxied
from _server import kill_own_connections, own_connections
from persistence import (
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    connection,
    find_result,
    migrate,
    open_database,
    save_result,
    save_results,
    transaction,
)
from persistence._loans import run_query
from persistence._postgres.adapter import COPY_ROWS
from persistence._postgres.connections import as_pg
from persistence.database import close_database

pytestmark = pytest.mark.usefixtures("postgres_admin")

CONNECT_TIMEOUT = 1.0
COMMAND_TIMEOUT = 0.5
RELEASE_TIMEOUT = 0.3
BOUND = 3.0
"""Seconds within which every faulty call must have ended: the limits, with room to spare."""


def result() -> TestResult:
    """A plain result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="x" * 100)


@pytest.fixture(name="through")
async def through_proxy(postgres_url: str) -> AsyncIterator[tuple[Proxy, Database]]:
    """A migrated database reached through a proxy, with short limits."""
    async with connect(postgres_url) as db:
        await migrate(db)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url,
            connect_timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            release_timeout=RELEASE_TIMEOUT,
        )
        try:
            yield proxy, db
        finally:
            proxy.cut()
            async with asyncio.timeout(BOUND):
                await close_database(db)


async def test_a_silent_network_gives_an_error_within_the_command_timeout(
    through: tuple[Proxy, Database],
) -> None:
    """A call whose server stops answering fails with DatabaseError, not never."""
    proxy, db = through
    saved = await save_result(db, result())
    proxy.silence()
    started = time.monotonic()
    with pytest.raises(DatabaseError, match=r"no answer within|no connection within"):
        async with asyncio.timeout(BOUND):
            await find_result(db, saved.id or 0)
    assert time.monotonic() - started < BOUND


async def test_cancelling_a_call_on_a_silent_network_returns_at_once(
    postgres_url: str,
) -> None:
    """Cancelling a call stuck on a silent network ends it promptly, release included."""
    async with connect(postgres_url) as db:
        await migrate(db)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url,
            connect_timeout=CONNECT_TIMEOUT,
            command_timeout=60,
            release_timeout=RELEASE_TIMEOUT,
        )
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
            assert time.monotonic() - started < 1.0
        finally:
            proxy.cut()
            async with asyncio.timeout(BOUND):
                await close_database(db)


async def test_a_transaction_on_a_silent_network_ends(through: tuple[Proxy, Database]) -> None:
    """A transaction whose server goes silent mid-block fails within its bounds."""
    proxy, db = through

    async def block() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result())
            proxy.silence()
            await save_result(tx, result())

    started = time.monotonic()
    with pytest.raises(DatabaseError):
        async with asyncio.timeout(BOUND):
            await block()
    assert time.monotonic() - started < BOUND


async def test_a_silent_network_mid_copy_fails_the_batch(
    through: tuple[Proxy, Database], postgres_url: str
) -> None:
    """A batch whose server goes silent during COPY fails within the bound and stores nothing."""
    proxy, db = through
    batch = [result() for _ in range(200_000)]

    async def silence_soon() -> None:
        await asyncio.sleep(0.05)
        proxy.silence()

    silencer = asyncio.create_task(silence_soon())
    started = time.monotonic()
    with pytest.raises(DatabaseError):
        async with asyncio.timeout(BOUND + 5):
            await save_results(db, batch)
    await silencer
    assert time.monotonic() - started < BOUND + 5
    async with connect(postgres_url) as direct:
        assert await all_results(direct) == []


async def test_a_backend_killed_mid_copy_fails_the_batch(
    postgres_url: str, postgres_admin: str
) -> None:
    """A batch whose server process is killed during COPY fails clearly and stores nothing."""
    async with connect(
        postgres_url,
        connect_timeout=CONNECT_TIMEOUT,
        command_timeout=COMMAND_TIMEOUT,
        release_timeout=RELEASE_TIMEOUT,
    ) as db:
        await migrate(db)
        batch = [result() for _ in range(200_000)]
        admin = await asyncpg.connect(postgres_admin)
        name = postgres_url.rsplit("/", 1)[1]

        async def kill_the_copy() -> None:
            for _ in range(200):
                await asyncio.sleep(0.01)
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND query LIKE 'COPY%' AND state = 'active'",
                    name,
                )
                if killed:
                    return

        killer = asyncio.create_task(kill_the_copy())
        try:
            with pytest.raises(
                DatabaseError, match=r"connection to the server was lost|no answer within"
            ):
                async with asyncio.timeout(BOUND + 5):
                    await save_results(db, batch)
        finally:
            await killer
            await admin.close()
        assert await all_results(db) == []
        assert (await save_result(db, result())).id is not None


async def test_a_batch_cut_by_a_kill_says_why_not_how_asyncpg_cleaned_up(
    postgres_url: str, postgres_admin: str
) -> None:
    """A batch of several COPYs whose server process is killed names the server's reason.

    The batch runs in a transaction of asyncpg's, whose rollback on the dead connection failed
    in turn: the message said "cannot call Transaction.__aexit__(): the underlying connection
    is closed", and the server's own words were only in the chain.
    """
    async with connect(postgres_url, command_timeout=BOUND) as db:
        await migrate(db)
        batch = [result() for _ in range(3 * COPY_ROWS)]  # several COPYs: one transaction
        admin = await asyncpg.connect(postgres_admin)
        name = postgres_url.rsplit("/", 1)[1]

        async def kill_the_copy() -> None:
            async with asyncio.timeout(BOUND):
                while not await admin.fetchval(  # noqa: ASYNC110  # the server announces no COPY
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND query LIKE 'COPY%' AND state = 'active'",
                    name,
                ):
                    await asyncio.sleep(0.005)

        killer = asyncio.create_task(kill_the_copy())
        try:
            with pytest.raises(DatabaseError) as raised:
                await save_results(db, batch)
        finally:
            await killer
            await admin.close()
    message = str(raised.value)
    assert "lost mid-call: connection was closed in the middle of operation: terminating" in message
    assert "Transaction" not in message


async def test_the_database_recovers_when_the_network_does(
    through: tuple[Proxy, Database],
) -> None:
    """After a silent spell, calls succeed again once the network forwards again."""
    proxy, db = through
    await save_result(db, result())
    proxy.silence()
    with pytest.raises(DatabaseError):
        async with asyncio.timeout(BOUND):
            await all_results(db)
    proxy.cut()
    proxy.resume()
    async with asyncio.timeout(BOUND * 2):
        for _ in range(10):  # each dead pooled connection may fail one call
            try:
                await save_result(db, result())
                break
            except DatabaseError:
                continue
        assert len(await all_results(db)) >= 2


async def test_a_connection_killed_mid_transaction_says_so(postgres_url: str) -> None:
    """A backend killed inside a transaction gives a message about the lost connection."""
    async with connect(postgres_url) as db:
        await migrate(db)
        with pytest.raises(DatabaseError) as raised:
            async with transaction(db) as tx:
                await save_result(tx, result())
                await kill_own_connections(postgres_url)
                await save_result(tx, result())
        message = str(raised.value)
        assert "released back to the pool" not in message
        assert "connection to the server was lost" in message
        assert "was rolled back" in message
        assert await all_results(db) == []


async def test_a_connection_killed_mid_read_claims_no_certain_rollback(postgres_url: str) -> None:
    """A backend killed under a plain read, or a COMMIT, is not said to have rolled back for sure.

    The message said "(a transaction in progress was rolled back)" for any lost call, a read
    included, and for a COMMIT that may have gone through; it now says what holds for each.
    """
    async with connect(postgres_url) as db:
        await migrate(db)
        with pytest.raises(DatabaseError) as raised:
            async with connection(db) as conn:
                await kill_own_connections(postgres_url)
                await db.queries.get_run(conn, id=1)
        message = str(raised.value)
        assert "connection to the server was lost" in message
        assert "may or may not have taken effect" in message
        assert "(a transaction in progress was rolled back)" not in message


async def _gone(url: str) -> None:
    """Wait until the test's database has no other connection: each has said its last words."""
    async with asyncio.timeout(BOUND):
        while True:  # polled: the server announces no end
            if not await own_connections(url):
                return
            await asyncio.sleep(0.01)


async def test_a_killed_connection_is_said_lost_in_words_of_the_package(
    through: tuple[Proxy, Database], postgres_url: str
) -> None:
    """A call on a connection whose server process has gone names no state of asyncpg's.

    The server's last words (a FATAL notice) put asyncpg's protocol in a state that refuses the
    next call: "cannot switch to state 12; another operation (2) is in progress". A call in
    the moment between those words and the socket's close (held open here by the proxy) got
    them in its message, where the package says why the connection was lost.
    """
    proxy, db = through
    proxy.keep_open()
    with pytest.raises(DatabaseError) as raised:
        async with connection(db) as conn:
            await db.queries.get_run(conn, id=1)
            assert await kill_own_connections(postgres_url) >= 1
            await _gone(postgres_url)
            await asyncio.sleep(0.05)  # forwarded and read: the protocol has left its idle state
            await db.queries.get_run(conn, id=1)
    message = str(raised.value)
    assert "connection to the server was lost mid-call: the server or the network" in message
    assert "state" not in message
    assert "another operation" not in message


async def test_a_new_connection_closed_as_it_is_made_says_the_call_sent_nothing(
    through: tuple[Proxy, Database],
) -> None:
    """The pooled connections cut, and each new one closed at once: the call could not connect.

    Only a refused connect was told so; one reset, or lost as it was made, was told as a call
    cut midway, "a COMMIT cut off may or may not have taken effect", though it sent nothing.
    """
    proxy, db = through
    saved = await save_result(db, result())
    proxy.hang_up()
    proxy.cut()
    await asyncio.sleep(0.05)  # the cut read: the pool's connections are gone
    for _ in range(3):
        with pytest.raises(DatabaseError) as raised:
            await find_result(db, saved.id or 0)
        message = str(raised.value)
        if "cannot connect to the server" in message:
            assert "The call sent nothing: the connection failed as it was made" in message
        else:  # the first call may meet a pooled connection whose cut it has not yet read
            assert "lost mid-call" in message
    assert "cannot connect to the server" in message


async def test_a_copy_refused_on_a_killed_connection_leaves_none_busy_in_the_pool(
    through: tuple[Proxy, Database], postgres_url: str
) -> None:
    """After a batch fails on a connection whose server process has gone, the next call works.

    asyncpg refuses to start COPY on such a connection (its protocol holds the server's last
    words), but leaves it marked busy with an operation nobody awaits: handed back to the pool
    as if idle, it failed every later call lent it with "another operation is in progress".
    """
    proxy, db = through
    proxy.keep_open()
    await save_results(db, [result()])  # the connection knows the table: COPY starts at once
    assert await kill_own_connections(postgres_url) >= 1
    await _gone(postgres_url)
    await asyncio.sleep(0.05)  # forwarded and read: the protocol has left its idle state
    with pytest.raises(DatabaseError, match="connection to the server was lost"):
        await save_results(db, [result()])
    assert await save_results(db, [result()]) == 1  # on a connection of its own
    assert len(await all_results(db)) == 2  # the first and the last


async def test_no_connection_in_time_names_the_wait(postgres_url: str) -> None:
    """A call that cannot get a connection in time says what it waited for, not nothing."""
    async with connect(postgres_url) as db:
        await migrate(db)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url,
            connect_timeout=CONNECT_TIMEOUT,
            command_timeout=COMMAND_TIMEOUT,
            release_timeout=RELEASE_TIMEOUT,
            pool_size=1,
        )
        try:
            proxy.silence()
            proxy.cut()  # the pooled connection dies; a new one meets the silence
            with pytest.raises(DatabaseError) as raised:
                async with asyncio.timeout(BOUND * 2):
                    for _ in range(3):
                        await find_result(db, 1)
            message = str(raised.value)
            assert message.strip().endswith(":") is False
            assert "within" in message or "lost" in message
        finally:
            proxy.cut()
            async with asyncio.timeout(BOUND):
                await close_database(db)


async def test_opening_through_a_silent_network_fails_within_the_connect_timeout(
    postgres_url: str,
) -> None:
    """Opening a database whose server never answers fails within connect_timeout."""
    async with proxied(postgres_url) as (proxy, url):
        proxy.silence()
        started = time.monotonic()
        with pytest.raises(DatabaseError, match=r"no answer within 1s"):
            await open_database(
                url,
                connect_timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                release_timeout=RELEASE_TIMEOUT,
            )
        assert time.monotonic() - started < BOUND


async def test_closing_on_a_silent_network_takes_the_release_timeout(postgres_url: str) -> None:
    """A close with nothing lent, the network silent, ends within `release_timeout`, leaving none.

    Each idle connection's goodbye waited for the server's answer: the whole close took
    `release_timeout` plus `command_timeout` (61 s by default) before it terminated them.
    """
    async with connect(postgres_url) as db:
        await migrate(db)
    async with proxied(postgres_url) as (proxy, url):
        db = await open_database(
            url, connect_timeout=CONNECT_TIMEOUT, command_timeout=30, release_timeout=0.3
        )
        try:
            await asyncio.gather(*(all_results(db) for _ in range(4)))  # the lane and the pool
            assert await own_connections(postgres_url) >= 2  # at least those
            proxy.silence()
            started = time.monotonic()
            async with asyncio.timeout(BOUND):
                await close_database(db)
            assert time.monotonic() - started < 1.0
        finally:
            proxy.cut()
            await close_database(db)
    await _until_none_left(postgres_url)


async def _until_none_left(url: str) -> None:
    """Wait until the server has ended every connection of the test's: a cut one ends soon."""
    async with asyncio.timeout(BOUND):
        while await own_connections(url):  # noqa: ASYNC110  # asked of the server
            await asyncio.sleep(0.05)


async def test_a_close_refuses_new_calls_and_waits_only_for_those_under_way(
    postgres_url: str,
) -> None:
    """Tasks that call on in a loop while the database closes end with DatabaseError, soon.

    Calls and blocks begun after the close began were lent connections until the pool's own
    close: tasks calling in a loop kept one out, and the close waited its whole bound
    (`release_timeout` plus `command_timeout`), then cut the blocks under way off.
    """
    async with connect(postgres_url) as db:
        await migrate(db)
    db = await open_database(postgres_url, command_timeout=5, release_timeout=0.3, pool_size=4)

    async def call_on(block: bool) -> str:  # noqa: FBT001  # the two kinds of call
        try:
            while True:
                if block:
                    async with transaction(db) as tx:
                        await save_result(tx, result())
                        await asyncio.sleep(0.005)
                        await save_result(tx, result())
                else:
                    await all_results(db)
        except DatabaseError as error:
            return str(error)

    callers = [asyncio.ensure_future(call_on(n % 2 == 0)) for n in range(8)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    async with asyncio.timeout(BOUND * 3):
        await close_database(db)
    assert time.monotonic() - started < 1.0
    async with asyncio.timeout(BOUND):
        ended = await asyncio.gather(*callers)
    assert all("closed" in why for why in ended), ended
    assert await own_connections(postgres_url) == 0


@pytest.mark.parametrize("turns", [1, 10])
async def test_calls_waiting_for_a_connection_as_the_close_begins_are_served(
    migrated_postgres_url: str, turns: int
) -> None:
    """Fifty saves called, ten connections: the close waits for all of them, as SQLite's does.

    A call still waiting for a pooled connection when the close began was refused with
    "the database is closed" once it got one: 49 of 50 saves failed, called before the close.
    """
    db = await open_database(migrated_postgres_url, pool_size=10)
    saving = [asyncio.ensure_future(save_result(db, result())) for _ in range(50)]
    for _ in range(turns):
        await asyncio.sleep(0)
    async with asyncio.timeout(BOUND * 3):
        await close_database(db)
    saved = await asyncio.gather(*saving, return_exceptions=True)
    assert [s for s in saved if isinstance(s, BaseException)] == []
    async with connect(migrated_postgres_url) as again:
        assert len(await all_results(again)) == 50
    with pytest.raises(DatabaseError, match="closed"):
        await save_result(db, result())


async def test_calls_still_waiting_for_a_connection_at_the_close_bound_are_told_it_closed(
    migrated_postgres_url: str, postgres_url: str
) -> None:
    """The close waits for calls begun before it within its bound, then tells the rest at once.

    It waited for every take of a connection without a bound: 40 calls of 0.9 s on two
    connections kept a close of 1.5 s going 10.9 s, and those it never reached failed after the
    connect timeout, "no connection within 10s (... every pooled connection is busy)".
    """
    db = await open_database(
        migrated_postgres_url,
        pool_size=2,
        command_timeout=1,
        release_timeout=0.5,
        connect_timeout=BOUND * 4,
    )

    async def sleep_a_while() -> None:
        async with connection(db) as conn:
            await as_pg(conn).execute("SELECT pg_sleep(0.9)")

    calls = [asyncio.ensure_future(sleep_a_while()) for _ in range(20)]
    await asyncio.sleep(0.05)
    async with asyncio.timeout(BOUND * 2):  # within the close's bound, 1.5 s, and its tidying
        await close_database(db)
    done = await asyncio.gather(*calls, return_exceptions=True)
    failed = [str(call) for call in done if isinstance(call, BaseException)]
    assert failed, "every call was served: the bound was not reached"
    assert all("closed" in why for why in failed), failed
    assert await own_connections(postgres_url) == 0


async def test_blocks_at_once_get_every_pooled_connection_the_lane_idles_on(
    migrated_postgres_url: str,
) -> None:
    """pool_size=2, the lane holding one after a single call: two blocks still run at once.

    The lane kept its connection idle for good: the second block waited for the first, and
    failed at the connect timeout when the first outlasted it. A block that begins while the
    lane's call runs gets its connection once that call ends.
    """
    db = await open_database(migrated_postgres_url, pool_size=2, connect_timeout=2)
    try:
        await save_result(db, result())  # takes the lane, and a connection with it
        both = asyncio.Barrier(2)

        async def block() -> None:
            async with transaction(db) as tx:
                await save_result(tx, result())
                async with asyncio.timeout(1):
                    await both.wait()  # the other block has its connection too

        await asyncio.gather(block(), block())
        await save_result(db, result())  # the lane again, once a connection is free
        assert len(await all_results(db)) == 4

        async def lane_busy_then_block() -> None:  # the lane freed once the block waits
            await asyncio.sleep(0.1)
            await block()

        slow = run_query(db, lambda conn: conn.execute("SELECT pg_sleep(0.3)"))  # type: ignore[attr-defined]  # asyncpg's
        await asyncio.gather(block(), slow, lane_busy_then_block())
        assert len(await all_results(db)) == 6
    finally:
        await close_database(db)
