"""Storage: opening, reading and writing, copy, move and delete, their errors, info and listing."""

import asyncio
import errno
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from _storage_helpers import (
    DAY,
    OPERATIONS,
    PARTIAL,
    Operation,
    age,
    sha256,
)
from persistence._files.paths import storage_errors
from persistence.exceptions import (
    FileMissingError,
    NotAFileError,
    StorageError,
    StoragePermissionError,
    ValidationError,
)
from persistence.storage import (
    BACKUPS_DIR,
    TEMP_DIR,
    Storage,
    backup,
    clean_temp,
    copy,
    delete,
    info,
    list_backups,
    list_files,
    move,
    open_storage,
    prune_backups,
    read_bytes,
    read_text,
    write_bytes,
    write_text,
)

# --- opening ---------------------------------------------------------------------------------


async def test_open_storage_creates_root_and_reserved_folders(tmp_path: Path) -> None:
    """Opening a storage creates the root and its .backups/ and .tmp/ folders."""
    storage = await open_storage(tmp_path / "a" / "b")
    assert storage.root == tmp_path / "a" / "b"
    assert storage.backups_dir == storage.root / BACKUPS_DIR == storage.root / ".backups"
    assert storage.temp_dir == storage.root / TEMP_DIR == storage.root / ".tmp"
    assert storage.backups_dir.is_dir()
    assert storage.temp_dir.is_dir()


async def test_open_storage_resolves_the_root(tmp_path: Path) -> None:
    """The root is stored absolute with its symlinks resolved, and opening twice is fine."""
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    storage = await open_storage(str(tmp_path / "alias"))
    assert storage.root == tmp_path / "real"
    assert await open_storage(tmp_path / "real") == storage


