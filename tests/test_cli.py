"""The command line: its commands, exit codes, one-line errors, JSON, --wait and kept secrets."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import persistence
from _cli_helpers import (
    assert_one_error_line,
    cli,
    existing,
    free_port,
    run,
)
from conftest import with_database
from persistence.__main__ import main

pytestmark = pytest.mark.usefixtures("no_database_url")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory for commands run in this process."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- version, usage and the default database -------------------------------------------------


def test_version_is_the_package_version(tmp_path: Path) -> None:
    """`--version` prints the installed version, which `persistence.__version__` also gives."""
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == f"persistence {persistence.__version__}\n"
    assert persistence.__version__ == importlib.metadata.version("persistence-sql")


def test_default_database_is_data_app_db(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migrate with no URL makes data/app.db; again applies nothing; status then exits 0.

    The first migrate runs in a process of its own, started in the folder; the two after it
    run here, in the same folder, and find the database by the same default.
    """
    first = cli("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_initial_schema.sql" in first.stdout
    assert (tmp_path / "data" / "app.db").is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)  # as `cli` leaves it out
    code, out, _ = run(capsys, "migrate")
    assert code == 0
    assert "0 migration(s) applied" in out
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "applied  0001_initial_schema" in out


def test_database_url_from_environment(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """DATABASE_URL picks the database, on either engine."""
    result = cli("migrate", cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    code, out, err = run(capsys, "status", "--database", database_url)
    assert code == 0, out + err


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
        (["status", "--database", " "], "an empty URL names no database: leave --database"),
        # `copy` has no --database to leave out: it said to, all the same
        (["copy", "a.db", ""], "names no database: give a postgresql:// URL or a SQLite"),
        (["copy", " ", "a.db"], "names no database: give a postgresql:// URL or a SQLite"),
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
