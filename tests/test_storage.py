import asyncio
import errno
import hashlib
import os
import stat
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from persistence._files.paths import storage_errors
from persistence.exceptions import (
    FileMissingError,
    NotAFileError,
    OutsideRootError,
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

Operation = Callable[[Storage, str], Awaitable[object]]

PARTIAL = ".x.txt.0123456789abcdef.storage-partial"
DAY = 24 * 3600


@pytest.fixture(name="storage")
async def storage_fixture(tmp_path: Path) -> Storage:
    """Open a fresh storage at tmp_path/root."""
    return await open_storage(tmp_path / "root")


def sha256(data: bytes) -> str:
    """Return the hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def snapshot(folder: Path, *, skip: Path | None = None) -> dict[str, bytes | str]:
    """Every entry under `folder` (except under `skip`): file bytes, link targets, folders."""
    found: dict[str, bytes | str] = {}
    for here, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(here) / name
            if skip is not None and path.is_relative_to(skip):
                continue
            key = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[key] = f"-> {path.readlink()}"
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = path.read_bytes()
    return found


def age(path: Path, seconds: float) -> None:
    """Set the access and modification times of `path` (not of a symlink's target) back."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


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


async def test_unencodable_text_is_a_storage_error_and_writes_nothing(storage: Storage) -> None:
    """Text the encoding cannot hold is refused before the file is touched."""
    with pytest.raises(StorageError, match=r"ascii\.txt") as caught:
        await write_text(storage, "ascii.txt", "café", encoding="ascii")
    assert isinstance(caught.value.__cause__, UnicodeEncodeError)
    assert not (storage.root / "ascii.txt").exists()


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

OPERATIONS: dict[str, Operation] = {
    "read_bytes": read_bytes,
    "read_text": read_text,
    "write_bytes": lambda s, p: write_bytes(s, p, b"written"),
    "write_text": lambda s, p: write_text(s, p, "written"),
    "copy from": lambda s, p: copy(s, p, "copied.txt"),
    "copy to": lambda s, p: copy(s, "inside.txt", p),
    "move from": lambda s, p: move(s, p, "moved.txt"),
    "move to": lambda s, p: move(s, "inside.txt", p),
    "delete": delete,
    "info": info,
    "backup": backup,
    "list_backups": list_backups,
    "prune_backups": lambda s, p: prune_backups(s, p, keep=0),
}
READING = {"read_bytes", "read_text", "copy from", "info"}
MUTATING = sorted(set(OPERATIONS) - READING)
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


# --- backups ---------------------------------------------------------------------------------


async def test_backup_copies_under_the_backups_folder(storage: Storage) -> None:
    """A backup is a timestamped copy under .backups/, mirroring the file's folders."""
    await write_bytes(storage, "docs/a.txt", b"version 1")
    copied = await backup(storage, "docs/a.txt")
    assert copied.parent == storage.root / ".backups/docs"
    assert copied.name.startswith("a.txt.")
    assert copied.name.endswith(".bak")
    assert copied.read_bytes() == b"version 1"
    assert (storage.root / "docs/a.txt").read_bytes() == b"version 1"


async def test_backups_are_listed_oldest_first_and_restorable(storage: Storage) -> None:
    """Backups list oldest first, even within one microsecond, and copying one back restores."""
    copies = []
    for version in range(4):
        await write_text(storage, "a.txt", f"v{version}")
        copies.append(await backup(storage, "a.txt"))
    assert await list_backups(storage, "a.txt") == copies
    await copy(storage, copies[1], "a.txt")
    assert await read_text(storage, "a.txt") == "v1"


async def test_prune_keeps_the_newest_backups(storage: Storage) -> None:
    """Pruning removes all but the newest `keep` backups of that file and returns them."""
    for version in range(5):
        await write_text(storage, "a.txt", f"v{version}")
        await backup(storage, "a.txt")
    everything = await list_backups(storage, "a.txt")
    removed = await prune_backups(storage, "a.txt", keep=2)
    assert removed == everything[:3]
    left = await list_backups(storage, "a.txt")
    assert left == everything[3:]
    assert [path.read_text() for path in left] == ["v3", "v4"]


async def test_backup_with_keep_prunes(storage: Storage) -> None:
    """Backing up with `keep` leaves only that many backups of the file."""
    for version in range(3):
        await write_text(storage, "a.txt", f"v{version}")
        await backup(storage, "a.txt", keep=1)
    left = await list_backups(storage, "a.txt")
    assert [path.read_text() for path in left] == ["v2"]


async def test_prune_leaves_everything_else_alone(storage: Storage, tmp_path: Path) -> None:
    """Pruning one file's backups spares other files' backups, look-alikes and outside files."""
    await write_text(storage, "a.txt", "a")
    await write_text(storage, "sub/a.txt", "sub a")
    await backup(storage, "a.txt")
    await backup(storage, "sub/a.txt")
    backups = storage.root / ".backups"
    planted = {
        backups / "xa.txt.20200101T000000000000Z.bak": "other file",
        backups / "a.txt.old": "not a backup name",
        backups / "a.txt.20200101T000000000000Z.bak.keep": "longer name",
        backups / "a.txt.2020.bak": "short stamp",
        storage.root / "a.txt.20200101T000000000000Z.bak": "at the root, outside .backups",
        tmp_path / "a.txt.20200101T000000000000Z.bak": "outside the storage",
    }
    for path, text in planted.items():
        path.write_text(text)
        age(path, 30 * DAY)
    (backups / "a.txt.20200101T000000000001Z.bak").mkdir()  # a folder with a backup's name
    outside = snapshot(tmp_path, skip=storage.root)
    removed = await prune_backups(storage, "a.txt", keep=0)
    assert len(removed) == 1
    assert all(path.read_text() == text for path, text in planted.items())
    assert (backups / "a.txt.20200101T000000000001Z.bak").is_dir()
    assert len(await list_backups(storage, "sub/a.txt")) == 1
    assert snapshot(tmp_path, skip=storage.root) == outside


async def test_prune_refuses_a_negative_keep(storage: Storage) -> None:
    """Keeping a negative number of backups is a ValueError."""
    await write_text(storage, "a.txt", "a")
    with pytest.raises(ValueError, match="keep"):
        await prune_backups(storage, "a.txt", keep=-1)


async def test_a_file_without_backups_has_none(storage: Storage) -> None:
    """Listing or pruning the backups of a file never backed up finds nothing."""
    await write_text(storage, "deep/er/a.txt", "a")
    assert await list_backups(storage, "deep/er/a.txt") == []
    assert await prune_backups(storage, "deep/er/a.txt", keep=0) == []


# --- clean-up --------------------------------------------------------------------------------


async def test_clean_temp_removes_only_old_temporary_files(
    storage: Storage, tmp_path: Path
) -> None:
    """Old files in .tmp/ and old partial writes go; new ones and everything else stay."""
    temp = storage.root / ".tmp"
    (temp / "nested").mkdir()
    old = [temp / "old.txt", temp / "nested/old.log", storage.root / "sub" / PARTIAL]
    young = [temp / "young.txt", storage.root / PARTIAL]
    bystanders = [
        storage.root / "old.tmp",
        storage.root / ".old.tmp",
        storage.root / "tmp/old.txt",
        storage.root / "sub/.x.txt.0123456789abcdeg.storage-partial",
        storage.root / "sub/x.txt.0123456789abcdef.storage-partial",
        storage.root / ".backups/old.txt",
        storage.root / ".backups" / PARTIAL,
        tmp_path / "old.txt",
        tmp_path / PARTIAL,
    ]
    for path in [*old, *young, *bystanders]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(path.name)
    for path in [*old, *bystanders]:
        age(path, 3 * 3600)
    (temp / "link").symlink_to(tmp_path / "old.txt")
    age(temp / "link", 3 * 3600)
    outside = snapshot(tmp_path, skip=storage.root)

    removed = await clean_temp(storage, older_than_hours=2)

    assert removed == sorted([*old, temp / "link"])
    assert not any(path.exists() for path in old)
    assert all(path.read_text() == path.name for path in [*young, *bystanders])
    assert (temp / "nested").is_dir()
    assert snapshot(tmp_path, skip=storage.root) == outside


async def test_clean_temp_without_a_temp_folder_still_removes_partial_writes(
    storage: Storage,
) -> None:
    """With .tmp/ removed, clean-up has nothing there to do and still takes old partial files.

    It raised FileMissingError for .tmp/, and removed no partial file anywhere.
    """
    (storage.root / ".tmp").rmdir()
    partial = storage.root / "sub" / PARTIAL
    partial.parent.mkdir()
    partial.write_bytes(b"x")
    age(partial, 3 * 3600)
    assert await clean_temp(storage, older_than_hours=2) == [partial]
    assert not (storage.root / ".tmp").exists()


async def test_clean_temp_refuses_negative_ages(storage: Storage) -> None:
    """A negative age is a ValueError."""
    with pytest.raises(ValueError, match="older_than_hours"):
        await clean_temp(storage, older_than_hours=-1)


# --- confinement -----------------------------------------------------------------------------


@attrs.frozen
class Trapped:
    """A storage beside files outside it, with symlinks leading out: shared, never changed."""

    storage: Storage
    base: Path
    outside: dict[str, bytes | str]
    inside: dict[str, bytes | str]

    def unchanged(self) -> bool:
        """Tell whether nothing inside or outside the root has changed since it was made."""
        root = self.storage.root
        return snapshot(self.base, skip=root) == self.outside and snapshot(root) == self.inside


@pytest.fixture(name="trapped", scope="module")
def trapped_fixture(tmp_path_factory: pytest.TempPathFactory) -> Trapped:
    """Plant files outside a root and symlinks out of it, once for the confinement tests."""
    base = tmp_path_factory.mktemp("trapped")
    storage = asyncio.run(open_storage(base / "root"))
    outside = base / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (base / "root2").mkdir()
    (base / "root2/secret.txt").write_text("sibling with a common prefix")
    root = storage.root
    (root / "inside.txt").write_bytes(b"inside")
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "chain_mid").symlink_to(outside / "secret.txt")
    (root / "chain").symlink_to("chain_mid")
    (root / "sub").mkdir()
    (root / "sub/up").symlink_to("../..")
    (root / "sub/relative").symlink_to("../../outside/secret.txt")
    (root / "to_backups").symlink_to(".backups")
    (root / "to_tmp").symlink_to(root / ".tmp")
    (root / ".tmp/x.txt").write_text("temp")
    (root / ".backups/x.txt").write_text("backup")
    return Trapped(storage, base, snapshot(base, skip=root), snapshot(root))


ESCAPES = [
    "../outside/secret.txt",
    "../outside/new.txt",
    "./../outside/secret.txt",
    "sub/../../outside/secret.txt",
    "../root2/secret.txt",
    "{base}/outside/secret.txt",
    "{base}/outside/new.txt",
    "{base}/root/../outside/secret.txt",
    "{base}/root2/secret.txt",
    "{base}",
    "/",
    "link_file",
    "link_dir/secret.txt",
    "link_dir/new.txt",
    "link_dir/deeper/new.txt",
    "chain",
    "chain_mid",
    "sub/up/outside/secret.txt",
    "sub/relative",
    "sub/up",
]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_paths_out_of_the_root_are_refused(
    trapped: Trapped, operation: str, path: str
) -> None:
    """A path leading out of the root, by '..', absolutely or by symlinks, is refused untouched."""
    shown = path.format(base=trapped.base)
    with pytest.raises(OutsideRootError) as caught:
        await OPERATIONS[operation](trapped.storage, shown)
    assert caught.value.path == shown
    assert shown in str(caught.value)
    assert trapped.unchanged()


RESERVED_PATHS = [
    ".tmp/x.txt",
    ".backups/x.txt",
    ".tmp/new.txt",
    "sub/../.tmp/x.txt",
    "to_tmp/x.txt",
    "to_backups/x.txt",
    "{root}/.backups/x.txt",
    PARTIAL,
    f"sub/{PARTIAL}",
]


@pytest.mark.parametrize("path", RESERVED_PATHS)
@pytest.mark.parametrize("operation", MUTATING)
async def test_reserved_folders_cannot_be_changed_through_file_operations(
    trapped: Trapped, operation: str, path: str
) -> None:
    """Writing, moving, deleting or backing up inside .tmp/ or .backups/ is refused."""
    with pytest.raises(OutsideRootError, match="reserved"):
        await OPERATIONS[operation](trapped.storage, path.format(root=trapped.storage.root))
    assert trapped.unchanged()


BAD_PATHS = ["", "a\0b", "inside.txt\0/../../outside/secret.txt"]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_empty_paths_and_nul_bytes_are_refused(
    trapped: Trapped, operation: str, path: str
) -> None:
    """An empty path or one holding a NUL byte is refused, naming it."""
    with pytest.raises(StorageError, match=r"empty path|NUL") as caught:
        await OPERATIONS[operation](trapped.storage, path)
    assert caught.value.path == path
    assert trapped.unchanged()


ROOT_ITSELF = [".", "./", "sub/..", "{root}", "{root}/sub/.."]


@pytest.mark.parametrize("path", ROOT_ITSELF)
@pytest.mark.parametrize("operation", sorted(set(OPERATIONS) - {"info"}))
async def test_the_root_itself_is_not_a_file(trapped: Trapped, operation: str, path: str) -> None:
    """The root given where a file is needed is refused with NotAFileError."""
    with pytest.raises(NotAFileError, match="storage root"):
        await OPERATIONS[operation](trapped.storage, path.format(root=trapped.storage.root))
    assert trapped.unchanged()


PATTERNS = ["../*", "../outside/*", "sub/../../*", "/etc/*", "/*", "*/../../*"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("recursive", [False, True])
async def test_glob_patterns_out_of_the_root_are_refused(
    trapped: Trapped, pattern: str, *, recursive: bool
) -> None:
    """A pattern with '..' or an absolute pattern is refused, naming it."""
    with pytest.raises(OutsideRootError) as caught:
        await list_files(trapped.storage, pattern, recursive=recursive)
    assert caught.value.path == pattern


async def test_a_symlink_loop_is_an_error(storage: Storage) -> None:
    """A symlink loop is a StorageError naming the path, not a hang."""
    (storage.root / "loop_a").symlink_to("loop_b")
    (storage.root / "loop_b").symlink_to("loop_a")
    with pytest.raises(StorageError) as caught:
        await read_bytes(storage, "loop_a")
    assert caught.value.path == "loop_a"


@pytest.mark.parametrize("pattern", ["", ".", "a\0"])
async def test_empty_patterns_are_refused(storage: Storage, pattern: str) -> None:
    """An empty pattern, or one with a NUL byte, is a StorageError."""
    with pytest.raises(StorageError, match=r"empty pattern|NUL"):
        await list_files(storage, pattern)


async def test_a_temp_folder_swapped_for_a_symlink_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    """When .tmp/ is replaced by a symlink out, clean-up refuses and the files there survive."""
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "old.txt").write_text("keep me")
    age(victims / "old.txt", 30 * DAY)
    (storage.root / ".tmp").rmdir()
    (storage.root / ".tmp").symlink_to(victims)
    with pytest.raises(OutsideRootError, match=r"\.tmp"):
        await clean_temp(storage, older_than_hours=0)
    assert (victims / "old.txt").read_text() == "keep me"
    with pytest.raises(OutsideRootError, match=r"\.tmp"):
        await open_storage(storage.root)


async def test_a_backups_folder_swapped_for_a_symlink_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    """When .backups/ or a folder in it leads out, backing up and pruning refuse."""
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "a.txt.20200101T000000000000Z.bak").write_text("keep me")
    await write_text(storage, "a.txt", "a")
    await write_text(storage, "sub/a.txt", "a")
    (storage.root / ".backups/sub").symlink_to(victims)
    for operation in (backup, list_backups, lambda s, p: prune_backups(s, p, keep=0)):
        with pytest.raises(OutsideRootError, match="backups"):
            await operation(storage, "sub/a.txt")
    (storage.root / ".backups/sub").unlink()
    (storage.root / ".backups").rmdir()
    (storage.root / ".backups").symlink_to(victims)
    for operation in (backup, list_backups, lambda s, p: prune_backups(s, p, keep=0)):
        with pytest.raises(OutsideRootError, match="backups"):
            await operation(storage, "a.txt")
    assert [path.name for path in victims.iterdir()] == ["a.txt.20200101T000000000000Z.bak"]
    assert (victims / "a.txt.20200101T000000000000Z.bak").read_text() == "keep me"
