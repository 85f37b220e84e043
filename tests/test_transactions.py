"""transaction(): many calls, one commit; any error rolls all of them back."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import pytest

from persistence import (
    ConfigEntry,
    ConfigType,
    ConflictError,
    Database,
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    close_database,
    connect,
    find_config_entry_by_key,
    get_config_value,
    get_result,
    list_results,
    open_database,
    save_config_entry,
    save_result,
    save_results,
    set_config,
    transaction,
)
from persistence._database_value import backend_of
from persistence.database import connection, read_snapshot
from persistence.migrations import migrate


def result() -> TestResult:
    """A plain passing unit test result."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


class BoomError(Exception):
    """An error of the caller's own."""


async def test_commits_on_success(db: Database) -> None:
    """Calls inside a transaction are all stored when it ends."""
    async with transaction(db) as tx:
        assert tx.in_transaction
        await save_result(tx, result())
        await set_config(tx, "a", "b", 1)
    assert len(await all_results(db)) == 1
    assert await find_config_entry_by_key(db, "a", "b") is not None


async def test_rolls_back_on_any_error(db: Database) -> None:
    """An error inside the block undoes every call in it, and propagates unchanged."""
    with pytest.raises(BoomError):
        async with transaction(db) as tx:
            await save_result(tx, result())
            await set_config(tx, "a", "b", 1)
            raise BoomError
    assert await all_results(db) == []
    assert await find_config_entry_by_key(db, "a", "b") is None


async def test_rolls_back_on_database_error(db: Database) -> None:
    """A conflict inside the block undoes the calls before it."""
    first = await set_config(db, "s", "one", 1)
    await set_config(db, "s", "two", 2)
    with pytest.raises(ConflictError):
        async with transaction(db) as tx:
            await save_result(tx, result())
            await set_config(tx, "s", "three", 3)
            await save_config_entry(
                tx, ConfigEntry(id=first.id, section="s", key="two", value=1, type=ConfigType.INT)
            )
    assert await all_results(db) == []
    assert await find_config_entry_by_key(db, "s", "three") is None


async def test_nested_block_fails_alone(db: Database) -> None:
    """A failing nested block rolls back to its savepoint; the outer one still commits."""
    async with transaction(db) as outer:
        await save_result(outer, result())
        with pytest.raises(BoomError):
            async with transaction(outer) as inner:
                await save_result(inner, result())
                raise BoomError
        await save_result(outer, result())
    assert len(await all_results(db)) == 2


async def test_other_tasks_do_not_join(db: Database) -> None:
    """A call made outside the block by another task is not rolled back with it."""
    started = asyncio.Event()

    async def outsider() -> None:
        await started.wait()
        await set_config(db, "outside", "key", 1)

    async def failing() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result())
            started.set()
            await asyncio.sleep(0.05)
            raise BoomError

    outcome = await asyncio.gather(outsider(), failing(), return_exceptions=True)
    assert isinstance(outcome[1], BoomError)
    assert outcome[0] is None
    assert await all_results(db) == []
    assert await find_config_entry_by_key(db, "outside", "key") is not None


async def test_outer_database_inside_a_transaction_is_refused(sqlite_db: Database) -> None:
    """On SQLite, a call with the outer database inside transaction() fails fast, not forever."""
    with pytest.raises(DatabaseError, match="pass the database that transaction"):
        async with asyncio.timeout(5), transaction(sqlite_db) as tx:
            await save_result(tx, result())
            await save_result(sqlite_db, result())
    assert await all_results(sqlite_db) == []


async def test_outer_database_in_the_block_is_refused_at_once(db: Database) -> None:
    """Inside transaction(db), a call with db itself fails at once on both engines."""
    saved = await save_result(db, result())
    with pytest.raises(DatabaseError, match="pass the database that transaction"):
        async with asyncio.timeout(5), transaction(db) as tx:
            await save_result(tx, attrs.evolve(saved, status=TestStatus.FAILED))  # locks the row
            await save_result(db, attrs.evolve(saved, status=TestStatus.ERROR))
    assert (await get_result(db, saved.id or 0)).status is TestStatus.PASSED


