"""A path ending in '/' names a folder, as on POSIX: never a file of that name."""

import pytest

from persistence.exceptions import FileMissingError, NotAFileError, StorageError
from persistence.storage import (
    Storage,
    backup,
    copy,
    delete,
    info,
    list_files,
    move,
    read_bytes,
    write_bytes,
)


@pytest.mark.parametrize("path", ["docs/", "docs/.", "sub/docs/", "sub//docs//"])
async def test_a_write_to_a_path_ending_in_a_slash_makes_no_file(
    storage: Storage, path: str
) -> None:
    """`docs/` wrote a file called `docs`; it is refused, nothing made."""
    with pytest.raises(FileMissingError, match="names a folder, and none is there"):
        await write_bytes(storage, path, b"x")
    assert await list_files(storage, "*", recursive=True) == []


@pytest.mark.parametrize("suffix", ["/", "/.", "//"])
async def test_a_file_named_with_a_trailing_slash_is_refused_by_every_operation(
    storage: Storage, suffix: str
) -> None:
    """`a.txt/` is no file: reading, copying, moving, deleting and backing it up refuse it."""
    await write_bytes(storage, "a.txt", b"kept")
    path = "a.txt" + suffix
    calls = [
        read_bytes(storage, path),
        copy(storage, path, "b.txt"),
        copy(storage, "a.txt", path),
        move(storage, path, "b.txt"),
        delete(storage, path),
        backup(storage, path),
        info(storage, path),
    ]
    for call in calls:
        with pytest.raises(NotAFileError, match=r"names a folder, but a\.txt is a regular file"):
            await call
    assert await read_bytes(storage, "a.txt") == b"kept"
    assert [entry.path for entry in await list_files(storage, "*", recursive=True)] == ["a.txt"]


async def test_a_folder_named_with_a_trailing_slash_is_still_a_folder(storage: Storage) -> None:
    """`info` of `d/` describes the folder `d`; a write to `d/` is refused as before."""
    await write_bytes(storage, "d/a.txt", b"x")
    assert (await info(storage, "d/")).is_directory
    assert (await info(storage, "d/./")).is_directory
    with pytest.raises(StorageError):
        await write_bytes(storage, "d/", b"x")
