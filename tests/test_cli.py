"""The command line: its commands, exit codes, one-line errors, JSON, --wait and kept secrets."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import io
import json
import os
import re
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import persistence
from conftest import with_database
from persistence.__main__ import main
from persistence.migrations import discover_migrations, migrations_folder

ROOT = Path(__file__).parents[1]
STATUS_KEYS = {"database", "engine", "up_to_date", "applied", "pending", "drifted", "newer", "user"}
USER_KEYS = {"folder"}  # with applied, pending, drifted, newer and up_to_date
APPLIED_KEYS = {"version", "name", "checksum", "applied_at", "duration_ms"}
PENDING_KEYS = {"version", "name", "file"}
DRIFT_KEYS = {"version", "name", "change", "message"}


@pytest.fixture(autouse=True)
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without DATABASE_URL, whatever the shell running pytest has."""
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for commands run in this process."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


LATEST_VERSIONS = sorted(
    int(path.name[:4]) for path in (ROOT / "sql" / "migrations" / "sqlite").glob("[0-9]*.sql")
)
"""The versions of the migrations in the checkout, which a new database has pending."""


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run `python -m persistence` in a process of its own and capture what it says."""
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(env or {})
    return subprocess.run(
        [*prefix, sys.executable, "-m", "persistence", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process: exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str) -> None:
    """Stderr holds exactly one line, an error, and no traceback."""
    assert err.count("\n") == 1, err
    assert err.startswith("persistence: error: "), err
    assert "Traceback" not in err


def existing(database_url: str) -> str:
    """Make sure the database exists, empty for SQLite, and give its URL."""
    if not database_url.startswith("postgresql://"):
        sqlite3.connect(database_url).close()
    return database_url


async def _execute(database_url: str, statement: str) -> None:
    if database_url.startswith("postgresql://"):
        connection = await asyncpg.connect(database_url)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
        return
    with contextlib.closing(sqlite3.connect(database_url)) as plain, plain:
        plain.execute(statement)


def execute(database_url: str, statement: str) -> None:
    """Run one statement on the database with its driver, behind the package's back."""
    asyncio.run(_execute(database_url, statement))


# --- version, usage and the default database -------------------------------------------------


def test_version_is_the_package_version(tmp_path: Path) -> None:
    """`--version` prints the installed version, which `persistence.__version__` also gives."""
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"persistence {persistence.__version__}\n"
    assert persistence.__version__ == importlib.metadata.version("persistence-sql")


def test_default_database_is_data_app_db(tmp_path: Path) -> None:
    """Migrate with no URL makes data/app.db; again applies nothing; status then exits 0."""
    first = cli("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial_schema.sql" in first.stdout
    assert (tmp_path / "data" / "app.db").is_file()
    second = cli("migrate", cwd=tmp_path)
    assert second.returncode == 0
    assert "0 migration(s) applied" in second.stdout
    status = cli("status", cwd=tmp_path)
    assert status.returncode == 0
    assert "applied  0001_initial_schema" in status.stdout


def test_database_url_from_environment(database_url: str, tmp_path: Path) -> None:
    """DATABASE_URL picks the database, on either engine."""
    result = cli("migrate", cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    status = cli("status", "--database", database_url, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "--wait", "soon"], "'soon' is not a number of seconds"),
        (["status", "--wait", "-1"], "'-1' is not a number of seconds"),
        (["new", "Add_Index"], "is not a lower-case slug"),
        (["new", "add-index"], "is not a lower-case slug"),
        (["new", "1st"], "is not a lower-case slug"),
        (["new", "../escape"], "is not a lower-case slug"),
        (["new", "x" * 61], "is not a lower-case slug"),
        (["history", "--json", "--accept", "1"], "unrecognized arguments"),
        (["migrate", "--database", ""], "an empty URL names no database"),
        (["status", "--database", " "], "an empty URL names no database"),
        (["migrate", "--accept"], "expected at least one argument"),
        (["migrate", "--accept", "0"], "'0' is not a migration version"),
        (["migrate", "--accept", "one"], "'one' is not a migration version"),
        (["migrate", "--lock-timeout", "-1"], "'-1' is not a number of seconds"),
    ],
)
def test_bad_usage_exits_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """A malformed command line exits 2 with argparse's usage message, and does nothing."""
    with pytest.raises(SystemExit) as raised:
        main(args)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_help_does_not_show_the_password_of_database_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The help text names $DATABASE_URL without printing its value."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secret@db.example/app")
    with pytest.raises(SystemExit):
        main(["migrate", "--help"])
    out = capsys.readouterr().out
    assert "$DATABASE_URL" in out
    assert "secret" not in out


