"""An applied migration whose file was renamed is drift, named by both names, on both engines.

Renamed under its number (`0001_create_a.sql` to `0001_make_a.sql`), its text unchanged, it
went unreported: `status` said up to date, and listed as applied a file no longer there.
Renamed, edited too, it was "edited", its applied name untold. Renumbered (`0002` to `0003`,
the same text), it was "applied but its file is gone", beside a pending file that `--accept`
would have run a second time, and neither said that one was the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli_helpers import assert_one_error_line, run
from _migration_helpers import (
    CREATE_A,
    CREATE_B,
    empty_database,  # noqa: F401  # the `empty` fixture, used by name
    migrations,  # noqa: F401  # the `folder` fixture, used by name
    row_count,
    table_names,
    write,
    write_both,
)
from persistence import Database, MigrationError, migrate, migration_status

MORE = "CREATE TABLE d (id integer PRIMARY KEY);\n"


async def _history(db: Database, folder: Path) -> list[tuple[int, str]]:
    status = await migration_status(db, package_folder=folder)
    return [(a.version, a.name) for a in status.applied]


@pytest.mark.parametrize("edited", [False, True], ids=["same text", "edited too"])
async def test_a_file_renamed_under_its_number_stops_the_run_until_accepted(
    empty: Database, folder: Path, *, edited: bool
) -> None:
    """`status` reports it, naming both names, and `migrate` refuses it until --accept.

    Accepted, the history takes the file's new name (and text): no longer drift.
    """
    await migrate(empty, package_folder=folder)
    (folder / "0001_create_a.sql").unlink()
    write(folder, "0001_make_a.sql", CREATE_A + ("-- an edit\n" if edited else ""))
    write(folder, "0003_more.sql", MORE)
    status = await migration_status(empty, package_folder=folder)
    assert not status.up_to_date
    (drift,) = status.drifted
    assert (drift.applied.name, drift.change) == ("0001_create_a", "renamed")
    how = "renamed and edited" if edited else "renamed"
    said = f"0001_make_a.sql was {how} after it was applied as 0001_create_a.sql"
    assert drift.describe().startswith(said)
    with pytest.raises(MigrationError, match=said) as refused:
        await migrate(empty, package_folder=folder)
    assert refused.value.migration == "0001_create_a"
    assert "d" not in await table_names(empty)  # refused before anything ran
    applied = await migrate(empty, package_folder=folder, accept=[1])
    assert [m.version for m in applied] == [3]
    assert await _history(empty, folder) == [
        (1, "0001_make_a"),
        (2, "0002_create_b"),
        (3, "0003_more"),
    ]
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_a_file_renumbered_is_named_as_the_applied_one(empty: Database, folder: Path) -> None:
    """`0002_create_b.sql` renamed `0003_create_b.sql`: the gone file names its copy.

    `--accept 2` would forget 0002 and run the copy again, as the refusal warns.
    """
    await migrate(empty, package_folder=folder)
    (folder / "0002_create_b.sql").rename(folder / "0003_create_b.sql")
    status = await migration_status(empty, package_folder=folder)
    (drift,) = status.drifted
    assert drift.change == "deleted"
    assert drift.copy is not None
    assert drift.copy.name == "0003_create_b"
    said = (
        "migration 0002_create_b was applied but its file is gone: 0003_create_b.sql holds "
        "its very text, as if renamed, and migrate would run it again"
    )
    assert drift.describe() == said
    with pytest.raises(MigrationError, match=said):
        await migrate(empty, package_folder=folder)
    assert await row_count(empty, "b") == 1
    (folder / "0003_create_b.sql").rename(folder / "0002_create_b.sql")  # as the error says
    assert (await migration_status(empty, package_folder=folder)).up_to_date


async def test_a_copy_beside_its_applied_file_is_no_drift(empty: Database, folder: Path) -> None:
    """Two files of one text, each there, are two migrations: neither is reported."""
    await migrate(empty, package_folder=folder)
    write(folder, "0003_create_b_again.sql", CREATE_B)
    status = await migration_status(empty, package_folder=folder)
    assert status.drifted == ()
    assert [m.name for m in status.pending] == ["0003_create_b_again"]


def test_the_command_line_reports_a_renamed_user_migration(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """`status` (text and --json) and `migrate` name both names; --accept-user records the new."""
    mine = tmp_path / "mine"
    write_both(mine, "0001_a.sql", CREATE_A)
    args = ("--database", database_url, "--migrations", str(mine))
    assert run(capsys, "migrate", *args)[0] == 0
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0001_a.sql").rename(mine / engine / "0001_renamed.sql")
    said = "0001_renamed.sql was renamed after it was applied as 0001_a.sql"
    code, out, _ = run(capsys, "status", *args)
    assert code == 1
    assert f"drifted  user/{said}\n" in out
    code, out, _ = run(capsys, "status", "--json", *args)
    assert code == 1
    (drift,) = json.loads(out)["user"]["drifted"]
    assert (drift["version"], drift["name"], drift["change"]) == (1, "0001_a", "renamed")
    assert drift["message"] == said
    code, _, err = run(capsys, "migrate", *args)
    assert code == 3
    assert_one_error_line(err)
    assert said in err
    assert "--accept-user VERSION" in err
    assert run(capsys, "migrate", *args, "--accept-user", "1")[0] == 0
    code, out, _ = run(capsys, "status", *args)
    assert code == 0
    assert "applied  user/0001_renamed  at" in out
