"""The command line reaching a database: passwords never printed, --wait for a late server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from _cli_helpers import (
    assert_one_error_line,
    cli,
    free_port,
    run,
)
from _proxy import peer_answering, pipe, serving
from persistence.__main__ import main

pytestmark = pytest.mark.usefixtures("no_database_url")

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


def server_answering_later(target: str, delay: float) -> contextlib.AbstractContextManager[int]:
    """A port on 127.0.0.1 that is closed until `delay` has passed, then forwards to target."""
    parts = urlsplit(target)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    return serving(forward, delay)


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


@pytest.mark.parametrize(
    "reply",
    [b"R\x00\x00\x00\x00", b"Z\x00\x00\x00\x05I"],
    ids=["an authentication request of length 0", "ready before any authentication"],
)
@pytest.mark.parametrize("command", [["status"], ["migrate", "--create"]])
def test_a_reply_the_driver_cannot_read_exits_3_naming_it(
    tmp_path: Path, reply: bytes, command: list[str]
) -> None:
    """A peer at the URL that answers with what asyncpg cannot read: exit 3, the error named.

    asyncpg raised its own `InternalClientError` or an `AttributeError` (`server_version`),
    which no translation knew: a traceback of 80 lines, exit 1, and `--wait` gave up at once.
    Its first line is the error; asyncpg may print its own noise after it (a half-made
    connection's `__del__`), which is not the package's to silence.
    """
    with peer_answering(reply) as port:
        url = f"postgresql://u@127.0.0.1:{port}/db?sslmode=disable"
        done = cli(*command, "--database", url, cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"persistence: error: cannot connect to PostgreSQL at {url}"), first
    assert "the server's reply could not be read (asyncpg: " in first


def _own_bug(*_args: object, **_kwargs: object) -> object:
    """Stand for a connect that fails with an `AttributeError` of the package's own code."""
    raise AttributeError("a bug of the package's own")


@pytest.mark.parametrize("command", [["status"], ["migrate", "--create"]])
def test_a_bug_of_the_package_while_connecting_is_not_told_as_the_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """A bug of the package's own while connecting goes up as it is.

    Only asyncpg's `AttributeError` (its reading of a reply) is told as "cannot connect".
    """
    monkeypatch.setattr(asyncpg, "create_pool", _own_bug)
    monkeypatch.setattr(asyncpg, "connect", _own_bug)
    url = f"postgresql://u@127.0.0.1:{free_port()}/db?sslmode=disable"
    with pytest.raises(AttributeError, match="a bug of the package's own"):
        run(capsys, *command, "--database", url)
