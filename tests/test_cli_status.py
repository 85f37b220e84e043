"""`status` and `history` of the migrations, on both engines: JSON, drift, --accept, the lock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import re
import sqlite3
import time
from pathlib import Path

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import persistence
from _cli_helpers import (
    ROOT,
    assert_one_error_line,
    cli,
    execute,
    existing,
    run,
)
from persistence.__main__ import main
from persistence.migrations import discover_migrations, migrations_folder

pytestmark = pytest.mark.usefixtures("no_database_url")

STATUS_KEYS = {
    "database",
    "engine",
    "up_to_date",
    "applied",
    "pending",
    "drifted",
    "newer",
    "out_of_order",
    "user",
}
USER_KEYS = {"folder"}  # with applied, pending, drifted, newer and up_to_date
APPLIED_KEYS = {"version", "name", "checksum", "applied_at", "duration_ms"}
PENDING_KEYS = {"version", "name", "file"}
DRIFT_KEYS = {"version", "name", "change", "message"}


# --- status and history, on both engines --------------------------------------------------------


def test_status_json_says_what_is_pending_then_applied(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """`status --json` gives the documented keys; it exits 1 while pending and 0 once migrated."""
    url = existing(database_url)
    code, out, _ = run(capsys, "status", "--json", "--database", url)
    assert code == 1
    report = json.loads(out)
    assert set(report) == STATUS_KEYS
    assert report["up_to_date"] is False
    assert report["engine"] in {"sqlite", "postgres"}
    assert report["applied"] == []
    assert report["drifted"] == []
    packaged = discover_migrations(migrations_folder(persistence.Engine(report["engine"])))
    assert report["pending"] == [
        {"version": m.version, "name": m.name, "file": m.path.name} for m in packaged
    ]
    assert report["pending"][0] == {
        "version": 1,
        "name": "0001_initial_schema",
        "file": "0001_initial_schema.sql",
    }
    assert set(report["pending"][0]) == PENDING_KEYS
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "status", "--json", "--database", url)
    assert code == 0
    report = json.loads(out)
    assert report["up_to_date"] is True
    assert report["pending"] == []
    assert [set(done) for done in report["applied"]] == [APPLIED_KEYS] * len(packaged)


def test_the_readme_documents_every_json_key() -> None:
    """Each key that `status --json` and `history --json` print is named in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Command line") : readme.index("## File storage")]
    keys = STATUS_KEYS | APPLIED_KEYS | PENDING_KEYS | DRIFT_KEYS | USER_KEYS
    assert sorted(key for key in keys if f"`{key}`" not in section) == []


def engine_of_url(url: str) -> persistence.Engine:
    """The engine of a test's database URL."""
    return persistence.Engine.POSTGRES if url.startswith("postgres") else persistence.Engine.SQLITE


