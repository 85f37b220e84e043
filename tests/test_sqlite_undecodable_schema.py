"""A SQLite file whose malformed schema holds a name that is not UTF-8, refused as a corrupt one.

SQLite's message quotes the name as stored, which sqlite3 cannot decode: it raised a
UnicodeDecodeError in its error's place. Opening caught sqlite3's errors only, so `connect`,
`restore_database` and the command line gave that raw error (a traceback, exit 1), and the
writer connection opened was left open, a descriptor lost at each try.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from _cli_helpers import assert_one_error_line, run
from persistence import DatabaseError, connect, list_runs, migrate, set_config
from persistence.backup import restore_database

_SAID: Final = r"malformed database schema \(t\\xdf\)"
"""SQLite's words, the name's byte that is not UTF-8 escaped."""


def _spoil_schema(file: Path) -> None:
    """Add a table named `t` and byte 0xDF, its definition cut short, by plain SQL."""
    with contextlib.closing(sqlite3.connect(file, isolation_level=None)) as plain:
        plain.execute("CREATE TABLE t (x)")
        plain.execute("PRAGMA writable_schema = ON")
        plain.execute(
            "UPDATE sqlite_master SET name = CAST(x'74df' AS TEXT), sql = 'CREATE TABLE (' "
            "WHERE name = 't'"
        )


@pytest.fixture(name="undecodable")
def undecodable_file(tmp_path: Path) -> Path:
    """A SQLite file whose one table is named `t` and byte 0xDF, its definition cut short."""
    file = tmp_path / "undecodable.db"
    _spoil_schema(file)
    with contextlib.closing(sqlite3.connect(file)) as plain, pytest.raises(UnicodeDecodeError):
        plain.execute("PRAGMA synchronous = FULL")  # sqlite3 cannot decode SQLite's message
    return file


def _descriptors() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
@pytest.mark.parametrize("create", [False, True])
async def test_connect_refuses_it_and_leaves_nothing_open(
    undecodable: Path, *, create: bool
) -> None:
    """Read-only or to write (WAL switched to first), the set-up fails as for a corrupt file."""
    before = _descriptors()
    for _ in range(5):
        with pytest.raises(DatabaseError, match=rf"cannot set up SQLite database .*{_SAID}"):
            async with connect(undecodable, create=create):
                pass  # pragma: no cover  # the open fails
    assert _descriptors() == before


async def test_restore_refuses_it(tmp_path: Path, undecodable: Path) -> None:
    """A restore names the backup file, in SQLite's words, as for any file it cannot read."""
    async with connect(tmp_path / "target.db") as target:
        await migrate(target)
        with pytest.raises(DatabaseError, match=rf"cannot read the backup file .*{_SAID}"):
            await restore_database(target, undecodable)


@pytest.mark.parametrize("command", ["status", "migrate", "backup"])
def test_the_command_line_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, undecodable: Path, command: str
) -> None:
    """Each command that opens the file exits 3 with one error line, no traceback."""
    extra = [str(tmp_path / "copy.db")] if command == "backup" else []
    code, _, err = run(capsys, command, "--database", str(undecodable), *extra)
    assert code == 3
    assert_one_error_line(err)
    assert "malformed database schema (t\\xdf)" in err


async def test_a_schema_made_undecodable_while_open_is_a_database_error(tmp_path: Path) -> None:
    """A schema another program corrupts while the file is open: calls fail as on a corrupt file.

    They raised sqlite3's raw UnicodeDecodeError.
    """
    file = tmp_path / "open.db"
    async with connect(file) as db:
        await migrate(db)
        assert (await list_runs(db)).items == ()
        _spoil_schema(file)
        with pytest.raises(DatabaseError, match=rf"SQLite: {_SAID}"):
            await list_runs(db)
        with pytest.raises(DatabaseError, match=rf"SQLite: {_SAID}"):
            await set_config(db, "s", "k", 1)
