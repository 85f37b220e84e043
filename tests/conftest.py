"""Fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server at TEST_DATABASE_URL (default: the local server, as
postgres). Each test gets a database of its own, dropped after. An empty one is made from
template0; one the test will migrate anyway (it asks for `db`) is copied from a template that
this test process migrated once, which saves each test the migrations. On SQLite alike: each
test's file is empty, or a copy of a file this process migrated once. Databases are dropped
by background threads, so no test waits for the server's checkpoint; the session waits for
the last drop. Off CI, with no server, those tests skip and say why; with CI=true they fail.
"""

from __future__ import annotations

import asyncio
import gc
import os
import queue
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from persistence import (
    CounterexampleStore,
    Database,
    connect,
    migrate,
    open_counterexample_store,
)
from persistence.storage import Storage, open_storage

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENGINES = ["sqlite", "postgres"]


def admin_url() -> str:
    """The server that PostgreSQL tests make their databases on."""
    return os.environ.get("TEST_DATABASE_URL") or DEFAULT_ADMIN_URL


def on_ci() -> bool:
    """Whether this run is CI, where no PostgreSQL test may skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def _probe(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        return f"no PostgreSQL server at {url}: {type(error).__name__}: {error}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The admin URL of a reachable server; skip (or fail on CI) when there is none."""
    problem = asyncio.run(_probe(admin_url()))
    if problem is not None:
        if on_ci():
            pytest.fail(f"CI=true requires PostgreSQL: {problem}")
        pytest.skip(f"{problem} (set TEST_DATABASE_URL, or start the server)")
    return admin_url()


