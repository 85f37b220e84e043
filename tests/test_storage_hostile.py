import asyncio
import contextlib
import errno
import functools
import hashlib
import itertools
import math
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from persistence import Database, FileRecord, all_file_records, save_file_record
from persistence._files.paths import FOLDER_DEPTH, is_partial_name, is_reserved
from persistence.cache import open_artifact_cache
from persistence.exceptions import (
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
    PersistenceError,
    StorageError,
    ValidationError,
)
from persistence.models import MAX_KEY_BYTES
from persistence.storage import (
    Storage,
    VerifyReport,
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
    verify,
    write_bytes,
    write_text,
)
from strategies import IN_MEMORY
from strategies.hostile import wrong_types

DAY = 24 * 3600


def tree(root: Path) -> dict[str, bytes | None]:
    """Every entry under `root`, lock files aside: file bytes, None for folders and links."""
    found: dict[str, bytes | None] = {}
    for here, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(here, name)
            key = path.relative_to(root).as_posix()
            if not key.startswith(".locks"):
                plain = path.is_file() and not path.is_symlink()
                found[key] = path.read_bytes() if plain else None
    return found


def age(path: Path, seconds: float) -> None:
    """Set the access and modification times of `path` back by `seconds`."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


# --- special files never hang -------------------------------------------------------------------

SpecialCall = Callable[[Storage, Database], Coroutine[Any, Any, object]]

ON_A_FIFO: dict[str, SpecialCall] = {
    "read_bytes": lambda s, _: read_bytes(s, "pipe"),
    "read_text": lambda s, _: read_text(s, "pipe"),
    "tracked read": lambda s, db: read_bytes(s, "pipe", track=db),
    "copy from": lambda s, _: copy(s, "pipe", "copied.txt"),
    "copy over": lambda s, _: copy(s, "a.txt", "pipe"),
    "write over": lambda s, _: write_bytes(s, "pipe", b"x"),
    "move from": lambda s, _: move(s, "pipe", "moved.txt"),
    "delete": lambda s, _: delete(s, "pipe"),
    "info": lambda s, _: info(s, "pipe"),
    "backup": lambda s, _: backup(s, "pipe"),
    "linked read": lambda s, _: read_bytes(s, "link_to_pipe"),
}


async def finish_within(seconds: float, call: Coroutine[Any, Any, object], fifo: Path) -> object:
    """Run `call`, failing the test if it is still waiting after `seconds`.

    A call stuck opening the FIFO is then released by opening its other end, so that a
    regression fails the test instead of hanging the run.
    """
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        for _ in range(100):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            await asyncio.sleep(0.01)
            if task.done():
                break
        with contextlib.suppress(BaseException):
            await task
        pytest.fail(f"still waiting on the FIFO after {seconds} s")
    return task.result()


@pytest.mark.parametrize("operation", sorted(ON_A_FIFO))
async def test_a_fifo_is_refused_at_once(
    storage: Storage, sqlite_db: Database, operation: str
) -> None:
    """Every operation given a FIFO refuses it with NotAFileError instead of waiting for one."""
    await write_bytes(storage, "a.txt", b"a")
    os.mkfifo(storage.root / "pipe")
    (storage.root / "link_to_pipe").symlink_to("pipe")
    with pytest.raises(NotAFileError, match="FIFO"):
        await finish_within(3, ON_A_FIFO[operation](storage, sqlite_db), storage.root / "pipe")
    assert (storage.root / "a.txt").read_bytes() == b"a"
    assert sorted(path.name for path in storage.root.iterdir()) == [
        ".backups",
        ".cache",
        ".locks",
        ".tmp",
        "a.txt",
        "link_to_pipe",
        "pipe",
    ]


async def test_verify_and_listing_pass_over_a_fifo(storage: Storage, sqlite_db: Database) -> None:
    """A FIFO with a record is missing to verify, and listings leave it out, without waiting."""
    os.mkfifo(storage.root / "pipe")
    await save_file_record(sqlite_db, FileRecord(path="pipe", size=0))
    report = await finish_within(3, verify(storage, sqlite_db), storage.root / "pipe")
    assert report == VerifyReport(missing=("pipe",))
    assert await list_files(storage, "*", recursive=True) == []


def _deep_folders(top: Path, depth: int) -> None:
    """Make `depth` nested folders under `top`, one at a time: os.makedirs recurses too."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
    finally:
        os.close(fd)


