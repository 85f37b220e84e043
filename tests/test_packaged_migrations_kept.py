"""The package's migrations are read once per process, and again as soon as a file of them changes.

Each open read and checked all of them (2 ms of 11); kept, they must never hide an edit: a
checkout's file edited while a process runs is drift, reported as it was before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from persistence import Engine, MigrationError, _migration_files, connect, migrate
from persistence._migration_files import packaged_migrations
from persistence.migrations import discover_migrations, migration_status, read_migrations


@pytest.fixture
def package_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the SQLite migrations taken for the package's own; the kept reads cleared."""
    real = _migration_files.migrations_folder(Engine.SQLITE)
    copy = tmp_path / "package" / "sqlite"
    shutil.copytree(real, copy)
    monkeypatch.setattr(_migration_files, "migrations_folder", lambda _engine: copy)
    monkeypatch.setattr(_migration_files, "_PACKAGED", {})
    return copy


@pytest.mark.parametrize("engine", list(Engine))
def test_kept_migrations_are_those_on_disk(engine: Engine) -> None:
    """What is kept is what a read of the folder gives, through each caller."""
    fresh = discover_migrations(_migration_files.migrations_folder(engine))
    assert packaged_migrations(engine) == fresh
    assert packaged_migrations(engine) == fresh  # the kept ones, the second time
    assert read_migrations(engine) == fresh


def test_a_caller_changing_the_list_changes_no_later_read(package_copy: Path) -> None:
    """Each caller gets a list of its own."""
    del package_copy
    first = packaged_migrations(Engine.SQLITE)
    count = len(first)
    first.clear()
    assert len(packaged_migrations(Engine.SQLITE)) == count


def _edit(folder: Path, edit: str) -> None:
    """Change the first migration file of `folder`, or the files there, as `edit` says."""
    first = min(folder.glob("*.sql"))
    text = first.read_text(encoding="utf-8")
    if edit == "append":
        first.write_text(text + "\n-- edited\n", encoding="utf-8")
    elif edit == "same_size":  # a new inode of the same size
        replaced = first.with_suffix(".new")
        replaced.write_text(text.replace("-", "=", 1), encoding="utf-8")
        replaced.replace(first)
    elif edit == "new_file":
        (folder / "9999_added.sql").write_text("SELECT 1;\n", encoding="utf-8")
    else:
        first.unlink()


@pytest.mark.parametrize("edit", ["append", "same_size", "new_file", "removed"])
async def test_an_edited_package_file_is_read_again(
    package_copy: Path, tmp_path: Path, edit: str
) -> None:
    """Edited after a migrate in the same process: the next status sees the edit."""
    async with connect(str(tmp_path / "app.db")) as db:
        await migrate(db)
        kept = packaged_migrations(Engine.SQLITE)
        _edit(package_copy, edit)
        now = packaged_migrations(Engine.SQLITE)
        assert now != kept
        assert now == discover_migrations(package_copy)
        status = await migration_status(db)
        if edit in {"append", "same_size"}:
            assert [d.applied.version for d in status.drifted] == [kept[0].version]
        elif edit == "new_file":
            assert [m.version for m in status.pending] == [9999]
        else:
            assert [d.migration for d in status.drifted] == [None]


def test_a_folder_that_is_gone_is_named(package_copy: Path) -> None:
    """A folder gone is the error a first read gives."""
    shutil.rmtree(package_copy)
    with pytest.raises(MigrationError, match="does not exist"):
        packaged_migrations(Engine.SQLITE)
