"""open_persistence: everything opened from arguments or the environment, closed together."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from persistence import MigrationError, ValidationError, connect, open_persistence, set_config
from persistence.cache import MemoryCache, RedisCache
from persistence.migrations import migrate, migration_status


async def test_the_environment_names_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """DATABASE_URL, PERSISTENCE_FILES and REDIS_URL choose the database, the root and Redis."""
    monkeypatch.setenv("DATABASE_URL", str(tmp_path / "env.db"))
    monkeypatch.setenv("PERSISTENCE_FILES", str(tmp_path / "env-files"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    async with open_persistence(heartbeat=0.2) as p:
        assert p.db.url == str(tmp_path / "env.db")
        assert p.storage.root == (tmp_path / "env-files").resolve()
        assert isinstance(p.cache, RedisCache)
        await set_config(p.db, "runner", "workers", 2)
        assert await p.cache.get_config_value("runner", "workers", int) == 2
    monkeypatch.delenv("REDIS_URL")
    async with open_persistence(heartbeat=0.2) as p:
        assert isinstance(p.cache, MemoryCache)


async def test_check_refuses_a_database_with_pending_migrations(tmp_path: Path) -> None:
    """With migrations='check', an unmigrated database is refused and left unmigrated.

    A SQLite file that does not exist is not created: nothing is left behind.
    """
    with pytest.raises(MigrationError, match="persistence migrate"):
        async with open_persistence(tmp_path / "new.db", files=tmp_path / "f", migrations="check"):
            pass
    assert not (tmp_path / "new.db").exists()
    assert not (tmp_path / "f").exists()
    async with connect(tmp_path / "new.db") as db:
        pass
    with pytest.raises(MigrationError, match="not applied"):
        async with open_persistence(tmp_path / "new.db", files=tmp_path / "f", migrations="check"):
            pass
    async with connect(tmp_path / "new.db") as db:
        await migrate(db)
    async with open_persistence(tmp_path / "new.db", files=tmp_path / "f", migrations="check") as p:
        assert p.artifacts.budget > 0


@pytest.mark.parametrize("kind", ["rollback journal", "empty file", "wal mode"])
async def test_check_leaves_a_refused_file_as_it_was(tmp_path: Path, kind: str) -> None:
    """A refused file is left byte for byte: the open set WAL mode before the check refused.

    Another program's file in rollback-journal mode was left in WAL mode, an empty file
    became a WAL database of 4 kB, and a WAL file read-only got a `-wal` and `-shm` beside it.
    """
    path = tmp_path / "theirs.db"
    if kind == "empty file":
        path.touch()
    elif kind == "wal mode":  # closed: its -wal and -shm went with its last connection
        with contextlib.closing(sqlite3.connect(path)) as theirs:
            theirs.execute("PRAGMA journal_mode = WAL")
            theirs.execute("CREATE TABLE notes (body text)")
            theirs.commit()
    else:
        with contextlib.closing(sqlite3.connect(path)) as theirs:
            theirs.execute("PRAGMA journal_mode = DELETE")
            theirs.execute("CREATE TABLE notes (body text)")
            theirs.commit()
    before = path.read_bytes()
    with pytest.raises(MigrationError, match="not applied"):
        async with open_persistence(path, files=tmp_path / "f", migrations="check"):
            pass
    assert path.read_bytes() == before
    assert _names(tmp_path) == ["theirs.db"]


def _names(folder: Path) -> list[str]:
    """The names in `folder`, sorted."""
    return sorted(p.name for p in folder.iterdir())


async def test_two_bundles_share_nothing(tmp_path: Path) -> None:
    """Two bundles open at once each have their own database and caches."""
    async with (
        open_persistence(tmp_path / "a.db", files=tmp_path / "a") as a,
        open_persistence(tmp_path / "b.db", files=tmp_path / "b") as b,
    ):
        await set_config(a.db, "s", "k", 1)
        await set_config(b.db, "s", "k", 2)
        assert await a.cache.get_config_value("s", "k", int) == 1
        assert await b.cache.get_config_value("s", "k", int) == 2
        assert a.cache is not b.cache


async def test_the_users_own_chain_is_applied_and_checked(tmp_path: Path) -> None:
    """user_migrations: applied after the package's chain; with 'check', pending is refused."""
    chain = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (chain / engine).mkdir(parents=True)
        (chain / engine / "0001_notes.sql").write_text(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n", encoding="utf-8"
        )
    database = tmp_path / "app.db"
    async with connect(database) as db:
        await migrate(db)
    with pytest.raises(MigrationError, match="0001_notes"):
        async with open_persistence(
            database, files=tmp_path / "f", migrations="check", user_migrations=chain
        ):
            pass
    async with open_persistence(database, files=tmp_path / "f", user_migrations=chain):
        pass
    async with open_persistence(
        database, files=tmp_path / "f", migrations="check", user_migrations=chain
    ) as p:
        status = await migration_status(p.db, chain)
        assert status.user is not None
        assert [m.name for m in status.user.applied] == ["0001_notes"]


@pytest.mark.parametrize("folder", ["", 5, "missing-folder"])
async def test_a_bad_user_folder_is_refused_before_anything_opens(
    tmp_path: Path, folder: object
) -> None:
    """A bad user_migrations creates no database file and no storage folder."""
    given = str(tmp_path / folder) if folder == "missing-folder" else folder
    with pytest.raises(ValidationError, match="user_migrations"):
        async with open_persistence(
            tmp_path / "new.db",
            files=tmp_path / "f",
            user_migrations=given,  # type: ignore[arg-type]  # a caller without type checks
        ):
            pass
    assert not (tmp_path / "new.db").exists()
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("files", [5, b"files", "f\x00iles"])
async def test_a_bad_files_root_is_refused_before_anything_opens(
    tmp_path: Path, files: object
) -> None:
    """A `files` that names no folder is a ValidationError naming it; no database is made.

    It was checked only once the database was opened and migrated: a raw TypeError, or the
    file store's error, left a migrated database behind.
    """
    with pytest.raises(ValidationError, match="files"):
        async with open_persistence(
            tmp_path / "new.db",
            files=files,  # type: ignore[arg-type]  # a caller without type checks
        ):
            pass
    assert not (tmp_path / "new.db").exists()


async def test_check_refuses_a_database_newer_than_the_files(
    tmp_path: Path, database_url: str
) -> None:
    """With migrations='check', a migration applied but newer than every file is refused.

    'apply' refused it, while 'check' opened the database as if it were up to date: code that
    does not know a migration ran on the schema it made.
    """
    chain = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (chain / engine).mkdir(parents=True)
        (chain / engine / "0001_notes.sql").write_text(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n", encoding="utf-8"
        )
        (chain / engine / "0002_later.sql").write_text("-- nothing\n", encoding="utf-8")
    async with connect(database_url) as db:
        await migrate(db, chain)
    for engine in ("sqlite", "postgres"):
        (chain / engine / "0002_later.sql").unlink()
    files = tmp_path / "f"
    for migrations in ("apply", "check"):
        with pytest.raises(MigrationError, match="0002_later"):
            async with open_persistence(
                database_url, files=files, migrations=migrations, user_migrations=chain
            ):
                pass