async def test_a_deep_tree_is_walked_to_the_limit_and_refused_past_it(
    storage: Storage, sqlite_db: Database
) -> None:
    """A store's paths pass through 256 folders at most; a deeper tree is a StorageError.

    `os.fwalk` recursed a level a folder: a tree about 1,000 deep, which anyone writing in the
    root can make, failed the listing, `verify` and `clean_temp` with a bare RecursionError,
    and the store itself wrote one.
    """
    deepest = "d/" * FOLDER_DEPTH + "x.txt"
    await write_text(storage, deepest, "x")
    listed = [entry.path for entry in await list_files(storage, "*", recursive=True)]
    assert listed[-1] == deepest
    assert len(listed) == FOLDER_DEPTH + 1  # its folders, then the file
    with pytest.raises(InvalidPathError, match="passes through 257 folders, more than the 256"):
        await write_text(storage, "d/" + deepest, "x")
    (storage.root / "deep").mkdir()
    try:
        _deep_folders(storage.root / "deep", 1_100)
        for call in (
            list_files(storage, "*", recursive=True),
            verify(storage, sqlite_db),
            clean_temp(storage, older_than_hours=0),
        ):
            with pytest.raises(StorageError, match="more than 256 folders deep"):
                await call
    finally:
        # shutil.rmtree recurses too; GNU rm walks without.
        remover = await asyncio.create_subprocess_exec("rm", "-rf", str(storage.root / "deep"))
        assert await remover.wait() == 0
    assert len(await list_files(storage, "*", recursive=True)) == FOLDER_DEPTH + 1


async def test_a_path_is_as_deep_as_the_folders_it_passes_through(storage: Storage) -> None:
    """Empty and '.' parts pass through no folder, and '..' comes back up one.

    The limit counted the path's parts: `./` 300 times named a file at the root, refused as
    300 folders deep.
    """
    assert (await write_text(storage, "./" * 300 + "f.txt", "x")).path == "f.txt"
    assert (await write_text(storage, "a//" * 200 + "g.txt", "x")).path.count("/") == 200
    assert (await write_text(storage, "b/../" * 300 + "h.txt", "x")).path == "h.txt"
    with pytest.raises(InvalidPathError, match="passes through 257 folders"):
        await write_text(storage, "c/" * 257 + "i.txt", "x")


