"""The run-history commands given what a user gets wrong: refused in one line, nothing made."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cli_helpers import assert_one_error_line, run

pytestmark = pytest.mark.usefixtures("no_database_url")

REPORT = '<testsuite name="s"><testcase classname="a" name="t" time="0.1"/></testsuite>\n'


def test_an_import_into_a_missing_sqlite_file_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A mistyped --database is named, with how to make it; no file or folder is left.

    The import could never succeed there (an empty file has no tables), yet it created the
    file and its folder, then failed on the missing table `runs`.
    """
    report = tmp_path / "report.xml"
    report.write_text(REPORT, encoding="utf-8")
    typo = tmp_path / "sub" / "typo.db"
    code, out, err = run(capsys, "import", str(report), "--database", str(typo))
    assert (code, out) == (3, "")
    assert_one_error_line(err)
    assert f"no SQLite database at {str(typo)!r}" in err
    assert "persistence migrate --database" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"]
