"""`persistence migrate --create`, `--dry-run` and `--json`, and `create_database()`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _cli_helpers import run
from _test_databases import DatabaseService
from conftest import with_database
from persistence import DatabaseError, ValidationError, create_database, open_database
from persistence.__main__ import main
from persistence._postgres.create import database_name
from persistence.database import Engine, engine_of
from persistence.migrations import discover_migrations, migrations_folder

pytestmark = pytest.mark.usefixtures("no_database_url")

VIEW = "CREATE VIEW passed_results AS SELECT id FROM test_results WHERE status = 'passed';\n"


async def _admin(url: str, statement: str, *args: object) -> object:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        return await connection.fetchval(statement, *args)
    finally:
        await connection.close()


def admin(url: str, statement: str, *args: object) -> object:
    """Run one statement on the server as the test's admin, behind the package's back."""
    return asyncio.run(_admin(url, statement, *args))


def exists(postgres_admin: str, name: str) -> bool:
    """Whether the server has a database of this name."""
    found = admin(postgres_admin, "SELECT count(*) FROM pg_database WHERE datname = $1", name)
    return found == 1


@pytest.fixture
def missing_database(postgres_admin: str, _dropper: DatabaseService) -> Iterator[tuple[str, str]]:
    """The URL and name of a database that does not exist yet; dropped after the test.

    The drop runs in the background like every test database's: waited for here, it took the
    server's checkpoint, up to 43 s on a busy machine; the session still fails if it fails.
    """
    name = f"persistence_create_{uuid.uuid4().hex[:12]}"
    try:
        yield with_database(postgres_admin, name), name
    finally:
        _dropper.drop(name)


@pytest.fixture
def role_without_createdb(postgres_admin: str) -> Iterator[str]:
    """A login role that may not create databases; dropped after the test."""
    role = f"persistence_role_{uuid.uuid4().hex[:12]}"
    admin(postgres_admin, f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        yield role
    finally:
        admin(postgres_admin, f'DROP ROLE IF EXISTS "{role}"')


def test_create_makes_a_missing_database_then_migrates(
    capsys: pytest.CaptureFixture[str], postgres_admin: str, missing_database: tuple[str, str]
) -> None:
    """Without --create a missing database is an error; with it, it is made once, then migrated."""
    url, name = missing_database
    code, _, err = run(capsys, "migrate", "--database", url)
    assert code == 3
    assert "does not exist" in err
    code, out, err = run(capsys, "migrate", "--create", "--database", url)
    assert code == 0, err
    assert out.splitlines()[0] == f"created the database {url}"
    assert "applied 0001_initial_schema.sql" in out
    assert exists(postgres_admin, name)
    code, out, err = run(capsys, "migrate", "--create", "--json", "--database", url)
    assert code == 0, err
    report = json.loads(out)
    assert (report["created"], report["applied"], report["dry_run"]) == (False, [], False)


def test_create_without_the_right_says_so(
    capsys: pytest.CaptureFixture[str],
    postgres_admin: str,
    missing_database: tuple[str, str],
    role_without_createdb: str,
) -> None:
    """A role without CREATEDB gets one line naming the role and the missing right."""
    url, name = missing_database
    parts = urlsplit(url)
    as_role = urlunsplit(
        parts._replace(netloc=f"{role_without_createdb}@{parts.hostname}:{parts.port}")
    )
    code, out, err = run(capsys, "migrate", "--create", "--database", as_role)
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert f"the role '{role_without_createdb}' lacks the right to create databases" in err
    assert "CREATEDB" in err
    assert not exists(postgres_admin, name)


async def test_two_creators_at_once_make_one_database(
    postgres_admin: str, missing_database: tuple[str, str]
) -> None:
    """Two create_database calls at once: one makes it, the other finds it; neither fails."""
    url, name = missing_database
    made = await asyncio.gather(create_database(url), create_database(url))
    assert sorted(made) == [False, True]
    assert await create_database(url) is False
    assert await _admin(postgres_admin, "SELECT 1 FROM pg_database WHERE datname = $1", name)


async def test_create_database_refuses_a_url_without_a_name(
    postgres_admin: str, tmp_path: Path
) -> None:
    """A URL naming no database, or an over-long name, is refused before connecting."""
    bare = urlunsplit(urlsplit(postgres_admin)._replace(path=""))
    with pytest.raises(ValidationError, match="names no database"):
        await create_database(bare)
    with pytest.raises(ValidationError, match="at most 63 bytes"):
        await create_database(with_database(postgres_admin, "x" * 64))
    assert await create_database(tmp_path / "app.db") is False  # SQLite: open_database makes it
    assert not (tmp_path / "app.db").exists()
    with pytest.raises(DatabaseError, match="cannot connect"):
        await create_database("postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=2)


def test_dry_run_prints_the_sql_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """--dry-run prints every pending file's SQL; the database is left as it was."""
    engine = Engine.POSTGRES if database_url.startswith("postgres") else Engine.SQLITE
    packaged = discover_migrations(migrations_folder(engine))
    code, out, err = run(capsys, "migrate", "--dry-run", "--database", database_url)
    assert code == 0, err
    assert out.startswith("-- dry run: nothing was written to ")
    for migration in packaged:
        assert f"-- {migration.path.name}: one transaction" in out
        assert migration.sql.strip().splitlines()[-1] in out
    assert out.rstrip().endswith(f"-- {len(packaged)} migration(s) would be applied")
    assert "CREATE TABLE IF NOT EXISTS persistence_migrations" in out
    assert "persistence_user_migrations" not in out
    if engine is Engine.SQLITE:
        assert not Path(database_url).exists()
    else:
        tables = admin(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
    assert main(["migrate", "--database", database_url]) == 0
    mine = tmp_path / "mine"
    for name in ("sqlite", "postgres"):
        (mine / name).mkdir(parents=True)
        (mine / name / "0001_passed_view.sql").write_text(VIEW, encoding="utf-8")
    capsys.readouterr()
    base = ("--database", database_url, "--migrations", str(mine))
    code, out, err = run(capsys, "migrate", "--dry-run", "--json", *base)
    assert code == 0, err
    report = json.loads(out)
    assert report["dry_run"] is True
    assert report["applied"] == []
    assert [(m["chain"], m["file"], m["sql"]) for m in report["pending"]] == [
        ("user", "0001_passed_view.sql", VIEW)
    ]
    code, out, err = run(capsys, "migrate", "--dry-run", *base)
    assert code == 0, err
    # only the user's chain has a migration to run, so only its history table would be made
    assert "CREATE TABLE IF NOT EXISTS persistence_user_migrations" in out
    assert "CREATE TABLE IF NOT EXISTS persistence_migrations" not in out
    code, out, err = run(capsys, "migrate", "--json", *base)
    assert code == 0, err
    report = json.loads(out)
    assert set(report) == {"database", "engine", "dry_run", "created", "applied", "pending"}
    assert report["applied"] == [
        {"chain": "user", "version": 1, "name": "0001_passed_view", "file": "0001_passed_view.sql"}
    ]
    (mine / engine.value / "0001_passed_view.sql").write_text(VIEW + "-- edit\n", "utf-8")
    code, out, err = run(capsys, "migrate", "--dry-run", *base)
    assert code == 3
    assert "0001_passed_view.sql was edited" in err
    code, out, err = run(capsys, "migrate", "--dry-run", "--accept-user", "1", *base)
    assert (code, out.splitlines()[-1]) == (0, "-- 0 migration(s) would be applied"), err
    assert "CREATE TABLE" not in out  # nothing to run, no history table to make


def test_dry_run_create_on_a_missing_database_makes_nothing(
    capsys: pytest.CaptureFixture[str], postgres_admin: str, missing_database: tuple[str, str]
) -> None:
    """--dry-run --create says it would create the database, prints the SQL, and makes nothing."""
    url, name = missing_database
    code, out, err = run(capsys, "migrate", "--create", "--dry-run", "--database", url)
    assert code == 0, err
    assert f"-- would create the database {url}" in out
    assert "-- 0001_initial_schema.sql: one transaction" in out
    assert not exists(postgres_admin, name)
    code, out, err = run(capsys, "migrate", "--dry-run", "--json", "--database", url)
    assert code == 3
    assert "does not exist" in err


@pytest.mark.parametrize("bad", ["one-engine", "missing", "badly-named"])
def test_a_bad_migrations_folder_creates_no_database(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_admin: str,
    missing_database: tuple[str, str],
    bad: str,
) -> None:
    """`migrate` refuses a bad folder of your migrations before it creates anything.

    It made the new SQLite file and its folders, or with --create the PostgreSQL database,
    and only then refused the folder, leaving an empty database behind.
    """
    folder = tmp_path / "mine"
    if bad == "one-engine":
        folder.mkdir()
        (folder / "0001_x.sql").write_text(VIEW, encoding="utf-8")
    elif bad == "badly-named":
        for engine in ("sqlite", "postgres"):
            (folder / engine).mkdir(parents=True)
            (folder / engine / "1_x.sql").write_text(VIEW, encoding="utf-8")
    url, name = missing_database
    new_file = tmp_path / "new" / "app.db"
    for database, create in ((str(new_file), ()), (url, ("--create",))):
        code, out, err = run(
            capsys, "migrate", *create, "--database", database, "--migrations", str(folder)
        )
        assert (code, out) == (3, ""), err
        assert "persistence: error: " in err
    assert not new_file.parent.exists()
    assert not exists(postgres_admin, name)


@pytest.mark.parametrize(
    "case",
    [
        ("CREATE TABLE a (id integer);\nCOMMIT;\n", ":2: COMMIT is not allowed"),
        ("CREATE TABLE a (id integer);\n/* never closed\n", ":2: a /* comment opened"),
    ],
)
def test_a_new_database_is_not_made_for_a_file_migrate_refuses(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_admin: str,
    missing_database: tuple[str, str],
    case: tuple[str, str],
) -> None:
    """Each statement is checked before a database is made, and --dry-run checks it too.

    On a database that did not exist yet, --dry-run printed such a file and exited 0, and
    migrate made the SQLite file, or with --create the PostgreSQL database, then refused it.
    """
    text, refused = case
    folder = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (folder / engine).mkdir(parents=True)
        (folder / engine / "0001_x.sql").write_text(text, encoding="utf-8")
    url, name = missing_database
    new_file = tmp_path / "new" / "app.db"
    for database, create in ((str(new_file), ()), (url, ("--create",))):
        for dry_run in (("--dry-run",), ()):
            code, out, err = run(
                capsys,
                "migrate",
                *dry_run,
                *create,
                "--database",
                database,
                "--migrations",
                str(folder),
            )
            assert (code, out) == (3, ""), err
            assert f"0001_x.sql{refused}" in err
    assert not new_file.parent.exists()
    assert not exists(postgres_admin, name)


def test_a_file_another_migrate_made_meanwhile_is_not_reported_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Of several `migrate` at once on a new file, only the one that migrated it says created.

    Each found no file before it opened it, and each said so: 3 of 6 said `created`. This one
    is told no file is there, as another run's look was, once that run has made and migrated
    it.
    """
    database = tmp_path / "new.db"
    assert main(["migrate", "--database", str(database)]) == 0
    capsys.readouterr()
    real = Path.exists
    monkeypatch.setattr(Path, "exists", lambda path: path != database and real(path))
    code, out, err = run(capsys, "migrate", "--json", "--database", str(database))
    assert code == 0, err
    assert (json.loads(out)["created"], json.loads(out)["applied"]) == (False, [])


def test_a_new_sqlite_file_is_reported_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`migrate --json` on a new SQLite file says it was created and lists what it applied."""
    database = tmp_path / "new.db"
    code, out, err = run(capsys, "migrate", "--json", "--database", str(database))
    assert code == 0, err
    report = json.loads(out)
    assert report["created"] is True
    assert report["engine"] == "sqlite"
    assert report["applied"][0]["name"] == "0001_initial_schema"
    with contextlib.closing(sqlite3.connect(database)) as plain, plain:
        assert plain.execute("SELECT count(*) FROM persistence_migrations").fetchone()[0] > 0


def test_the_readme_documents_the_migrate_json_keys() -> None:
    """Each key `migrate --json` prints is named in the README's command-line section."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line") : readme.index("## File storage")]
    keys = {"database", "engine", "dry_run", "created", "applied", "pending"}
    keys |= {"chain", "version", "name", "file", "sql"}
    assert sorted(key for key in keys if f"`{key}`" not in section) == []


@given(
    name=st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1
    ).filter(lambda name: len(name.encode()) <= 63)
)
def test_the_database_name_is_read_back_from_any_url(name: str) -> None:
    """Whatever a name holds, percent-encoded in the URL's path it is read back as it was."""
    url = f"postgresql://postgres@127.0.0.1:5432/{quote(name, safe='')}"
    assert database_name(url) == name


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("postgresql://u@127.0.0.1?database=given", "given"),
        ("postgresql://u@127.0.0.1?dbname=first", "first"),
        ("postgresql://u@127.0.0.1/path", "path"),
        ("postgresql://u@127.0.0.1//path", "/path"),  # made `path`, then migrated `/path`
        ("postgresql://u@127.0.0.1", "from_the_environment"),
    ],
)
def test_the_database_name_is_the_one_the_driver_connects_to(
    url: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--create` makes the database asyncpg connects to, as asyncpg reads its name.

    The path less one '/', else dbname= or database=, else `$PGDATABASE`. A name given as
    database=, which asyncpg reads, was refused as naming no database, as was one that
    `$PGDATABASE` gave; `//path` made `path`, and the migration then failed to find `/path`.
    (A URL naming it twice, by its path and an option or by both options, is refused first.)
    """
    monkeypatch.setenv("PGDATABASE", "from_the_environment")
    engine_of(url)
    assert database_name(url) == name


async def test_create_quotes_an_awkward_name(postgres_admin: str) -> None:
    """A name with quotes, spaces, a semicolon and non-ASCII letters is created as it is."""
    name = f'odd "name"; DROP ü {uuid.uuid4().hex[:8]}'
    url = with_database(postgres_admin, quote(name, safe=""))
    try:
        assert await create_database(url) is True
        found = await _admin(postgres_admin, "SELECT 1 FROM pg_database WHERE datname = $1", name)
        assert found == 1
    finally:
        escaped = name.replace('"', '""')
        await _admin(postgres_admin, f'DROP DATABASE IF EXISTS "{escaped}" WITH (FORCE)')


@pytest.mark.parametrize("case", ["found", "made"])
async def test_a_close_cancelled_by_another_task_is_a_database_error(
    postgres_url: str,
    missing_database: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
) -> None:
    """create_database's last step, a connection's close, cancelled by another task.

    The close ran as a task of its own: code that cancels every task but its own (a shutdown
    handler) cancelled it, and the caller, which nobody had cancelled, got `CancelledError`.
    It now gets `DatabaseError`; the connection is closed all the same, and a call again
    finds the database.
    """
    from test_cancellation import cancel_all_tasks_but  # noqa: PLC0415  # its helper

    url = postgres_url if case == "found" else missing_database[0]
    closing, gate = asyncio.Event(), asyncio.Event()
    closed: list[asyncpg.Connection] = []
    real = asyncpg.Connection.close
    loop = asyncio.get_running_loop()  # the fixtures' threads close their own connections

    async def held(connection: asyncpg.Connection, *, timeout: float | None = None) -> None:  # noqa: ASYNC109  # as asyncpg's
        if asyncio.get_running_loop() is not loop:
            await real(connection, timeout=timeout)
            return
        closed.append(connection)
        closing.set()
        try:
            await gate.wait()
        except asyncio.CancelledError:
            connection.terminate()  # as asyncpg's own close, cancelled
            raise
        await real(connection, timeout=timeout)

    monkeypatch.setattr(asyncpg.Connection, "close", held)
    creating = asyncio.ensure_future(create_database(url, connect_timeout=2))
    async with asyncio.timeout(5):
        await closing.wait()
    cancel_all_tasks_but(creating)
    await asyncio.sleep(0.01)
    gate.set()
    with pytest.raises(DatabaseError, match="another task"):
        async with asyncio.timeout(5):
            await creating
    assert [connection.is_closed() for connection in closed] == [True]
    monkeypatch.undo()
    assert await create_database(url) is False


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--accept-user", "1"], "argument --accept-user: needs --migrations DIR"),
        (["--accept", "99999999999999999999"], "argument --accept: '99999999999999999999' is not"),
    ],
    ids=["accept-user without a folder", "a version past the history's"],
)
def test_bad_accept_options_are_usage_errors_that_make_no_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, given: list[str], said: str
) -> None:
    """Refused by the parser, exit 2, before the database is made.

    They were refused by `migrate` itself, exit 3, once a new empty SQLite file was made.
    """
    target = tmp_path / "app.db"
    with pytest.raises(SystemExit) as ended:
        main(["migrate", "--database", str(target), *given])
    assert ended.value.code == 2
    assert said in capsys.readouterr().err
    assert not target.exists()


def test_a_huge_lock_timeout_waits_as_long_as_postgresql_can(
    capsys: pytest.CaptureFixture[str], migrated_postgres_url: str, tmp_path: Path
) -> None:
    """`--lock-timeout 1e306` is a number of seconds like any other, on both engines.

    On PostgreSQL its milliseconds overflowed the int before the bound was taken: a traceback
    of `OverflowError`, exit 1, which the command uses for "pending".
    """
    for database in (migrated_postgres_url, str(tmp_path / "lite.db")):
        code, _, err = run(capsys, "migrate", "--lock-timeout", "1e306", "--database", database)
        assert (code, err) == (0, "")


def test_a_command_timeout_at_open_is_named_as_such(
    capsys: pytest.CaptureFixture[str], migrated_postgres_url: str
) -> None:
    """A command timeout shorter than the session's first statements names the command timeout.

    It was told as the connect timeout ("no answer within 10s"), after half a second.
    """
    code, _, err = run(
        capsys, "migrate", "--command-timeout", "0.000001", "--database", migrated_postgres_url
    )
    assert code == 3
    assert "command timeout (1e-06s)" in err, err  # at open, or once a statement runs
    assert "no answer within 10s" not in err


async def test_a_network_timeout_at_connect_is_named_as_the_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TCP connect given up by the kernel (ETIMEDOUT) is no command timeout.

    Before the connect timeout, any TimeoutError was told as the session's first statements
    running past the command timeout; the network's carries its errno, and is told in its
    words (not as the connect timeout either, which may not have passed).
    """

    async def timed_out(*_args: object, **_kwargs: object) -> object:
        raise TimeoutError(errno.ETIMEDOUT, "Connection timed out")

    monkeypatch.setattr(asyncpg, "create_pool", timed_out)
    with pytest.raises(DatabaseError, match=r"1/db: Connection timed out$") as raised:
        await open_database("postgresql://u@127.0.0.1:1/db")
    assert "command timeout" not in str(raised.value)