async def test_a_folder_the_walk_may_not_enter_is_passed_over(
    storage: Storage, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `os.fwalk` passes one over: a folder the process may not enter fails no walk.

    The walk that replaced it failed the whole listing, `verify` and `clean_temp` with a
    permission error (shown here as the kernel gives it to a process that is not root).
    """
    await write_text(storage, "ok/file.txt", "x")
    (storage.root / "locked").mkdir()
    real_open = os.open

    def refusing(path: Any, flags: int, *args: Any, **named: Any) -> int:  # noqa: ANN401  # os.open's own
        if path == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *args, **named)

    monkeypatch.setattr(os, "open", refusing)
    listed = [entry.path for entry in await list_files(storage, "*", recursive=True)]
    assert listed == ["locked", "ok", "ok/file.txt"]
    assert (await verify(storage, sqlite_db)).new == ("ok/file.txt",)
    assert await clean_temp(storage, older_than_hours=0) == []


# --- hard links ---------------------------------------------------------------------------------


async def test_a_move_between_hard_links_of_one_file_removes_the_source(
    storage: Storage, db: Database
) -> None:
    """Moving a file over another hard link of it removes the source's name, and its record."""
    root = storage.root
    for target in ["b.txt", "sub/b.txt"]:
        await write_bytes(storage, "a.txt", b"shared", track=db)
        (root / target).parent.mkdir(exist_ok=True)
        os.link(root / "a.txt", root / target)
        await read_bytes(storage, target, track=db)

        moved = await move(storage, "a.txt", target, track=db)

        assert not (root / "a.txt").exists()
        assert (root / target).read_bytes() == b"shared"
        assert (root / target).stat().st_nlink == 1
        assert moved.path == target
        assert await verify(storage, db) == VerifyReport()
    assert sorted(record.path for record in await all_file_records(db)) == ["b.txt", "sub/b.txt"]
    assert not any(is_partial_name(path.name) for path in root.rglob("*"))


async def test_a_move_onto_itself_keeps_the_file_and_its_record(
    storage: Storage, db: Database
) -> None:
    """Moving a file onto its own path changes nothing, on disk or in the records."""
    await write_bytes(storage, "a.txt", b"stays", track=db)
    before = await all_file_records(db)
    moved = await move(storage, "a.txt", "./a.txt", track=db)
    assert moved.path == "a.txt"
    assert (storage.root / "a.txt").read_bytes() == b"stays"
    after = await all_file_records(db)
    assert [(r.path, r.size, r.hash, r.created_at) for r in after] == [
        (r.path, r.size, r.hash, r.created_at) for r in before
    ]


# --- long names ---------------------------------------------------------------------------------

LONG_NAMES = [
    "n" * 226 + ".txt",
    "x" * 255,
    "é" * 127,
    "日" * 85,
    "a~0123456789abcdef0123456789abcdef",
]


@pytest.mark.parametrize("name", LONG_NAMES, ids=["230", "255", "254 bytes", "CJK 255", "~hash"])
async def test_files_with_the_longest_names_are_written_and_backed_up(
    storage: Storage, name: str
) -> None:
    """A name of up to 255 bytes can be written, backed up, listed, restored and pruned."""
    await write_text(storage, f"d/{name}", "first")
    first = await backup(storage, f"d/{name}")
    await write_text(storage, f"d/{name}", "second")
    second = await backup(storage, f"d/{name}")
    assert await list_backups(storage, f"d/{name}") == [first, second]
    assert all(len(os.fsencode(path.name)) <= 255 for path in (first, second))
    assert first.parent == storage.root / ".backups/d"
    await copy(storage, first, f"d/{name}")
    assert await read_text(storage, f"d/{name}") == "first"
    assert await prune_backups(storage, f"d/{name}", keep=1) == [first]
    assert await list_backups(storage, f"d/{name}") == [second]


async def test_a_name_longer_than_the_disk_takes_is_refused_making_no_folder(
    storage: Storage, sqlite_db: Database
) -> None:
    """A path whose last name has 300 bytes: refused before a folder of it is made.

    The open of the file refused it ("File name too long"), after the folders on its way were
    made: each write, copy or move left them behind.
    """
    await write_text(storage, "a.txt", "A")
    long = "n" * 300
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: write_text(storage, f"w1/w2/{long}", "x"),
        lambda: write_text(storage, f"t1/t2/{long}", "x", track=sqlite_db),
        lambda: copy(storage, "a.txt", f"c1/c2/{long}"),
        lambda: move(storage, "a.txt", f"m1/m2/{long}"),
    ]
    for call in calls:
        with pytest.raises(InvalidPathError, match="has a name of 300 bytes"):
            await call()
    assert sorted(p.name for p in storage.root.iterdir() if not p.name.startswith(".")) == ["a.txt"]
    assert await all_file_records(sqlite_db) == []


