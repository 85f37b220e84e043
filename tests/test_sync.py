"""SyncRunner runs the package for synchronous code; a database stays on its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from _sync_helpers import result
from persistence import (
    Database,
    DatabaseError,
    NotFoundError,
    ValidationError,
    all_results,
    close_database,
    connect,
    get_config_value,
    get_result,
    migrate,
    open_database,
    open_persistence,
    save_result,
    set_config,
    transaction,
)
from persistence.cache import MemoryCache, open_memory_cache
from persistence.sync import SyncRunner


def test_calls_give_results_and_errors(tmp_path: Path) -> None:
    """call() and run() give each call's result, and raise its error as the package's.

    Meanwhile another loop is refused the database, saying so: it is open on the runner's.
    (The README's example runs the runner on both engines.)
    """
    with SyncRunner() as runner:
        db = runner.enter(connect(tmp_path / "x.db"))
        runner.call(migrate, db)
        saved = runner.call(save_result, db, result())
        assert saved.id is not None
        assert runner.run(get_result(db, saved.id)) == saved
        with pytest.raises(NotFoundError):
            runner.call(get_result, db, saved.id + 1)
        with pytest.raises(DatabaseError, match="another event loop, which is still open"):
            asyncio.run(save_result(db, result()))
        assert [r.id for r in runner.call(all_results, db)] == [saved.id]
    assert runner.closed


def test_postgres_on_another_open_loop_is_refused(postgres_admin: str) -> None:
    """A PostgreSQL database open on a runner's loop is refused on another loop, saying so.

    The call is refused before it touches a connection, so the server's own database serves.
    """
    with SyncRunner() as runner:
        db = runner.enter(connect(postgres_admin))
        with pytest.raises(DatabaseError, match="another event loop, which is still open"):
            asyncio.run(all_results(db))
        assert runner.run(asyncio.sleep(0, "still usable")) == "still usable"


def test_a_sqlite_database_belongs_to_the_loop_that_opened_it(tmp_path: Path) -> None:
    """Opened on one loop and not used yet, it is refused on another while the first is open.

    The first call took it, on whichever loop: the loop that opened it could then neither use
    it nor close it ("in use on another event loop"), as PostgreSQL's never allowed.
    """
    path = tmp_path / "x.db"
    with asyncio.Runner() as setting_up:
        setting_up.run(_migrate_at(path))
    with asyncio.Runner() as first, asyncio.Runner() as second:
        db = first.run(open_database(path))
        with pytest.raises(DatabaseError, match="another event loop, which is still open"):
            second.run(set_config(db, "runner", "workers", 1))
        first.run(set_config(db, "runner", "workers", 2))
        first.run(close_database(db))
    assert asyncio.run(_workers_at(path)) == 2


async def _migrate_at(path: Path) -> None:
    """Create and migrate the database at `path`."""
    async with connect(path) as db:
        await migrate(db)


async def _workers_at(path: Path) -> int:
    async with connect(path) as db:
        return await get_config_value(db, "runner", "workers", int)


def test_calls_from_several_threads_run_at_once(tmp_path: Path) -> None:
    """Threads share one runner: their calls run as tasks side by side on its loop."""
    with SyncRunner() as runner:
        db = runner.enter(connect(tmp_path / "x.db"))
        runner.call(migrate, db)
        threads = [
            threading.Thread(target=runner.call, args=(save_result, db, result())) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(runner.call(all_results, db)) == 8


def test_a_call_cannot_wait_for_its_own_runner() -> None:
    """A call that asks its own runner to run something is refused instead of hanging."""

    async def nested(runner: SyncRunner) -> None:
        runner.run(asyncio.sleep(0))

    with SyncRunner() as runner, pytest.raises(RuntimeError, match="wait for itself"):
        runner.call(nested, runner)


def test_an_interrupted_call_is_cancelled_and_ends_first() -> None:
    """Ctrl-C while a call waits cancels it on the loop, and the caller sees it end."""
    started, ended = threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)  # cleaning up, as a rollback would
            ended.set()

    def interrupt() -> None:
        started.wait(5)
        time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    # Python's own Ctrl-C handler, as a program run from a terminal has; a test run started in
    # the background (`make test &`) inherits SIGINT ignored, and the signal would do nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with SyncRunner() as runner:
            threading.Thread(target=interrupt).start()
            began = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                runner.call(slow)
            assert ended.is_set()
            assert time.monotonic() - began < 5
    finally:
        signal.signal(signal.SIGINT, previous)


_AFTER_THE_LOOP = textwrap.dedent(
    """
    import asyncio, sys
    from persistence import (
        DatabaseError, TestResult, TestStatus, TestType, all_results, migrate, open_database,
        save_result,
    )

    for url in sys.argv[1:]:
        db = asyncio.run(open_database(url))  # its loop closes here
        try:
            if url.endswith(".db"):  # not on the server's admin database: nothing is written there
                asyncio.run(migrate(db))
                passed = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)
                asyncio.run(save_result(db, passed))
            print("worked", len(asyncio.run(all_results(db))))
        except DatabaseError as error:
            print("refused", error)
    """
)


def test_a_handle_after_its_loop_closed(tmp_path: Path, postgres_admin: str) -> None:
    """One asyncio.run() per call: SQLite follows the loops; PostgreSQL is refused, saying why.

    No `Event loop is closed`, and no future whose exception is never retrieved.
    """
    script = tmp_path / "loops.py"
    script.write_text(_AFTER_THE_LOOP, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error::RuntimeWarning",
            str(script),
            str(tmp_path / "x.db"),
            postgres_admin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    sqlite, postgres = done.stdout.splitlines()
    assert sqlite == "worked 1"
    assert postgres.startswith("refused the PostgreSQL database postgres")
    assert "was opened on an event loop that has since closed" in postgres
    assert "persistence.sync.SyncRunner" in postgres
    assert "never retrieved" not in done.stderr
    assert "Event loop is closed" not in done.stderr


def test_a_second_interrupt_leaves_the_call_to_end_and_close_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second Ctrl-C while the cancelled call ends goes on at once, as asyncio.run's does.

    The call has been cancelled and is left to end on the loop; the interrupt's note names it
    and says that close waits for it, and close returns only once its clean-up has run.
    """
    started, cancelled, ended = threading.Event(), threading.Event(), threading.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            await asyncio.sleep(0.5)  # a clean-up that takes a while, as a rollback may
            ended.set()

    real_wait = threading.Event.wait
    caller = threading.get_ident()
    interrupts = [2, 1]

    def interrupted_wait(event: threading.Event, timeout: float | None = None) -> bool:
        """The caller's waits for the call raise KeyboardInterrupt, as two Ctrl-C would."""
        if threading.get_ident() == caller and interrupts:
            interrupts.pop()
            real_wait(started, 5)
            raise KeyboardInterrupt
        return real_wait(event, timeout)

    with SyncRunner() as runner:
        monkeypatch.setattr(threading.Event, "wait", interrupted_wait)
        with pytest.raises(KeyboardInterrupt) as raised:
            runner.call(slow)
        monkeypatch.undo()
        assert not ended.is_set()  # the second interrupt did not wait for the clean-up
        assert real_wait(cancelled, 5)
        assert "slow was cancelled and is still ending" in "".join(raised.value.__notes__)
        assert "close() waits for it" in "".join(raised.value.__notes__)
    assert ended.is_set()


