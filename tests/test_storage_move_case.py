"""A move between two names that differ only in case, on a disk that tells case apart."""

import os
from pathlib import Path

import pytest

from persistence import Database, all_file_records
from persistence._files.paths import is_partial_name
from persistence.storage import Storage, VerifyReport, move, read_bytes, verify, write_bytes


def _tells_case_apart(folder: Path) -> bool:
    probe = folder / "case-probe"
    probe.touch()
    try:
        return not (folder / "CASE-PROBE").exists()
    finally:
        probe.unlink()


def _names(folder: Path) -> list[str]:
    """The names in `folder` but the reserved folders."""
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


async def test_a_move_between_hard_links_named_apart_by_case_removes_the_source(
    storage: Storage, sqlite_db: Database
) -> None:
    """`a.txt` and `A.txt`, two links of one file, are two names: the move leaves `A.txt` only."""
    root = storage.root
    if not _tells_case_apart(root):  # pragma: no cover  # a disk that ignores case has one name
        pytest.skip("this disk ignores case")
    await write_bytes(storage, "a.txt", b"shared", track=sqlite_db)
    os.link(root / "a.txt", root / "A.txt")
    await read_bytes(storage, "A.txt", track=sqlite_db)

    moved = await move(storage, "a.txt", "A.txt", track=sqlite_db)

    assert moved.path == "A.txt"
    assert _names(root) == ["A.txt"]
    assert (root / "A.txt").read_bytes() == b"shared"
    assert (root / "A.txt").stat().st_nlink == 1
    assert [record.path for record in await all_file_records(sqlite_db)] == ["A.txt"]
    assert await verify(storage, sqlite_db) == VerifyReport()
    assert not any(is_partial_name(path.name) for path in root.rglob("*"))


async def test_a_move_to_another_case_of_one_name_renames_it(storage: Storage) -> None:
    """A file moved to its own name in another case is renamed, its content kept."""
    await write_bytes(storage, "b.txt", b"kept")
    moved = await move(storage, "b.txt", "B.txt")
    assert moved.path == "B.txt"
    assert _names(storage.root) == ["B.txt"]
    assert (storage.root / "B.txt").read_bytes() == b"kept"
