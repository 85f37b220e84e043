"""The tree below the root: listings, `verify`, backups, and the clean-up of scratch files.

Each walks by folder descriptors, never through a symlink, leaving out the reserved folders
and partial writes. A symlink in place of a folder of `.backups/` or of `.tmp/` is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import stat
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Final

from persistence._files.content import Partial, describe_at, hash_fd
from persistence._files.locks import Change, unlink_unheld
from persistence._files.paths import (
    BACKUPS_DIR,
    CACHE_DIR,
    FOLDER_DEPTH,
    NO_FOLLOW_ERRORS,
    RESERVED,
    TEMP_DIR,
    FileInfo,
    Spot,
    Written,
    check_path,
    is_partial_name,
    is_plain_path,
    is_reserved,
    locate,
    lstat,
    no_folder,
    open_folder,
    open_folders,
    open_root,
    owned,
    partial_name,
    storage_errors,
    truncate,
)
from persistence._guards import home_problem
from persistence._loop import sorted_in_pieces
from persistence.exceptions import (
    FileMissingError,
    InvalidPathError,
    NotAFileError,
    OutsideRootError,
    StorageError,
)


def walk_tree(root_fd: int) -> Iterator[tuple[str, list[str], list[str], int]]:
    """Walk the tree below the root by descriptors, never through a symlink, reserved left out.

    Yields the folder's relative path ('' for the root), its sub-folders (to prune in
    place), its other entries and its descriptor.
    """
    for folder, dirnames, filenames, dir_fd in walk_folders(root_fd):
        if not folder:
            dirnames[:] = [name for name in dirnames if not is_reserved(name)]
            filenames[:] = [name for name in filenames if not is_reserved(name)]
        yield folder, dirnames, filenames, dir_fd


def walk_folders(top_fd: int) -> Iterator[tuple[str, list[str], list[str], int]]:
    """Walk a folder's tree top-down, as `os.fwalk` does, without following a symlink.

    Without recursion, and so without Python's limit on it: `os.fwalk` failed with a bare
    `RecursionError` about 1,000 folders deep. A descriptor is open for each folder on the
    way down, and a tree deeper than `FOLDER_DEPTH` is refused as one the store never makes.
    A folder that vanishes, or becomes a symlink, before it is entered is passed over, and so
    is one it may not enter, as `os.fwalk` passes over them.
    """
    # Each folder entered: its relative path, its descriptor, and the sub-folders it has left.
    levels: list[tuple[str, int, Iterator[str]]] = []
    try:
        folder, fd = "", os.dup(top_fd)
        while True:
            dirnames, filenames = _folder_entries(fd)
            levels.append((folder, fd, iter(())))
            yield folder, dirnames, filenames, fd
            levels[-1] = (folder, fd, iter(list(dirnames)))  # as pruned by the caller
            entered = _enter_next(levels)
            if entered is None:
                return
            folder, fd = entered
    finally:
        for _, fd, _ in levels:
            os.close(fd)


def _enter_next(levels: list[tuple[str, int, Iterator[str]]]) -> tuple[str, int] | None:
    """Open the next sub-folder to walk, closing the folders done with; None when all are."""
    while levels:
        parent, parent_fd, pending = levels[-1]
        name = next(pending, None)
        if name is None:
            levels.pop()
            os.close(parent_fd)
            continue
        folder = f"{parent}/{name}" if parent else name
        try:
            fd = os.open(name, _FOLDER_FLAGS, dir_fd=parent_fd)
        except OSError:  # as `os.fwalk`: one it may not enter is passed over
            continue  # gone, or a file or a symlink (O_NOFOLLOW) since it was listed, or locked
        if len(levels) > FOLDER_DEPTH:  # the root and FOLDER_DEPTH folders are open
            os.close(fd)
            raise StorageError(folder, f"is more than {FOLDER_DEPTH} folders deep, past the walk")
        return folder, fd
    return None


def _folder_entries(fd: int) -> tuple[list[str], list[str]]:
    """Split a folder's entries into its sub-folders and the rest; none if it cannot be read."""
    dirnames: list[str] = []
    filenames: list[str] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                (dirnames if entry.is_dir(follow_symlinks=False) else filenames).append(entry.name)
    except OSError:
        return [], []  # as `os.fwalk`: a folder it may not read is walked as empty
    return dirnames, filenames


