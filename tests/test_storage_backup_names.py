"""Backups of one file taken at one instant: each keeps its own name, none replaces another."""

import asyncio
import datetime as dt
import errno
import os

import pytest

import persistence.storage
from persistence.storage import Storage, backup, list_backups, read_bytes, write_bytes

INSTANT = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


class _Frozen(dt.datetime):
    """A clock that gives one instant, as a coarse or shared clock does to backups at once."""

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> "_Frozen":
        return cls.fromtimestamp(INSTANT.timestamp(), tz)


@pytest.mark.parametrize("round_", range(3))
async def test_backups_at_one_instant_each_keep_a_name_of_their_own(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, round_: int
) -> None:
    """Four backups in four threads at one timestamp: four files, each whole; none lost."""
    monkeypatch.setattr(persistence.storage, "datetime", _Frozen)
    content = bytes(range(256)) * 2048 + bytes([round_])
    await write_bytes(storage, "docs/a.txt", content)
    made = await asyncio.gather(*(backup(storage, "docs/a.txt") for _ in range(4)))
    assert len(set(made)) == 4
    listed = await list_backups(storage, "docs/a.txt")
    assert sorted(listed) == sorted(made)
    assert [await read_bytes(storage, path) == content for path in made] == [True] * 4
    assert await asyncio.to_thread(os.listdir, storage.root / ".tmp") == []


async def test_a_disk_without_hard_links_still_gives_each_backup_its_name(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where link(2) is refused, a backup is renamed to the first name found free."""
    monkeypatch.setattr(persistence.storage, "datetime", _Frozen)

    def no_links(*_: object, **__: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    await write_bytes(storage, "a.txt", b"one")
    first = await backup(storage, "a.txt")
    await write_bytes(storage, "a.txt", b"two")
    second = await backup(storage, "a.txt")
    assert (first.name, second.name) == (
        "a.txt.20260301T120000123456Z.bak",
        "a.txt.20260301T120000123456Z-1.bak",
    )
    assert [await read_bytes(storage, path) for path in (first, second)] == [b"one", b"two"]
    assert await asyncio.to_thread(os.listdir, storage.root / ".tmp") == []