async def test_long_names_sharing_a_start_keep_their_own_backups(storage: Storage) -> None:
    """Long names alike in their first 240 characters, or named like a shortened one, never mix."""
    names = ["s" * 240 + "-one", "s" * 240 + "-two"]
    for name in names:
        await write_text(storage, name, name)
        await backup(storage, name)
    [copied] = await list_backups(storage, names[0])
    names.append(copied.name.rsplit(".", 2)[0])  # the start of its backups' names
    await write_text(storage, names[2], names[2])
    await backup(storage, names[2])
    for name in names:
        [only] = await list_backups(storage, name)
        assert only.read_text() == name
    assert len(await prune_backups(storage, names[0], keep=0)) == 1
    assert [len(await list_backups(storage, name)) for name in names] == [0, 1, 1]


# --- arguments that make no sense are refused ---------------------------------------------------

NOT_COUNTS: list[object] = [1.5, float("nan"), True, False, "1", -1, None]


@pytest.mark.parametrize("keep", NOT_COUNTS)
async def test_keep_must_be_a_count(storage: Storage, keep: Any) -> None:  # noqa: ANN401  # hostile
    """A `keep` that is not an int of 0 or more is a ValidationError, and no backup goes."""
    await write_text(storage, "a.txt", "a")
    await backup(storage, "a.txt")
    with pytest.raises(ValidationError, match=r"prune_backups\.keep"):
        await prune_backups(storage, "a.txt", keep=keep)
    if keep is not None:
        with pytest.raises(ValidationError, match=r"backup\.keep"):
            await backup(storage, "a.txt", keep=keep)
    assert len(await list_backups(storage, "a.txt")) == 1


async def test_a_backup_keeping_none_is_refused_before_it_is_made(storage: Storage) -> None:
    """`backup(keep=0)` removed the backup it had just made, and gave its path all the same."""
    await write_text(storage, "a.txt", "a")
    with pytest.raises(ValidationError, match=r"backup\.keep: must be 1 or more, got 0"):
        await backup(storage, "a.txt", keep=0)
    assert await list_backups(storage, "a.txt") == []
    assert await prune_backups(storage, "a.txt", keep=0) == []  # keeping none is pruning's


NOT_AGES: list[object] = [math.nan, math.inf, -math.inf, -1, -0.001, True, "1", None, 10**400]


@pytest.mark.parametrize("hours", NOT_AGES)
async def test_clean_temp_refuses_ages_that_are_not_finite_hours(
    storage: Storage,
    hours: Any,  # noqa: ANN401  # hostile on purpose
) -> None:
    """NaN, infinities, negatives, bools and non-numbers are refused, and nothing is removed."""
    temp = storage.root / ".tmp"
    (temp / "old.txt").write_text("old")
    (temp / "new.txt").write_text("being written")
    age(temp / "old.txt", 3 * 3600)
    partial = storage.root / ".x.txt.0123456789abcdef.storage-partial"
    partial.write_text("in flight")
    before = tree(storage.root)
    with pytest.raises(ValidationError, match=r"clean_temp\.older_than_hours"):
        await clean_temp(storage, older_than_hours=hours)
    assert tree(storage.root) == before


# --- a tracked change of a path no record can hold writes nothing ------------------------------

TOO_LONG = "/".join(["x" * 200] * 6)
NOT_UTF8 = os.fsdecode(b"bad-\xff\xfe.txt")
UNRECORDABLE = [TOO_LONG, NOT_UTF8, f"d/{NOT_UTF8}"]

TrackedCall = Callable[[Storage, str, Database], Awaitable[object]]

TRACKED_TO: dict[str, TrackedCall] = {
    "write_bytes": lambda s, p, db: write_bytes(s, p, b"data", track=db),
    "write_text": lambda s, p, db: write_text(s, p, "data", track=db),
    "copy": lambda s, p, db: copy(s, "source.txt", p, track=db),
    "move": lambda s, p, db: move(s, "source.txt", p, track=db),
}


