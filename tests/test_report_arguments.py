"""An import's arguments are checked, by one check for the three, before its file is opened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pytest

from _report_helpers import PYTEST, assert_nothing_written, write_report
from persistence import (
    DatabaseError,
    PersistenceError,
    ValidationError,
    import_junit,
    report_common,
    transaction,
)
from persistence.database import read_snapshot
from persistence.report_json import import_ctrf, import_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from persistence import Database

IMPORTS: Final = {
    "import_junit": import_junit,
    "import_ctrf": import_ctrf,
    "import_jsonl": import_jsonl,
}


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths an import opened: none is, each open failing the test as it would be read."""
    paths: list[str] = []

    def refuse(_at: object, path: str, *_: object, **__: object) -> int:
        paths.append(path)
        raise AssertionError(f"opened {path} before its arguments were checked")

    monkeypatch.setattr(report_common, "open_regular", refuse)
    return paths


@pytest.mark.parametrize("name", IMPORTS)
@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ("commit=abc", "expected a JSON object"),
        (["commit"], "expected a JSON object"),
        ({1: "abc"}, "keys must be str"),
        ({"x": float("nan")}, "must be finite"),
        ({"x": "a\x00b"}, "NUL"),
    ],
    ids=["str", "list", "int-key", "nan", "nul"],
)
async def test_bad_labels_are_refused_before_the_file_is_opened(
    db: Database, tmp_path: Path, opened: list[str], name: str, *, labels: object, problem: str
) -> None:
    """Each import refuses them by the argument's name, the file unopened.

    `import_ctrf` and `import_jsonl` read and parsed the whole file first (a report of
    gigabytes), and `import_junit` named the run's field, `Run.labels`.
    """
    path = write_report(tmp_path, PYTEST)
    with pytest.raises(ValidationError, match=problem) as refused:
        await IMPORTS[name](db, path, labels=labels)  # type: ignore[arg-type]  # the mistake tested
    assert str(refused.value).startswith(f"{name}.labels: ")
    assert opened == []
    await assert_nothing_written(db)


@pytest.mark.parametrize("name", IMPORTS)
async def test_a_database_that_is_no_database_is_refused_before_the_file(
    tmp_path: Path, opened: list[str], name: str
) -> None:
    """A URL where the database goes is refused by the argument's name, the file unopened."""
    path = write_report(tmp_path, PYTEST)
    with pytest.raises(ValidationError, match="expected the Database"):
        await IMPORTS[name]("sqlite:///x.db", path)  # type: ignore[arg-type]  # the mistake tested
    assert opened == []


@pytest.mark.parametrize("name", IMPORTS)
@pytest.mark.parametrize("block", ["outer-in-transaction", "snapshot"])
async def test_a_database_the_import_may_not_write_with_is_refused_before_the_file(
    db: Database, tmp_path: Path, opened: list[str], name: str, block: str
) -> None:
    """The outer database inside its own block, or a `read_snapshot()` block's, which only reads.

    Each is refused before the file, as `import_junit` refused them.
    """
    path = write_report(tmp_path, PYTEST)
    with pytest.raises(DatabaseError):
        if block == "snapshot":
            async with read_snapshot(db) as reading:
                await IMPORTS[name](reading, path)
        else:
            async with transaction(db):
                await IMPORTS[name](db, path)
    assert opened == []
    await assert_nothing_written(db)


@pytest.mark.parametrize("name", IMPORTS)
async def test_good_arguments_reach_the_file(
    db: Database, tmp_path: Path, opened: list[str], name: str
) -> None:
    """The check refuses what is wrong only: good ones go on to open the file."""
    path = write_report(tmp_path, PYTEST)
    with pytest.raises((AssertionError, PersistenceError)):
        await IMPORTS[name](db, path, labels={"commit": "abc"})
    assert opened == [str(path)]
