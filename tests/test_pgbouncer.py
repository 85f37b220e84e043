"""Behind PgBouncer in transaction mode, against a real pgbouncer.

The option is `?pgbouncer=transaction` in the URL, or `pgbouncer="transaction"` in the open call;
`listen_url` likewise.

The tests start their own pgbouncer on 127.0.0.1, on a free port, with a generated ini and
user list, in front of the test server. Off CI, without the pgbouncer binary, they skip and
say why; with CI=true they fail instead (`.ci/install-pgbouncer` installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import asyncpg
import pytest

from conftest import on_ci, with_database
from persistence import (
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    connect,
    connection,
    create_database,
    get_config_value,
    migrate,
    open_persistence,
    save_result,
    save_results,
    search_results,
    set_config,
    transaction,
)
from persistence._postgres import backend as postgres_backend
from persistence._postgres import changes as postgres_changes
from persistence._postgres import connections
from persistence._postgres import identity as postgres_identity
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import as_pg
from persistence.cache import open_memory_cache
from persistence.database import close_database, engine_of, open_database, redact_url

PGBOUNCER_BINARIES = ("pgbouncer", "/usr/sbin/pgbouncer")


def pgbouncer_binary() -> str | None:
    """The pgbouncer executable, on PATH or where Debian puts it."""
    for name in PGBOUNCER_BINARIES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_config(folder: Path, port: int, upstream: str) -> Path:
    """The ini and user list of a pgbouncer in transaction mode in front of `upstream`."""
    parts = urlsplit(upstream)
    user = parts.username or "postgres"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n', encoding="utf-8")
    ini = folder / "pgbouncer.ini"
    ini.write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'userlist.txt'}",
                "pool_mode = transaction",
                "default_pool_size = 4",
                "max_client_conn = 100",
                "",
            ]
        ),
        encoding="utf-8",
    )
    for path in (folder, folder / "userlist.txt", ini):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the user it runs as
    return ini


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Return once the port accepts connections; fail with pgbouncer's log if it never does."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"pgbouncer did not start: {log.read_text(encoding='utf-8')}")


@pytest.fixture(scope="module")
def pgbouncer(postgres_admin: str) -> Iterator[int]:
    """A pgbouncer in transaction mode on a free loopback port, in front of the test server."""
    binary = pgbouncer_binary()
    if binary is None:
        reason = "no pgbouncer binary (apt-get install pgbouncer, or run .ci/install-pgbouncer)"
        if on_ci():
            pytest.fail(f"CI=true requires pgbouncer: {reason}")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="persistence-pgbouncer-"))
    port = free_port()
    ini = write_config(folder, port, postgres_admin)
    log = folder / "pgbouncer.log"
    # pgbouncer refuses to run as root; -u drops to an unprivileged user after reading the ini.
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    with log.open("wb") as output:
        process = subprocess.Popen([binary, *as_user, str(ini)], stdout=output, stderr=output)
    try:
        wait_for_port(port, process, log)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def direct_url(postgres_admin: str) -> Iterator[str]:
    """One migrated database for this module's tests, reached directly."""
    name = f"persistence_test_{uuid.uuid4().hex[:12]}"
    url = with_database(postgres_admin, name)

    async def make() -> None:
        assert await create_database(url)

    async def drop() -> None:
        admin = await asyncpg.connect(postgres_admin, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(make())
    try:
        yield url
    finally:
        asyncio.run(drop())


def through(pgbouncer: int, direct: str, options: str = "") -> str:
    """The same database, reached through the pgbouncer on `pgbouncer`, with URL options."""
    parts = urlsplit(direct)
    netloc = f"{parts.username or 'postgres'}@127.0.0.1:{pgbouncer}"
    return parts._replace(netloc=netloc, query=options).geturl()


def result(output: str = "") -> TestResult:
    """A small result to save."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.FAILED, output=output)


async def test_the_package_works_through_pgbouncer(pgbouncer: int, direct_url: str) -> None:
    """Migrations, single calls, transactions with savepoints, COPY and search, many at once."""
    async with connect(through(pgbouncer, direct_url, "pgbouncer=transaction")) as db:
        await migrate(db)  # a transaction-scoped advisory lock: fine on transaction pooling
        assert await migrate(db) == []

        async def work(number: int) -> None:
            await save_result(db, result(f"segmentation fault in case {number}"))
            async with transaction(db) as tx:
                await set_config(tx, "bounced", f"key{number}", number)
                with contextlib.suppress(ValueError):
                    async with transaction(tx) as inner:
                        await save_result(inner, result())
                        raise ValueError  # the savepoint alone rolls back
            assert await get_config_value(db, "bounced", f"key{number}", int) == number

        await asyncio.gather(*(work(n) for n in range(20)))
        await save_results(db, [result("timeout") for _ in range(50)])  # COPY
        hits = await search_results(db, "segmentation", limit=100)
        assert len(hits.items) == 20
        assert len(await all_results(db)) == 70


async def test_without_the_option_named_statements_break(pgbouncer: int, direct_url: str) -> None:
    """The pgbouncer really pools by transaction: asyncpg's named statements go astray there.

    A statement prepared on one server connection is missing on the next, once another
    client's transaction holds the first; with the option, in the URL or as `pgbouncer=`,
    the same steps work.
    """
    cases: tuple[tuple[str, Literal["transaction"] | None, bool], ...] = (
        ("", None, True),
        ("pgbouncer=transaction", None, False),
        ("", "transaction", False),  # the option as an argument of the open call
    )
    for options, argument, fails in cases:
        async with connect(through(pgbouncer, direct_url, options), pgbouncer=argument) as db:
            await migrate(db)
            await set_config(db, "astray", "key", 1)
            assert await get_config_value(db, "astray", "key", int) == 1
            other = await asyncpg.connect(through(pgbouncer, direct_url), statement_cache_size=0)
            try:
                await other.execute("BEGIN")  # holds the server connection used last
                if fails:
                    with pytest.raises(DatabaseError, match="prepared statement"):
                        await get_config_value(db, "astray", "key", int)
                else:
                    assert await get_config_value(db, "astray", "key", int) == 1
                await other.execute("ROLLBACK")
            finally:
                await other.close()


async def test_the_cache_follows_changes_through_listen_url(
    pgbouncer: int, direct_url: str
) -> None:
    """With listen_url=, the change feed listens on PostgreSQL itself and the cache stays true."""
    options = f"pgbouncer=transaction&listen_url={quote(direct_url, safe='')}"
    async with connect(through(pgbouncer, direct_url, options)) as db:
        await migrate(db)
        await set_config(db, "feed", "key", 1)
        cache = await open_memory_cache(db, heartbeat=0.2)
        try:
            assert await cache.get_config_value("feed", "key", int) == 1
            assert await cache.get_config_value("feed", "key", int) == 1
            assert cache.stats().hits == 1
            other = await asyncpg.connect(direct_url)  # a write this process did not make
            try:
                await other.execute(
                    "UPDATE config_entries SET value = '2' WHERE section = 'feed' AND key = 'key'"
                )
            finally:
                await other.close()
            started = time.monotonic()  # the notification arrives within milliseconds
            while (value := await cache.get_config_value("feed", "key", int)) != 2:
                assert time.monotonic() - started < 2, f"still {value}"
                await asyncio.sleep(0.005)
        finally:
            await cache.close()


async def test_a_listen_url_of_another_database_is_refused(
    pgbouncer: int, direct_url: str, migrated_postgres_url: str
) -> None:
    """A listen_url naming another database (a PgBouncer alias mistaken) is refused at open.

    The listener heard that database's notifications, none of this one's, and every cache
    served the old values of this one for good, the feed up.
    """
    options = f"pgbouncer=transaction&listen_url={quote(migrated_postgres_url, safe='')}"
    async with connect(through(pgbouncer, direct_url, options)) as db:
        await migrate(db)
        with pytest.raises(DatabaseError, match=r"listen_url reaches .* it must name the database"):
            await open_memory_cache(db, heartbeat=0.2)
        assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()], (
            "the listener is closed"
        )


async def kill_the_listener(url: str) -> int:
    """End the change listener's connection to the test's database, and no other.

    PgBouncer's own connections to it are left: one ended under a call failed that call.
    The listener's last statement is its heartbeat, or the `*` token it sends.
    """
    admin = await asyncpg.connect(url)
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND (query LIKE '%pg_current_snapshot%' OR query LIKE '%pg_notify%')"
        )
    finally:
        await admin.close()
    return killed


async def test_a_listen_url_trusted_again_after_the_server_is_named_anew(
    pgbouncer: int, direct_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart names the database anew, through the pool and the listener alike.

    The pool's name was read once, at open: after a restart the listener, reconnected,
    found another, and every read went to the database for the life of the process.
    """
    options = f"pgbouncer=transaction&listen_url={quote(direct_url, safe='')}"
    async with connect(through(pgbouncer, direct_url, options)) as db:
        await migrate(db)
        await set_config(db, "feed", "key", 1)
        cache = await open_memory_cache(db, heartbeat=0.2)
        try:
            real = postgres_identity.database_identity

            async def restarted(connection: object) -> str | None:  # a new start time
                named = await real(connection)  # type: ignore[arg-type]  # either kind
                return None if named is None else f"{named}-restarted"

            for module in (postgres_backend, postgres_changes):
                monkeypatch.setattr(module, "database_identity", restarted)
            assert await kill_the_listener(direct_url) == 1
            deadline = time.monotonic() + 5
            while True:  # trusted again: the second of two reads is a hit
                await cache.get_config_value("feed", "key", int)
                hits = cache.stats().hits
                await cache.get_config_value("feed", "key", int)
                if cache.stats().hits == hits + 1:
                    break
                assert time.monotonic() < deadline, "the feed was never trusted again"
                await asyncio.sleep(0.05)
        finally:
            await cache.close()


async def test_a_cache_left_open_past_its_database_does_not_reconnect_again_and_again(
    pgbouncer: int, direct_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache's listener, its database closed, keeps one connection when it has to reconnect.

    Each connect asked the closed pool for the database's name, failed, and connected again,
    once or twice a second for good.
    """
    options = f"pgbouncer=transaction&listen_url={quote(direct_url, safe='')}"
    db = await open_database(through(pgbouncer, direct_url, options))
    await migrate(db)
    cache = await open_memory_cache(db, heartbeat=0.2)
    try:
        await close_database(db)
        real = asyncpg.connect
        connects: list[None] = []

        async def counted(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401  # passed on
            connects.append(None)
            return await real(*args, **kwargs)

        monkeypatch.setattr(asyncpg, "connect", counted)
        assert await kill_the_listener(direct_url) == 1
        await asyncio.sleep(2.0)  # past the backoff's first five waits
        # one, and another if it came as the server was still ending the first's kills
        assert len(connects) <= 2, f"{len(connects)} connects in 2 s"
    finally:
        await cache.close()


async def test_without_listen_url_the_cache_reads_the_database(
    pgbouncer: int, direct_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With no listen_url=, there is no feed: every read goes to the database, said once."""
    caplog.set_level(logging.WARNING, "persistence.postgres")
    async with connect(through(pgbouncer, direct_url, "pgbouncer=transaction")) as db:
        await migrate(db)
        await set_config(db, "nofeed", "key", 1)
        cache = await open_memory_cache(db, heartbeat=0.2)
        try:
            for _ in range(3):
                assert await cache.get_config_value("nofeed", "key", int) == 1
            assert cache.stats().hits == 0
        finally:
            await cache.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "persistence.postgres"]
    assert len(warnings) == 1
    assert "no listen_url=" in warnings[0]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://h/db?pgbouncer=session", "pgbouncer= takes 'transaction'"),
        ("postgresql://h/db?pgbouncer=transaction&pgbouncer=transaction", "given twice"),
        ("postgresql://h/db?listen_url=http%3A%2F%2Fh%2Fdb", "listen_url= takes PostgreSQL"),
        ("postgresql://h/db?listen_url=postgresql%3A%2F%2Fh%3Ax%2Fdb", "the port must be"),
        (
            "postgresql://h/db?listen_url=postgresql%3A%2F%2Fh%2Fdb%3Fpgbouncer%3Dtransaction",
            "must reach PostgreSQL directly",
        ),
    ],
)
def test_bad_pooling_options_are_refused_before_connecting(url: str, reason: str) -> None:
    """A pooling option this package cannot use is a bad URL, refused before any connection."""
    with pytest.raises(DatabaseError, match="invalid database URL") as raised:
        engine_of(url)
    assert reason in str(raised.value)


