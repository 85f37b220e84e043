"""A file store whose root is the file system's own root is refused before anything is made.

`open_storage("/")` and `open_persistence(files="/")` made the reserved folders (`.backups`,
`.tmp`, `.locks`, `.cache`) at `/`, among the system's own folders, where a sweep or a clean-up
of scratch files would then walk the whole system. The root is told by its real path: `//`,
`/tmp/..` and a symlink to `/` are `/` too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence import open_persistence
from persistence._files.paths import RESERVED
from persistence.exceptions import InvalidPathError
from persistence.storage import open_storage

ROOTS = ["/", "//", "/tmp/..", "/..", "up", "link", "."]  # noqa: S108  # no file made in /tmp
"""Each is `/` once resolved: `up` climbs there from a folder not made yet, `link` is a
symlink to `/`, and `.` is read in `/`."""


def reserved_at_root() -> set[str]:
    """The reserved folder names present at the file system's root."""
    return {name for name in RESERVED if os.path.lexists(f"/{name}")}


@pytest.fixture(autouse=True)
def _root_left_as_it_was() -> Iterator[None]:
    """Remove, after the test, any reserved folder it made at `/` (the test says so)."""
    there = reserved_at_root()
    yield
    for name in reserved_at_root() - there:
        shutil.rmtree(f"/{name}", ignore_errors=True)


def root_named(given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Give the root to try: `up` and `link` made under `tmp_path`, `.` read in `/`."""
    if given == "up":
        return str(tmp_path / "nowhere") + "/.." * len(tmp_path.parts)
    if given == "link":
        (tmp_path / "link").symlink_to("/")
        return str(tmp_path / "link")
    if given == ".":
        monkeypatch.chdir("/")
    return given


@pytest.mark.parametrize("given", ROOTS)
async def test_open_storage_refuses_the_file_systems_root(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as an InvalidPathError naming the root, and no reserved folder made at `/`."""
    root = root_named(given, tmp_path, monkeypatch)
    before = reserved_at_root()
    with pytest.raises(InvalidPathError) as raised:
        await open_storage(root)
    assert reserved_at_root() == before
    assert raised.value.path == root
    assert "file system's root" in str(raised.value)


@pytest.mark.parametrize("given", ROOTS)
async def test_open_persistence_refuses_the_file_systems_root_before_the_database(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before the SQLite database is made or migrated, and nothing made at `/`."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    root = root_named(given, tmp_path, monkeypatch)
    there = set(tmp_path.iterdir())  # noqa: ASYNC240  # a look, before the call
    before = reserved_at_root()
    with pytest.raises(InvalidPathError) as raised:
        async with open_persistence(tmp_path / "app.db", files=root):
            pass
    assert reserved_at_root() == before
    assert set(tmp_path.iterdir()) == there  # noqa: ASYNC240  # a look, after the call
    assert raised.value.path == root


async def test_a_folder_under_the_root_is_taken(tmp_path: Path) -> None:
    """A folder whose path passes through `..` or a symlink, but is not `/`, is taken."""
    (tmp_path / "link").symlink_to(tmp_path)
    storage = await open_storage(tmp_path / "link" / "a" / ".." / "files")
    assert storage.root == (tmp_path / "files").resolve()
