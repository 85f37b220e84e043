"""A path ending in '/' names a folder, as on POSIX: never a file of that name.

So does a path whose last symlink holds a target ending in '/': the kernel refuses to open
such a link to a file (ENOTDIR), and the walk follows it as the kernel would.
"""

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
    read_text,
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


def _link(storage: Storage, name: str, target: str) -> None:
    """Plant the symlink `name` at the storage's root; `{root}` in `target` is its path."""
    (storage.root / name).symlink_to(target.format(root=storage.root))


@pytest.mark.parametrize("target", ["docs/", "docs/.", "sub/docs//", "{root}/docs/"])
async def test_a_write_through_a_link_to_a_folders_name_makes_no_file(
    storage: Storage, target: str
) -> None:
    """A link to `docs/` made and recorded a regular file `docs`; it is refused, nothing made."""
    _link(storage, "link", target)
    with pytest.raises(FileMissingError, match=r"symbolic link to .*names a folder, and none"):
        await write_bytes(storage, "link", b"x")
    assert not (storage.root / "docs").exists()
    assert not (storage.root / "sub").exists()


@pytest.mark.parametrize("target", ["a.txt/", "a.txt/.", "a.txt//", "{root}/a.txt/"])
async def test_a_link_to_a_files_name_with_a_trailing_slash_is_refused_by_every_operation(
    storage: Storage, target: str
) -> None:
    """A link to `a.txt/` read `a.txt`, where the kernel's open of the link fails."""
    await write_bytes(storage, "a.txt", b"kept")
    _link(storage, "link", target)
    with pytest.raises(NotADirectoryError):
        (storage.root / "link").read_bytes()
    calls = [
        read_bytes(storage, "link"),
        read_text(storage, "link"),
        copy(storage, "link", "b.txt"),
        copy(storage, "a.txt", "link"),
        info(storage, "link"),
        backup(storage, "link"),
    ]
    for call in calls:
        with pytest.raises(NotAFileError, match=r"names a folder, but a\.txt is a regular file"):
            await call
    assert await read_bytes(storage, "a.txt") == b"kept"
    assert not (storage.root / "b.txt").exists()


async def test_a_link_to_a_folders_name_with_a_trailing_slash_leads_to_the_folder(
    storage: Storage,
) -> None:
    """Only the last link's target counts, and one to a real folder is that folder."""
    await write_bytes(storage, "d/a.txt", b"x")
    _link(storage, "to_d", "d/")
    _link(storage, "via", "to_d")  # a link to that link: its own target ends in no '/'
    assert (await info(storage, "to_d")).is_directory
    assert (await info(storage, "via")).is_directory
    assert await read_bytes(storage, "to_d/a.txt") == b"x"