async def test_child_tasks_with_the_outer_database_are_refused(db: Database) -> None:
    """Tasks started inside the block that use the outer db fail at once, never hang."""
    async with asyncio.timeout(5), transaction(db) as tx:
        await save_result(tx, result())
        outcome = await asyncio.gather(
            save_result(db, result()), all_results(db), return_exceptions=True
        )
        assert all(isinstance(error, DatabaseError) for error in outcome), outcome
        with pytest.raises(DatabaseError, match="pass the database that transaction"):
            async with transaction(db):
                pass
    assert len(await all_results(db)) == 1


async def test_tasks_that_outlive_the_block_may_use_the_database(db: Database) -> None:
    """A task started inside a block may use the outer db once the block has ended."""
    go = asyncio.Event()

    async def later() -> TestResult:
        await go.wait()
        return await save_result(db, result())

    async with transaction(db) as tx:
        task = asyncio.create_task(later())
        await save_result(tx, result())
    go.set()
    assert (await asyncio.wait_for(task, 5)).id is not None
    assert len(await all_results(db)) == 2


async def test_a_block_that_ended_refuses_its_database(db: Database) -> None:
    """The database a block gave cannot be used after the block: its calls would be lost."""
    async with transaction(db) as tx:
        pass
    with pytest.raises(DatabaseError, match="block has ended"):
        await save_result(tx, result())
    assert await all_results(db) == []


async def test_concurrent_nested_blocks_are_refused_alike(db: Database) -> None:
    """While one task's nested block is open, another task's use of the outer tx is refused."""
    inner_open = asyncio.Event()
    may_fail = asyncio.Event()

    async def first(tx: Database) -> None:
        async with transaction(tx) as inner:
            await save_result(inner, result())
            inner_open.set()
            await may_fail.wait()
            raise BoomError

    async def second(tx: Database) -> str:
        await inner_open.wait()
        refusals = []
        for attempt in (lambda: _nested_save(tx), lambda: save_result(tx, result())):
            try:
                await attempt()
            except DatabaseError as error:
                refusals.append(str(error))
        may_fail.set()
        return " | ".join(refusals)

    async with asyncio.timeout(5), transaction(db) as tx:
        await save_result(tx, result())
        outcome = await asyncio.gather(first(tx), second(tx), return_exceptions=True)
        assert isinstance(outcome[0], BoomError)
        assert isinstance(outcome[1], str)
        assert outcome[1].count("a nested transaction() is open") == 2
        await _nested_save(tx)  # once the nested block has ended, tx works again
    assert len(await all_results(db)) == 2


async def _nested_save(tx: Database) -> None:
    async with transaction(tx) as inner:
        await save_result(inner, result())


async def test_nested_blocks_nest_deeply(db: Database) -> None:
    """Savepoints stack: each level commits or rolls back alone, in order."""
    async with transaction(db) as one:
        await save_result(one, result())
        async with transaction(one) as two:
            await save_result(two, result())
            with pytest.raises(BoomError):
                async with transaction(two) as three:
                    await save_result(three, result())
                    raise BoomError
            await save_result(two, result())
    assert len(await all_results(db)) == 3


async def test_statements_of_one_transaction_from_many_tasks(db: Database) -> None:
    """Many tasks sending statements through one tx run them one at a time, all kept."""
    async with transaction(db) as tx:
        await asyncio.gather(*(save_result(tx, result()) for _ in range(50)))
        await asyncio.gather(*(all_results(tx) for _ in range(5)))
    assert len(await all_results(db)) == 50


async def test_a_block_ends_after_the_statements_other_tasks_sent_through_it(
    db: Database,
) -> None:
    """A block that ends while another task's statement runs through it waits for that statement."""
    async with transaction(db) as tx:
        await save_results(tx, [result() for _ in range(2000)])
        # One statement: list_results reads its page in one, where all_results reads several.
        reader = asyncio.ensure_future(list_results(tx, limit=2000))
        await asyncio.sleep(0)  # the reader has taken the block's connection
    assert len((await asyncio.wait_for(reader, 10)).items) == 2000
    assert len(await all_results(db)) == 2000


async def test_concurrent_single_calls_fail_alone(db: Database) -> None:
    """Of many single calls at once (one shared commit on SQLite), a failing one fails alone."""
    taken = await set_config(db, "s", "taken", 1)
    assert taken.id is not None
    clash = ConfigEntry(id=taken.id, section="s", key="other", value=2, type=ConfigType.INT)
    await set_config(db, "s", "other", 0)

    async def attempt(n: int) -> object:
        if n % 10 == 0:
            return await save_config_entry(db, clash)  # (s, other) belongs to another entry
        return await save_result(db, result())

    outcome = await asyncio.gather(*(attempt(n) for n in range(100)), return_exceptions=True)
    failures = [o for o in outcome if isinstance(o, BaseException)]
    assert len(failures) == 10
    assert all(isinstance(f, ConflictError) for f in failures)
    assert len(await all_results(db)) == 90
    assert (await get_config_value(db, "s", "taken", int)) == 1


