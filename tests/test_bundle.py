"""open_persistence: everything opened from arguments or the environment, closed together."""

from __future__ import annotations

from pathlib import Path

import pytest

from persistence import MigrationError, connect, open_persistence, set_config
from persistence.cache import MemoryCache, RedisCache
from persistence.migrations import migrate


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
    """With migrations='check', an unmigrated database is refused and left unmigrated."""
    with pytest.raises(MigrationError, match="not applied"):
        async with open_persistence(tmp_path / "new.db", files=tmp_path / "f", migrations="check"):
            pass
    async with connect(tmp_path / "new.db") as db:
        await migrate(db)
    async with open_persistence(tmp_path / "new.db", files=tmp_path / "f", migrations="check") as p:
        assert p.artifacts.budget > 0


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
