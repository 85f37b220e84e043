"""The file a backup writes, or a restore reads: its name checked before anything is made.

A name that SQLite or a database URL reads as no file of that name (`:memory:`, a `file:`
URI, `sqlite:///x.bak`) is refused, as `--database` refuses it, rather than taken as a file of
that very name in the working folder. `./NAME`, or an absolute path, names a file so named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from persistence._backend import SQLITE_SIDECARS
from persistence._files.paths import no_folder
from persistence._guards import file_path
from persistence.exceptions import ValidationError

_SCHEME: Final = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")
"""A URL's scheme, as `_urls.engine_of` reads it."""
_URL_SCHEMES: Final = frozenset({"sqlite", "postgres", "postgresql"})
_SO_NAMED: Final = "./ before it, or its absolute path, names a file of that very name"


def name_problem(text: str) -> str | None:
    """Say why `text` names no file to SQLite or to a database URL's reader; None if it does."""
    if text == ":memory:":
        return (
            "':memory:' is SQLite's name for a database in memory, which no file holds: "
            f"name a file ({_SO_NAMED})"
        )
    match = _SCHEME.match(text)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    if scheme == "file":
        return (
            f"{text!r} is a SQLite URI, which is not read as one here: name the file by its "
            f"path ({_SO_NAMED})"
        )
    if scheme in _URL_SCHEMES or text[match.end() :].startswith("//"):
        # Not shown: a Path's `postgresql:/u:pw@host` (one slash) hides no password.
        return (
            f"the name is a {match['scheme']}: URL, where a file's path is wanted: a backup is "
            f"a SQLite file, named by its path ({_SO_NAMED})"
        )
    return None


def shown_name(path: Path) -> str:
    """Give `path` as a name that names it again: `./file:z.bak`, where `file:z.bak` would not."""
    text = str(path)
    return text if name_problem(text) is None else f".{os.sep}{text}"


def file_named(command: str, path: object) -> str:
    """Check a backup's or a restore's `path` argument: a path (`file_path`) naming a file."""
    text = file_path(command, "path", path)
    if (problem := name_problem(text)) is not None:
        raise ValidationError(command, "path", problem)
    return text


def new_backup_file(path: object) -> Path:
    """Check where a backup goes: a new file in an existing folder."""
    target = Path(file_named("backup", path))
    if "\r" in str(target) or "\n" in str(target):  # no database can be opened there
        raise ValidationError(
            "backup",
            "path",
            f"holds a line end (a CRLF line end from an env file?): {str(target)!r}",
        )
    try:
        str(target).encode()
    except UnicodeEncodeError:  # found only once the whole backup was made, and thrown away
        raise ValidationError(
            "backup",
            "path",
            f"{str(target)!r} holds bytes that are not UTF-8, and SQLite opens a file by a "
            "UTF-8 name: name it otherwise",
        ) from None
    if not target.parent.is_dir():
        found = no_folder(target.parent)
        said = "does not exist" if found is None else f"{found}, not a folder"
        raise ValidationError("backup", "path", f"the folder {str(target.parent)!r} {said}")
    longest = _longest_name(target.parent) - len("-journal")
    if len(os.fsencode(target.name)) > longest:
        raise ValidationError(
            "backup",
            "path",
            f"the name is too long: {len(os.fsencode(target.name))} bytes, where SQLite needs "
            f"room for its -journal file beside it in the folder {str(target.parent)!r}: "
            f"at most {longest} bytes",
        )
    if target.exists() or target.is_symlink():
        raise ValidationError(
            "backup", "path", f"{str(target)!r} exists: a backup never overwrites a file"
        )
    sidecar = next((s for s in SQLITE_SIDECARS if target.name.endswith(s)), None)
    if sidecar is not None and target.name != sidecar:
        raise ValidationError(
            "backup",
            "path",
            f"{str(target)!r} is named as SQLite names the {sidecar[1:]} file of a database "
            "beside it, which SQLite deletes when that database is next used: name it otherwise",
        )
    journal = target.with_name(f"{target.name}-journal")
    if journal.exists() or journal.is_symlink():
        raise ValidationError(
            "backup",
            "path",
            f"{str(journal)!r} exists: SQLite would take it for the backup's unfinished "
            "journal, and the backup could not be read",
        )
    return target


def _longest_name(folder: Path) -> int:
    """Give the most bytes a file name may take in `folder`: NAME_MAX, 255 where unknown."""
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):  # pragma: no cover  # a system that does not say
        return 255
