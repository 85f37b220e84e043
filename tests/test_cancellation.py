"""Cancelling a task at any await, on the way into, through or out of a transaction."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from asyncpg import connect_utils

from _budget import arm_past
from _proxy import proxied
from _server import no_connection_left, own_connections
from persistence import (
    Database,
    DatabaseError,
    PersistenceError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    close_database,
    connect,
    list_results,
    migrate,
    open_database,
    save_result,
    save_results,
    transaction,
)
from persistence._database_value import backend_of
from persistence._postgres.adapter import PgConnection
from persistence._sqlite.reads import Readers
from persistence.database import connection, read_snapshot

ROUNDS = 300


def tagged(tag: int) -> TestResult:
    """A result that says which attempt wrote it."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata={"tag": tag})


async def _two_in_a_block(db: Database, tag: int) -> None:
    async with transaction(db) as tx:
        await save_result(tx, tagged(tag))
        await save_result(tx, tagged(tag))


async def _stored_tags(url: str) -> Counter[int]:
    async with connect(url) as db:
        return Counter(int(r.metadata["tag"]) for r in await all_results(db))  # type: ignore[arg-type]


async def test_cancelled_transactions_lose_no_later_write(database_url: str) -> None:
    """Transactions cancelled at random moments leave all or nothing, and every later write stays.

    Each attempt writes two rows in one block, under a timeout of 0 to 2 ms. Afterwards
    the connection must be usable as if nothing happened: acknowledged single writes
    and a final transaction survive closing and reopening the database.
    """
    rng = random.Random(9)  # noqa: S311  # picks moments to cancel, not secrets
    async with connect(database_url) as db:
        await migrate(db)
        cancelled = 0
        for tag in range(ROUNDS):
            try:
                await asyncio.wait_for(_two_in_a_block(db, tag), timeout=rng.uniform(0, 0.002))
            except TimeoutError:
                cancelled += 1
        acknowledged = [await save_result(db, tagged(-1)) for _ in range(20)]
        await _two_in_a_block(db, -2)
        await save_results(db, [tagged(-3)] * 5)
    assert cancelled > ROUNDS // 10, "the timeouts never cut a transaction short"
    tags = await _stored_tags(database_url)
    assert tags[-1] == len(acknowledged) == 20
    assert tags[-2] == 2
    assert tags[-3] == 5
    torn = {tag: count for tag, count in tags.items() if tag >= 0 and count != 2}
    assert torn == {}, "a cancelled transaction kept half its writes"


async def test_cancelled_single_calls_leave_the_database_usable(database_url: str) -> None:
    """Single calls cancelled while they wait for their commit leave nothing broken behind."""
    rng = random.Random(10)  # noqa: S311  # picks moments to cancel, not secrets
    async with connect(database_url) as db:
        await migrate(db)
        calls = [
            asyncio.wait_for(save_result(db, tagged(n)), timeout=rng.uniform(0, 0.003))
            for n in range(200)
        ]
        outcome = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(o, TestResult | TimeoutError) for o in outcome), outcome
        saved = [o for o in outcome if isinstance(o, TestResult)]
        async with asyncio.timeout(10):
            await _two_in_a_block(db, -2)
            last = await save_result(db, tagged(-1))
    tags = await _stored_tags(database_url)
    assert all(tags[r.metadata["tag"]] == 1 for r in saved)  # type: ignore[index]
    assert tags[-2] == 2
    assert last.id is not None
    assert tags[-1] == 1


@pytest.mark.parametrize("where", ["before", "inside", "after"])
async def test_cancel_at_each_step_of_a_block(database_url: str, where: str) -> None:
    """A block cancelled before, inside or after its body keeps all or nothing, then works."""
    async with connect(database_url) as db:
        await migrate(db)
        gate, reached = asyncio.Event(), asyncio.Event()

        async def block() -> None:
            if where == "before":
                reached.set()
                await gate.wait()
            async with transaction(db) as tx:
                await save_result(tx, tagged(1))
                if where == "inside":
                    reached.set()
                    await gate.wait()
                await save_result(tx, tagged(1))
            if where == "after":
                reached.set()
                await gate.wait()

        task = asyncio.create_task(block())
        await reached.wait()  # not a fixed wait: a loaded server can take longer to commit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _two_in_a_block(db, 2)
    tags = await _stored_tags(database_url)
    assert tags[1] == {"before": 0, "inside": 0, "after": 2}[where]
    assert tags[2] == 2