_FOLDER_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _entry(root: Path, dir_fd: int, name: str, path: str, *, again: bool = True) -> FileInfo | None:
    """Describe a listed entry; None for what a listing leaves out, such as a link leading out."""
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(info.st_mode):
            return describe_at(dir_fd, name, path, path)
        with locate(root, path) as spot:  # listed under its own path, not its target's
            return describe_at(spot.dir_fd, spot.require(), path, path)
    except (FileNotFoundError, FileMissingError, NotAFileError, OutsideRootError):
        return None  # vanished meanwhile, a FIFO or socket, or a link leading out or nowhere
    except OSError as error:
        if error.errno not in NO_FOLLOW_ERRORS:
            raise
        # A file made a symlink between the look and the open: looked at once more, as it is
        # now; the whole listing failed.
        return _entry(root, dir_fd, name, path, again=False) if again else None


def list_entries(root: Path, pattern: str, *, recursive: bool) -> list[FileInfo]:
    """Entries whose relative path matches `pattern` (checked), as `storage.list_files` says.

    A pattern that ends in `/` matches folders alone, as a shell's glob does: `pathlib` drops
    the `/`, and `a.txt/` listed the regular file `a.txt`, which every other call refuses. So
    does one that ends in `**`, as `Path.glob` has it.
    """
    glob = _glob_parts(pattern, recursive=recursive)
    depth = None if "**" in glob else len(glob)
    folders_only = pattern.endswith("/") or glob[-1] == "**"
    found: list[FileInfo] = []
    with storage_errors(pattern), open_root(root) as root_fd:
        for folder, dirnames, filenames, dir_fd in walk_tree(root_fd):
            level = len(folder.split("/")) + 1 if folder else 1
            dirnames.sort()
            for name in [*dirnames, *sorted_in_pieces(filenames)]:
                if is_partial_name(name):
                    continue
                path = PurePosixPath(folder, name)
                if not glob_matches(path.parts, glob):
                    continue
                entry = _entry(root, dir_fd, name, path.as_posix())
                if entry is not None and (entry.is_directory or not folders_only):
                    found.append(entry)
            if depth is not None and level >= depth:
                dirnames.clear()
    return sorted_in_pieces(found, key=lambda entry: entry.path)


def _glob_parts(pattern: str, *, recursive: bool) -> tuple[str, ...]:
    """Split a glob into its parts; recursive, it matches the end of a path (`**/` before it).

    `**` twice in a row is `**` once: each stands for any number of folders.
    """
    parts = ("**", *PurePosixPath(pattern).parts) if recursive else PurePosixPath(pattern).parts
    return tuple(p for i, p in enumerate(parts) if not (p == "**" and parts[i - 1 : i] == ("**",)))


def glob_matches(parts: Sequence[str], glob: Sequence[str]) -> bool:
    """Tell whether a path's parts match a glob's, whole, as `Path.glob` matches them.

    `**` as a whole part stands for any number of folders, none included; any other part is
    matched by `fnmatchcase` (`*`, `?`, `[...]`, case-sensitive). Before, `pathlib`'s `match`
    took `**` as one part: `**/*.txt` missed `a.txt`, found by `Path.glob` and `Path.rglob`.
    One pass over the path, a step per part of the glob: no pattern makes it backtrack.
    """
    # reach[j]: the parts read so far match the glob's first j parts
    reach = [True]
    for part in glob:
        reach.append(reach[-1] and part == "**")
    for name in parts:
        after = [False]
        for j, part in enumerate(glob):
            if part == "**":  # it ends here, or it goes on past this name
                after.append(after[j] or reach[j + 1])
            else:
                after.append(reach[j] and fnmatchcase(name, part))
        reach = after
    return reach[-1]


