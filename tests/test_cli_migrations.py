"""The command line with a user's own migrations, `--migrations DIR`, on both engines."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from _migration_helpers import write_both
from persistence.__main__ import main

VIEW = "CREATE VIEW passed_results AS SELECT id FROM test_results WHERE status = 'passed';\n"


@pytest.fixture(autouse=True)
def no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without DATABASE_URL, whatever the shell running pytest has."""
    monkeypatch.delenv("DATABASE_URL", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in this process: exit code, stdout and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def fill(folder: Path, stem: str) -> None:
    """Give the migrations `new` wrote a statement, on each engine."""
    for engine in ("sqlite", "postgres"):
        (folder / engine / f"{stem}.sql").write_text(VIEW, encoding="utf-8")


def test_new_then_migrate_then_status_and_history(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """`new`, `migrate`, `status` and `history` agree on one folder layout, DIR/<engine>/."""
    mine = tmp_path / "mine"
    code, out, _ = run(capsys, "new", "passed_view", "--migrations", str(mine))
    assert code == 0
    assert out.splitlines() == [
        f"created {mine / 'sqlite' / '0001_passed_view.sql'}",
        f"created {mine / 'postgres' / '0001_passed_view.sql'}",
    ]
    fill(mine, "0001_passed_view")
    code, out, err = run(capsys, "migrate", "--database", database_url, "--migrations", str(mine))
    assert code == 0, err
    lines = out.splitlines()
    assert "applied 0001_initial_schema.sql" in lines
    assert lines[-2] == "applied user/0001_passed_view.sql"
    code, out, err = run(capsys, "status", "--database", database_url, "--migrations", str(mine))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("applied  user/0001_passed_view  at ")
    code, out, err = run(capsys, "history", "--database", database_url, "--folder", str(mine))
    assert code == 0, err
    assert out.splitlines()[-1].startswith("user/0001_passed_view  applied ")
    code, out, _ = run(capsys, "history", "--database", database_url)
    assert "user/" not in out

    code, out, _ = run(capsys, "new", "second", "--migrations", str(mine))
    assert code == 0
    code, out, _ = run(
        capsys, "status", "--json", "--database", database_url, "--migrations", str(mine)
    )
    assert code == 1
    report = json.loads(out)
    assert report["pending"] == []
    assert report["up_to_date"] is False
    assert report["user"]["folder"] == str(mine)
    assert [m["name"] for m in report["user"]["applied"]] == ["0001_passed_view"]
    assert [m["file"] for m in report["user"]["pending"]] == ["0002_second.sql"]
    code, out, _ = run(
        capsys, "history", "--json", "--database", database_url, "--migrations", str(mine)
    )
    assert [m["name"] for m in json.loads(out)["user"]["applied"]] == ["0001_passed_view"]
    code, out, _ = run(capsys, "status", "--json", "--database", database_url)
    assert json.loads(out)["user"] is None
    assert code == 0


def test_user_drift_is_accepted_with_accept_user(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """An edited user migration stops `migrate`, exit 3, until `--accept-user VERSION`."""
    mine = tmp_path / "mine"
    assert main(["new", "passed_view", "--migrations", str(mine)]) == 0
    fill(mine, "0001_passed_view")
    assert main(["migrate", "--database", database_url, "--migrations", str(mine)]) == 0
    (mine / "sqlite" / "0001_passed_view.sql").write_text(VIEW + "-- edited\n", encoding="utf-8")
    (mine / "postgres" / "0001_passed_view.sql").write_text(VIEW + "-- edited\n", encoding="utf-8")
    capsys.readouterr()
    code, _, err = run(capsys, "migrate", "--database", database_url, "--migrations", str(mine))
    assert code == 3
    assert "0001_passed_view.sql was edited" in err
    assert "--accept-user VERSION" in err
    code, _, err = run(
        capsys,
        "migrate",
        "--database",
        database_url,
        "--migrations",
        str(mine),
        "--accept-user",
        "1",
    )
    assert code == 0, err
    with pytest.raises(SystemExit) as ended:  # bad usage: refused by the parser
        main(["migrate", "--database", database_url, "--accept-user", "1"])
    assert ended.value.code == 2
    assert "--accept-user: needs --migrations DIR" in capsys.readouterr().err


def test_a_failing_migration_is_printed_with_its_statements_line(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """`migrate` prints where in the file the failing statement starts, and exits 3."""
    mine = tmp_path / "mine"
    failing = "-- a view, then a table that the package has\r\n\r\n" + VIEW.replace("\n", "\r\n")
    failing += "\r\n/* test_results:\r\n   again */\r\n"
    failing += "CREATE TABLE test_results (note text DEFAULT ';');\r\n"
    for engine in ("sqlite", "postgres"):
        (mine / engine).mkdir(parents=True)
        (mine / engine / "0001_clash.sql").write_bytes(failing.encode())
    code, _, err = run(capsys, "migrate", "--database", database_url, "--migrations", str(mine))
    assert code == 3
    said = "persistence: error: 0001_clash.sql:7: in the statement starting "
    last = err.splitlines()[-1]  # after a note of a slow migration, if the machine is slow
    assert last.startswith(said + """"CREATE TABLE test_results (note text DEFAULT ';')": """), err
    assert "already exists" in last


def test_a_folder_without_the_engine_is_refused_before_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`migrate --migrations` with a one-engine folder exits 3, naming the missing folder."""
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "0001_x.sql").write_text(VIEW, encoding="utf-8")
    database = tmp_path / "app.db"
    code, out, err = run(capsys, "migrate", "--database", str(database), "--migrations", str(flat))
    assert code == 3
    assert out == ""
    assert f"has no sqlite/ folder: it holds one folder per engine, {flat / 'sqlite'}" in err
    with contextlib.closing(sqlite3.connect(database)) as plain, plain:
        assert plain.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_a_long_migration_runs_within_the_command_timeout_it_is_given(
    capsys: pytest.CaptureFixture[str], migrated_postgres_url: str, tmp_path: Path
) -> None:
    """`migrate --command-timeout` bounds each statement: a slow one fails whole, then passes.

    The default of 60 s would end a migration that builds a large index, with no way around
    it from the command line. The package's migrations are applied first: under load, one of
    them outran the short bound that the user's is given here.
    """
    postgres_url = migrated_postgres_url
    mine = tmp_path / "mine"
    for engine, sql in (("sqlite", VIEW), ("postgres", "SELECT pg_sleep(0.6);\n" + VIEW)):
        (mine / engine).mkdir(parents=True)
        (mine / engine / "0001_slow.sql").write_text(sql, encoding="utf-8")
    flags = ("--database", postgres_url, "--migrations", str(mine))
    code, out, err = run(capsys, "migrate", *flags, "--command-timeout", "0.2")
    assert code == 3
    # The statement by its line; not the call's "a COMMIT may have taken effect": none was sent.
    assert '0001_slow.sql:1: in the statement starting "SELECT pg_sleep(0.6)"' in err, err
    assert "the command timeout (0.2s): the migration was rolled back, nothing of it" in err
    assert "COMMIT" not in err
    code, out, _ = run(capsys, "status", "--json", *flags)
    assert [m["file"] for m in json.loads(out)["user"]["pending"]] == ["0001_slow.sql"]
    code, out, err = run(capsys, "migrate", *flags, "--command-timeout", "5")
    assert code == 0, err
    assert "applied user/0001_slow.sql" in out.splitlines()
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(SystemExit) as usage:
            main(["migrate", *flags, "--command-timeout", bad])
        assert usage.value.code == 2
        assert "--command-timeout" in capsys.readouterr().err


def test_status_says_which_migration_is_newer_than_the_files(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    """`status` names a migration applied but newer than every file, as text and as JSON.

    It exited 1, not up to date, while listing nothing pending or drifted: the one migration
    that made it so showed as a plain `applied` line, and `--json` had no key for it.
    """
    mine = tmp_path / "mine"
    for engine in ("sqlite", "postgres"):
        (mine / engine).mkdir(parents=True)
        (mine / engine / "0001_passed_view.sql").write_text(VIEW, encoding="utf-8")
        (mine / engine / "0002_second.sql").write_text("-- nothing yet\n", encoding="utf-8")
    flags = ("--database", database_url, "--migrations", str(mine))
    code, _, err = run(capsys, "migrate", *flags)
    assert code == 0, err
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0002_second.sql").unlink()
    code, out, _ = run(capsys, "status", *flags)
    assert code == 1
    newer = [line for line in out.splitlines() if line.startswith("newer")]
    assert newer == [
        "newer    user/0002_second  applied, but newer than every file of your migrations folder"
    ]
    code, out, _ = run(capsys, "status", "--json", *flags)
    assert code == 1
    report = json.loads(out)
    assert report["newer"] == []
    assert [(m["version"], m["name"]) for m in report["user"]["newer"]] == [(2, "0002_second")]
    assert report["user"]["up_to_date"] is False


def test_a_deleted_user_migration_reads_as_a_status_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`status` names a deleted user migration after its label, as every other line does.

    It read `drifted  user/migration 0002_b was applied but its file is gone`.
    """
    mine = tmp_path / "mine"
    for name in ("0001_a", "0002_b", "0003_c"):
        write_both(mine, f"{name}.sql", f"CREATE TABLE {name[5:]} (x integer);\n")
    database = str(tmp_path / "app.db")
    assert run(capsys, "migrate", "--database", database, "--migrations", str(mine))[0] == 0
    (mine / "sqlite" / "0002_b.sql").unlink()
    code, out, _ = run(capsys, "status", "--database", database, "--migrations", str(mine))
    assert code == 1
    assert "drifted  user/0002_b was applied but its file is gone\n" in out


def test_a_failed_run_names_the_drift_it_recorded_as_accepted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--accept-user 1` with a later migration that fails: the acceptance is kept, and said.

    It is recorded with the first look, in a transaction of its own, and the error line said
    nothing of it: the next run needed no `--accept-user`, unsaid.
    """
    mine = tmp_path / "mine"
    write_both(mine, "0001_ok.sql", "CREATE TABLE ok1 (x integer);\n")
    database = str(tmp_path / "app.db")
    assert run(capsys, "migrate", "--database", database, "--migrations", str(mine))[0] == 0
    write_both(mine, "0001_ok.sql", "CREATE TABLE ok1 (x integer); -- edited\n")
    write_both(mine, "0002_bad.sql", "INSERT INTO nosuch VALUES (1);\n")
    accepted = ("--migrations", str(mine), "--accept-user", "1")
    code, out, err = run(capsys, "migrate", "--database", database, *accepted)
    assert (code, out) == (3, "")
    assert err.startswith("persistence: error: 0002_bad.sql:1: ")
    assert err.endswith("; this run recorded, before it, the drift accepted of user/1\n")
    code, out, err = run(capsys, "status", "--database", database, "--migrations", str(mine))
    assert "drifted" not in out
    code, out, err = run(capsys, "migrate", "--database", database, *accepted)  # no drift now
    assert (code, out) == (3, "")
    assert "drift" not in err


def test_a_failed_run_names_what_it_applied_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A later migration fails: the one line names the failure and what was kept before it.

    Each migration commits on its own, and the output, printed once the run ended, was lost
    with the failure: nothing said that 0001 had been applied.
    """
    mine = tmp_path / "mine"
    write_both(mine, "0001_ok.sql", "CREATE TABLE ok1 (x integer);\n")
    write_both(mine, "0002_bad.sql", "INSERT INTO nosuch VALUES (1);\n")
    database = str(tmp_path / "app.db")
    assert run(capsys, "migrate", "--database", database)[0] == 0
    code, out, err = run(capsys, "migrate", "--database", database, "--migrations", str(mine))
    assert (code, out) == (3, "")
    assert err.count("\n") == 1
    assert err.startswith("persistence: error: 0002_bad.sql:1: ")
    assert err.endswith("; this run applied and kept, before it: user/0001_ok\n")
