"""The command line: migrate and status, by URL, path or DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m persistence` and capture what it says."""
    environment = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "persistence", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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


def test_status_exits_non_zero_when_pending(tmp_path: Path) -> None:
    """Status on a new database lists the pending migrations and exits 1."""
    status = cli("status", "--database", f"sqlite:///{tmp_path}/new.db", cwd=tmp_path)
    assert status.returncode == 1
    assert "pending  0001_initial_schema.sql" in status.stdout


def test_database_url_from_environment(database_url: str, tmp_path: Path) -> None:
    """DATABASE_URL picks the database, on either engine."""
    result = cli("migrate", cwd=tmp_path, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    status = cli("status", "--database", database_url, cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/db", "unsupported database URL scheme 'mysql'"),
        ("postgresql://nobody@127.0.0.1:1/none", "cannot connect to PostgreSQL"),
    ],
)
def test_bad_database_is_one_clear_line(tmp_path: Path, url: str, message: str) -> None:
    """A URL that cannot be used is one error line and exit code 2, never a traceback."""
    result = cli("status", "--database", url, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