def _hashed(root: Path, name: str) -> Written | None:
    """Hash the regular file at `name`, by its real path; None when the root holds none there."""
    try:
        with (
            locate(root, name, reserved_ok=True, links=False) as spot,
            storage_errors(name),
            owned(spot.open_file()) as fd,
        ):
            return hash_fd(fd)
    except (FileMissingError, NotAFileError, OutsideRootError, InvalidPathError):
        return None  # no regular file inside the root (nor a name longer than its disk takes)


def scan(
    root: Path, recorded: dict[str, Written], unchecked: frozenset[str] = frozenset()
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Compare regular files on disk with `recorded`: (changed, missing, new, malformed), sorted.

    A recorded path out of the form the store records (`is_plain_path`) is `malformed`: it
    is checked against no file, as walking it would check another path's; so is each of
    `unchecked`, a record that breaks the model's rules, and its file is not new. A record
    names a file by its real path: a symlink on its way, or at its end, leads to another file.
    """
    changed: list[str] = []
    missing: list[str] = []
    malformed = sorted({name for name in recorded if not is_plain_path(name)} | unchecked)
    for name, expected in sorted_in_pieces(recorded.items()):
        if not is_plain_path(name):
            continue
        actual = _hashed(root, name)
        if actual is None:
            missing.append(name)
        elif actual.size != expected.size or expected.sha256 not in {"", actual.sha256}:
            changed.append(name)
    new: list[str] = []
    with storage_errors("."), open_root(root) as root_fd:
        for folder, _, filenames, dir_fd in walk_tree(root_fd):
            for name in filenames:
                info = lstat(dir_fd, name)
                if info is None or not stat.S_ISREG(info.st_mode) or is_partial_name(name):
                    continue
                path = f"{folder}/{name}" if folder else name
                if path not in recorded and path not in unchecked:
                    new.append(path)
    return changed, missing, sorted_in_pieces(new), malformed


_BACKUP_STAMP: Final = "%Y%m%dT%H%M%S%fZ"
_BACKUP_RE: Final = r"\.(\d{8}T\d{12}Z)(?:-(\d+))?\.bak"
_BACKUP_STEM_MAX: Final = 200  # bytes of a name kept whole in its backups' names (255 at most)
_SHORTENED_RE: Final = re.compile(r".*~[0-9a-f]{32}", re.DOTALL)


def system_root_problem(raw: str) -> InvalidPathError | None:
    """Give the error of a root whose real path is the file system's root: `/`, `//`, `/tmp/..`.

    Or a symlink to it. The reserved folders would be made there, among the system's own,
    and a walk of the tree (a sweep, `verify`, a clean-up of scratch files) would walk it all.
    """
    real = Path(os.path.realpath(raw))
    if real.parent != real:
        return None
    reason = f"is the file system's root ({str(real)!r} once resolved): give the store a folder"
    return InvalidPathError(raw, f"{reason} of its own")


def root_place_problem(given: object) -> StorageError | None:
    """Give the error of a root that is, or lies under, something there that is no folder.

    Or of a root that is the file system's root (`system_root_problem`), or that cannot be made
    where it lies: a folder name longer than the file system takes, or a folder to make it (or
    the reserved folders it lacks) in that refuses this process new entries. It makes nothing:
    `open_persistence` asks it before it makes the database.
    """
    raw = check_path(given)
    if (problem := system_root_problem(raw)) is not None:
        return problem
    root = Path(raw).absolute()
    for place in [*reversed(root.parents), root]:
        if (found := no_folder(place)) is not None:
            where = "the storage root" if place == root else str(place)
            return StorageError(raw, f"{where} {found}, not a folder")
    there = os.path.exists  # False on any error, a name too long included
    missing = list(itertools.takewhile(lambda place: not there(place), [root, *root.parents]))
    if not missing:  # the root is there: only the reserved folders it lacks are made in it
        reserved = _reserved_problem(root)  # one there and no real folder: refused by the open
        if reserved is not None or all(there(root / name) for name in RESERVED):
            return reserved
        above = root
    else:
        above = missing[-1].parent  # the nearest folder there, in which the first is made
        longest = max(len(os.fsencode(place.name)) for place in missing)
        if longest > (limit := os.pathconf(above, "PC_NAME_MAX")):
            reason = f"a folder name of {longest} bytes is too long (at most {limit})"
            return StorageError(raw, reason)
    if not os.access(above, os.W_OK | os.X_OK):
        return StorageError(raw, f"{above} does not let this process make folders in it")
    return None


def _reserved_problem(root: Path) -> StorageError | None:
    """Give the open's error for a reserved name in `root` that is there and no real folder."""
    try:
        with storage_errors(str(root)), open_root(root) as root_fd:
            for name in sorted(RESERVED):
                with suppress(FileNotFoundError):  # made by the open
                    os.close(open_folder(root_fd, name, create=False, shown=str(root / name)))
    except StorageError as error:
        return error
    return None


def _make_root(root: Path, raw: str) -> None:
    """Make the root and the folders above it, naming the place that is no folder if one is."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        problem = root_place_problem(raw)
        if problem is not None:
            raise problem from error
        raise


def check_root(given: object) -> str:
    """Check a storage root as `check_path` does, and refuse one that only a mistake writes.

    Blank, white space at either end or a line end anywhere (an env file with CRLF line ends),
    or a start of `~`, which only a shell expands: each was made as a folder of that name.
    """
    root = check_path(given)
    if not root.strip():
        raise InvalidPathError(root, f"is blank: {root!r}")
    if root != root.strip() or "\n" in root or "\r" in root:
        reason = f"has white space at an end or a line end (an env file's CRLF?): {root!r}"
        raise InvalidPathError(root, reason)
    if (problem := home_problem(root)) is not None:
        raise InvalidPathError(root, f"{problem}: {root!r}")
    return root


def make_storage_dirs(given: object) -> Path:
    """Create the root and its reserved folders; return the real root.

    A root that is the file system's root is refused first (`system_root_problem`).
    """
    raw = check_root(given)
    if (problem := system_root_problem(raw)) is not None:
        raise problem
    root = Path(raw).absolute()
    with storage_errors(raw):
        _make_root(root, raw)
        real = Path(os.path.realpath(root))
        with open_root(real) as root_fd:
            for name in sorted(RESERVED):
                try:
                    shown = str(root / name)
                    os.close(open_folder(root_fd, name, create=True, shown=shown))
                except FileNotFoundError as error:  # the root is there: its disk makes none
                    why = f"its folder {name} cannot be made there ({error.strerror})"
                    raise StorageError(raw, why) from error
    return real


def backup_stem(name: str) -> str:
    """Return the start of the names of `name`'s backups, short enough to add a timestamp.

    A long name keeps its first bytes and gains `~` and 32 hex digits of its hash. Names
    shaped like such a result are hashed too, so two files never share a stem.
    """
    if len(os.fsencode(name)) <= _BACKUP_STEM_MAX and not _SHORTENED_RE.fullmatch(name):
        return name
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f"{truncate(name, _BACKUP_STEM_MAX - 33)}~{digest}"


def stage_backup(root: Path, path: str, now: datetime, keep: int | None) -> Change[Path]:
    """Stage a copy of a file to `.backups/<path>.<UTC timestamp>.bak`, pruned to any `keep`.

    The copy is made in staging; it is named, and the backups pruned, under the lock of the
    file's backups (`_backups_lock`), which a prune takes too: a prune between a backup's link
    and its check took the backup for replaced, and a backup of an older stamp pruned itself.
    """
    with ExitStack() as stack:
        spot = stack.enter_context(locate(root, path))
        with storage_errors(path):
            source_fd = stack.enter_context(owned(spot.open_file()))
            folder = open_folders(stack, spot.root_fd, [BACKUPS_DIR, *spot.folders], create=True)
            if folder is None:  # pragma: no cover  # made just now; removed meanwhile
                raise FileMissingError(BACKUPS_DIR, "the backups folder vanished")
            info = os.fstat(source_fd)
            stem = backup_stem(spot.require())
            stamp = now.astimezone(UTC).strftime(_BACKUP_STAMP)
            names = itertools.chain(
                [f"{stem}.{stamp}.bak"], (f"{stem}.{stamp}-{n}.bak" for n in itertools.count(1))
            )
            # Filled in .tmp/, where clean_temp removes what a kill leaves, then moved here
            # under the first free name: another backup at the same instant never replaces it.
            partial = Partial.create(_temp_folder(stack, spot.root_fd), f"{stem}.{stamp}.bak")
            stack.callback(partial.discard)
            hash_fd(source_fd, partial.fd)
            os.fchmod(partial.fd, stat.S_IMODE(info.st_mode))
            os.fsync(partial.fd)

        def apply() -> Path:
            target = partial.commit_new(folder, names)
            # The times come once it is renamed: dated like an old source, the partial file
            # would look abandoned to clean_temp.
            os.utime(partial.fd, ns=(info.st_atime_ns, info.st_mtime_ns))
            if keep is not None:
                _prune(folder, _backup_names(folder, stem), keep, own=target)
            return root.joinpath(BACKUPS_DIR, *spot.folders, target)

        return Change(spot.root_fd, [_backups_lock(spot.path)], apply, stack.pop_all(), path)


def _backups_lock(path: str) -> str:
    """Name the lock that a file's backups are named and pruned under: not the file's own.

    `path` is the file's path as the root's walk gives it (`Spot.path`): `f.bin`, `./f.bin` and
    its absolute path reach the same backups, so they take the same lock.
    """
    return f"{BACKUPS_DIR}/{path}"


def _backup_names(folder: int, stem: str) -> list[str]:
    """Give the names of the backups of stem `stem` in `folder`, oldest first."""
    pattern = re.compile(re.escape(stem) + _BACKUP_RE, re.DOTALL)
    found: list[tuple[str, int, str]] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and not entry.is_dir(follow_symlinks=False):
                found.append((match[1], int(match[2] or 0), entry.name))
    return [name for _, _, name in sorted(found)]


def _prune(folder: int, names: list[str], keep: int, own: str | None = None) -> list[str]:
    """Remove all but the newest `keep` of `names` (oldest first); give the removed.

    A backup's own prune (`own`) removes neither it nor one newer than it: a backup of an older
    stamp, named after a newer one, would otherwise remove the copy of the newer content. More
    than `keep` are left then, until the next backup or prune.
    """
    doomed = names[: max(len(names) - keep, 0)]
    if own in names:
        doomed = doomed[: names.index(own)]
    for name in doomed:
        with suppress(FileNotFoundError):
            os.unlink(name, dir_fd=folder)  # a symlink goes itself, never its target
    if doomed:
        os.fsync(folder)
    return doomed


@contextmanager
def _backups_of(root: Path, path: str) -> Iterator[tuple[Spot, Path, int | None, str]]:
    """Give where `path` leads, the folder of a file's backups, open (or None), their stem.

    The folder is opened without following a symlink, and closed on leaving.
    """
    with locate(root, path) as spot, storage_errors(path), ExitStack() as stack:
        folders = [BACKUPS_DIR, *spot.folders, *spot.missing]
        folder = open_folders(stack, spot.root_fd, folders, create=False)
        stem = "" if folder is None else backup_stem(spot.require())
        yield spot, root.joinpath(*folders), folder, stem


def list_backup_files(root: Path, path: str) -> list[Path]:
    """Backups of a file (which need not exist any more), oldest first."""
    with _backups_of(root, path) as (_, where, folder, stem):
        return [] if folder is None else [where / name for name in _backup_names(folder, stem)]


def stage_prune(root: Path, path: str, keep: int) -> Change[list[Path]]:
    """Stage removing all but the newest `keep` backups of a file, under its backups' lock."""
    with ExitStack() as stack:
        spot, where, folder, stem = stack.enter_context(_backups_of(root, path))

        def apply() -> list[Path]:
            if folder is None:
                return []
            return [where / name for name in _prune(folder, _backup_names(folder, stem), keep)]

        return Change(spot.root_fd, [_backups_lock(spot.path)], apply, stack.pop_all(), path)


def unlink_if_old(folder: Path, name: str, dir_fd: int, cutoff: float) -> Path | None:
    """Unlink `name` (a file or a symlink, never a folder) if last changed by `cutoff`.

    A write's partial file that a process still holds is left, however old: by its age
    alone, a write waiting for its path's lock, or a long backup, lost it and failed.
    """
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode) or info.st_mtime > cutoff:
            return None
        if stat.S_ISREG(info.st_mode) and is_partial_name(name):
            return folder / name if unlink_unheld(dir_fd, name) else None
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    return folder / name