async def test_a_read_cancelled_while_its_thread_reader_opens_leaves_no_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a read cancelled while its thread opens a reader leaves no connection open.

    The reader that the thread goes on to open is kept for the next read, and closed with the
    database, not left open until the garbage collector finds it (2 descriptors and a
    mapping, which `test_descriptors.py` saw once under load).
    """
    async with connect(tmp_path / "test.db") as db:
        await migrate(db)
        readers = backend_of(db)._readers  # type: ignore[attr-defined]  # noqa: SLF001  # held
        budget = readers._budget  # noqa: SLF001

        monkeypatch.setattr(type(budget), "arm", arm_past)
        entered, release = threading.Event(), threading.Event()
        opened: list[sqlite3.Connection] = []
        open_reader = readers._open_reader  # noqa: SLF001

        def slow_open() -> sqlite3.Connection:
            entered.set()
            release.wait(5)
            opened.append(open_reader())
            return opened[-1]

        monkeypatch.setattr(readers, "_open_reader", slow_open)
        reading = asyncio.ensure_future(all_results(db))
        assert await asyncio.to_thread(entered.wait, 5)
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        release.set()
        for _ in range(500):  # the opened reader, kept once the thread is done
            if readers._idle:  # noqa: SLF001
                break
            await asyncio.sleep(0.01)
        assert readers._idle == opened  # noqa: SLF001
        assert await all_results(db) == []  # read in a thread, on the kept reader
        assert len(opened) == 1
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")


def test_a_reader_handed_back_while_the_readers_close_is_closed(tmp_path: Path) -> None:
    """SQLite: a reader handed back while another thread closes the readers is closed too.

    The hand-back runs on the loop, the close in a worker thread. The close used to look at
    the idle readers and clear them while the hand-back, having found them open, was adding
    its reader: that reader stayed open in a list nobody closed.
    """
    path = tmp_path / "readers.db"
    appending = threading.Event()

    class SlowToAppend(list[sqlite3.Connection]):
        def append(self, reader: sqlite3.Connection) -> None:
            appending.set()
            time.sleep(0.1)  # the close runs meanwhile, unless it must wait for the hand-back
            super().append(reader)

    def never_called(*_args: object) -> asyncio.Future[object]:
        raise AssertionError

    def open_reader() -> sqlite3.Connection:
        return sqlite3.connect(path, check_same_thread=False)

    readers = Readers(open_reader(), open_reader, never_called)
    readers._idle = SlowToAppend()  # noqa: SLF001  # the step to slow down
    reader = open_reader()

    def close_once_appending() -> None:
        appending.wait(5)
        readers.close()

    closing = threading.Thread(target=close_once_appending)
    closing.start()
    readers._keep(reader)  # noqa: SLF001  # the hand-back, as the loop runs it
    closing.join(5)
    assert appending.is_set()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        reader.execute("SELECT 1")


@contextlib.contextmanager
def loop_errors() -> Iterator[list[str]]:
    """Collect what the event loop reports instead of raising: unread errors, asyncpg's warnings."""
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(
        lambda _, context: reported.append(f"{context['message']} {context.get('exception')!r}")
    )
    try:
        yield reported
    finally:
        gc.collect()  # a future nobody read reports it when it is collected
        loop.set_exception_handler(previous)


async def every_connection_back(db: Database) -> None:
    """Wait, within 2 s, until every connection of the pool is back in it."""
    pool = backend_of(db)._pool  # type: ignore[attr-defined]  # noqa: SLF001  # PostgreSQL's
    deadline = time.monotonic() + 2
    while pool.get_idle_size() != pool.get_size():
        assert time.monotonic() < deadline, "a connection was not handed back"
        await asyncio.sleep(0.01)


