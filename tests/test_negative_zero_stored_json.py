"""A -0.0 that SQLite kept inside stored JSON (rows from before the models took it as 0.0).

The models write 0.0 for it now, but SQLite keeps JSON text as written: metadata and labels
stored by an older version of the package, or by plain SQL, still held `-0.0`, and came back
as -0.0 where PostgreSQL's jsonb gives 0.0. Every read of stored JSON now gives 0.0.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path
from typing import Final

from persistence import (
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    get_file_record_by_path,
    get_result,
    get_run,
    migrate,
    save_file_record,
    save_result,
    save_run,
)

STORED: Final = '{"f":-1.5,"l":[-0.0,{"m":-0e0}],"z":-0.0}'
"""JSON text as SQLite kept it: a negative zero at each depth, and a negative float that stays."""
ROWS: Final = 5  # enough for the reads of many rows, which decode a page in one pass


def _signs(value: object) -> list[float]:
    """Give the sign of each float in a JSON value, depth first, an object's by its keys."""
    if isinstance(value, dict):
        return [sign for _, item in sorted(value.items()) for sign in _signs(item)]
    if isinstance(value, list):
        return [sign for item in value for sign in _signs(item)]
    return [math.copysign(1.0, value)] if isinstance(value, float) else []


async def test_a_negative_zero_kept_in_stored_json_reads_as_zero(tmp_path: Path) -> None:
    """Read alone and many at once, metadata and labels give 0.0, and -1.5 stays."""
    expected = [-1.0, 1.0, 1.0, 1.0]  # f, l[0], l[1].m, z
    file = tmp_path / "app.db"
    async with connect(file) as db:
        await migrate(db)
        run = await save_run(db, Run())
        assert run.id is not None
        unit = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)
        ids = [(await save_result(db, unit)).id for _ in range(ROWS)]
        await save_file_record(db, FileRecord(path="a/b"))
        with contextlib.closing(sqlite3.connect(file)) as plain, plain:  # as an older version
            plain.execute("UPDATE test_results SET metadata = ?", (STORED,))
            plain.execute("UPDATE runs SET labels = ?", (STORED,))
            plain.execute("UPDATE file_records SET metadata = ?", (STORED,))
        read = [
            (await get_run(db, run.id)).labels,
            (await get_file_record_by_path(db, "a/b")).metadata,
            *[(await get_result(db, id_)).metadata for id_ in ids if id_ is not None],
            *[result.metadata for result in await all_results(db)],
        ]
    assert len(read) == 2 + 2 * ROWS
    for value in read:
        assert _signs(value) == expected, value
