"""`new`: the next migration's two files, one for each engine, written together or not at all."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

import persistence
from _cli_helpers import (
    ROOT,
    assert_one_error_line,
    cli,
    run,
)
from persistence.__main__ import main
from persistence.migrations import discover_migrations

pytestmark = pytest.mark.usefixtures("no_database_url")

LATEST_VERSIONS = sorted(
    int(path.name[:4]) for path in (ROOT / "sql" / "migrations" / "sqlite").glob("[0-9]*.sql")
)
"""The versions of the migrations in the checkout, which a new database has pending."""


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


def test_new_refuses_a_number_past_the_last_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """After a migration at the last version the history holds, `new` makes nothing.

    It wrote 9223372036854775808_after.sql, exit 0, which `migrate` then refused.
    """
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "sqlite" / f"{2**63 - 1}_last.sql").write_text("SELECT 1;\n", encoding="utf-8")
    code, out, err = run(capsys, "new", "after", "--folder", str(tmp_path))
    assert (code, out) == (3, "")
    assert f"{2**63}, is over {2**63 - 1}" in err
    assert sorted(p.name for p in tmp_path.rglob("*.sql")) == [f"{2**63 - 1}_last.sql"]


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
    mine.mkdir()
    (mine / "postgres").write_text("", encoding="utf-8")  # a file where the folder should be
    code, out, err = run(capsys, "new", "add_index", "--migrations", str(mine))
    assert (code, out) == (3, "")
    assert_one_error_line(err)
    assert f"{mine / 'postgres'} is not a folder" in err  # it said "File exists"
    assert not (mine / "sqlite").exists()  # looked at before any folder is made
    (mine / "sqlite").mkdir()
    assert run(capsys, "new", "add_index", "--migrations", str(mine))[0] == 3
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
    assert f"{tmp_path / 'FILE'} is not a folder" in err


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