def with_database(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


DROP_THREADS = 4
"""Drops that run at once, in each of `make test`'s four workers. Each drop makes the server
write a checkpoint, and drops that arrive together share one: 24 migrated test databases
took 2.4 s to drop two at a time and 1.1 to 1.3 s eight at a time. Each thread holds a
connection only while it drops."""


class Dropper:
    """Drops test databases in threads of their own, so that no test waits for the drop.

    A timed or counting test pauses the drops instead: the one under way ends, no other
    starts until the test is over, and those asked for meanwhile wait in the queue. Waiting
    for the queue to empty instead held such a test up to 100 s behind the server's
    checkpoints, one for each drop.
    """

    def __init__(self, admin: str) -> None:
        self._admin = admin
        self._names: queue.Queue[str | None] = queue.Queue()
        self._failures: list[str] = []
        self._turn = threading.Condition()
        self._pauses = 0
        self._dropping = 0
        self._threads = [
            threading.Thread(target=self._run, name=f"drop-test-databases-{i}", daemon=True)
            for i in range(DROP_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def drop(self, name: str) -> None:
        """Ask for the database `name` to be dropped; return at once."""
        self._names.put(name)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every drop not yet begun, once the drops under way have ended."""
        with self._turn:
            self._pauses += 1
            self._turn.wait_for(lambda: self._dropping == 0)
        try:
            yield
        finally:
            with self._turn:
                self._pauses -= 1
                self._turn.notify_all()

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            with self._turn:
                self._turn.wait_for(lambda: self._pauses == 0)
                self._dropping += 1
            try:
                asyncio.run(_admin(self._admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except (OSError, asyncpg.PostgresError) as error:
                self._failures.append(f"{name}: {error}")
            finally:
                with self._turn:
                    self._dropping -= 1
                    self._turn.notify_all()
                self._names.task_done()

    def close(self) -> list[str]:
        """Stop the threads once every drop asked for is done; give the drops that failed."""
        for _ in self._threads:
            self._names.put(None)
        for thread in self._threads:
            thread.join()
        return self._failures


_DROPPERS: list[Dropper] = []


COUNTING_MODULES: Final = frozenset(
    {
        "test_cache_disk.py",
        "test_cache_disk_full.py",
        "test_cache_disk_hostile.py",
        "test_cache_redis.py",
        "test_cancellation.py",
        "test_descriptors.py",
        "test_lone_writes.py",
        "test_snapshots.py",
        "test_sync_close_calls.py",
        "test_sweep_batches_hostile.py",
        "test_sync_close_race.py",
        "test_writer_cancel.py",
    }
)
"""The modules whose tests count this process's descriptors, threads or mappings."""


@pytest.fixture(autouse=True)
def _no_drop_under_a_timed_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a timed or counting test with no drop and no copy under way.

    A drop would take the GIL and the server's disk from a timed test, and its connection
    and thread would be counted by a test that counts this process's descriptors.
    """
    if (
        request.node.get_closest_marker("timed") is None
        and request.node.path.name not in COUNTING_MODULES
    ):
        yield
        return
    with ExitStack() as paused:
        for dropper in _DROPPERS:
            paused.enter_context(dropper.paused())
        for spares in _SPARES.values():
            spares.wait_idle()
        yield


@pytest.fixture(scope="session")
def _dropper(postgres_admin: str) -> Iterator[Dropper]:
    dropper = Dropper(postgres_admin)
    _DROPPERS.append(dropper)
    yield dropper
    for spares in _SPARES.values():
        spares.close()
    _SPARES.clear()
    _DROPPERS.remove(dropper)
    failures = dropper.close()
    assert not failures, f"test databases left behind: {failures}"


def _create_database(admin: str, template: str) -> str:
    name = f"persistence_test_{uuid.uuid4().hex[:12]}"
    # Identifiers cannot be bound parameters; the names are made here, from hex digits only.
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return name


class _Spares:
    """One database made ahead from a template, in a thread, while the test before runs.

    A copy takes the server about 0.4 s; made ahead, no test waits for it. The thread makes
    the next one once the last is taken, and the last one left is dropped at the end.
    """

    def __init__(self, admin: str, template: str, dropper: Dropper) -> None:
        self._admin, self._template, self._dropper = admin, template, dropper
        self._ready: queue.Queue[str | Exception] = queue.Queue(maxsize=1)
        self._wanted = threading.Semaphore(1)
        self._idle = threading.Event()  # clear while a copy is being made
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="make-test-databases", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._idle.set()
            self._wanted.acquire()
            self._idle.clear()
            if self._closing:
                return
            made: str | Exception
            try:
                made = _create_database(self._admin, self._template)
            except (OSError, asyncpg.PostgresError) as error:
                made = error
            self._ready.put(made)

    def wait_idle(self) -> None:
        """Wait until no copy is being made: its connection and loop would be counted."""
        self._idle.wait()

    def take(self) -> str:
        made = self._ready.get()
        self._wanted.release()
        if isinstance(made, Exception):
            raise made
        return made

    def close(self) -> None:
        self._closing = True
        self._wanted.release()
        self._thread.join()
        while not self._ready.empty():
            made = self._ready.get()
            if isinstance(made, str):
                self._dropper.drop(made)


_SPARES: dict[str, _Spares] = {}


def _new_database(
    admin: str, template: str, dropper: Dropper, request: pytest.FixtureRequest
) -> str:
    """A new database copied from `template`: the one made ahead, with the next one asked for.

    A timed or counting test's is made before it starts, as before: the next one, made during
    the test, would take the server's disk from it, or be counted in its descriptors.
    """
    if (
        request.node.get_closest_marker("timed") is not None
        or request.node.path.name in COUNTING_MODULES
    ):
        return _create_database(admin, template)
    spares = _SPARES.get(template)
    if spares is None:
        spares = _SPARES[template] = _Spares(admin, template, dropper)
    return spares.take()


@pytest.fixture
def postgres_url(
    postgres_admin: str, _dropper: Dropper, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    name = _new_database(postgres_admin, "template0", _dropper, request)
    try:
        yield with_database(postgres_admin, name)
    finally:
        _dropper.drop(name)


async def _migrate_at(url: str) -> None:
    async with connect(url) as db:
        await migrate(db)


@pytest.fixture(scope="session")
def _migrated_template(postgres_admin: str, _dropper: Dropper) -> Iterator[str]:
    """A database migrated once by this test process, for others to be copied from."""
    name = _create_database(postgres_admin, "template0")
    try:
        asyncio.run(_migrate_at(with_database(postgres_admin, name)))
        yield name
    finally:
        spares = _SPARES.pop(name, None)
        if spares is not None:
            spares.close()  # none is being copied from it as it is dropped
        _dropper.drop(name)


@pytest.fixture
def migrated_postgres_url(
    postgres_admin: str,
    _migrated_template: str,
    _dropper: Dropper,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A fresh PostgreSQL database with every migration applied, dropped after the test."""
    name = _new_database(postgres_admin, _migrated_template, _dropper, request)
    try:
        yield with_database(postgres_admin, name)
    finally:
        _dropper.drop(name)


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once by this test process, for each test to copy."""
    path = tmp_path_factory.mktemp("migrated-template") / "template.db"
    asyncio.run(_migrate_at(str(path)))
    # Closed by its last connection, the file holds every page: no WAL is left to copy.
    assert sorted(path.parent.iterdir()) == [path], sorted(path.parent.iterdir())
    return path


def _migrated_sqlite_file(template: Path, tmp_path: Path) -> Path:
    """A test's own SQLite file, a copy of the migrated template."""
    path = tmp_path / "test.db"
    shutil.copyfile(template, path)
    return path


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each engine in turn: empty, unless the test also asks for `db`."""
    migrated = "db" in request.fixturenames
    if request.param == "sqlite":
        if not migrated:
            return str(tmp_path / "test.db")
        template: Path = request.getfixturevalue("_migrated_sqlite_template")
        return str(_migrated_sqlite_file(template, tmp_path))
    url: str = request.getfixturevalue("migrated_postgres_url" if migrated else "postgres_url")
    return url


@pytest.fixture(name="db")
async def fresh_db(database_url: str) -> AsyncIterator[Database]:
    """A fresh, migrated database of each engine in turn.

    It is a copy of a database that this process migrated once; `migrate` runs on it all the
    same, and finds nothing to do.
    """
    async with connect(database_url) as db:
        await migrate(db)
        yield db


@pytest.fixture
async def sqlite_db(tmp_path: Path, _migrated_sqlite_template: Path) -> AsyncIterator[Database]:
    """A fresh, migrated SQLite database, for what only SQLite does: a copy of the template."""
    async with connect(_migrated_sqlite_file(_migrated_sqlite_template, tmp_path)) as db:
        await migrate(db)
        yield db


@pytest.fixture
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the test without DATABASE_URL, whatever the shell running pytest has.

    The command-line tests ask for it in their `pytestmark`; a test that wants it sets it.
    """
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture(name="storage")
async def fresh_storage(tmp_path: Path) -> Storage:
    """A fresh file storage at tmp_path/root."""
    return await open_storage(tmp_path / "root")


@pytest.fixture(name="store")
async def kept_store(tmp_path_factory: pytest.TempPathFactory) -> CounterexampleStore:
    """A counterexample store, its kept files under a storage root of their own."""
    return await open_counterexample_store(await open_storage(tmp_path_factory.mktemp("kept")))


@pytest.fixture(name="source")
async def filled_sqlite(tmp_path: Path, store: CounterexampleStore) -> AsyncIterator[Database]:
    """A migrated SQLite database with rows in every table a backup copies, some kept in `store`."""
    from _backup_helpers import fill  # noqa: PLC0415  # only the backup tests need it

    async with connect(tmp_path / "source.db") as db:
        await migrate(db)
        await fill(db, store)
        yield db


DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
"""Index 9, never 0: the tests write and delete keys there, so they keep off the default."""


def redis_test_url() -> str:
    """The Redis server that cache tests use."""
    return os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL


async def _probe_redis(url: str) -> str | None:
    from redis.asyncio import Redis  # noqa: PLC0415  # only the Redis tests need it
    from redis.exceptions import RedisError  # noqa: PLC0415

    client = Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        return f"no Redis server at {url}: {type(error).__name__}: {error}"
    finally:
        await client.aclose()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable Redis; skip (or fail on CI) when there is none."""
    problem = asyncio.run(_probe_redis(redis_test_url()))
    if problem is not None:
        if on_ci():
            pytest.fail(f"CI=true requires Redis: {problem}")
        pytest.skip(f"{problem} (set TEST_REDIS_URL, or start redis-server)")
    return redis_test_url()


@pytest.fixture(name="namespace")
async def fresh_namespace(redis_url: str) -> AsyncIterator[str]:
    """A Redis key namespace of this test's own, whose keys are deleted afterwards."""
    from redis.asyncio import Redis  # noqa: PLC0415  # only the Redis tests need it

    name = f"persistence-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = Redis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


# Modules whose tests measure time on the event loop or race short timeouts. `make test` runs
# every other test on four workers, then these alone, so that no worker steals their CPU.
TIMED_MODULES = frozenset(
    {
        "test_faults.py",
        "test_loop.py",
        "test_loop_lag_first_search.py",
        "test_loop_lag_long_globs.py",
        "test_loop_lag.py",
        "test_loop_lag_large_values.py",
        "test_loop_lag_config_codec.py",
        "test_loop_lag_huge_values.py",
        "test_loop_lag_huge_cache_entries.py",
        "test_loop_lag_config_listing.py",
        "test_loop_lag_huge_rows.py",
        "test_loop_lag_pg_slices.py",
        "test_loop_lag_point_reads.py",
        "test_loop_lag_long_texts.py",
        "test_loop_lag_sweep.py",
        "test_network.py",
        "test_network_limits.py",
        "test_retention.py",
        "test_script_splitting_time.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of the timed modules `timed`."""
    for item in items:
        if item.path.name in TIMED_MODULES:
            item.add_marker(pytest.mark.timed)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection made, so that no collection pass in a test walks it again.

    Every test module, hypothesis and the fixtures are imported by then; a full collection
    pass over them all takes longer than the loop-lag tests' whole bound.
    """
    del session
    gc.collect()
    gc.freeze()