async def test_a_storage_made_by_hand_has_the_root_open_storage_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Storage(path)` made without open_storage holds its root absolute and resolved too.

    A relative root followed the working folder, and an absolute path inside a root
    spelled through a symlink or '..' was refused as leading outside it.
    """
    real = (await open_storage(tmp_path / "real")).root
    (tmp_path / "alias").symlink_to(real)
    monkeypatch.chdir(tmp_path)
    for given in (Path("real"), tmp_path / "alias", tmp_path / "real" / ".." / "real"):
        storage = Storage(given)
        assert storage.root == real
        await write_bytes(storage, real / "a.txt", b"a")
        assert await read_bytes(storage, real / "a.txt") == b"a"
    with pytest.raises(StorageError, match="NUL"):
        Storage(Path("a\0b"))


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, a folder of no new files")
async def test_open_storage_where_no_folder_can_be_made_says_so() -> None:
    """`/proc/self` is there, but takes no new folder: it was said to be missing."""
    with pytest.raises(StorageError, match=r"/proc/self: its folder \S+ cannot be made") as refused:
        await open_storage("/proc/self")
    assert not isinstance(refused.value, FileMissingError)


async def test_open_storage_refuses_a_file_as_root(tmp_path: Path) -> None:
    """A root that is a file is refused with an error naming it."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="file"):
        await open_storage(tmp_path / "file")


# --- reading and writing ---------------------------------------------------------------------


async def test_text_round_trips_with_its_encoding(storage: Storage) -> None:
    """Text written with an encoding is stored in it and reads back the same."""
    text = "naïve café, ½ €"
    await write_text(storage, "notes.txt", text, encoding="utf-16")
    assert (storage.root / "notes.txt").read_bytes() == text.encode("utf-16")
    assert await read_text(storage, "notes.txt", encoding="utf-16") == text
    await write_text(storage, "plain.txt", text)
    assert await read_text(storage, "plain.txt") == text


async def test_bytes_round_trip_and_folders_are_created(storage: Storage) -> None:
    """Bytes written to a nested path create its folders and read back the same."""
    data = bytes(range(256)) * 10
    written = await write_bytes(storage, "a/b/c.bin", data)
    assert await read_bytes(storage, "a/b/c.bin") == data
    assert written.path == "a/b/c.bin"
    assert written.size == len(data)
    assert written.sha256 == sha256(data)
    assert not written.is_directory


async def test_write_replaces_content_and_keeps_the_mode(storage: Storage) -> None:
    """Overwriting a file replaces its content and keeps its permission bits."""
    await write_bytes(storage, "run.sh", b"old")
    (storage.root / "run.sh").chmod(0o751)
    await write_bytes(storage, "run.sh", b"new")
    assert (storage.root / "run.sh").read_bytes() == b"new"
    assert stat.S_IMODE((storage.root / "run.sh").stat().st_mode) == 0o751


async def test_absolute_paths_inside_the_root_work(storage: Storage) -> None:
    """An absolute path inside the root names the same file as the relative one."""
    await write_text(storage, str(storage.root / "abs.txt"), "x")
    assert await read_text(storage, "abs.txt") == "x"
    assert (await info(storage, storage.root / "abs.txt")).path == "abs.txt"


async def test_undecodable_text_is_a_storage_error(storage: Storage) -> None:
    """Reading bytes that are not valid in the encoding names the path and chains the cause."""
    await write_bytes(storage, "bad.txt", b"\xff\xfe\xfa")
    with pytest.raises(StorageError, match=r"bad\.txt") as caught:
        await read_text(storage, "bad.txt")
    assert isinstance(caught.value.__cause__, UnicodeDecodeError)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("café", "ascii"),
        ("a\udc80", "utf-8"),
        ("a" * 64 + ".example", "idna"),
    ],  # idna: UnicodeError
)
async def test_unencodable_text_is_a_validation_error_and_writes_nothing(
    storage: Storage, text: str, encoding: str
) -> None:
    """Text the encoding cannot hold is a bad argument, refused before any folder or file."""
    with pytest.raises(
        ValidationError, match=rf"write_text\.text: cannot be written in '{encoding}'"
    ):
        await write_text(storage, "new/deep/out.txt", text, encoding=encoding)
    assert not (storage.root / "new").exists()


@pytest.mark.parametrize("encoding", ["no-such-codec", "rot13", "base64", "undefined", "utf-8\0"])
async def test_unknown_encoding_is_a_validation_error(storage: Storage, encoding: str) -> None:
    """An encoding Python does not know, or not a text one, is refused before any file work.

    `undefined` is a codec that refuses all text, and a NUL makes the lookup a ValueError:
    neither may escape as a raw UnicodeError or ValueError.
    """
    with pytest.raises(ValidationError, match=r"write_text\.encoding"):
        await write_text(storage, "x.txt", "x", encoding=encoding)
    with pytest.raises(ValidationError, match=r"read_text\.encoding"):
        await read_text(storage, "x.txt", encoding=encoding)
    assert not (storage.root / "x.txt").exists()


# --- copy, move, delete ----------------------------------------------------------------------


async def test_copy_duplicates_content_mode_and_times(storage: Storage) -> None:
    """A copy has the same bytes, mode and modification time, and the source stays."""
    await write_bytes(storage, "src.bin", b"payload")
    (storage.root / "src.bin").chmod(0o640)
    age(storage.root / "src.bin", DAY)
    copied = await copy(storage, "src.bin", "dir/dst.bin")
    source, target = storage.root / "src.bin", storage.root / "dir/dst.bin"
    assert target.read_bytes() == source.read_bytes() == b"payload"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_mtime == pytest.approx(source.stat().st_mtime)
    assert copied.sha256 == sha256(b"payload")
    assert copied.path == "dir/dst.bin"


async def test_copy_overwrites_the_target(storage: Storage) -> None:
    """Copying over an existing file replaces it."""
    await write_bytes(storage, "a", b"aaa")
    await write_bytes(storage, "b", b"b")
    await copy(storage, "a", "b")
    assert (storage.root / "b").read_bytes() == b"aaa"


async def test_move_renames_the_file(storage: Storage) -> None:
    """A moved file is at its new path only, with its content."""
    await write_bytes(storage, "old.txt", b"content")
    moved = await move(storage, "old.txt", "new/place.txt")
    assert not (storage.root / "old.txt").exists()
    assert (storage.root / "new/place.txt").read_bytes() == b"content"
    assert moved.path == "new/place.txt"
    assert moved.sha256 == sha256(b"content")


async def test_delete_removes_the_file(storage: Storage) -> None:
    """A deleted file is gone, and deleting it again is a FileMissingError."""
    await write_bytes(storage, "gone.txt", b"x")
    await delete(storage, "gone.txt")
    assert not (storage.root / "gone.txt").exists()
    with pytest.raises(FileMissingError, match=r"gone\.txt"):
        await delete(storage, "gone.txt")


# --- errors ----------------------------------------------------------------------------------

NEEDS_A_FILE = sorted(set(OPERATIONS) - {"info", "list_backups", "prune_backups"})
SOURCE_MUST_EXIST = sorted(
    {"read_bytes", "read_text", "copy from", "move from", "delete", "info", "backup"}
)


@pytest.mark.parametrize("operation", SOURCE_MUST_EXIST)
async def test_a_missing_file_is_named(storage: Storage, operation: str) -> None:
    """Every operation on a missing file raises FileMissingError naming the path."""
    with pytest.raises(FileMissingError) as caught:
        await OPERATIONS[operation](storage, "nope/missing.txt")
    assert caught.value.path == "nope/missing.txt"
    assert "nope/missing.txt" in str(caught.value)


@pytest.mark.parametrize("operation", NEEDS_A_FILE)
async def test_a_folder_where_a_file_is_needed_is_refused(storage: Storage, operation: str) -> None:
    """A folder given where a file is needed raises NotAFileError naming it, and survives."""
    await write_bytes(storage, "inside.txt", b"inside")
    await write_bytes(storage, "folder/keep.txt", b"keep")
    with pytest.raises(NotAFileError) as caught:
        await OPERATIONS[operation](storage, "folder")
    assert caught.value.path == "folder"
    assert (storage.root / "folder/keep.txt").read_bytes() == b"keep"


@pytest.mark.parametrize("operation", NEEDS_A_FILE)
async def test_a_file_used_as_a_folder_is_refused(storage: Storage, operation: str) -> None:
    """A path going through a file as if it were a folder raises a StorageError naming it."""
    await write_bytes(storage, "inside.txt", b"inside")
    with pytest.raises((NotAFileError, FileMissingError)) as caught:
        await OPERATIONS[operation](storage, "inside.txt/below")
    assert caught.value.path == "inside.txt/below"
    assert (storage.root / "inside.txt").read_bytes() == b"inside"


TRANSLATIONS: list[tuple[OSError, type[StorageError]]] = [
    (FileNotFoundError(errno.ENOENT, "No such file"), FileMissingError),
    (IsADirectoryError(errno.EISDIR, "Is a directory"), NotAFileError),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory"), NotAFileError),
    (PermissionError(errno.EACCES, "Permission denied"), StoragePermissionError),
    (OSError(errno.ELOOP, "Too many levels of symbolic links"), NotAFileError),
    (OSError(errno.ENOSPC, "No space left on device"), StorageError),
]


@pytest.mark.parametrize(("error", "expected"), TRANSLATIONS)
def test_os_errors_are_translated_in_one_place(
    error: OSError, expected: type[StorageError]
) -> None:
    """Each OS error becomes its storage error, naming the path and chained to the cause."""
    with pytest.raises(StorageError) as caught, storage_errors("some/file.txt"):
        raise error
    assert type(caught.value) is expected
    assert caught.value.path == "some/file.txt"
    assert caught.value.__cause__ is error


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
async def test_an_unreadable_file_is_a_permission_error(storage: Storage) -> None:
    """Reading a file the process may not read raises StoragePermissionError naming it."""
    await write_bytes(storage, "secret.txt", b"x")
    (storage.root / "secret.txt").chmod(0)
    with pytest.raises(StoragePermissionError, match=r"secret\.txt"):
        await read_bytes(storage, "secret.txt")


# --- info and listing ------------------------------------------------------------------------


async def test_info_describes_a_file(storage: Storage) -> None:
    """Info gives the relative path, size, SHA-256 and aware UTC times of a file."""
    before = datetime.now(UTC) - timedelta(seconds=2)
    await write_bytes(storage, "d/f.bin", b"12345")
    described = await info(storage, "d/f.bin")
    assert described.path == "d/f.bin"
    assert described.size == 5
    assert described.sha256 == sha256(b"12345")
    assert not described.is_directory
    for moment in (described.created_at, described.modified_at):
        assert moment.tzinfo == UTC
        assert before <= moment <= datetime.now(UTC) + timedelta(seconds=2)


async def test_a_files_creation_is_never_after_its_content(storage: Storage) -> None:
    """A chmod, a rename or a copy keeping times left `created_at` after `modified_at`.

    Linux's stat has no birth time: the inode's last change (`st_ctime`) stood in for it, and
    moved with each change of the file's metadata, not of its content.
    """
    written = await write_bytes(storage, "f.txt", b"x")
    await asyncio.sleep(0.05)
    (storage.root / "f.txt").chmod(0o600)
    changed = await info(storage, "f.txt")
    assert changed.modified_at == written.modified_at
    assert changed.created_at == written.created_at
    past = datetime(2020, 1, 2, tzinfo=UTC).timestamp()
    os.utime(storage.root / "f.txt", (past, past))
    await copy(storage, "f.txt", "g.txt")  # keeps the times
    for described in (await info(storage, "f.txt"), await info(storage, "g.txt")):
        assert described.created_at <= described.modified_at
        assert described.modified_at == datetime(2020, 1, 2, tzinfo=UTC)


async def test_info_describes_a_folder_and_the_root(storage: Storage) -> None:
    """A folder, the root included, has no hash and size 0."""
    await write_bytes(storage, "d/f.bin", b"x")
    folder = await info(storage, "d")
    root = await info(storage, ".")
    assert (folder.path, folder.is_directory, folder.sha256, folder.size) == ("d", True, None, 0)
    assert (root.path, root.is_directory, root.sha256) == (".", True, None)


async def test_info_reads_backups(storage: Storage) -> None:
    """A backup can be described and read back through its path."""
    await write_bytes(storage, "f.txt", b"v1")
    copied = await backup(storage, "f.txt")
    assert (await info(storage, copied)).sha256 == sha256(b"v1")
    assert await read_bytes(storage, copied) == b"v1"


async def _tree(storage: Storage) -> None:
    for name in ["a.txt", "b.py", "sub/c.txt", "sub/deep/d.txt", "sub/deep/e.py"]:
        await write_text(storage, name, name)
    (storage.root / ".tmp/scratch.txt").write_text("scratch")
    (storage.root / "sub" / PARTIAL).write_text("partial")


async def test_list_files_matches_one_level(storage: Storage) -> None:
    """Not recursive, the pattern matches whole relative paths, sorted, without reserved ones."""
    await _tree(storage)
    assert [e.path for e in await list_files(storage)] == ["a.txt", "b.py", "sub"]
    assert [e.path for e in await list_files(storage, "*.txt")] == ["a.txt"]
    assert [e.path for e in await list_files(storage, "sub/*")] == ["sub/c.txt", "sub/deep"]
    assert [e.path for e in await list_files(storage, "sub/deep/*.py")] == ["sub/deep/e.py"]


async def test_list_files_recursively(storage: Storage) -> None:
    """Recursive, the pattern matches at any depth; reserved folders and partials stay hidden."""
    await _tree(storage)
    found = await list_files(storage, "*.txt", recursive=True)
    assert [e.path for e in found] == ["a.txt", "sub/c.txt", "sub/deep/d.txt"]
    assert [e.sha256 for e in found] == [sha256(e.path.encode()) for e in found]
    everything = [e.path for e in await list_files(storage, "*", recursive=True)]
    assert everything == [
        "a.txt",
        "b.py",
        "sub",
        "sub/c.txt",
        "sub/deep",
        "sub/deep/d.txt",
        "sub/deep/e.py",
    ]


async def test_a_pattern_ending_in_a_slash_lists_folders_alone(storage: Storage) -> None:
    """`a.txt/` names a folder, as every other call takes it: the file `a.txt` is not listed.

    `pathlib` drops the `/`, and the pattern listed the regular file of that name.
    """
    await _tree(storage)
    assert [e.path for e in await list_files(storage, "a.txt/")] == []
    assert [e.path for e in await list_files(storage, "*/")] == ["sub"]
    assert [e.path for e in await list_files(storage, "sub/*/")] == ["sub/deep"]
    assert [e.path for e in await list_files(storage, "*.txt/", recursive=True)] == []
    assert [e.path for e in await list_files(storage, "*/", recursive=True)] == ["sub", "sub/deep"]


async def test_list_files_shows_only_symlinks_that_stay_inside(
    storage: Storage, tmp_path: Path
) -> None:
    """A symlink leading inside the root is listed; one leading out is not, nor entered."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret.txt").write_text("secret")
    await write_text(storage, "real.txt", "real")
    (storage.root / "inner_link.txt").symlink_to("real.txt")
    (storage.root / "out_link.txt").symlink_to(tmp_path / "outside/secret.txt")
    (storage.root / "out_dir").symlink_to(tmp_path / "outside")
    (storage.root / "to_backups").symlink_to(storage.root / ".backups")
    (storage.root / "dangling").symlink_to("nowhere")
    found = await list_files(storage, "*", recursive=True)
    assert [e.path for e in found] == ["inner_link.txt", "real.txt"]
    assert found[0].sha256 == found[1].sha256 == sha256(b"real")
    assert await list_files(storage, "out_dir/*") == []


# --- one thread hop --------------------------------------------------------------------------

HOPPING: dict[str, Operation] = {
    **{name: OPERATIONS[name] for name in ["read_bytes", "read_text", "write_bytes", "info"]},
    "write_text": lambda s, p: write_text(s, p, "t"),
    "copy": lambda s, p: copy(s, p, "other.txt"),
    "move": lambda s, p: move(s, p, "other.txt"),
    "delete": delete,
    "backup": backup,
    "backup and prune": lambda s, p: backup(s, p, keep=1),
    "list_backups": list_backups,
    "prune_backups": lambda s, _: prune_backups(s, "inside.txt", keep=1),
    "list_files": lambda s, _: list_files(s, "*", recursive=True),
    "clean_temp": lambda s, _: clean_temp(s, older_than_hours=1),
    "open_storage": lambda s, _: open_storage(s.root),
}


@pytest.mark.parametrize("operation", sorted(HOPPING))
async def test_each_operation_is_one_thread_hop(
    storage: Storage, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each operation does its file work in exactly one worker-thread call.

    Counted where every hop goes, `asyncio.to_thread` or not: the loop's `run_in_executor`.
    """
    await write_bytes(storage, "inside.txt", b"inside")
    hops: list[object] = []
    loop = asyncio.get_running_loop()
    real_run_in_executor = loop.run_in_executor

    def counting(executor: Any, function: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401 - mirrors run_in_executor
        hops.append(function)
        return real_run_in_executor(executor, function, *args)

    monkeypatch.setattr(loop, "run_in_executor", counting)
    await HOPPING[operation](storage, "inside.txt")
    assert len(hops) == 1