def test_status_says_which_pending_file_migrate_cannot_apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file numbered below one applied is pending, and said to be one `migrate` refuses.

    `status` listed it as any pending file, in both forms, and `migrate` then refused it.
    """
    folder = tmp_path / "mine"
    for name, sql in (
        ("0001_n.sql", "CREATE TABLE n (id INTEGER PRIMARY KEY);\n"),
        ("0005_five.sql", "INSERT INTO n VALUES (5);\n"),
    ):
        (folder / "sqlite").mkdir(parents=True, exist_ok=True)
        (folder / "sqlite" / name).write_text(sql, encoding="utf-8")
    url = str(tmp_path / "app.db")
    assert main(["migrate", "--database", url, "--migrations", str(folder)]) == 0
    (folder / "sqlite" / "0003_three.sql").write_text("SELECT 1;\n", encoding="utf-8")
    capsys.readouterr()
    code, out, _ = run(capsys, "status", "--database", url, "--migrations", str(folder))
    assert code == 1
    assert (
        "pending  user/0003_three.sql  numbered below one applied: migrate cannot apply it" in out
    )
    code, out, _ = run(capsys, "status", "--json", "--database", url, "--migrations", str(folder))
    user = json.loads(out)["user"]
    late = {"version": 3, "name": "0003_three", "file": "0003_three.sql"}
    assert (code, user["pending"], user["out_of_order"]) == (1, [late], [late])
    assert json.loads(out)["out_of_order"] == []


def test_history_lists_when_and_how_long(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """History lists each applied migration with its time and duration, as text and as JSON."""
    url = existing(database_url)
    code, out, _ = run(capsys, "history", "--database", url)
    assert (code, out.endswith(": no migration applied yet\n")) == (0, True)
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "history", "--database", url)
    assert code == 0
    names = [m.name for m in discover_migrations(migrations_folder(engine_of_url(url)))]
    line = r"  applied \d{4}-\d\d-\d\dT[\d:.]+\+00:00  in \d+\.\d ms\n"
    assert re.fullmatch("".join(re.escape(name) + line for name in names), out)
    code, out, _ = run(capsys, "history", "--json", "--database", url)
    assert code == 0
    report = json.loads(out)
    assert set(report) == {"database", "engine", "applied", "user"}
    assert report["user"] is None
    applied, *later = report["applied"]
    assert [done["name"] for done in later] == names[1:]
    assert set(applied) == APPLIED_KEYS
    assert (applied["version"], applied["name"]) == (1, "0001_initial_schema")
    ran = dt.datetime.fromisoformat(applied["applied_at"])
    assert abs(dt.datetime.now(dt.UTC) - ran) < dt.timedelta(minutes=5)
    assert applied["duration_ms"] >= 0


def test_drift_stops_migrate_with_exit_3_and_status_with_exit_1(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """An applied migration whose checksum differs is one error line for migrate, and drift."""
    assert main(["migrate", "--database", database_url]) == 0
    execute(database_url, "UPDATE persistence_migrations SET checksum = 'edited' WHERE version = 1")
    capsys.readouterr()
    code, _, err = run(capsys, "migrate", "--database", database_url)
    assert code == 3
    assert_one_error_line(err)
    assert "0001_initial_schema.sql was edited after it was applied" in err
    code, out, _ = run(capsys, "status", "--json", "--database", database_url)
    assert code == 1
    (drift,) = json.loads(out)["drifted"]
    assert set(drift) == DRIFT_KEYS
    assert drift["change"] == "edited"
    assert drift["version"] == 1


@given(
    database=st.text(alphabet=" \t\n\r\f\v", max_size=4),
    accept=st.text(max_size=6).filter(lambda text: not (text.isdigit() and text.isascii())),
)
def test_blank_databases_and_non_versions_are_bad_usage(database: str, accept: str) -> None:
    """A blank --database, or an --accept that is no positive version, exits 2 at parsing."""
    for args in (["migrate", "--database", database], ["migrate", f"--accept={accept}"]):
        with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as raised:
            main(args)
        assert raised.value.code == 2


EDIT_1_AND_2 = "UPDATE persistence_migrations SET checksum = 'edited' WHERE version IN (1, 2)"


def test_accept_takes_several_versions_as_the_synopsis_shows(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """`migrate --accept 1 2` accepts both edited files; `--accept 1 --accept 2` does too."""
    assert main(["migrate", "--database", database_url]) == 0
    for accept in (["--accept", "1", "2"], ["--accept", "1", "--accept", "2"]):
        execute(database_url, EDIT_1_AND_2)
        capsys.readouterr()
        code, _, err = run(capsys, "migrate", "--database", database_url, *accept)
        assert (code, err) == (0, "")
        code, out, _ = run(capsys, "status", "--json", "--database", database_url)
        assert code == 0, out
    execute(database_url, EDIT_1_AND_2)
    code, _, err = run(capsys, "migrate", "--database", database_url, "--accept", "1")
    assert code == 3, "version 2 is still edited"
    assert "0002_" in err


async def test_lock_timeout_bounds_the_wait_and_says_what_it_waits_for(
    database_url: str, tmp_path: Path
) -> None:
    """With another runner holding the lock, migrate says so once, then gives up in time."""
    async with persistence.connect(database_url) as db:
        await persistence.migrate(db)
    async with contextlib.AsyncExitStack() as stack:
        if database_url.startswith("postgresql://"):
            holder = await asyncpg.connect(database_url)
            stack.push_async_callback(holder.close)
            await holder.execute("SELECT pg_advisory_lock($1)", 0x70657273)
        else:
            plain = stack.enter_context(contextlib.closing(sqlite3.connect(database_url)))
            plain.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        result = await asyncio.to_thread(
            cli, "migrate", "--database", database_url, "--lock-timeout", "2", cwd=tmp_path
        )
        took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert "waiting for the migration lock" in lines[0]
    assert "2s" in lines[0]
    assert lines[1].startswith("persistence: error: ")
    assert 2 <= took < 15, took