def tell_when_connected(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Give an event that is set once a PostgreSQL connect's socket is connected.

    The connect then waits for its transport: a cancel there is a cancel mid-connect.
    """
    connecting = asyncio.Event()
    made = connect_utils.TLSUpgradeProto.__init__

    def made_and_tell(proto: connect_utils.TLSUpgradeProto, *args: object) -> None:
        made(proto, *args)  # type: ignore[arg-type]
        connecting.set()

    monkeypatch.setattr(connect_utils.TLSUpgradeProto, "__init__", made_and_tell)
    return connecting


async def test_a_block_cancelled_while_postgres_begins_hands_back_no_transaction(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a block cancelled while its BEGIN is on the wire hands no open transaction back.

    The cancel used to cut BEGIN short: not yet known to be in a transaction, the connection
    went back to the pool without a rollback, and asyncpg found the transaction open there
    ("Resetting connection with an active transaction"). A BEGIN cut short now closes its
    connection instead: the pool opens another when one is next needed. A proxy holds the
    server's answer back until the cancel has come, as a slow network may.
    """
    url = migrated_postgres_url
    async with proxied(url) as (proxy, through), connect(through) as db:
        before = await own_connections(url)
        acquired = asyncio.Event()
        acquire = asyncpg.Pool.acquire

        async def take_and_hold(
            pool: asyncpg.Pool[asyncpg.Record], **kwargs: float
        ) -> PgConnection:
            connection: PgConnection = await acquire(pool, **kwargs)
            proxy.hold()
            acquired.set()  # BEGIN is sent before the test runs again
            return connection

        monkeypatch.setattr(asyncpg.Pool, "acquire", take_and_hold)
        with loop_errors() as reported:
            block = asyncio.ensure_future(_two_in_a_block(db, 1))
            await acquired.wait()
            block.cancel()
            await asyncio.sleep(0.05)
            proxy.let_through()
            with pytest.raises(asyncio.CancelledError):
                await block
            monkeypatch.undo()
            await every_connection_back(db)
            assert await own_connections(url) <= before  # closed, not left open
            await _two_in_a_block(db, 2)
        assert reported == []
        assert Counter(int(r.metadata["tag"]) for r in await all_results(db)) == {2: 2}  # type: ignore[arg-type]
    await no_connection_left(url)


async def test_a_block_cancelled_while_postgres_connects_leaves_no_error_unread(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a block cancelled while the pool connects for it leaves no error unread.

    Cut just after its socket connected, asyncpg's connect left a future failing with
    "unexpected connection_lost() call" that nobody read ("Future exception was never
    retrieved"). The connect now goes on to its end, and its connection to the pool.
    """
    url = migrated_postgres_url
    assert await own_connections(url) == 0
    async with connect(url) as db:
        await all_results(db)  # the pool's one connection is now the lane: a block connects
        connecting = tell_when_connected(monkeypatch)
        with loop_errors() as reported:
            block = asyncio.ensure_future(_two_in_a_block(db, 1))
            await connecting.wait()
            block.cancel()
            with pytest.raises(asyncio.CancelledError):
                await block
            monkeypatch.undo()
            await _two_in_a_block(db, 2)
        assert reported == []
        assert Counter(int(r.metadata["tag"]) for r in await all_results(db)) == {2: 2}  # type: ignore[arg-type]
    await no_connection_left(url)


async def test_a_close_cancelled_at_any_point_leaves_no_connection(
    migrated_postgres_url: str,
) -> None:
    """PostgreSQL: a close cancelled at any of its awaits still closes every connection.

    Cancelled before the pool's own close began (giving the lane back, waiting for a connect),
    it left the pool open with every connection it held, until a second close or the end of
    the process; cancelled later, asyncpg terminated them. It now terminates them either way,
    and the cancellation goes on.
    """
    url = migrated_postgres_url
    for steps in range(1, 12):  # cancelled before its first step, a task runs no line of it
        db = await open_database(url, command_timeout=5, release_timeout=0.5)
        await asyncio.gather(*(all_results(db) for _ in range(4)))  # the lane and the pool
        closing = asyncio.ensure_future(close_database(db))
        for _ in range(steps):
            await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await no_connection_left(url)
        with pytest.raises(DatabaseError, match="closed"):
            await all_results(db)


async def test_two_closes_at_once_both_end_and_close_it(database_url: str) -> None:
    """A shutdown handler's close and the ending block's close, at once: both return.

    On SQLite the second ran the writer's close again while the first was under way, and
    failed with a bare `AssertionError` from its state, every time.
    """
    for cancelled in (False, True):
        db = await open_database(database_url)
        await migrate(db)
        first = asyncio.ensure_future(close_database(db))
        second = asyncio.ensure_future(close_database(db))
        await asyncio.sleep(0)
        if cancelled:  # the first's caller gives up: the close goes on for the second
            first.cancel()
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        assert outcomes[1] is None, outcomes
        assert outcomes[0] is None or isinstance(outcomes[0], asyncio.CancelledError), outcomes
        with pytest.raises(DatabaseError, match="closed"):
            await all_results(db)


async def test_a_second_close_returns_once_the_first_has_closed_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a close that comes while the first shuts its threads down waits for that too.

    The database was marked closed before its connections and threads were: a second close
    then returned at once, with the first's work not done.
    """
    db = await open_database(tmp_path / "app.db")
    backend = backend_of(db)
    shutdown = backend._shutdown  # type: ignore[attr-defined]  # noqa: SLF001  # SQLite's

    begun = threading.Event()

    def slowly() -> None:
        begun.set()  # marked closed already
        time.sleep(0.3)  # the executor's threads ending, the readers closing
        shutdown()

    monkeypatch.setattr(backend, "_shutdown", slowly)
    first = asyncio.ensure_future(close_database(db))
    assert await asyncio.to_thread(begun.wait, 10)
    await close_database(db)
    assert first.done()
    await first


async def test_calls_under_way_as_a_cancelled_close_ends_get_the_packages_error(
    migrated_postgres_url: str,
) -> None:
    """PostgreSQL: writes on the lane as a cancelled close terminates it fail as closed.

    With a snapshot open, some of them raised asyncpg's own `AttributeError` (`'NoneType'
    object has no attribute 'bind_execute'`): the close terminated the lane's connection as
    the write was about to send its statement, and no translation knew that error.
    """
    raw: list[BaseException] = []
    for steps in range(6):
        for _ in range(5):
            db = await open_database(migrated_postgres_url, release_timeout=0.5)
            writes = [asyncio.ensure_future(save_result(db, tagged(step))) for step in range(3)]
            reading = asyncio.ensure_future(_snapshot_read(db))
            await asyncio.sleep(0)
            closing = asyncio.ensure_future(close_database(db))
            for _ in range(steps):
                await asyncio.sleep(0)
            closing.cancel()
            outcomes = await asyncio.gather(closing, reading, *writes, return_exceptions=True)
            raw.extend(
                outcome
                for outcome in outcomes
                if isinstance(outcome, BaseException)
                and not isinstance(outcome, PersistenceError | asyncio.CancelledError)
            )
            await close_database(db)
    assert raw == []


async def test_the_callers_sql_on_a_connection_the_close_ended_fails_as_closed(
    migrated_postgres_url: str,
) -> None:
    """PostgreSQL: in `connection()`, asyncpg's stumble on a terminated connection is ours too.

    What the close leaves under a call is made here by hand: asyncpg's protocol dropped as the
    call is about to use it, the close begun. The package's own calls said "closed"; the
    caller's SQL gave asyncpg's `AttributeError`, told apart from the caller's own errors by
    its type alone.
    """
    db = await open_database(migrated_postgres_url)
    try:
        with pytest.raises(DatabaseError, match="PostgreSQL: the database is closed"):
            async with connection(db) as conn:
                backend_of(db)._closed = True  # type: ignore[attr-defined]  # noqa: SLF001  # the close begun
                raw = conn._con  # type: ignore[attr-defined]  # noqa: SLF001  # asyncpg's own
                protocol, raw._protocol = raw._protocol, None  # noqa: SLF001  # as terminate() leaves it
                try:
                    await conn.fetch("SELECT 1")  # type: ignore[attr-defined]  # asyncpg's
                finally:
                    raw._protocol = protocol  # noqa: SLF001
    finally:
        backend_of(db)._closed = False  # type: ignore[attr-defined]  # noqa: SLF001
        await close_database(db)


async def _snapshot_read(db: Database) -> None:
    async with read_snapshot(db) as seen:
        await asyncio.sleep(0.001)
        await list_results(seen, limit=2)


def cancel_all_tasks_but(*kept: asyncio.Task[object]) -> None:
    """Cancel every task but the running one and `kept`, as a shutdown handler may."""
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task() and task not in kept:
            task.cancel()


@pytest.mark.parametrize("where", ["opening its reader", "on a kept reader", "in a snapshot"])
async def test_a_read_in_a_thread_outlives_other_tasks_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """SQLite: a read waiting for a worker thread, every other task cancelled: it is answered.

    Its hop to the thread ran in a task of its own: cancelled by code that cancels every task
    but its own, the reader, which nobody had cancelled, got `CancelledError`.
    """
    from test_writer_cancel import executor_held  # noqa: PLC0415  # SQLite's own helper

    async with connect(tmp_path / "test.db") as db:
        await migrate(db)
        await save_result(db, tagged(1))
        readers = backend_of(db)._readers  # type: ignore[attr-defined]  # noqa: SLF001  # held
        executor = backend_of(db)._executor  # type: ignore[attr-defined]  # noqa: SLF001  # watched
        monkeypatch.setattr(type(readers._budget), "arm", arm_past)  # noqa: SLF001  # to a thread
        if where == "on a kept reader":
            await all_results(db)
            await asyncio.sleep(0)  # its reader handed back, kept for the read below
            assert readers._idle  # noqa: SLF001
        async with contextlib.AsyncExitStack() as stack:
            reads_on = db
            if where == "in a snapshot":
                reads_on = await stack.enter_async_context(read_snapshot(db))
            with executor_held(db) as free:
                reading = asyncio.ensure_future(all_results(reads_on))
                for _ in range(500):  # its hop queued for a worker
                    if executor._work_queue.qsize():  # noqa: SLF001
                        break
                    await asyncio.sleep(0.001)
                cancel_all_tasks_but(reading)
                await asyncio.sleep(0.01)
                free.set()
            async with asyncio.timeout(2):
                assert [r.metadata for r in await reading] == [{"tag": 1}]
        assert [r.metadata for r in await all_results(db)] == [{"tag": 1}]  # a reader free


async def test_a_postgres_commit_cancelled_by_another_task_is_a_database_error(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a block's COMMIT, in a task of its own, cancelled by another task.

    Its caller, which nobody had cancelled, got `CancelledError`. It now gets `DatabaseError`
    saying so, and the database goes on. A proxy holds the COMMIT until the cancel has come.
    """
    url = migrated_postgres_url
    async with proxied(url) as (proxy, through), connect(through) as db:
        sent = asyncio.Event()
        execute = asyncpg.Connection.execute

        async def held_commit(
            connection: asyncpg.Connection[asyncpg.Record], query: str, *args: object
        ) -> str:
            if query == "COMMIT":
                proxy.hold()
                sent.set()
            return await execute(connection, query, *args)

        monkeypatch.setattr(asyncpg.Connection, "execute", held_commit)
        block = asyncio.ensure_future(_two_in_a_block(db, 1))
        await sent.wait()
        for task in asyncio.all_tasks():  # the COMMIT's own, as code cancelling tasks may
            if task.get_coro().__qualname__.endswith("held_commit"):  # type: ignore[union-attr]  # a task's coroutine has a name
                task.cancel()
        await asyncio.sleep(0.01)
        proxy.let_through()
        with pytest.raises(DatabaseError, match="another task"):
            await block
        monkeypatch.undo()
        await _two_in_a_block(db, 2)
        assert Counter(int(r.metadata["tag"]) for r in await all_results(db))[2] == 2  # type: ignore[arg-type]
    await no_connection_left(url)


async def test_a_postgres_connect_cancelled_by_another_task_is_a_database_error(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the pool's connect for a call, in a task of its own, cancelled by another task.

    Its caller, which nobody had cancelled, got `CancelledError`; it now gets `DatabaseError`.
    """
    url = migrated_postgres_url
    async with connect(url) as db:
        await all_results(db)  # the pool's one connection is now the lane: a block connects
        connecting = tell_when_connected(monkeypatch)
        block = asyncio.ensure_future(_two_in_a_block(db, 1))
        await connecting.wait()
        for task in asyncio.all_tasks():  # the connect's own, as code cancelling tasks may
            if task.get_coro().__qualname__ == "PostgresBackend._take":  # type: ignore[union-attr]  # a task's coroutine has a name
                task.cancel()
        with pytest.raises(DatabaseError, match="another task"):
            await block
        monkeypatch.undo()
        await _two_in_a_block(db, 2)
        assert Counter(int(r.metadata["tag"]) for r in await all_results(db)) == {2: 2}  # type: ignore[arg-type]
    await no_connection_left(url)