def test_the_listen_url_password_is_hidden() -> None:
    """A password inside listen_url= is hidden like the URL's own."""
    listen = quote("postgresql://app:s3cret@db:5432/app", safe="")
    shown = redact_url(f"postgresql://app:s3cret@bouncer:6432/app?listen_url={listen}")
    assert "s3cret" not in shown
    assert shown.startswith("postgresql://app:***@bouncer:6432/app?listen_url=")


async def test_the_options_as_arguments_of_open_persistence(
    pgbouncer: int, direct_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pgbouncer=` agrees with the URL's own option, and `listen_url=` feeds the bundle's cache."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    async with open_persistence(
        through(pgbouncer, direct_url, "pgbouncer=transaction"),
        files=tmp_path / "files",
        pgbouncer="transaction",
        listen_url=direct_url,
    ) as p:
        assert p.db.url.count("pgbouncer=transaction") == 1
        assert "listen_url=" in p.db.url
        await set_config(p.db, "bundle", "key", 1)
        assert await p.cache.get_config_value("bundle", "key", int) == 1
        assert await p.cache.get_config_value("bundle", "key", int) == 1
        assert p.cache.stats().hits == 1  # a feed: LISTEN reached PostgreSQL itself
        other = await asyncpg.connect(direct_url)  # a write this process did not make
        try:
            await other.execute(
                "UPDATE config_entries SET value = '2' WHERE section = 'bundle' AND key = 'key'"
            )
        finally:
            await other.close()
        started = time.monotonic()
        while (value := await p.cache.get_config_value("bundle", "key", int)) != 2:
            assert time.monotonic() - started < 2, f"still {value}"
            await asyncio.sleep(0.005)


async def open_with(
    opener: str, path: Path, pgbouncer: Literal["transaction"] | None, listen_url: str | None
) -> None:
    """Open `path` with `opener` and the options, and close it again."""
    if opener == "open_database":
        await close_database(await open_database(path, pgbouncer=pgbouncer, listen_url=listen_url))
    elif opener == "connect":
        async with connect(path, pgbouncer=pgbouncer, listen_url=listen_url):
            pass
    else:
        files = path.parent / "files"
        async with open_persistence(path, files=files, pgbouncer=pgbouncer, listen_url=listen_url):
            pass


@pytest.mark.parametrize("opener", ["open_database", "connect", "open_persistence"])
@pytest.mark.parametrize(
    ("pgbouncer", "listen_url", "field"),
    [("transaction", None, "pgbouncer"), (None, "postgresql://h/db", "listen_url")],
)
async def test_sqlite_refuses_the_options_before_opening_anything(
    opener: str,
    pgbouncer: Literal["transaction"] | None,
    listen_url: str | None,
    field: str,
    tmp_path: Path,
) -> None:
    """A SQLite database given a PgBouncer option is refused, and no file or folder is made."""
    with pytest.raises(ValidationError, match="is a SQLite database") as raised:
        await open_with(opener, tmp_path / "app.db", pgbouncer, listen_url)
    called = "open_persistence" if opener == "open_persistence" else "open_database"
    assert (raised.value.model, raised.value.field) == (called, field)
    assert sorted(tmp_path.iterdir()) == []  # noqa: ASYNC240  # a test's own folder, once


@pytest.mark.parametrize(
    ("url", "options", "field", "reason"),
    [
        ("postgresql://h/db", {"pgbouncer": "session"}, "pgbouncer", "takes 'transaction'"),
        ("postgresql://h/db", {"pgbouncer": True}, "pgbouncer", "takes 'transaction'"),
        ("postgresql://h/db", {"listen_url": "http://h/db"}, "listen_url", "own postgresql://"),
        ("postgresql://h/db", {"listen_url": b"postgresql://h/db"}, "listen_url", "expected a"),
        ("postgresql://h/db", {"listen_url": "postgresql://h:x/db"}, "listen_url", "the port"),
        (
            "postgresql://h/db",
            {"listen_url": "postgresql://h/db?pgbouncer=transaction"},
            "listen_url",
            "must reach PostgreSQL directly",
        ),
        (
            "postgresql://app:s3cret@bouncer/db?listen_url=postgresql%3A%2F%2Fapp%3As3cret%40a%2Fdb",
            {"listen_url": "postgresql://app:s3cret@b/db"},
            "listen_url",
            (
                "has listen_url='postgresql://app:***@a/db' and the argument is "
                "'postgresql://app:***@b/db'"
            ),
        ),
    ],
)
async def test_bad_option_arguments_are_refused_before_connecting(
    url: str, options: dict[str, object], field: str, reason: str
) -> None:
    """A bad value, or one the URL contradicts, names the argument (and the URL), no password."""
    with pytest.raises(ValidationError) as raised:
        await open_database(url, connect_timeout=0.5, **options)  # type: ignore[arg-type]  # bad on purpose
    assert raised.value.field == field
    assert reason in str(raised.value)
    assert "s3cret" not in str(raised.value)


async def test_a_loan_to_the_callers_sql_is_reset_through_pgbouncer(
    pgbouncer: int, direct_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full reset of a `connection()` loan runs on transaction pooling, and succeeds.

    RESET ALL, UNLISTEN *, pg_advisory_unlock_all and the rest are plain statements there.
    """
    failures: list[BaseException] = []
    resets: list[bool] = []

    async def watched(conn: PgConnection, *, full: bool, sessions: bool) -> None:
        resets.append(full)
        assert not sessions  # no session setting left for PgBouncer's other clients
        try:
            await connections.tidy(conn, full=full, sessions=sessions)
        except BaseException as error:
            failures.append(error)
            raise

    monkeypatch.setattr(postgres_backend, "tidy", watched)
    url = through(pgbouncer, direct_url, "pgbouncer=transaction")
    async with connect(url, pool_size=1) as db:
        await migrate(db)
        before = len(await all_results(db))  # the module's database: other tests' rows too
        resets.clear()  # a migration's connection goes back through the same full reset
        async with connection(db) as lent:
            conn = as_pg(lent)
            await conn.execute("LISTEN leftover; SELECT pg_advisory_lock(1)")
            await conn.execute("CREATE TEMP TABLE test_results (id int)")
            await conn.execute("SET search_path = elsewhere; SET statement_timeout = 1")
        assert resets == [True]
        assert failures == []
        await save_result(db, result())
        assert len(await all_results(db)) == before + 1
        async with connection(db) as lent:
            assert await as_pg(lent).fetchval("SHOW statement_timeout") == "0"


async def _give_up_a_write(url: str, direct_url: str) -> None:
    """Time a write out at 0.5 s, behind a lock on its table held by a direct connection."""
    async with connect(url, command_timeout=0.5) as db:
        await migrate(db)
        blocker = await asyncpg.connect(direct_url)
        try:
            await blocker.execute("BEGIN; LOCK TABLE config_entries IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(DatabaseError, match=r"command timeout \(0.5s\)"):
                await set_config(db, f"given-up-{uuid.uuid4().hex[:8]}", "k", 1)
        finally:
            await blocker.execute("ROLLBACK")
            await blocker.close()


async def test_no_cancel_request_goes_through_pgbouncer(
    pgbouncer: int, direct_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement given up behind PgBouncer is not cancelled by request: 1.18 may crash on one.

    Under load, PgBouncer 1.18 can end on a cancel request (pgbouncer/pgbouncer#822): a run
    of the test suite here lost its PgBouncer so. There its own `query_timeout` bounds a query.
    """
    asked: list[object] = []
    monkeypatch.setattr(postgres_backend, "cancel_request", asked.append)
    await _give_up_a_write(through(pgbouncer, direct_url, "pgbouncer=transaction"), direct_url)
    assert asked == []
    await _give_up_a_write(direct_url, direct_url)
    assert len(asked) == 1  # the control: reached directly, the request is asked for