# --- could not run: exit 3, one line -----------------------------------------------------------

BAD_URLS = [
    ("postgresql://u:secret@127.0.0.1:abc/db", "the port must be a number"),
    ("postgresql://u:secret@[zz]:5432/db", "'zz' is not an IPv6 address"),
    ("postgresql://u:secret@[::1/db", "write an IPv6 host as [address]:port"),
    ("file:{tmp}/app.db?mode=ro", "file: URIs are not supported"),
    ("sqlite:/x.db", "a sqlite URL starts sqlite://"),
    ("mysql://u:secret@localhost/db", "unsupported scheme 'mysql'"),
]


@pytest.mark.parametrize("command", ["migrate", "status", "history"])
@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_a_bad_url_exits_3_with_one_line(
    capsys: pytest.CaptureFixture[str], workdir: Path, command: str, url: str, message: str
) -> None:
    """A URL that cannot be used is one error line without the password, exit 3, nothing made."""
    code, out, err = run(capsys, command, "--database", url.format(tmp=workdir))
    assert code == 3
    assert_one_error_line(err)
    assert message in err
    assert "secret" not in out + err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize("value", [" ", "app.db\r"])
def test_a_blank_or_crlf_database_url_creates_no_file(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    """DATABASE_URL of blank space, or ending in a CR as a CRLF env file leaves it, is refused.

    `migrate` made a SQLite file named " ", or "app.db" with a CR, in the working folder.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", value)
    code, out, err = run(capsys, "migrate")
    assert (code, out) == (3, ""), err
    assert "invalid database URL" in err
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_exits_3(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A regular file used as a folder is one error line naming it, for migrate and status."""
    (tmp_path / "FILE").write_text("", encoding="utf-8")
    target = str(tmp_path / "FILE" / "sub" / "app.db")
    code, _, err = run(capsys, "migrate", "--database", target)
    assert code == 3
    assert_one_error_line(err)
    assert "FILE' is a file, not a folder" in err
    code, _, err = run(capsys, "status", "--database", target)
    assert code == 3
    assert_one_error_line(err)
    assert "no SQLite database at" in err


def test_errors_are_one_line_in_a_real_process(tmp_path: Path) -> None:
    """Run as a program, a bad port is one line on stderr and exit code 3, not a traceback."""
    result = cli("status", "--database", "postgresql://u:secret@127.0.0.1:x/db", cwd=tmp_path)
    assert result.returncode == 3
    assert_one_error_line(result.stderr)
    assert "secret" not in result.stdout + result.stderr


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens, for now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_server_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    """A closed port is one error line saying it cannot connect, without the password."""
    url = f"postgresql://u:secret@127.0.0.1:{free_port()}/db"
    code, out, err = run(capsys, "migrate", "--database", url)
    assert code == 3
    assert_one_error_line(err)
    assert "cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:" in err
    assert "secret" not in out + err


@pytest.fixture(params=["sqlite", "postgres"])
def missing_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of each engine that does not exist."""
    if request.param == "sqlite":
        return str(tmp_path / "sub" / "typo.db")
    admin: str = request.getfixturevalue("postgres_admin")
    return with_database(admin, f"persistence_missing_{uuid.uuid4().hex[:12]}")


@pytest.mark.parametrize("command", ["status", "history"])
def test_reading_a_missing_database_exits_3_and_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, missing_url: str, command: str
) -> None:
    """Status and history report a database that does not exist, and do not create it."""
    code, _, err = run(capsys, command, "--database", missing_url)
    assert code == 3
    assert_one_error_line(err)
    assert re.search(r"no SQLite database at .*typo\.db|persistence_missing_\w+. does not", err)
    assert list(tmp_path.iterdir()) == []


def test_status_leaves_an_empty_sqlite_file_as_it_was(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Status on an empty SQLite file reports everything pending and writes nothing to it."""
    path = Path(existing(str(tmp_path / "empty.db")))
    code, out, _ = run(capsys, "status", "--database", str(path))
    assert code == 1
    assert "pending  0001_initial_schema.sql" in out
    assert path.read_bytes() == b""


@contextlib.contextmanager
def read_only_folder() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A folder this test's commands cannot write, and the prefix that runs them so.

    Root may write anywhere, so as root the commands run as the user nobody.
    """
    folder = Path(tempfile.mkdtemp(prefix="persistence-ro-"))
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            shutil.rmtree(folder)
            pytest.skip("running as root without setpriv: cannot make a folder read-only")
        prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
        probe = cli("--version", cwd=folder, prefix=prefix)
        if probe.returncode != 0:
            shutil.rmtree(folder)
            pytest.skip(f"the user nobody cannot run this checkout: {probe.stderr.strip()}")
    try:
        yield folder, prefix
    finally:
        folder.chmod(stat.S_IRWXU)
        shutil.rmtree(folder)


def test_status_reads_a_database_in_a_read_only_folder(tmp_path: Path) -> None:
    """In a folder it cannot write, status and history still read an existing database."""
    with read_only_folder() as (folder, prefix):
        database = folder / "app.db"
        assert main(["migrate", "--database", str(database)]) == 0
        before = database.read_bytes()
        folder.chmod(0o555)
        database.chmod(0o444)
        env = {"PYTHONDONTWRITEBYTECODE": "1"}
        status = cli("status", "--database", str(database), cwd=folder, env=env, prefix=prefix)
        assert status.returncode == 0, status.stderr
        assert "applied  0001_initial_schema" in status.stdout
        history = cli("history", "--database", str(database), cwd=folder, env=env, prefix=prefix)
        assert history.returncode == 0, history.stderr
        assert sorted(path.name for path in folder.iterdir()) == ["app.db"]
        assert database.read_bytes() == before
    assert tmp_path.is_dir()


# --- status and history, on both engines --------------------------------------------------------


def test_status_json_says_what_is_pending_then_applied(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """`status --json` gives the documented keys; it exits 1 while pending and 0 once migrated."""
    url = existing(database_url)
    code, out, _ = run(capsys, "status", "--json", "--database", url)
    assert code == 1
    report = json.loads(out)
    assert set(report) == STATUS_KEYS
    assert report["up_to_date"] is False
    assert report["engine"] in {"sqlite", "postgres"}
    assert report["applied"] == []
    assert report["drifted"] == []
    packaged = discover_migrations(migrations_folder(persistence.Engine(report["engine"])))
    assert report["pending"] == [
        {"version": m.version, "name": m.name, "file": m.path.name} for m in packaged
    ]
    assert report["pending"][0] == {
        "version": 1,
        "name": "0001_initial_schema",
        "file": "0001_initial_schema.sql",
    }
    assert set(report["pending"][0]) == PENDING_KEYS
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "status", "--json", "--database", url)
    assert code == 0
    report = json.loads(out)
    assert report["up_to_date"] is True
    assert report["pending"] == []
    assert [set(done) for done in report["applied"]] == [APPLIED_KEYS] * len(packaged)


def test_the_readme_documents_every_json_key() -> None:
    """Each key that `status --json` and `history --json` print is named in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line") : readme.index("## File storage")]
    keys = STATUS_KEYS | APPLIED_KEYS | PENDING_KEYS | DRIFT_KEYS | USER_KEYS
    assert sorted(key for key in keys if f"`{key}`" not in section) == []


def engine_of_url(url: str) -> persistence.Engine:
    """The engine of a test's database URL."""
    return persistence.Engine.POSTGRES if url.startswith("postgres") else persistence.Engine.SQLITE


def test_history_lists_when_and_how_long(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """History lists each applied migration with its time and duration, as text and as JSON."""
    url = existing(database_url)
    code, out, _ = run(capsys, "history", "--database", url)
    assert (code, out.endswith(": no migration applied yet\n")) == (0, True)
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "history", "--database", url)
    assert code == 0
    names = [m.name for m in discover_migrations(migrations_folder(engine_of_url(url)))]
    line = r"  applied \d{4}-\d\d-\d\dT[\d:.]+\+00:00  in \d+\.\d ms\n"
    assert re.fullmatch("".join(re.escape(name) + line for name in names), out)
    code, out, _ = run(capsys, "history", "--json", "--database", url)
    assert code == 0
    report = json.loads(out)
    assert set(report) == {"database", "engine", "applied", "user"}
    assert report["user"] is None
    applied, *later = report["applied"]
    assert [done["name"] for done in later] == names[1:]
    assert set(applied) == APPLIED_KEYS
    assert (applied["version"], applied["name"]) == (1, "0001_initial_schema")
    ran = dt.datetime.fromisoformat(applied["applied_at"])
    assert abs(dt.datetime.now(dt.UTC) - ran) < dt.timedelta(minutes=5)
    assert applied["duration_ms"] >= 0


def test_drift_stops_migrate_with_exit_3_and_status_with_exit_1(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """An applied migration whose checksum differs is one error line for migrate, and drift."""
    assert main(["migrate", "--database", database_url]) == 0
    execute(database_url, "UPDATE persistence_migrations SET checksum = 'edited' WHERE version = 1")
    capsys.readouterr()
    code, _, err = run(capsys, "migrate", "--database", database_url)
    assert code == 3
    assert_one_error_line(err)
    assert "0001_initial_schema.sql was edited after it was applied" in err
    code, out, _ = run(capsys, "status", "--json", "--database", database_url)
    assert code == 1
    (drift,) = json.loads(out)["drifted"]
    assert set(drift) == DRIFT_KEYS
    assert drift["change"] == "edited"
    assert drift["version"] == 1


@given(
    database=st.text(alphabet=" \t\n\r\f\v", max_size=4),
    accept=st.text(max_size=6).filter(lambda text: not (text.isdigit() and text.isascii())),
)
def test_blank_databases_and_non_versions_are_bad_usage(database: str, accept: str) -> None:
    """A blank --database, or an --accept that is no positive version, exits 2 at parsing."""
    for args in (["migrate", "--database", database], ["migrate", f"--accept={accept}"]):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as raised:
            main(args)
        assert raised.value.code == 2


EDIT_1_AND_2 = "UPDATE persistence_migrations SET checksum = 'edited' WHERE version IN (1, 2)"


def test_accept_takes_several_versions_as_the_synopsis_shows(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """`migrate --accept 1 2` accepts both edited files; `--accept 1 --accept 2` does too."""
    assert main(["migrate", "--database", database_url]) == 0
    for accept in (["--accept", "1", "2"], ["--accept", "1", "--accept", "2"]):
        execute(database_url, EDIT_1_AND_2)
        capsys.readouterr()
        code, _, err = run(capsys, "migrate", "--database", database_url, *accept)
        assert (code, err) == (0, "")
        code, out, _ = run(capsys, "status", "--json", "--database", database_url)
        assert code == 0, out
    execute(database_url, EDIT_1_AND_2)
    code, _, err = run(capsys, "migrate", "--database", database_url, "--accept", "1")
    assert code == 3, "version 2 is still edited"
    assert "0002_" in err


async def test_lock_timeout_bounds_the_wait_and_says_what_it_waits_for(
    database_url: str, tmp_path: Path
) -> None:
    """With another runner holding the lock, migrate says so once, then gives up in time."""
    done = await asyncio.to_thread(cli, "migrate", "--database", database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    async with contextlib.AsyncExitStack() as stack:
        if database_url.startswith("postgresql://"):
            holder = await asyncpg.connect(database_url)
            stack.push_async_callback(holder.close)
            await holder.execute("SELECT pg_advisory_lock($1)", 0x70657273)
        else:
            plain = stack.enter_context(contextlib.closing(sqlite3.connect(database_url)))
            plain.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        result = await asyncio.to_thread(
            cli, "migrate", "--database", database_url, "--lock-timeout", "2", cwd=tmp_path
        )
        took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "waiting for the migration lock" in lines[0]
    assert "2s" in lines[0]
    assert lines[1].startswith("persistence: error: ")
    assert 2 <= took < 15, took


# --- secrets ---------------------------------------------------------------------------------


def with_password(url: str, form: str) -> str:
    """The same PostgreSQL URL, carrying the password 'secret' in one of the ways a URL can."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    if form == "plain":
        return parts._replace(netloc=f"{user}:secret@{host}").geturl()
    if form == "encoded":
        return parts._replace(netloc=f"{user}:s%65cr%65t@{host}").geturl()
    return parts._replace(query="password=secret").geturl()


@pytest.mark.parametrize("form", ["plain", "encoded", "query"])
def test_no_command_prints_the_password(
    capsys: pytest.CaptureFixture[str], postgres_url: str, form: str
) -> None:
    """Whether the password is plain, percent-encoded or a query parameter, no output shows it."""
    url = with_password(postgres_url, form)
    said = ""
    for args in (
        ["migrate"],
        ["status"],
        ["status", "--json"],
        ["history"],
        ["history", "--json"],
    ):
        code, out, err = run(capsys, *args, "--database", url)
        assert code == 0, err
        said += out + err
    closed = urlsplit(url)._replace(netloc=f"postgres:s%65cr%65t@127.0.0.1:{free_port()}")
    code, out, err = run(capsys, "status", "--database", closed.geturl())
    assert code == 3
    said += out + err
    assert "***" in said
    assert "secret" not in said
    assert "s%65cr%65t" not in said


@pytest.mark.parametrize("password", ["Xq/Zk", "Xq?Zk", "Xq#Zk"])
def test_a_password_left_unencoded_is_refused_unprinted(
    capsys: pytest.CaptureFixture[str], password: str
) -> None:
    """A password with a '/', '?' or '#' not percent-encoded is refused at once, unprinted.

    Each command refuses it before any connection, in one line that shows none of it.
    """
    url = f"postgresql://u:{password}@127.0.0.1:{free_port()}/db"
    for args in (
        ["migrate", "--json"],
        ["migrate", "--create", "--json"],
        ["migrate", "--dry-run", "--json"],
        ["status", "--json"],
        ["history"],
    ):
        started = time.monotonic()
        code, out, err = run(capsys, *args, "--database", url)
        assert code == 3
        assert out == ""
        assert_one_error_line(err)
        assert "invalid database URL" in err
        assert "Xq" not in err
        assert "Zk" not in err
        assert time.monotonic() - started < 1


# --- --wait ----------------------------------------------------------------------------------


def test_wait_gives_up_after_the_time_given(capsys: pytest.CaptureFixture[str]) -> None:
    """With --wait, a closed port is retried until the time is up, then is one error line."""
    started = time.monotonic()
    url = f"postgresql://u@127.0.0.1:{free_port()}/db"
    code, _, err = run(capsys, "status", "--wait", "1.2", "--database", url)
    elapsed = time.monotonic() - started
    assert code == 3
    assert_one_error_line(err)
    assert "(gave up after waiting 1.2s)" in err
    assert 1.0 <= elapsed < 8


def test_without_wait_a_closed_port_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --wait, a closed port is not retried."""
    started = time.monotonic()
    code, _, err = run(capsys, "status", "--database", f"postgresql://u@127.0.0.1:{free_port()}/db")
    assert code == 3
    assert "gave up" not in err
    assert time.monotonic() - started < 1


@contextlib.contextmanager
def server_answering_later(target: str, delay: float) -> Iterator[int]:
    """A port on 127.0.0.1 that is closed until `delay` has passed, then forwards to target."""
    parts = urlsplit(target)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    listen = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def serve() -> None:
        await asyncio.sleep(delay)
        server = await asyncio.start_server(forward, "127.0.0.1", listen)
        async with server:
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    thread.start()
    try:
        yield listen
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


def test_wait_retries_until_postgresql_answers(
    capsys: pytest.CaptureFixture[str], postgres_url: str
) -> None:
    """With --wait, status keeps trying a server that starts late and then reports on it."""
    with server_answering_later(postgres_url, delay=0.8) as port:
        late = urlsplit(postgres_url)._replace(netloc=f"postgres@127.0.0.1:{port}").geturl()
        started = time.monotonic()
        code, out, err = run(capsys, "status", "--wait", "20", "--database", late)
    assert code == 1, err
    assert "pending  0001_initial_schema.sql" in out
    assert 0.8 <= time.monotonic() - started < 15


def test_wait_retries_until_the_sqlite_file_appears(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """With --wait, status keeps looking for a SQLite file that another process creates late."""
    ready = tmp_path / "ready.db"
    assert main(["migrate", "--database", str(ready)]) == 0
    capsys.readouterr()
    target = tmp_path / "late.db"

    def create_later() -> None:
        time.sleep(0.5)
        shutil.copy(ready, tmp_path / "copy.db")
        (tmp_path / "copy.db").replace(target)

    creator = threading.Thread(target=create_later)
    creator.start()
    try:
        code, out, err = run(capsys, "status", "--wait", "20", "--database", str(target))
    finally:
        creator.join()
    assert code == 0, err
    assert "applied  0001_initial_schema" in out


# --- new -------------------------------------------------------------------------------------


def test_new_writes_the_next_number_for_both_engines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`new` numbers past the highest migration of either engine and writes one file for each."""
    for engine, name in (("sqlite", "0001_first.sql"), ("postgres", "0003_third.sql")):
        (tmp_path / engine).mkdir()
        (tmp_path / engine / name).write_text("SELECT 1;\n", encoding="utf-8")
    (tmp_path / "postgres" / "README.md").write_text("not a migration\n", encoding="utf-8")
    code, out, _ = run(capsys, "new", "add_index", "--folder", str(tmp_path))
    assert code == 0
    written = [tmp_path / engine / "0004_add_index.sql" for engine in ("sqlite", "postgres")]
    assert out == "".join(f"created {path}\n" for path in written)
    assert all(path.read_text(encoding="utf-8").startswith("-- 0004_add_index") for path in written)
    assert main(["new", "then_this", "--folder", str(tmp_path)]) == 0
    assert (tmp_path / "postgres" / "0005_then_this.sql").is_file()


def test_new_starts_an_empty_folder_at_0001(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """In a folder with no migrations yet, `new` makes both engines' folders and 0001."""
    code, _, _ = run(capsys, "new", "initial", "--folder", str(tmp_path / "migrations"))
    assert code == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.sql")) == [
        "migrations/postgres/0001_initial.sql",
        "migrations/sqlite/0001_initial.sql",
    ]


def test_new_writes_both_files_or_neither(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """When one engine's file cannot be written, `new` leaves no file of the other behind.

    It wrote and announced the SQLite file, then failed on PostgreSQL's folder; the next `new`
    numbered the two chains apart.
    """
    mine = tmp_path / "mine"
    (mine / "sqlite").mkdir(parents=True)
    (mine / "postgres").write_text("", encoding="utf-8")  # a file where the folder should be
    code, out, err = run(capsys, "new", "add_index", "--migrations", str(mine))
    assert (code, out) == (3, "")
    assert_one_error_line(err)
    assert list((mine / "sqlite").iterdir()) == []
    (mine / "postgres").unlink()
    code, out, err = run(capsys, "new", "add_index", "--migrations", str(mine))
    assert code == 0, err
    for engine in ("sqlite", "postgres"):
        assert [path.name for path in (mine / engine).iterdir()] == ["0001_add_index.sql"]


def test_new_into_an_unusable_folder_exits_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A regular file given as the folder is one error line naming the path, exit 3."""
    (tmp_path / "FILE").write_text("", encoding="utf-8")
    code, out, err = run(capsys, "new", "add_index", "--folder", str(tmp_path / "FILE"))
    assert code == 3
    assert out == ""
    assert_one_error_line(err)
    assert str(tmp_path / "FILE" / "sqlite") in err


def test_a_new_migration_applies_as_it_is(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """The file `new` writes is a valid, empty migration on either engine, after the package's."""
    assert main(["new", "nothing_yet", "--folder", str(tmp_path)]) == 0
    capsys.readouterr()

    async def apply() -> list[str]:
        async with persistence.connect(database_url) as db:
            applied = await persistence.migrate(db, tmp_path)
        return [migration.name for migration in applied]

    applied = asyncio.run(apply())
    assert applied[0] == "0001_initial_schema"
    assert applied[-1] == "0001_nothing_yet"
    assert len(applied) == len(LATEST_VERSIONS) + 1


def test_new_writes_into_the_checkout_by_default(tmp_path: Path) -> None:
    """Run from a checkout, `new` writes into its sql/migrations, wherever it is started."""
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "sql", checkout / "sql")
    shutil.copytree(ROOT / "src", checkout / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = cli("new", "add_index", cwd=elsewhere, env={"PYTHONPATH": str(checkout / "src")})
    assert result.returncode == 0, result.stderr
    next_version = discover_migrations(ROOT / "sql" / "migrations" / "sqlite")[-1].version + 1
    for engine in ("sqlite", "postgres"):
        written = checkout / "sql" / "migrations" / engine / f"{next_version:04}_add_index.sql"
        assert written.is_file()
    assert list(elsewhere.iterdir()) == []