async def test_a_tracked_change_no_record_can_hold_touches_nothing(
    storage: Storage, db: Database
) -> None:
    """A tracked write, copy or move to a path the record would refuse is refused first."""
    assert len(TOO_LONG.encode()) > MAX_KEY_BYTES
    await write_bytes(storage, "source.txt", b"source", track=db)
    before = tree(storage.root)
    for path in UNRECORDABLE:
        for change in TRACKED_TO.values():
            with pytest.raises(ValidationError, match=r"FileRecord\.path"):
                await change(storage, path, db)
            assert tree(storage.root) == before
    assert [record.path for record in await all_file_records(db)] == ["source.txt"]


async def test_untracked_files_no_record_can_hold_still_work(
    storage: Storage, db: Database
) -> None:
    """Without tracking such a path is an ordinary file; a tracked read refuses it, not a move."""
    for path in UNRECORDABLE:
        await write_bytes(storage, path, b"data")
        assert await read_bytes(storage, path) == b"data"
        with pytest.raises(ValidationError, match=r"FileRecord\.path"):
            await read_bytes(storage, path, track=db)
        await move(storage, path, "plain.txt", track=db)
        await copy(storage, "plain.txt", path)
        await delete(storage, path, track=db)
    assert [record.path for record in await all_file_records(db)] == ["plain.txt"]
    assert await verify(storage, db) == VerifyReport()


# --- reserved folders in any case ---------------------------------------------------------------

RESERVED_SPELLINGS = [".TMP/x.txt", ".Backups/x.txt", ".BACKUPS", ".LOCKS/000", ".Locks/new"]


@pytest.mark.parametrize("path", RESERVED_SPELLINGS)
async def test_reserved_folders_are_refused_in_any_case(storage: Storage, path: str) -> None:
    """On a disk that ignores case, `.TMP` is `.tmp`: writes there are refused as reserved."""
    await write_bytes(storage, "a.txt", b"a")
    before = tree(storage.root)
    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: write_bytes(storage, path, b"x"),
        lambda: copy(storage, "a.txt", path),
        lambda: move(storage, "a.txt", path),
    ]
    for change in changes:
        with pytest.raises(OutsideRootError, match="reserved"):
            await change()
    assert tree(storage.root) == before


# --- only the package's errors, whatever the arguments ------------------------------------------


@attrs.frozen
class Given:
    """What a call under test gets: a storage, a database, and the value being thrown in."""

    s: Storage
    db: Database
    v: Any


AnyCall = Callable[[Given], Awaitable[object]]

ARGUMENTS: dict[str, AnyCall] = {
    "open_storage root": lambda g: open_storage(g.v),
    "read_bytes storage": lambda g: read_bytes(g.v, "a.txt"),
    "read_bytes path": lambda g: read_bytes(g.s, g.v),
    "read_bytes track": lambda g: read_bytes(g.s, "a.txt", track=g.v),
    "read_text encoding": lambda g: read_text(g.s, "a.txt", encoding=g.v),
    "write_bytes data": lambda g: write_bytes(g.s, "w.bin", g.v),
    "write_bytes track": lambda g: write_bytes(g.s, "w.bin", b"w", track=g.v),
    "write_text text": lambda g: write_text(g.s, "w.txt", g.v),
    "write_text encoding": lambda g: write_text(g.s, "w.txt", "w", encoding=g.v),
    "copy source": lambda g: copy(g.s, g.v, "c.txt"),
    "copy target": lambda g: copy(g.s, "a.txt", g.v),
    "move source": lambda g: move(g.s, g.v, "m.txt"),
    "move target": lambda g: move(g.s, "m.txt", g.v),
    "delete path": lambda g: delete(g.s, g.v),
    "info path": lambda g: info(g.s, g.v),
    "list_files pattern": lambda g: list_files(g.s, g.v),
    "list_files recursive": lambda g: list_files(g.s, "*", recursive=g.v),
    "backup path": lambda g: backup(g.s, g.v),
    "backup keep": lambda g: backup(g.s, "a.txt", keep=g.v),
    "list_backups path": lambda g: list_backups(g.s, g.v),
    "prune_backups keep": lambda g: prune_backups(g.s, "a.txt", keep=g.v),
    "clean_temp hours": lambda g: clean_temp(g.s, older_than_hours=g.v),
    "verify db": lambda g: verify(g.s, g.v),
    "verify storage": lambda g: verify(g.v, g.db),
    "a Storage made by hand": lambda g: info(Storage(g.v), "a.txt"),
}


