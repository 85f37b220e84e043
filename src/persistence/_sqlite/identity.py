"""Which SQLite database a path reaches, and the check that it still reaches the one opened.

A file is named by its device and inode, by any path or link. One name serves the Redis tier's
default namespace (through the change watch), a copy's refusal of a target that is its own
source, and the check that the file a reader opens, or a commit writes, is still the one the
database opened.

A connection keeps the file it opened: deleted, moved, or replaced by a rename, the file lives
on unnamed, and what is written to it afterwards is lost once the connection closes. The
identity taken at open is compared with the path's: one `stat` (a few us, against a commit's
sync of tens to hundreds), before a commit and after it. The inode cannot name another file
meanwhile: the connection holds it open.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from persistence._backend import SQLITE_SIDECARS
from persistence.exceptions import DatabaseError


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Name the file at `path` by its device and inode; None if there is none."""
    try:
        found = os.stat(path)  # noqa: PTH116  # on each commit: a Path costs a third more
    except OSError:
        return None
    return found.st_dev, found.st_ino


@attrs.frozen
class OpenedFile:
    """The file a database opened: its real path, its identity then, and the path it was given."""

    real: str
    identity: tuple[int, int] | None
    path: str

    @property
    def name(self) -> str | None:
        """Name the database as every use of it does, by the file opened; None if none was."""
        found = self.identity
        return None if found is None else f"sqlite:{found[0]}:{found[1]}"

    def check(self, doing: str = "") -> None:
        """Refuse when `real` no longer names the file opened; `doing` begins the message."""
        if file_identity(self.real) != self.identity:
            raise DatabaseError(
                f"{doing}the SQLite database file {self.path!r} is no longer the file this "
                "database opened: it was deleted, moved or replaced meanwhile. Open the "
                "database again"
            )

    def check_write(self) -> None:
        """Refuse a write about to commit: it would go to a file no longer at the path."""
        self.check("not written: ")

    def check_written(self) -> None:
        """Refuse to acknowledge a write that committed as the file left its path."""
        self.check(
            "written to the file this database opened, which left its path as the write "
            "committed, so it is not found there: "
        )


def refuse_odd_sidecars(path: str) -> None:
    """Refuse a database whose `-journal`, `-wal` or `-shm` is there but is no file (a folder).

    SQLite opened such a database, and every write failed as "attempt to write a readonly
    database", which named neither the file nor the cause; a FIFO as its `-journal` held every
    open, reads too, for ever. Links are followed, as SQLite does. A name that cannot be looked
    at (too long, a folder not searchable) is left to SQLite's own open, which says why.
    """
    real = Path(os.path.realpath(path))  # Path.resolve raises RuntimeError on a loop
    if not real.name:  # the root folder itself: SQLite's open says what is wrong
        return
    for end in SQLITE_SIDECARS:
        beside = real.with_name(f"{real.name}{end}")
        try:
            odd = beside.exists() and not beside.is_file()
        except OSError:
            return
        if odd:
            kind = "a folder" if beside.is_dir() else "not a regular file"
            raise DatabaseError(
                f"cannot open SQLite database {path!r}: {beside.name} beside it is {kind}, "
                "where SQLite keeps a file; move it away"
            )