async def test_a_write_that_rolls_back_the_batch_fails_the_writes_before_it(
    sqlite_db: Database,
) -> None:
    """If SQLite rolls a shared commit's transaction back, the writes run in it fail with it.

    The writes queued after the one that rolled it back never ran: they commit in the next batch.
    """
    writer = backend_of(sqlite_db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # a trigger of the test's own
    writer.execute(
        "CREATE TEMP TRIGGER doom BEFORE INSERT ON main.test_results"
        " WHEN NEW.output = 'doom' BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END"
    )
    rows = [attrs.evolve(result(), output="doom" if n == 9 else f"row {n}") for n in range(30)]
    outcome = await asyncio.gather(
        *(save_result(sqlite_db, r) for r in rows), return_exceptions=True
    )
    failed = [n for n, o in enumerate(outcome) if isinstance(o, BaseException)]
    assert failed == list(range(10))
    assert all("doomed" in str(outcome[n]) for n in failed)
    assert sorted(r.output or "" for r in await all_results(sqlite_db)) == sorted(
        f"row {n}" for n in range(10, 30)
    )
    assert (await save_result(sqlite_db, result())).id is not None


async def test_a_lone_single_call_write_takes_one_thread_hop(sqlite_db: Database) -> None:
    """Alone in its batch, a write runs and commits in one worker-thread hop, none on the loop."""
    writer = backend_of(sqlite_db)._writer  # type: ignore[attr-defined]  # noqa: SLF001  # its hops counted
    hops: list[str] = []
    in_worker, start_in_thread = writer._in_worker, writer._start_in_thread  # noqa: SLF001  # wrapped to count

    def counted(function: object, *args: object) -> object:
        hops.append(getattr(function, "__name__", repr(function)))
        return in_worker(function, *args)

    def started(function: object, *args: object) -> object:
        hops.append(getattr(function, "__name__", repr(function)))
        return start_in_thread(function, *args)

    writer._in_worker, writer._start_in_thread = counted, started  # noqa: SLF001  # counted
    for _ in range(3):
        await save_result(sqlite_db, result())
    assert hops == ["run_alone"] * 3, hops
    assert len(await all_results(sqlite_db)) == 3


async def test_closing_inside_the_blocks_own_transaction_is_refused_at_once(
    database_url: str, db: Database
) -> None:
    """close_database in a transaction() block, which it would wait for, is refused at once.

    SQLite waited for the block's lease forever; PostgreSQL for its connection, `release_timeout`
    plus `command_timeout` (61 s by default), and then cut the transaction off. The block goes on
    and commits; a task that outlives the block may close the database afterwards.
    """
    short = await open_database(database_url, command_timeout=5, release_timeout=1)
    try:
        async with asyncio.timeout(2), transaction(short) as tx:
            await save_result(tx, result())
            for closing in (short, tx):
                with pytest.raises(DatabaseError, match="would wait for the block"):
                    await close_database(closing)
            with pytest.raises(DatabaseError, match="would wait for the block"):
                await asyncio.ensure_future(close_database(short))  # a task the block started
        assert len(await all_results(db)) == 1
    finally:
        await close_database(short)


async def test_closing_inside_the_tasks_own_connection_block_is_refused_at_once(
    database_url: str, db: Database
) -> None:
    """close_database in a connection() block of this task, or a task it started: refused.

    PostgreSQL waited for the lent connection `release_timeout` plus `command_timeout` (61 s
    by default); SQLite closed under the block. The block goes on; another task may close.
    """
    short = await open_database(database_url, command_timeout=5, release_timeout=1)
    try:
        async with asyncio.timeout(2), connection(short):
            with pytest.raises(DatabaseError, match=r"connection\(\) block .* would wait"):
                await close_database(short)
            with pytest.raises(DatabaseError, match=r"connection\(\) block .* would wait"):
                await asyncio.ensure_future(close_database(short))  # a task the block started
            await save_result(short, result())
        assert len(await all_results(db)) == 1
    finally:
        await close_database(short)


@pytest.mark.parametrize("ending", ["a task started in it", "an abandoned generator"])
async def test_a_connection_block_that_ended_elsewhere_lets_the_close_run(
    database_url: str, ending: str
) -> None:
    """A block's mark outlived it, and refused every close after: the pool was never closed.

    A task started in the block carried the mark on; a generator's block, ended by the loop's
    finalizer in another context, left it in the task that had entered it.
    """
    db = await open_database(database_url)
    if ending == "a task started in it":
        ended = asyncio.Event()

        async def close_after() -> None:
            await ended.wait()
            await close_database(db)

        async with connection(db):
            closing = asyncio.ensure_future(close_after())
        ended.set()
        await asyncio.wait_for(closing, 10)
    else:

        async def rows() -> AsyncIterator[int]:
            async with connection(db):
                yield 1
                yield 2

        generator = rows()
        await anext(generator)
        del generator
        gc.collect()
        await asyncio.sleep(0.05)  # the loop's finalizer closes it, in a task of its own
        await asyncio.wait_for(close_database(db), 10)
    with pytest.raises(DatabaseError, match="closed"):
        await save_result(db, result())


async def test_a_lone_write_returns_in_the_loop_turn_after_its_thread_ends(
    sqlite_db: Database,
) -> None:
    """Its caller resumes in the next turn of the loop after the worker thread reports back.

    Not two turns later, woken by the writer's task once that task has woken: a durable write
    in a loop pays for each turn.
    """
    loop = asyncio.get_running_loop()
    turns = 0
    reported: list[int] = []  # the turn in which the last callback from a thread ran

    async def ticking() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    threadsafe = loop.call_soon_threadsafe

    def noted(
        callback: Callable[..., object], *args: object, **kwargs: contextvars.Context | None
    ) -> asyncio.Handle:
        def run(*args: object) -> None:
            reported.append(turns)
            callback(*args)

        return threadsafe(run, *args, **kwargs)

    await save_result(sqlite_db, result())  # the writer's task started
    ticker = asyncio.create_task(ticking())
    loop.call_soon_threadsafe = noted  # type: ignore[method-assign]  # each callback's turn noted
    gaps = []
    try:
        for _ in range(20):
            await save_result(sqlite_db, result())
            gaps.append(turns - reported[-1])
    finally:
        loop.call_soon_threadsafe = threadsafe  # type: ignore[method-assign]  # restored
        ticker.cancel()
    assert max(gaps) <= 1, gaps


async def test_a_lone_single_call_write_commits_itself(sqlite_db: Database) -> None:
    """Alone in its batch, a write runs as one statement, no BEGIN or COMMIT, and is durable."""
    writer = backend_of(sqlite_db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # its statements traced
    ran: list[str] = []
    writer.set_trace_callback(ran.append)
    try:
        saved = [await save_result(sqlite_db, result()) for _ in range(3)]
    finally:
        writer.set_trace_callback(None)
    statements = {s.split(None, 1)[0].upper() for s in ran if not s.startswith("--")}
    assert "INSERT" in statements, ran
    # Each commits itself: no BEGIN, no COMMIT. (FTS5 may read its config on first use.)
    assert not statements & {"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"}, ran
    assert not writer.in_transaction
    with contextlib.closing(sqlite3.connect(sqlite_db.url)) as other:
        ids = [row[0] for row in other.execute("SELECT id FROM test_results ORDER BY id")]
    assert ids == [s.id for s in saved]


async def test_a_lone_write_waits_for_a_lock_another_connection_holds(tmp_path: Path) -> None:
    """A lone write that finds the write lock taken waits for it, then commits; or times out."""
    async with connect(tmp_path / "locked.db", busy_timeout=0.3) as db:
        await migrate(db)
        with contextlib.closing(sqlite3.connect(db.url, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(save_result(db, result()))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            other.execute("COMMIT")
            saved = await waiting
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(DatabaseError, match="locked"):
                await save_result(db, result())
            other.execute("ROLLBACK")
        assert [r.id for r in await all_results(db)] == [saved.id]
        assert (await save_result(db, result())).id is not None


async def test_lone_writes_run_in_the_writers_own_thread_which_closing_ends(
    tmp_path: Path,
) -> None:
    """Lone writes take the writer's own thread, not the worker pool; closing joins it."""
    async with connect(tmp_path / "own.db") as db:
        await migrate(db)
        writer = backend_of(db)._writer.connection  # type: ignore[attr-defined]  # noqa: SLF001  # traced
        names: set[str] = set()
        writer.set_trace_callback(lambda _: names.add(threading.current_thread().name))
        for _ in range(3):
            await save_result(db, result())
        writer.set_trace_callback(None)
        assert names == {"persistence-sqlite-writer"}
    assert not any(t.name == "persistence-sqlite-writer" for t in threading.enumerate())


async def test_a_block_under_way_as_the_close_begins_still_nests_and_commits(
    database_url: str,
) -> None:
    """The close waits for a block of another task: the block's nested block still runs.

    A check that every call makes, refusing a closed database, refused the nested block once
    PostgreSQL's close had begun, and the whole block rolled back.
    """
    db = await open_database(database_url)
    await migrate(db)
    entered, go_on = asyncio.Event(), asyncio.Event()

    async def block() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result())
            entered.set()
            await go_on.wait()
            async with transaction(tx) as inner:
                await save_result(inner, result())

    running = asyncio.create_task(block())
    closing: asyncio.Task[None] | None = None
    waiting = asyncio.ensure_future(entered.wait())
    try:
        await asyncio.wait((running, waiting), timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert entered.is_set(), running
        closing = asyncio.create_task(close_database(db))
        await asyncio.sleep(0.05)
        go_on.set()
        async with asyncio.timeout(10):  # a regression fails, not hangs
            await running
            await closing
    finally:
        waiting.cancel()
        running.cancel()
        if closing is None:
            await close_database(db)
    async with connect(database_url) as again:
        assert len(await all_results(again)) == 2


async def test_a_postgresql_block_whose_transaction_failed_says_so_at_its_end(
    migrated_postgres_url: str,
) -> None:
    """An error caught inside a block fails its transaction: the block's end raises, not commits.

    PostgreSQL answers such a block's COMMIT with ROLLBACK, and no error: the block ended as
    if it had committed, and every write of it, each already answered, was gone. A failing
    write caught around a nested block undoes its own writes alone, as before.
    """
    failing = attrs.evolve(result(), run_id=999)  # no such run: a ConflictError
    async with connect(migrated_postgres_url) as db:
        with pytest.raises(DatabaseError, match="COMMIT rolled it back: none of the block's"):
            async with transaction(db) as tx:
                await save_result(tx, attrs.evolve(result(), output="kept?"))
                with pytest.raises(ConflictError):
                    await save_result(tx, failing)
                # Each later call is told why the server refuses it, not in the server's words
                # alone ("current transaction is aborted, commands ignored until ...").
                with pytest.raises(DatabaseError, match="an earlier statement of this"):
                    await all_results(tx)
        with pytest.raises(DatabaseError, match="COMMIT rolled it back"):
            async with transaction(db) as tx:
                await save_result(tx, attrs.evolve(result(), output="kept?"))
                with pytest.raises(DatabaseError, match="division by zero"):
                    async with connection(tx) as conn:
                        await conn.execute("SELECT 1 / 0")  # type: ignore[attr-defined]  # asyncpg's
        assert await all_results(db) == []
        async with transaction(db) as tx:
            await save_result(tx, attrs.evolve(result(), output="kept"))
            with contextlib.suppress(ConflictError):
                async with transaction(tx) as inner:
                    await save_result(inner, failing)
        assert [r.output for r in await all_results(db)] == ["kept"]


@pytest.mark.parametrize(
    "own",
    [
        TimeoutError("the caller's own deadline"),
        FileNotFoundError(2, "No such file or directory", "/nowhere/input.txt"),
        ConnectionResetError("an HTTP call of the caller's, reset"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_the_callers_own_error_leaves_a_block_as_it_was_raised(
    db: Database, own: Exception
) -> None:
    """A block's body raising an error of its own gives it back as it is, on both engines.

    On PostgreSQL it came out as a `DatabaseError` telling of a command timeout, a lost
    connection or a network error: an `except TimeoutError` around the block never ran.
    """
    for block in (transaction, read_snapshot):
        with pytest.raises(type(own)) as caught:
            async with block(db) as inner:
                await get_config_value(inner, "runner", "workers", int, default=0)
                raise own
        assert caught.value is own
    with pytest.raises(type(own)) as caught:
        async with connection(db):
            raise own
    assert caught.value is own
    assert await get_config_value(db, "runner", "workers", int, default=1) == 1