@pytest.mark.parametrize("argument", sorted(ARGUMENTS))
@settings(IN_MEMORY, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=wrong_types())
@example(value=1.5)
@example(value=object())
async def test_any_argument_raises_only_the_packages_errors(
    storage: Storage,
    sqlite_db: Database,
    argument: str,
    value: object,
) -> None:
    """Whatever is passed for an argument, the call works or raises a PersistenceError."""
    await write_bytes(storage, "a.txt", b"a")
    await write_bytes(storage, "m.txt", b"m")
    with contextlib.suppress(PersistenceError):
        await ARGUMENTS[argument](Given(storage, sqlite_db, value))


# --- hostile names ------------------------------------------------------------------------------


def _usable(name: str) -> bool:
    """Whether `name` can be one file name: not '.', '..', reserved or a partial's, <= 255 bytes."""
    return (
        name not in {".", ".."}
        and not is_reserved(name)
        and not is_partial_name(name)
        and len(os.fsencode(name)) <= 255
    )


TEXT_NAMES = st.text(
    st.characters(blacklist_characters="/\0", blacklist_categories=["Cs"]), min_size=1, max_size=90
)
BYTE_NAMES = st.binary(min_size=1, max_size=255).filter(lambda b: b"/" not in b and b"\0" not in b)
FILE_NAMES = st.one_of(TEXT_NAMES, BYTE_NAMES.map(os.fsdecode)).filter(_usable)


@settings(IN_MEMORY, max_examples=40)
@given(name=FILE_NAMES, folder=st.sampled_from(["", "sub/", "a b/ç/"]))
@example(name="日" * 85, folder="")
@example(name="..." + "\\" * 3, folder="")
@example(name=os.fsdecode(b"\xff"), folder="sub/")
async def test_any_file_name_round_trips_inside_the_root(name: str, folder: str) -> None:
    """Any legal name is written, read, listed, backed up and deleted right there, in the root."""
    with tempfile.TemporaryDirectory() as temporary:
        storage = await open_storage(Path(temporary, "root"))
        path = folder + name
        data = hashlib.sha256(os.fsencode(path)).digest()
        written = await write_bytes(storage, path, data)
        assert written.path == path
        assert (storage.root / path).read_bytes() == data
        assert await read_bytes(storage, path) == data
        assert (await info(storage, path)).sha256 == written.sha256
        listed = await list_files(storage, "*", recursive=True)
        assert path in [entry.path for entry in listed]
        copied = await backup(storage, path)
        assert await list_backups(storage, path) == [copied]
        assert await prune_backups(storage, path, keep=0) == [copied]
        await delete(storage, path)
        assert not (storage.root / path).exists()
        assert [entry.name for entry in storage.root.parent.iterdir()] == ["root"]


async def test_a_path_through_a_file_names_the_path(storage: Storage) -> None:
    """Walking through a regular file as if it were a folder names the whole path."""
    await write_bytes(storage, "f", b"f")
    with pytest.raises(NotAFileError) as caught:
        await write_bytes(storage, "f/below/deeper.txt", b"x")
    assert caught.value.path == "f/below/deeper.txt"
    assert "f is a regular file, not a folder" in caught.value.reason


async def test_an_absolute_symlink_into_the_root_through_an_alias_is_followed(
    storage: Storage, tmp_path: Path
) -> None:
    """A path through a symlink outside the root that leads into it names the file inside."""
    (tmp_path / "alias").symlink_to(storage.root)
    await write_bytes(storage, tmp_path / "alias" / "x.txt", b"x")
    assert (await info(storage, "x.txt")).size == 1
    (storage.root / "link").symlink_to(tmp_path / "alias" / "x.txt")
    assert await read_bytes(storage, "link") == b"x"