def _not_async() -> int:
    """A plain function, passed where an async one belongs."""
    return 1


@pytest.mark.parametrize(
    ("method", "argument", "named"),
    [
        ("run", 42, "work"),
        ("run", None, "work"),
        ("run", _not_async, "work"),
        ("call", 42, "function"),
        ("call", "save_result", "function"),
        ("call", _not_async, "function"),
        ("enter", 42, "manager"),
        ("enter", threading.Lock(), "manager"),
    ],
)
def test_what_is_no_awaitable_or_manager_is_refused_by_name(
    method: str, argument: object, named: str
) -> None:
    """run, call and enter refuse what they cannot await or enter with ValidationError.

    They raised a bare TypeError from the loop; a plain function passed to `call` is named too,
    after it has run (only its result tells). The runner goes on.
    """
    with SyncRunner() as runner:
        with pytest.raises(ValidationError, match=rf"SyncRunner\.{named}: expected an? "):
            getattr(runner, method)(argument)
        assert runner.run(asyncio.sleep(0, "open")) == "open"


_LEFT_OPEN = textwrap.dedent(
    """
    import asyncio
    import sys

    from persistence import connect, migrate
    from persistence.sync import SyncRunner

    runner = SyncRunner()
    db = runner.enter(connect(sys.argv[1]))
    runner.call(migrate, db)
    with SyncRunner() as closed:
        closed.run(asyncio.sleep(0))
    print("left open")
    """
)


