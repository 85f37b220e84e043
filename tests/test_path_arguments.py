"""One check of a path argument's text, whichever part of the package takes the path.

The imports (`import_junit`, `import_ctrf`, `import_jsonl`) raise `ValidationError` naming the
argument; storage, backups and the artifact cache raise `InvalidPathError` naming the path.
Each refused its own set with its own words: the imports took a path no file name can encode
(a lone surrogate), and failed later in `open` with Python's UnicodeEncodeError.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _report_helpers import assert_nothing_written
from persistence import ValidationError, import_junit
from persistence._files.paths import check_path
from persistence._guards import file_path
from persistence.backup import backup_database, restore_database
from persistence.exceptions import InvalidPathError
from persistence.storage import open_storage, read_bytes

if TYPE_CHECKING:
    from persistence import Database


class _FsPath(os.PathLike[str]):
    """An os.PathLike whose `__fspath__` gives what it was given, of any type."""

    def __init__(self, given: object) -> None:
        self._given = given

    def __fspath__(self) -> str:
        return self._given  # type: ignore[return-value]  # the mistake tested


NO_PATHS = {
    "int": (123, "expected a str or os.PathLike, got int"),
    "none": (None, "expected a str or os.PathLike, got NoneType"),
    "bytes": (b"a.xml", "expected a str or os.PathLike, got bytes"),
    "list": (["a.xml"], "expected a str or os.PathLike, got list"),
    "fspath-bytes": (_FsPath(b"a.xml"), "expected a str or os.PathLike, got a path of bytes"),
    "fspath-int": (_FsPath(3), "expected a str or os.PathLike, got a path of int"),
    "empty": ("", "is empty: name a file"),
    "nul": ("a\0b.xml", "holds a NUL character: 'a\\x00b.xml'"),
    "surrogate": ("\ud800.xml", "cannot be encoded as a file name: '\\ud800.xml'"),
}


@pytest.mark.parametrize(("value", "reason"), NO_PATHS.values(), ids=NO_PATHS)
def test_both_checks_refuse_one_set_for_one_reason(value: object, reason: str) -> None:
    """Each check raises its own type, with the same reason, for every text that is no path."""
    with pytest.raises(ValidationError) as refused:
        file_path("import_junit", "path", value)
    with pytest.raises(InvalidPathError) as invalid:
        check_path(value)
    assert refused.value.reason == invalid.value.reason == reason


@pytest.mark.parametrize("value", ["a.xml", Path("a.xml"), _FsPath("a.xml")])
def test_both_checks_give_the_text_of_a_path(value: object) -> None:
    """A str or an os.PathLike of one is taken by both, as its text."""
    assert file_path("import_junit", "path", value) == check_path(value) == "a.xml"


async def test_an_import_refuses_a_path_no_file_name_encodes_by_its_name(db: Database) -> None:
    """The import named neither itself nor its argument: `open` raised UnicodeEncodeError."""
    with pytest.raises(ValidationError, match="cannot be encoded") as refused:
        await import_junit(db, "\ud800.xml")
    assert str(refused.value).startswith("import_junit.path: ")
    await assert_nothing_written(db)


async def test_storage_refuses_a_path_of_bytes_as_an_import_does(tmp_path: Path) -> None:
    """An os.PathLike giving bytes: the same words as the imports', naming the path."""
    storage = await open_storage(tmp_path / "store")
    with pytest.raises(InvalidPathError, match="got a path of bytes"):
        await read_bytes(storage, _FsPath(b"a.xml"))


@pytest.mark.parametrize(("value", "reason"), NO_PATHS.values(), ids=NO_PATHS)
async def test_a_backup_and_a_restore_refuse_what_the_imports_refuse(
    sqlite_db: Database, value: object, reason: str
) -> None:
    """Both by the one check, each naming itself and its argument.

    Their own checks said other words, let an os.PathLike of bytes or a lone surrogate through
    to a TypeError or a UnicodeEncodeError, and restore called '' or a NUL no backup file.
    """
    for name, call in (("backup", backup_database), ("restore", restore_database)):
        with pytest.raises(ValidationError) as refused:
            await call(sqlite_db, value)  # type: ignore[arg-type]  # the mistake tested
        assert (refused.value.model, refused.value.field) == (name, "path")
        assert refused.value.reason == reason
