"""The caches of a SQLite database opened through a symlink to its file.

SQLite follows the link and keeps its `-wal` and `-shm` files beside the real file; the
change watch must map that `-shm`, never a file of the same name beside the link.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from _cache_feed_helpers import HEARTBEAT, workers
from persistence import connect, migrate, set_config
from persistence.cache import open_memory_cache, open_redis_cache


def commit_elsewhere(path: Path, value: int) -> None:
    """Set runner.workers by plain SQL on a connection of its own, as another program does."""
    other = sqlite3.connect(path)
    try:
        other.execute(
            "UPDATE config_entries SET value = ? WHERE section = 'runner' AND key = 'workers'",
            (str(value),),
        )
        other.commit()
    finally:
        other.close()


@pytest.mark.parametrize("beside_the_link", ["nothing", "a leftover -shm"])
async def test_a_database_reached_through_a_symlink_is_watched_at_its_file(
    tmp_path: Path, redis_url: str, namespace: str, beside_the_link: str
) -> None:
    """Through `app.db -> data/app.db`, every commit shows at once and Redis is used.

    The watch mapped `app.db-shm` beside the link, not `data/app.db-shm`, which SQLite uses:
    with none there it fell back to asking SQLite, and the Redis tier was never used (every
    read bypassed it); with one left there (a crash of a database once at that path) the
    memory cache kept serving the value from before another program's commit, for good.
    """
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "app.db"
    link = tmp_path / "app.db"
    async with connect(real) as db:
        await migrate(db)
        await set_config(db, "runner", "workers", 1)
        if beside_the_link != "nothing":
            await asyncio.to_thread(shutil.copy, f"{real}-shm", f"{link}-shm")
    link.symlink_to(real)
    async with connect(link) as db:
        memory = await open_memory_cache(db, heartbeat=HEARTBEAT)
        tiered = await open_redis_cache(
            db, redis_url, namespace=namespace, heartbeat=HEARTBEAT, local_size=0
        )
        try:
            for value in range(2, 6):
                assert await workers(memory)() == value - 1
                assert await workers(tiered)() == value - 1
                await asyncio.to_thread(commit_elsewhere, real, value)
                assert await workers(memory)() == value
                assert await workers(tiered)() == value
            assert await workers(tiered)() == value
            assert tiered.stats().bypassed == 0
            assert tiered.stats().hits > 0
        finally:
            await memory.close()
            await tiered.close()
