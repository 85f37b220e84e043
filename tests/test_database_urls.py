"""Database URLs: refused with a clear DatabaseError, printed without passwords; read-only opens."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from persistence import (
    DatabaseError,
    ValidationError,
    connect,
    create_database,
    migrate,
    migration_status,
    open_database,
    set_config,
)
from persistence.database import DEFAULT_DATABASE, engine_of, redact_url

REDACTED = [
    ("postgresql://u:secret@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u:s%40cr%2Fet@host:5432/db", "postgresql://u:***@host:5432/db"),
    ("postgresql://u:p@ss@host/db", "postgresql://u:***@host/db"),
    ("postgresql://u@host/db?password=secret", "postgresql://u@host/db?password=***"),
    (
        "postgresql://u@host/db?sslmode=require&PASSWORD=secret&sslpassword=key#x",
        "postgresql://u@host/db?sslmode=require&PASSWORD=***&sslpassword=***#x",
    ),
    ("postgresql://u:secret@[::1/db", "postgresql://u:***@[::1/db"),
    ("postgres://u:secret@h1:5432,h2/db", "postgres://u:***@h1:5432,h2/db"),
    ("postgresql://u@host/db", "postgresql://u@host/db"),
    ("postgresql://host/db?user=u", "postgresql://host/db?user=u"),
    ("data/app.db", "data/app.db"),
    ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
]


@pytest.mark.parametrize(("url", "expected"), REDACTED)
def test_redact_url_hides_every_password(url: str, expected: str) -> None:
    """A password in the user part, percent-encoded or not, or in the query becomes ***."""
    assert redact_url(url) == expected


@given(st.text(min_size=1))
def test_redact_url_hides_any_percent_encoded_password(password: str) -> None:
    """Whatever the password holds, once percent-encoded in a URL it is replaced whole."""
    url = f"postgresql://user:{quote(password, safe='')}@db.example:5432/app"
    assert redact_url(url) == "postgresql://user:***@db.example:5432/app"


UNENCODED = ["Xq/Zk", "Xq?Zk", "Xq#Zk", "Xq/Zk?Wm#Vn", "Xq/Zk==", "Xq?Zk=Wm"]
"""Passwords whose '/', '?' or '#' was left as it is in a URL."""


@pytest.mark.parametrize("password", [*UNENCODED, "1234/Zk", "Xq@Zk/Wm", "Xq@Zk?Wm#Vn"])
def test_a_password_left_unencoded_is_hidden_too(password: str) -> None:
    """A password whose '/', '?' or '#' was not percent-encoded never shows.

    Such a character ends the URL's user part early for a parser, so its '@' comes later: the
    password was shown whole.
    """
    url = f"postgresql://u:{password}@127.0.0.1:5432/db"
    assert redact_url(url) == "postgresql://u:***@127.0.0.1:5432/db"
    assert redact_url(url + "?application_name=me@home") == (
        "postgresql://u:***@127.0.0.1:5432/db?application_name=me@home"
    )


@pytest.mark.parametrize("password", UNENCODED)
def test_a_url_refused_for_such_a_password_quotes_none_of_it(password: str) -> None:
    """The error refusing such a URL says what to encode; it quoted the password's start."""
    with pytest.raises(DatabaseError, match="percent-encode") as raised:
        engine_of(f"postgresql://u:{password}@127.0.0.1:5432/db")
    for piece in ("Xq", "Zk", "Wm", "Vn"):
        assert piece not in str(raised.value)


@pytest.mark.parametrize("password", ["Xq@Zk:Wm", "Xq@Zk", "Xq:Zk@Wm:Vn", "Xq@@Zk"])
def test_a_password_with_an_unencoded_at_sign_is_refused_quoting_none_of_it(
    password: str,
) -> None:
    """The driver splits the user part at its first '@': the rest was read as the hosts.

    `Xq@Zk:Wm` gave "write an IPv6 host as [address]:port, not 'Zk:Wm@127.0.0.1:5432'",
    the password's end in the message; `Xq@Zk` connected to the host `Zk@127.0.0.1`.
    """
    with pytest.raises(DatabaseError, match="percent-encode an '@'") as raised:
        engine_of(f"postgresql://u:{password}@127.0.0.1:5432/db")
    for piece in ("Xq", "Zk", "Wm", "Vn"):
        assert piece not in str(raised.value)
    engine_of(f"postgresql://u:{quote(password, safe='')}@127.0.0.1:5432/db")  # encoded: taken


