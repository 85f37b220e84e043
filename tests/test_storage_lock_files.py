"""Something planted in the place of a lock file: refused at once, named, and left alone."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from _storage_helpers import bound_socket
from persistence._files.locks import stripe_of
from persistence.exceptions import NotAFileError
from persistence.storage import Storage, read_bytes, write_bytes

BOUND = 3.0
"""Seconds within which the refusal must come: nothing planted may be waited on."""


def _socket(path: Path, stack: ExitStack) -> None:
    stack.enter_context(bound_socket(path))


PLANTS: dict[str, tuple[Callable[[Path, ExitStack], None], str]] = {
    "fifo": (lambda path, _: os.mkfifo(path), "is a FIFO (named pipe)"),
    "socket": (_socket, "is a socket"),
    "folder": (lambda path, _: path.mkdir(), "is a folder"),
    "symlink": (lambda path, _: path.symlink_to("/etc/hostname"), "is a symbolic link"),
    "dangling symlink": (lambda path, _: path.symlink_to("nowhere"), "is a symbolic link"),
    "device": (
        lambda path, _: os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3)),
        "is a device",
    ),
}


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """What a plant holds open (a socket's server), closed after the test."""
    with ExitStack() as stack:
        yield stack


def _fds() -> set[tuple[str, str]]:
    """The process's descriptors, each with what it leads to.

    Compared as sets, so that a descriptor of an earlier test's garbage closed meanwhile
    neither fails the test nor hides one that this test left open.
    """
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            found.add((fd.name, str(fd.readlink())))
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            continue
    return found


@pytest.mark.parametrize("kind", sorted(PLANTS))
async def test_a_lock_file_place_holding_no_regular_file_is_named(
    storage: Storage, stack: ExitStack, kind: str
) -> None:
    """The write says which lock file and what is there; nothing is written, nothing stays open."""
    lock = f".locks/{stripe_of('a.txt'):03x}"
    place = storage.root / lock
    make, said = PLANTS[kind]
    try:
        make(place, stack)
    except PermissionError:  # pragma: no cover  # no device files but as root
        pytest.skip("cannot make a device file here")
    planted = place.lstat()
    before = _fds()
    with pytest.raises(NotAFileError) as raised:
        async with asyncio.timeout(BOUND):
            await write_bytes(storage, "a.txt", b"new", track=None)
    assert str(raised.value) == (
        f"{lock}: {said}, not a regular file: move it away, a lock file belongs there"
    )
    assert _fds() <= before
    assert not (storage.root / "a.txt").exists()
    assert place.lstat() == planted
    if place.is_dir() and not place.is_symlink():
        place.rmdir()
    else:
        place.unlink()
    await write_bytes(storage, "a.txt", b"new")
    assert await read_bytes(storage, "a.txt") == b"new"
