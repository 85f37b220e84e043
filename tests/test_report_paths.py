"""A report's path that is no path: refused by the argument's name before a file or a row."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from _report_helpers import assert_nothing_written, write_report
from persistence import ValidationError, import_junit
from persistence.report_json import import_ctrf, import_jsonl

if TYPE_CHECKING:
    from persistence import Database

IMPORTS = {"import_junit": import_junit, "import_ctrf": import_ctrf, "import_jsonl": import_jsonl}


@pytest.mark.parametrize("name", IMPORTS)
@pytest.mark.parametrize(
    ("path", "problem"),
    [
        (123, "expected a str or os.PathLike, got int"),
        (None, "expected a str or os.PathLike, got NoneType"),
        (b"report.xml", "expected a str or os.PathLike, got bytes"),
        (["report.xml"], "expected a str or os.PathLike, got list"),
        ("", "is empty"),
        ("report.xml\x00.txt", "holds a NUL character"),
    ],
    ids=["int", "none", "bytes", "list", "empty", "nul"],
)
async def test_a_path_that_is_no_path_is_refused_by_name(
    db: Database, tmp_path: Path, name: str, path: object, problem: str
) -> None:
    """Python's TypeError or `embedded null byte` named neither the argument nor the import."""
    write_report(tmp_path, "<testsuites/>")
    with pytest.raises(ValidationError, match=problem) as refused:
        await IMPORTS[name](db, path)  # type: ignore[arg-type]  # the mistake tested
    assert str(refused.value).startswith(f"{name}.path: ")
    await assert_nothing_written(db)
