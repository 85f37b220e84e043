"""A JSON report's large parts are read off the loop: a member of megabytes, a test, a line.

CTRF tests were read one at a time, the loop given back between them, but every other member
(of the document, of `results`) and each test was read in one call of `json`'s C code, and a
test was checked in one call too: one of 13 MB held the loop 150-175 ms. A JSON Lines line of
2 MB, read and checked in one call, held it 136 ms.

On SQLite alone: the reading is the same whichever engine stores the run.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest

from _lag import MAX_LAG, within
from persistence import Database
from persistence.report_json import import_ctrf, import_jsonl

_KEYS: Final = 300_000
"""Keys of the large part: 13 MB of JSON."""


def _small_test(name: str) -> dict[str, object]:
    return {"name": name, "status": "passed", "duration": 1}


def _large() -> dict[str, object]:
    return {f"k{index}": [index, "v" * 20] for index in range(_KEYS)}


def _large_test() -> dict[str, object]:
    return {"name": "t::large", "status": "passed", "duration": 1, "extra": {"metadata": _large()}}


_REPORTS: Final[dict[str, Callable[[], dict[str, object]]]] = {
    "a member of results": lambda: {"results": {"tests": [_small_test("t::a")], "extra": _large()}},
    "a member of the document": lambda: {
        "results": {"tests": [_small_test("t::a")]},
        "extra": _large(),
    },
    "a test": lambda: {
        "results": {"tests": [_small_test("t::a"), _large_test(), _small_test("t::b")]}
    },
}
_STORED: Final = {
    "a member of results": [("t::a", 0)],
    "a member of the document": [("t::a", 0)],
    "a test": [("t::a", 0), ("t::large", _KEYS), ("t::b", 0)],
}
"""What each report stores: each result's test id and the number of its metadata keys."""


def _stored(folder: Path) -> list[tuple[str, int]]:
    """Each stored result's test id and the number of its metadata keys, by plain SQL."""
    with contextlib.closing(sqlite3.connect(folder / "test.db")) as plain:  # the fixture's file
        return plain.execute(
            "SELECT coalesce(test_id, ''), (SELECT count(*) FROM json_each(metadata))"
            " FROM test_results ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("part", list(_REPORTS))
async def test_a_ctrf_report_with_a_large_part_shares_the_loop(
    sqlite_db: Database, tmp_path: Path, part: str
) -> None:
    """The large part is read, and a large test made a model, in a worker thread."""
    report = tmp_path / "report.json"
    report.write_text(json.dumps(_REPORTS[part]()), encoding="utf-8")
    await within(MAX_LAG, "the import", lambda: import_ctrf(sqlite_db, report))
    assert _stored(tmp_path) == _STORED[part]


async def test_a_json_lines_report_with_a_long_line_shares_the_loop(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """The long line is read and checked in a worker thread, the short ones on the loop."""
    report = tmp_path / "report.jsonl"
    lines = [
        {"test_type": "unit", "status": "passed", "test_id": "t::small"},
        {"test_type": "unit", "status": "passed", "test_id": "t::large", "metadata": _large()},
    ]
    report.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    await within(MAX_LAG, "the import", lambda: import_jsonl(sqlite_db, report))
    assert _stored(tmp_path) == [("t::small", 0), ("t::large", _KEYS)]