def _temp_folder(stack: ExitStack, root_fd: int) -> int:
    """Open `.tmp/`, made if need be and never through a symlink; closed with `stack`."""
    temp = open_folders(stack, root_fd, [TEMP_DIR], create=True)
    if temp is None:  # pragma: no cover  # made just now; removed meanwhile
        raise FileMissingError(TEMP_DIR, "the temporary folder vanished")
    return temp


def set_aside(root_fd: int, dir_fd: int, name: str) -> None:
    """Move `name` in `dir_fd`, whatever it is, into `.tmp/` and remove it there.

    The rename moves a symlink itself and a folder whole, never following either, and
    stays below the root; the moved thing is then removed by descriptors (a folder tree
    too, never through a symlink in it). Of what a kill or a refusal leaves in `.tmp/`,
    `clean_temp` removes the files and symlinks.
    """
    with ExitStack() as stack:
        temp = _temp_folder(stack, root_fd)
        aside = partial_name(name)
        os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=temp)
        info = lstat(temp, aside)
        if info is not None and stat.S_ISDIR(info.st_mode):
            shutil.rmtree(aside, dir_fd=temp, ignore_errors=True)
        else:
            with suppress(FileNotFoundError):
                os.unlink(aside, dir_fd=temp)


def clean_temp_files(root: Path, cutoff: float) -> list[Path]:
    """Remove files under `.tmp/`, and partial writes anywhere, last changed before `cutoff`.

    Anywhere is every folder of the tree and `.cache/incoming/`, where the artifact cache and
    the counterexample store fill theirs: one killed there was left to an eviction.
    """
    removed: list[Path | None] = []
    with storage_errors(TEMP_DIR), open_root(root) as root_fd, ExitStack() as stack:
        temp = open_folders(stack, root_fd, [TEMP_DIR], create=False)  # None: none to clean
        if temp is not None:
            for folder, dirnames, filenames, dir_fd in walk_folders(temp):
                here = root / TEMP_DIR / folder
                removed += (unlink_if_old(here, name, dir_fd, cutoff) for name in dirnames)
                removed += (unlink_if_old(here, name, dir_fd, cutoff) for name in filenames)
        for folder, _, filenames, dir_fd in walk_tree(root_fd):
            partials = filter(is_partial_name, filenames)
            removed += (unlink_if_old(root / folder, name, dir_fd, cutoff) for name in partials)
        incoming = None
        with suppress(OutsideRootError, NotAFileError):  # a link or a file there: none to clean
            incoming = open_folders(stack, root_fd, [CACHE_DIR, "incoming"], create=False)
        if incoming is not None:
            here = root / CACHE_DIR / "incoming"
            partials = filter(is_partial_name, _folder_entries(incoming)[1])
            removed += (unlink_if_old(here, name, incoming, cutoff) for name in partials)
    return sorted_in_pieces(path for path in removed if path is not None)