def test_a_runner_left_open_at_exit_is_named_in_a_resource_warning(tmp_path: Path) -> None:
    """A runner still open at exit gets a ResourceWarning saying how to close it; a closed one none.

    It cannot be closed at exit (`atexit` runs after the thread pools have stopped), so what
    it entered is never exited: it said nothing, as Python says of a file left open.
    """
    script = tmp_path / "left_open.py"
    script.write_text(_LEFT_OPEN, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", str(script), str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "left open\n"
    assert done.stderr.count("ResourceWarning: a SyncRunner was still open") == 1, done.stderr
    assert "call its close(), or use it as `with SyncRunner() as runner:`" in done.stderr
    assert "Task was destroyed" not in done.stderr


_AFTER_A_FORK = textwrap.dedent(
    """
    import asyncio, os
    from persistence.sync import SyncRunner

    runner = SyncRunner()
    runner.run(asyncio.sleep(0))
    child = os.fork()
    if child == 0:
        try:
            runner.run(asyncio.sleep(0))
        except RuntimeError as error:
            print("refused:", error, flush=True)
        runner.close()
        print("closed", runner.closed, flush=True)
        os._exit(0)
    os.waitpid(child, 0)
    print("parent", runner.run(asyncio.sleep(0, "works")), flush=True)
    runner.close()
    """
)


def test_a_forked_child_is_refused_the_parents_runner(tmp_path: Path) -> None:
    """A forked child is refused its parent's runner, saying why, instead of waiting for ever.

    The child (as multiprocessing's default start on Linux makes) has the loop but not the
    thread that runs it. Its close only marks the runner closed; the parent's runner goes on.
    """
    script = tmp_path / "fork.py"
    script.write_text(_AFTER_A_FORK, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    refused, closed, parent = done.stdout.splitlines()
    assert refused.startswith("refused: this SyncRunner was made in process ")
    assert "make a SyncRunner in this process" in refused
    assert closed == "closed True"
    assert parent == "parent works"
    assert done.stderr == ""


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
def test_a_call_raising_system_exit_gives_it_to_its_caller(raised: BaseException) -> None:
    """A call that raises SystemExit (sys.exit) or KeyboardInterrupt hands it to its caller.

    asyncio lets those two out of the loop: the loop's thread died and the caller waited for
    ever. Now the caller gets it, and the runner goes on and closes.
    """

    async def leaving() -> None:
        raise raised

    outcome: list[BaseException | str] = []

    def calling(runner: SyncRunner) -> None:
        try:
            runner.call(leaving)
        except BaseException as error:  # noqa: BLE001  # the test looks at it
            outcome.append(error)
        outcome.append(runner.run(asyncio.sleep(0, "alive")))

    runner = SyncRunner()
    caller = threading.Thread(target=calling, args=(runner,), daemon=True)
    caller.start()
    caller.join(5)
    assert outcome == [raised, "alive"]
    runner.close(timeout=5)


class _LoopThatHoldsItsLook(asyncio.SelectorEventLoop):
    """A loop whose `is_closed()`, once closed, waits for a second thread's look (1 s at most).

    It holds open the moment between a thread's look at the database's last loop and its
    move to its own, so that two threads look at once if nothing keeps them apart.
    """

    looks = threading.Barrier(2)

    def is_closed(self) -> bool:
        closed = super().is_closed()
        if closed and not self.looks.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.looks.wait(timeout=1)
        return closed


def test_two_threads_moving_a_sqlite_database_to_their_loops_at_once(tmp_path: Path) -> None:
    """Two threads, each with a loop of its own, move the database from a closed loop at once.

    Both saw the last loop closed, and both took the database: the second took it from the
    first mid-transaction (its ROLLBACK let the rest of the block autocommit), or the first
    then hung, or failed with a bare AssertionError. One now moves it; the other is refused.
    """
    _LoopThatHoldsItsLook.looks = threading.Barrier(2)  # this test's own
    with asyncio.Runner(loop_factory=_LoopThatHoldsItsLook) as first:
        db = first.run(open_database(tmp_path / "x.db"))
        first.run(migrate(db))
    outcomes: list[str] = []

    async def three_in_a_block() -> None:
        async with transaction(db) as tx:
            await save_result(tx, result())
            await asyncio.sleep(0.3)  # the other thread's loop is open meanwhile
            await save_result(tx, result())
            await save_result(tx, result())

    def one_thread() -> None:
        try:
            asyncio.run(three_in_a_block())
            outcomes.append("ok")
        except DatabaseError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=one_thread, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert len(outcomes) == 2
    outcomes.remove("ok")  # one moved it, and its block kept its three rows
    assert "is in use on another event loop, which is still open" in outcomes[0]
    assert len(asyncio.run(all_results(db))) == 3
    asyncio.run(close_database(db))


def test_a_closed_postgres_database_on_a_later_loop_says_it_is_closed(
    migrated_postgres_url: str,
) -> None:
    """A database closed with its runner, then used from another: closed, not the loop's fault.

    The call was told that the database was opened on a loop that has since closed, and to
    use one loop; and a second close raised so, where SQLite's does nothing.
    """
    with SyncRunner() as first:
        db = first.enter(connect(migrated_postgres_url))
    with SyncRunner() as later:
        with pytest.raises(DatabaseError, match=r"^PostgreSQL: the database is closed$"):
            later.call(get_result, db, 1)
        later.call(close_database, db)  # closed already: nothing more to do


@pytest.mark.parametrize("tier", ["memory", "redis"])
def test_a_cache_used_from_another_loop_is_refused_saying_so(
    tmp_path: Path, redis_url: str, tier: str
) -> None:
    """A bundle's cache read from a loop other than its own: a DatabaseError naming the loop.

    The Redis tier's shared load, begun on the other loop, failed with a bare RuntimeError
    (a future of another loop) from the second such read on; the memory tier blamed the
    database. A hit of `get_config_value` gave the value held, which a forked child kept
    reading after its parent's write. The cache's own loop reads on, and hears the writes.
    """
    with SyncRunner() as runner:
        bundle = runner.enter(
            open_persistence(
                tmp_path / "x.db",
                files=tmp_path / "files",
                redis=redis_url if tier == "redis" else None,
            )
        )
        runner.call(set_config, bundle.db, "s", "k", 1)
        for _ in range(2):
            with pytest.raises(DatabaseError, match="this cache was opened on another event loop"):
                asyncio.run(bundle.cache.get_config_value("s", "k", int))
        assert runner.run(bundle.cache.get_config_value("s", "k", int)) == 1
        with pytest.raises(DatabaseError, match="this cache was opened on another event loop"):
            asyncio.run(bundle.cache.get_config_value("s", "k", int))  # a hit, refused too
        runner.call(set_config, bundle.db, "s", "k", 2)
        assert runner.run(bundle.cache.get_config_value("s", "k", int)) == 2


def test_a_sqlite_memory_cache_follows_its_database_to_a_new_loop(tmp_path: Path) -> None:
    """One `asyncio.run()` after another: the cache moves with the database, and hears writes.

    A SQLite database moves to a new loop once its last one has closed; its memory cache, whose
    watch is read at each read, moved with it, until the cache refused every other loop.
    """
    path = tmp_path / "x.db"

    async def opened() -> tuple[Database, MemoryCache]:
        db = await open_database(path)
        await migrate(db)
        await set_config(db, "s", "k", 1)
        return db, await open_memory_cache(db)

    db, cache = asyncio.run(opened())
    assert asyncio.run(cache.get_config_value("s", "k", int)) == 1
    asyncio.run(set_config(db, "s", "k", 2))
    assert asyncio.run(cache.get_config_value("s", "k", int)) == 2
    asyncio.run(cache.close())
    asyncio.run(close_database(db))
