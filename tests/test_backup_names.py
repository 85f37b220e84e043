"""A backup's or a restore's file named as SQLite or a database URL reads no file is refused.

`:memory:`, a `file:` URI or a URL (`sqlite:///x.bak`, `postgresql://...`) is what `--database`
refuses, or reads as another file: given as a backup's FILE, each was taken as a file of that
very name in the working folder, a backup "to :memory:" written there as `./:memory:` and
reported done. Each is refused before anything is made, naming the argument and why; `./NAME`
(or an absolute path) names a file so named, and works, in a folder so named too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _backup_helpers import (
    assert_same,
    migrated_postgres,  # noqa: F401  # the `postgres` fixture, used by name
    names,
    run,
)
from persistence import ValidationError, connect, migrate
from persistence.__main__ import main
from persistence.backup import backup_database, restore_database

if TYPE_CHECKING:
    from persistence import Database

REFUSED = {
    ":memory:": "SQLite's name for a database in memory",
    "file:z.bak": "is a SQLite URI",
    "FILE:z.bak": "is a SQLite URI",
    "file::memory:?cache=shared": "is a SQLite URI",
    "file:///tmp/z.bak": "is a SQLite URI",
    "sqlite:///z.bak": "is a sqlite: URL",
    "sqlite:z.bak": "is a sqlite: URL",
    "postgresql://u:secret@127.0.0.1/db": "is a postgresql: URL",
    "s3://bucket/z.bak": "is a s3: URL",
}
"""Each name refused, with what its refusal says."""


@pytest.fixture(name="here")
def working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder of the test's own, where a relative name would be made."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


@pytest.mark.parametrize("name", list(REFUSED))
async def test_a_backup_to_a_name_that_is_no_file_is_refused_first(
    here: Path, source: Database, name: str
) -> None:
    """backup_database refuses the name, as a str or a Path, naming the argument; nothing made."""
    # A Path keeps one slash of `s3://`: `s3:/bucket/z.bak`, a folder `s3:`, as `--database`.
    for given in (name, Path(name)) if not name.startswith("s3:") else (name,):
        with pytest.raises(ValidationError, match=REFUSED[name]) as caught:
            await backup_database(source, given)
        assert (caught.value.model, caught.value.field) == ("backup", "path")
        assert "secret" not in str(caught.value)
    assert names(here) == []
    assert not (here.parent / "z.bak").exists()


@pytest.mark.parametrize("name", list(REFUSED))
async def test_a_restore_from_a_name_that_is_no_file_is_refused_first(
    here: Path, db: Database, name: str
) -> None:
    """restore_database refuses the name, even where a file of that very name is there."""
    if "/" not in name:  # as an earlier backup "to :memory:" left it
        (here / name).write_bytes(b"")
    before = names(here)
    with pytest.raises(ValidationError, match=REFUSED[name]) as caught:
        await restore_database(db, name)
    assert (caught.value.model, caught.value.field) == ("restore", "path")
    assert "secret" not in str(caught.value)
    assert names(here) == before


@pytest.mark.parametrize("command", ["backup", "restore"])
@pytest.mark.parametrize("name", list(REFUSED))
def test_the_command_line_refuses_the_name_as_a_usage_error(
    here: Path, capsys: pytest.CaptureFixture[str], command: str, name: str
) -> None:
    """Exit 2, naming FILE and why, before the database (missing here) is even looked at."""
    with pytest.raises(SystemExit) as exited:
        main([command, name, "--database", str(here / "app.db")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument FILE" in err
    assert REFUSED[name] in err
    assert "./" in err  # how to name a file so named
    assert "secret" not in err
    assert names(here) == []


async def test_a_file_so_named_is_named_with_dot_slash(
    here: Path, source: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    """`./:memory:` and `./file:z.bak` name files so named: backed up, restored, by both ways."""
    for name in (":memory:", "file:z.bak"):
        report = await backup_database(source, f"./{name}")
        assert report.target == f"./{name}"  # as it names the file again
        assert await run("backup", f"./{name}.2", "--database", source.url) == 0
        again = f"./{name}.2" if name.startswith("file:") else f"{name}.2"  # `:memory:.2` is
        assert f"to {again}:" in capsys.readouterr().out
        for made in (name, f"{name}.2"):
            async with connect(here / made, create=False) as backup:
                await assert_same(source, backup)
    for name, how in ((":memory:", "python"), ("file:z.bak.2", "cli")):
        async with connect(here / f"target-{how}.db") as target:
            await migrate(target)
            if how == "python":
                await restore_database(target, f"./{name}")
            else:
                assert await run("restore", f"./{name}", "--database", target.url) == 0
            await assert_same(source, target)


@pytest.fixture(name="either", params=["sqlite", "postgres"])
def either_engine(request: pytest.FixtureRequest) -> Database:
    """A migrated database of each engine: the filled SQLite one, an empty PostgreSQL one."""
    db: Database = request.getfixturevalue("source" if request.param == "sqlite" else "postgres")
    return db


@pytest.mark.parametrize("folder", ["file:d", "sqlite:d"])
async def test_a_backup_into_a_folder_named_like_a_uri_is_made(
    here: Path, either: Database, folder: str
) -> None:
    """`./file:d/x.bak`: its working file was opened by a relative name SQLite took for a URI.

    The backup failed once made, with "unable to open database file" (or, for `sqlite:d`, an
    invalid URL naming the working folder, which the caller never gave).
    """
    db = either
    (here / folder).mkdir()
    await backup_database(db, f"./{folder}/x.bak")
    assert await run("backup", f"./{folder}/y.bak", "--database", db.url) == 0
    assert names(here / folder) == ["x.bak", "y.bak"]
    for made in ("x.bak", "y.bak"):
        async with connect(here / folder / made, create=False) as backup:
            await assert_same(db, backup)
