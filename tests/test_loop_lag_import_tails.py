"""A JSON import gives the loop back after its tests are read, as it does while reading them.

Each report here holds 50,000 tests of test ids and metadata, and none of them a time of its
own. After reading them, the imports checked the ids in one pass, gave the tests their run's
id and the run's start in one pass each, and freed the saved rows, and then the models, in one
go. Each of those held the loop for tens of milliseconds; together, with 20 metadata keys a
test, over 150 ms.

On SQLite alone: what the imports do after reading is the same on both engines, down to the
rows they hand the engine (`result_params`), and 50,000 tests take seconds to import.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Final

import pytest

from _lag import MAX_LAG, within
from persistence import Database, list_results
from persistence.report_json import import_ctrf, import_jsonl

_TESTS: Final = 50_000
_KEYS: Final = 20


def _metadata(index: int) -> dict[str, object]:
    return {f"k{key}": [index, key] for key in range(_KEYS)}


def _write_reports(folder: Path) -> dict[str, Path]:
    jsonl = folder / "report.jsonl"
    jsonl.write_text(
        "\n".join(
            json.dumps(
                {
                    "test_type": "unit",
                    "status": "passed",
                    "test_id": f"tests/test_a.py::test_{index}",
                    "metadata": _metadata(index),
                }
            )
            for index in range(_TESTS)
        ),
        encoding="utf-8",
    )
    ctrf = folder / "report.json"
    tests = [
        {
            "name": f"tests/test_a.py::test_{index}",
            "status": "passed",
            "duration": 1,
            "extra": {"metadata": _metadata(index)},
        }
        for index in range(_TESTS)
    ]
    ctrf.write_text(json.dumps({"results": {"tests": tests}}), encoding="utf-8")
    return {"jsonl": jsonl, "ctrf": ctrf}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reports, written once for both engines."""
    return _write_reports(tmp_path_factory.mktemp("timeless-reports"))


_IMPORTS: Final = {"jsonl": import_jsonl, "ctrf": import_ctrf}


@pytest.mark.parametrize("form", list(_IMPORTS))
async def test_an_import_of_timeless_tests_shares_the_loop_to_its_end(
    sqlite_db: Database, tmp_path: Path, reports: dict[str, Path], form: str
) -> None:
    """Every test gets the run and its start, and is saved and freed, the loop given back.

    What was saved is counted by plain SQL: reading 50,000 models back took longer than the
    import.
    """
    read = _IMPORTS[form]
    run = await within(MAX_LAG, f"the {form} import", lambda: read(sqlite_db, reports[form]))
    first = await list_results(sqlite_db, limit=1)
    assert [(result.run_id, result.created_at) for result in first.items] == [
        (run.id, run.started_at)
    ]
    with contextlib.closing(sqlite3.connect(tmp_path / "test.db")) as plain:  # the fixture's file
        found = plain.execute(
            "SELECT count(*), count(DISTINCT run_id), count(DISTINCT created_at), "
            "sum(json_extract(metadata, '$.k1[0]')) FROM test_results"
        ).fetchone()
    assert found == (_TESTS, 1, 1, sum(range(_TESTS)))
