"""`open_storage` given a place that holds something other than a folder names what is there."""

import asyncio
import os
import re
from pathlib import Path

import pytest

from _storage_helpers import bound_socket
from persistence.exceptions import StorageError
from persistence.storage import open_storage


def _plant(place: Path, kind: str) -> None:
    if kind == "file":
        place.write_text("mine")
    elif kind == "fifo":
        os.mkfifo(place)
    elif kind == "socket":
        bound_socket(place).close()
    else:
        place.symlink_to(place.parent / "nowhere")


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))  # noqa: PTH208  # a plain listing


SAID = {
    "file": "is a regular file",
    "fifo": "is a FIFO (named pipe)",
    "socket": "is a socket",
    "dangling symlink": "is a symbolic link to nothing",
}


@pytest.mark.parametrize("kind", sorted(SAID))
async def test_a_root_that_is_no_folder_is_named_for_what_it_is(tmp_path: Path, kind: str) -> None:
    """Not the bare `File exists` of mkdir: the root, what is there, and that it is no folder."""
    _plant(tmp_path / "root", kind)
    said = re.escape(f"the storage root {SAID[kind]}, not a folder")
    with pytest.raises(StorageError, match=said) as caught:
        await asyncio.wait_for(open_storage(tmp_path / "root"), 3)
    assert caught.value.path == str(tmp_path / "root")
    assert _names(tmp_path) == ["root"]


@pytest.mark.parametrize("kind", sorted(SAID))
async def test_a_folder_on_the_roots_way_that_is_no_folder_is_named(
    tmp_path: Path, kind: str
) -> None:
    """`x/files` with `x` a FIFO names `x` as no folder, not the root as `not a regular file`."""
    _plant(tmp_path / "x", kind)
    said = re.escape(f"{tmp_path / 'x'} {SAID[kind]}, not a folder")
    with pytest.raises(StorageError, match=said):
        await asyncio.wait_for(open_storage(tmp_path / "x" / "files"), 3)
    assert _names(tmp_path) == ["x"]
