"""Where a backup may go: a name up to the longest SQLite can use, in a place that is a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _backup_helpers import assert_same, names, run
from persistence import ValidationError, connect
from persistence.backup import backup_database

if TYPE_CHECKING:
    from persistence import Database

NAME_MAX = 255
LONGEST = NAME_MAX - len("-journal")
"""SQLite makes `<name>-journal` beside a database it writes: a longer name cannot be used."""


@pytest.mark.parametrize(
    "name", ["b" * LONGEST, "é" * 123 + "b", "b" * 238], ids=["247", "247 bytes", "238"]
)
async def test_a_backup_to_a_long_name_is_whole_and_usable(
    tmp_path: Path, source: Database, name: str
) -> None:
    """A name up to 247 bytes takes a backup: its working folder's name is shortened to fit."""
    assert len(os.fsencode(name)) <= LONGEST
    before = names(tmp_path)
    report = await backup_database(source, tmp_path / name)
    assert report.target == str(tmp_path / name)
    assert names(tmp_path) == sorted([*before, name])
    async with connect(tmp_path / name, create=False) as backup:
        await assert_same(source, backup)


@pytest.mark.parametrize("length", [LONGEST + 1, NAME_MAX, NAME_MAX + 1, 1000])
async def test_a_backup_to_a_name_too_long_is_refused_before_anything_is_written(
    tmp_path: Path, source: Database, length: int
) -> None:
    """A name SQLite could not keep a journal beside, or none can hold, is a ValidationError."""
    before = names(tmp_path)
    with pytest.raises(ValidationError, match="name is too long"):
        await backup_database(source, tmp_path / ("b" * length))
    assert await run("backup", str(tmp_path / ("b" * length)), "--database", source.url) == 3
    assert names(tmp_path) == before


@pytest.mark.parametrize("place", ["name", "folder"])
async def test_a_backup_to_a_path_not_in_utf8_is_refused_before_anything_is_written(
    tmp_path: Path, source: Database, capsys: pytest.CaptureFixture[str], place: str
) -> None:
    """Bytes that are not UTF-8, in the name or its folder's, are refused first, named as given.

    Before, the whole backup was made, then thrown away, with an error about an invalid
    database URL naming the working folder beside it, which the caller had never given.
    """
    odd = os.fsdecode(b"\xff")
    target = tmp_path / f"b{odd}.backup" if place == "name" else tmp_path / odd / "b.backup"
    target.parent.mkdir(exist_ok=True)
    before = names(target.parent)
    with pytest.raises(ValidationError, match="not UTF-8") as caught:
        await backup_database(source, target)
    assert (caught.value.model, caught.value.field) == ("backup", "path")
    assert repr(str(target)) in str(caught.value)
    capsys.readouterr()
    assert await run("backup", str(target), "--database", source.url) == 3
    assert "holds bytes that are not UTF-8" in capsys.readouterr().err
    assert names(target.parent) == before


@pytest.mark.parametrize("kind", ["file", "fifo", "dangling symlink"])
async def test_a_backup_below_a_file_names_what_is_there(
    tmp_path: Path, source: Database, kind: str
) -> None:
    """`x/b.db` with `x` a file said the folder `x` "does not exist"; it names what `x` is."""
    place = tmp_path / "x"
    if kind == "file":
        place.write_text("mine")
        said = "is a regular file"
    elif kind == "fifo":
        os.mkfifo(place)
        said = r"is a FIFO \(named pipe\)"
    else:
        place.symlink_to(tmp_path / "nowhere")
        said = "is a symbolic link to nothing"
    before = names(tmp_path)
    with pytest.raises(ValidationError, match=f"{said}, not a folder"):
        await backup_database(source, place / "b.db")
    assert names(tmp_path) == before
