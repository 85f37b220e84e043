"""A file where the storage keeps a folder: refused, saying what is there, and left alone.

The package removes nothing it did not make, so a regular file or a FIFO in the place of
`.cache`, one of its folders, an entry's shard or a reserved folder is not repaired: the error
names the place and what is there. A FIFO is never opened to wait for a writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from persistence.cache import open_artifact_cache
from persistence.exceptions import NotAFileError
from persistence.storage import open_storage

DATA = b"an artifact"
SHARD = hashlib.sha256(DATA).hexdigest()[:2]
BOUND = 5.0
"""Seconds within which each refusal must come: a FIFO opened to read would wait for ever."""


def _regular(path: Path) -> None:
    path.write_bytes(b"not the package's")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


PLANTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "file": (_regular, "is a regular file, not a folder"),
    "fifo": (_fifo, "is a FIFO (named pipe), not a folder"),
}


def _plant(root: Path, place: str, kind: str) -> os.stat_result:
    """Put a file of `kind` at `place`, where a folder was or would be; give its status."""
    path = root / place
    if path.is_dir():
        path.rmdir()
    path.parent.mkdir(parents=True, exist_ok=True)
    PLANTS[kind][0](path)
    return path.lstat()


@pytest.mark.parametrize("kind", sorted(PLANTS))
@pytest.mark.parametrize("place", [".cache", ".cache/incoming", f".cache/artifacts/{SHARD}"])
async def test_a_put_names_the_file_in_a_cache_folder_place(
    tmp_path: Path, place: str, kind: str
) -> None:
    """The put is refused naming the place and what is there, which stays as it was."""
    storage = await open_storage(tmp_path / "files")
    artifacts = await open_artifact_cache(storage)
    planted = _plant(storage.root, place, kind)
    with pytest.raises(NotAFileError) as raised:
        async with asyncio.timeout(BOUND):
            await artifacts.put(DATA)
    assert f"{place} {PLANTS[kind][1]}" in str(raised.value)
    assert (storage.root / place).lstat() == planted


@pytest.mark.parametrize("kind", sorted(PLANTS))
@pytest.mark.parametrize("place", [".cache", ".tmp", ".locks", ".backups"])
async def test_opening_the_storage_names_the_file_in_a_reserved_folder_place(
    tmp_path: Path, place: str, kind: str
) -> None:
    """It said "is not a real folder (a symlink?): it may lead outside" of any file there.

    The place is named from the root (`.cache` alone named no root of the several a program
    may open).
    """
    storage = await open_storage(tmp_path / "files")
    planted = _plant(storage.root, place, kind)
    with pytest.raises(NotAFileError) as raised:
        async with asyncio.timeout(BOUND):
            await open_storage(storage.root)
    assert str(raised.value) == (
        f"{storage.root / place}: {PLANTS[kind][1]}: move it away, a folder belongs there"
    )
    assert (storage.root / place).lstat() == planted