BAD_URLS = [
    ("postgresql://u:secret@127.0.0.1:abc/db", "the port must be a number"),
    ("postgresql://u:secret@127.0.0.1:99999/db", "got '99999'"),
    ("postgresql://u:secret@127.0.0.1:0/db", "from 1 to 65535, got '0'"),  # a connect to port 0
    ("postgresql://u:secret@127.0.0.1/db\r", "it holds a line end"),
    ("postgresql://u:secret@127.0.0.1/db?port=0", "from 1 to 65535, got '0'"),
    ("postgresql://u:secret@h1:5432,h2:x/db", "got 'x'"),
    ("postgresql://u:secret@[::1/db", "write an IPv6 host as [address]:port"),
    ("postgresql://u:secret@[zz]:5432/db", "'zz' is not an IPv6 address"),
    ("postgresql://u:secret@::1/db", "write an IPv6 host as [address]:port, not '::1'"),
    ("postgresql://u:secret]@127.0.0.1:5432/db", "percent-encode '[' and ']'"),
    ("postgresql://u:[secret@127.0.0.1:5432/db", "percent-encode '[' and ']'"),
    ("postgresql:/db", "a postgresql URL starts postgresql://"),
    ("sqlite:/x.db", "a sqlite URL starts sqlite://"),
    ("SQLite:x.db", "a sqlite URL starts sqlite://"),
    ("file:/tmp/x.db?mode=ro", "file: URIs are not supported"),
    ("file:///tmp/x.db", "file: URIs are not supported"),
    ("sqlite:///x.db?mode=ro", "a sqlite URL takes no options"),
    ("sqlite://", "names no database file"),
    ("mysql://u:secret@host/db", "unsupported scheme 'mysql'"),
    (" ", "it is blank"),
    ("\t\n", "it is blank"),
    ("app.db\r", "a line end or a NUL"),
    ("sqlite:///app.db%0D", "a line end or a NUL"),
    ("data/a\x00b.db", "a line end or a NUL"),
    ("postgresql://u:secret?PW=1@127.0.0.1:5432/db", "percent-encode them"),  # was quoted whole
    ("postgresql//u:secret@127.0.0.1:5432/db", "a postgresql URL without its ':'"),  # a file
    ("sqlite//data/x.db", "a sqlite URL without its ':'"),
    ("postgresql:/u:secret@127.0.0.1/db", "a postgresql URL starts postgresql://"),
    ("postgresql:u:secret@127.0.0.1/db", "a postgresql URL starts postgresql://"),
    ("sqlite://localhost/x.db", "a sqlite URL names no host"),  # was ./localhost/x.db
    ("data/app.db ", "white space at an end"),  # was a file `app.db `
    ("postgresql://u:secret@127.0.0.1:5432/db ", "white space at an end"),  # a database `db `
    ("\tdata/app.db", "white space at an end"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_URLS)
def test_bad_urls_are_a_database_error_without_the_password(url: str, reason: str) -> None:
    """A URL that cannot be used is a DatabaseError saying why, with the password hidden."""
    with pytest.raises(DatabaseError, match="invalid database URL") as raised:
        engine_of(url)
    assert reason in str(raised.value)
    assert "secret" not in str(raised.value)


@pytest.mark.parametrize(
    "url", ["postgresql://[::1]:5432/db", "postgresql://u@h1:5432,h2/db", "sqlite:///a%3Fb.db"]
)
def test_unusual_but_valid_urls_are_accepted(url: str) -> None:
    """IPv6 hosts, several hosts and percent-encoded file names pass the checks."""
    engine_of(url)


@pytest.mark.parametrize("inside", ["app.db", "sub/app.db"])
async def test_a_file_in_the_way_of_the_folder_is_a_database_error(
    tmp_path: Path, inside: str
) -> None:
    """Creating a database below a regular file names the file that is in the way."""
    (tmp_path / "FILE").write_text("not a folder", encoding="utf-8")
    with pytest.raises(DatabaseError, match="FILE' is a file, not a folder"):
        await open_database(tmp_path / "FILE" / inside)


async def test_a_path_too_long_is_a_database_error(tmp_path: Path) -> None:
    """Past PATH_MAX, or a name with no room for its `-wal`: the package's error, not OSError.

    The check of what stood in the way, and the read-only open's look for a `-wal` file, raised
    the system's bare `OSError: [Errno 36] File name too long`.
    """
    too_long = tmp_path.joinpath(*["d" * 200] * 21, "app.db")
    with pytest.raises(DatabaseError, match="File name too long"):
        await open_database(too_long)
    no_room = tmp_path / ("x" * 252)  # 255 bytes at most: its -wal has 256
    with sqlite3.connect(tmp_path / "small.db") as small:
        small.execute("CREATE TABLE t (x)")
    no_room.write_bytes((tmp_path / "small.db").read_bytes())
    with pytest.raises(DatabaseError, match="File name too long"):
        await open_database(no_room, create=False)


def test_create_false_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    """Without create, a missing SQLite file is a DatabaseError naming it, and no folder appears."""
    missing = tmp_path / "sub" / "typo.db"
    with pytest.raises(DatabaseError, match=r"no SQLite database at .*typo\.db.*does not exist"):
        asyncio.run(open_database(missing, create=False))
    assert list(tmp_path.iterdir()) == []


async def test_create_false_refuses_a_folder(tmp_path: Path) -> None:
    """Without create, a folder where the file should be is a DatabaseError saying so."""
    with pytest.raises(DatabaseError, match="it is not a file"):
        await open_database(tmp_path, create=False)


async def test_create_false_opens_an_existing_file_read_only(tmp_path: Path) -> None:
    """Without create, an existing SQLite file can be read but not written, and stays as it was."""
    path = tmp_path / "app.db"
    async with connect(path) as db:
        await migrate(db)
    before = path.read_bytes()
    async with connect(path, create=False) as db:
        status = await migration_status(db)
        assert status.up_to_date
        with pytest.raises(DatabaseError, match="readonly"):
            await set_config(db, "runner", "workers", 4)
    assert path.read_bytes() == before


async def test_create_false_keeps_a_rollback_journal_database_as_it_is(tmp_path: Path) -> None:
    """Opening read-only does not switch a database that is not in WAL mode to WAL."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as plain:
        plain.execute("CREATE TABLE t (x INTEGER)")
    plain.close()
    async with connect(path, create=False) as db:
        assert (await migration_status(db)).pending
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    plain.close()


async def test_create_false_opens_an_existing_database(database_url: str) -> None:
    """On either engine, create=False opens a database that exists and reads its status."""
    async with connect(database_url) as db:
        await migrate(db)
    async with connect(database_url, create=False) as db:
        assert (await migration_status(db)).up_to_date


@pytest.mark.parametrize(
    ("password", "written"),
    [("s3cret", "s3cret"), ("p@ss:w/rd", "p%40ss%3Aw%2Frd"), ("query-secret", None)],
    ids=["plain", "percent-encoded", "query"],
)
async def test_an_open_database_never_shows_its_password(
    postgres_url: str, password: str, written: str | None
) -> None:
    """repr(db), str(db) and db.url hide the password of the URL it was opened with."""
    parts = urlsplit(postgres_url)
    user = parts.username or "postgres"
    if written is None:
        url = f"{postgres_url}?password={password}"
    else:
        url = urlunsplit(parts._replace(netloc=f"{user}:{written}@{parts.hostname}:{parts.port}"))
    async with connect(url) as db:
        shown = " ".join((repr(db), str(db), db.url))
    assert password not in shown
    assert (written or password) not in shown
    assert "***" in shown


async def test_the_library_reads_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a URL, open_database uses $DATABASE_URL, as the command line does."""
    target = tmp_path / "from-env.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    async with connect() as db:
        await migrate(db)
    assert target.exists()


async def test_without_database_url_the_default_is_data_app_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a URL and without $DATABASE_URL, the database is data/app.db under the cwd."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    async with connect() as db:
        assert db.url == str(DEFAULT_DATABASE)
    assert (tmp_path / "data" / "app.db").exists()


def test_connect_shows_the_arguments_of_open_database() -> None:
    """help(connect) lists the options it takes, which are open_database's."""
    assert inspect.signature(connect).parameters == inspect.signature(open_database).parameters


BAD_LIMITS = [
    ("connect_timeout", 0),
    ("connect_timeout", -1.0),
    ("command_timeout", float("nan")),
    ("command_timeout", float("inf")),
    ("command_timeout", "5"),
    ("release_timeout", -0.5),
    ("release_timeout", True),
    ("busy_timeout", -1),
    ("busy_timeout", float("inf")),
    ("pool_size", 0),
    ("pool_size", True),
    ("pool_size", 2.0),
    ("pool_size", 10_001),  # 10**9 ran the process out of memory, building the pool's slots
    ("create", "no"),
]
"""Limits no database can keep: zero waits, negative or endless ones, and the wrong types."""


@pytest.mark.parametrize(("name", "bad"), BAD_LIMITS)
async def test_open_database_refuses_a_bad_limit_before_anything_opens(
    tmp_path: Path, name: str, bad: object
) -> None:
    """Each limit is checked on both engines, whichever it serves, before a file or a socket.

    The PostgreSQL address is a closed port on this machine: a limit let through would fail
    as a connection error instead.
    """
    options: dict[str, Any] = {name: bad}
    for url in (tmp_path / "never.db", "postgresql://postgres@127.0.0.1:1/never"):
        with pytest.raises(ValidationError) as caught:
            await open_database(url, **options)
        assert (caught.value.model, caught.value.field) == ("open_database", name)
    assert not (tmp_path / "never.db").exists()


@pytest.mark.parametrize(
    ("name", "bad"), [("connect_timeout", 0), ("command_timeout", -1), ("dry_run", 1)]
)
async def test_create_database_refuses_a_bad_argument_before_connecting(
    name: str, bad: object
) -> None:
    """create_database checks its limits and flag before it connects, on either engine."""
    options: dict[str, Any] = {name: bad}
    for url in ("postgresql://postgres@127.0.0.1:1/never", "never.db"):
        with pytest.raises(ValidationError) as caught:
            await create_database(url, **options)
        assert (caught.value.model, caught.value.field) == ("create_database", name)


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("PGHOST", "127.0.0.1,", "$PGHOST's host 2 of 2 is empty"),
        ("PGPORT", "abc", "$PGPORT's ports must be numbers from 1 to 65535, got 'abc'"),
        ("PGPORT", "5432,", "$PGPORT's ports must be numbers from 1 to 65535, got ''"),
    ],
)
def test_what_the_driver_reads_from_the_environment_is_checked_as_a_urls_own(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """Where the URL names no host or port, the driver reads `$PGHOST` and `$PGPORT`.

    An empty host there made it raise a bare IndexError, which the command printed as a
    traceback with exit 1, what `status` gives for a pending migration; a port that is no
    number gave its `invalid literal for int()`.
    """
    monkeypatch.setenv(variable, value)
    with pytest.raises(DatabaseError, match="invalid database URL") as raised:
        engine_of("postgresql:///db?user=u")
    assert reason in str(raised.value)
    engine_of("postgresql://127.0.0.1:5432/db")  # the URL's own: the variable is not read


def test_a_port_after_a_host_option_is_checked() -> None:
    """`host=127.0.0.1:abc` gave the driver's `invalid literal for int()`."""
    with pytest.raises(DatabaseError, match="host= option's ports must be numbers"):
        engine_of("postgresql:///db?host=127.0.0.1:abc")
    engine_of("postgresql:///db?host=127.0.0.1:5433,/run/postgresql")
