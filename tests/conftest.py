"""Fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server at TEST_DATABASE_URL (default: the local server, as
postgres). Each test gets a database of its own, dropped after. An empty one is made from
template0; one the test will migrate anyway (it asks for `db`) is copied from a template that
this test process migrated once, which saves each test the migrations. On SQLite alike: each
test's file is empty, or a copy of a file this process migrated once. A process of this test
process's own (tests/_test_databases.py) makes each PostgreSQL database ahead, while the test
before runs, and drops it after in the background, so that no test waits for the server's
checkpoint, and no test that counts this process's descriptors or threads counts theirs; the
session waits for the last drop. Off CI, with no server, those tests skip and say why; with
CI=true they fail.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from hypothesis import settings

from _lag import LOCK_VARIABLE
from _test_databases import DatabaseService
from persistence import (
    CounterexampleStore,
    Database,
    connect,
    migrate,
    open_counterexample_store,
)
from persistence.storage import Storage, open_storage

# A property test that names no number of examples tries 50, not hypothesis's 100: drawing
# them took about a third of a property test module's time (tests/test_filters.py), and
# `make test` is held to 10 minutes on two cores. PERSISTENCE_TEST_EXAMPLES=500 tries more.
EXAMPLES_VARIABLE = "PERSISTENCE_TEST_EXAMPLES"
settings.register_profile("suite", max_examples=int(os.environ.get(EXAMPLES_VARIABLE, "50")))
settings.load_profile("suite")

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


_SERVICES: list[DatabaseService] = []
"""This test process's database process, while its session lasts."""


@pytest.fixture(autouse=True)
def _no_drop_under_a_timed_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a timed test with no drop, reset or copy of this process's under way.

    A drop or a copy, though another process runs it, would take the CPU and the server's
    disk from a timed test. Those of another worker's wait while this one measures, and its
    measurements while they run (each holds the lag lock, shared, tests/_test_databases.py).
    A test that counts this process's descriptors, threads or mappings needs no pause: no
    drop's or copy's connection or thread is in this process.
    """
    if request.node.get_closest_marker("timed") is None:
        yield
        return
    with ExitStack() as paused:
        for service in _SERVICES:
            paused.enter_context(service.paused())
        yield


@pytest.fixture(scope="session")
def _dropper(postgres_admin: str) -> Iterator[DatabaseService]:
    """This test process's database process, which makes and drops its test databases."""
    service = DatabaseService(postgres_admin)
    _SERVICES.append(service)
    try:
        yield service
    finally:
        _SERVICES.remove(service)
        failures = service.close()
    assert not failures, f"test databases left behind: {failures}"


@pytest.fixture
def postgres_url(postgres_admin: str, _dropper: DatabaseService) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, reset for reuse or dropped after the test."""
    name = _dropper.take("template0")
    try:
        yield with_database(postgres_admin, name)
    finally:
        _dropper.give(name)


async def _migrate_at(url: str) -> None:
    async with connect(url) as db:
        await migrate(db)


@pytest.fixture(scope="session")
def _migrated_template(postgres_admin: str, _dropper: DatabaseService) -> Iterator[str]:
    """A database migrated once by this test process, for others to be copied from."""
    name = _dropper.create("template0")
    try:
        asyncio.run(_migrate_at(with_database(postgres_admin, name)))
        yield name
    finally:
        _dropper.drop(name)  # its copy made ahead first, and none made after


@pytest.fixture
def migrated_postgres_url(
    postgres_admin: str, _migrated_template: str, _dropper: DatabaseService
) -> Iterator[str]:
    """A fresh PostgreSQL database with every migration applied, reset or dropped after."""
    name = _dropper.take(_migrated_template)
    try:
        yield with_database(postgres_admin, name)
    finally:
        _dropper.give(name)


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


@pytest.fixture
def migrated_sqlite(tmp_path: Path, _migrated_sqlite_template: Path) -> Path:
    """This test's own migrated SQLite file, `test.db`: a copy of the template."""
    return _migrated_sqlite_file(_migrated_sqlite_template, tmp_path)


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
        "test_bundle_listener_refused.py",
        "test_bundle_listener_silent.py",
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
        "test_loop_pace.py",
        "test_network.py",
        "test_network_limits.py",
        "test_retention.py",
        "test_script_splitting_time.py",
        "test_loop_lag_import_tails.py",
        "test_loop_lag_report_parts.py",
        "test_sweep_busy_files.py",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    """Give the timed tests' workers one lock, so that no two measure the loop at once.

    The controller (or a run without workers) names a file of its own; each worker it starts
    inherits the name. A name already set, by the caller, is kept.
    """
    if hasattr(config, "workerinput") or os.environ.get(LOCK_VARIABLE):
        return
    path = Path(tempfile.gettempdir()) / f"persistence-lag-{os.getpid()}-{uuid.uuid4().hex}.lock"
    os.environ[LOCK_VARIABLE] = str(path)
    config.add_cleanup(lambda: path.unlink(missing_ok=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of the timed modules `timed`, and put the `long` tests first.

    Workers that run out of tests take half of another's: a long test begun last would keep
    one worker busy alone at the end, with nothing left to take.
    """
    for item in items:
        if item.path.name in TIMED_MODULES:
            item.add_marker(pytest.mark.timed)
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection made, so that no collection pass in a test walks it again.

    Every test module, hypothesis and the fixtures are imported by then; a full collection
    pass over them all takes longer than the loop-lag tests' whole bound.
    """
    del session
    gc.collect()
    gc.freeze()