async def test_a_symlink_loop_in_a_folder_is_an_error(storage: Storage) -> None:
    """A loop of symlinks on the way to a file is a NotAFileError naming the path."""
    (storage.root / "a").symlink_to("b")
    (storage.root / "b").symlink_to("a")
    with pytest.raises(NotAFileError, match="loop") as caught:
        await write_bytes(storage, "a/x.txt", b"x")
    assert caught.value.path == "a/x.txt"
    assert caught.value.__cause__ is None or getattr(caught.value.__cause__, "errno", 0) in {
        0,
        errno.ELOOP,
    }


# --- a root gone or replaced ---------------------------------------------------------------------

ON_THE_ROOT: dict[str, Callable[[Storage], Coroutine[Any, Any, object]]] = {
    "write_bytes": lambda s: write_bytes(s, "a.txt", b"y"),
    "read_bytes": lambda s: read_bytes(s, "a.txt"),
    "copy": lambda s: copy(s, "a.txt", "b.txt"),
    "move": lambda s: move(s, "a.txt", "b.txt"),
    "delete": lambda s: delete(s, "a.txt"),
    "info": lambda s: info(s, "a.txt"),
    "list_files": lambda s: list_files(s, "*"),
    "backup": lambda s: backup(s, "a.txt"),
    "list_backups": lambda s: list_backups(s, "a.txt"),
    "prune_backups": lambda s: prune_backups(s, "a.txt", keep=0),
    "clean_temp": lambda s: clean_temp(s, older_than_hours=1),
}


@pytest.mark.parametrize("now", ["gone", "a file"])
async def test_a_root_removed_or_replaced_by_a_file_is_named(tmp_path: Path, now: str) -> None:
    """Every call on a root that is gone, or is now a file, raises a StorageError naming it.

    The store's walk opened the root outside its translation of OS errors, so most calls
    raised a bare FileNotFoundError or NotADirectoryError, and the others named `.tmp` or
    the pattern instead of the root.
    """
    storage = await open_storage(tmp_path / "root")
    await write_bytes(storage, "a.txt", b"x")
    artifacts = await open_artifact_cache(storage)
    key = await artifacts.put(b"x")
    await asyncio.to_thread(shutil.rmtree, storage.root)
    if now == "a file":
        storage.root.write_bytes(b"not a folder")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        **{name: functools.partial(call, storage) for name, call in ON_THE_ROOT.items()},
        "artifact put": lambda: artifacts.put(b"y"),
        "artifact get": lambda: artifacts.get(key),
        "artifact open": lambda: artifacts.open(key),
        "artifact contains": lambda: artifacts.contains(key),
        "artifact size": artifacts.size,
        "artifact evict": artifacts.evict,
    }
    for name, call in calls.items():
        with pytest.raises(StorageError) as caught:
            await call()
        assert caught.value.path == str(storage.root), name


async def test_a_call_out_of_descriptors_leaves_none_of_its_own_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that runs out of descriptors while it opens the root twice closes the first.

    The first copy of the root's descriptor was left open when the second failed: near the
    limit, each failing call left one more, so the next failed too, and left one more.
    """
    storage = await open_storage(tmp_path / "root")
    await write_text(storage, "a.txt", "a")
    real_dup = os.dup
    calls = itertools.count()

    def every_second_fails(fd: int) -> int:
        if next(calls) % 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_dup(fd)

    before = _open_descriptors()
    monkeypatch.setattr(os, "dup", every_second_fails)
    for _ in range(5):
        with pytest.raises(StorageError, match="Too many open files"):
            await copy(storage, "a.txt", "b.txt")
    monkeypatch.undo()
    assert _open_descriptors() == before


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))
