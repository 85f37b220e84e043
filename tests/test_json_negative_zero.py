"""A -0.0 inside JSON (metadata, labels, a config list) is stored as 0.0 on both engines."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from persistence import (
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    get_config_value,
    get_file_record_by_path,
    get_result,
    get_run,
    save_file_record,
    save_result,
    save_run,
    set_config,
)

if TYPE_CHECKING:
    from persistence import Database
    from persistence._interface import JsonValue

NEGATIVE: dict[str, JsonValue] = {"z": -0.0, "l": [-0.0, {"m": -0.0}], "f": -1.5}
"""What a caller writes: a negative zero at each depth, and a negative float that stays."""


def _signs(value: object) -> list[float]:
    """Give the sign of each float in a JSON value, depth first, an object's by its keys."""
    if isinstance(value, dict):
        return [sign for _, item in sorted(value.items()) for sign in _signs(item)]
    if isinstance(value, list):
        return [sign for item in value for sign in _signs(item)]
    return [math.copysign(1.0, value)] if isinstance(value, float) else []


async def test_a_negative_zero_in_json_reads_back_as_zero_on_both_engines(db: Database) -> None:
    """PostgreSQL's jsonb has no -0 and gave 0.0 back; SQLite kept -0.0: it is 0.0 on both."""
    expected = [-1.0, 1.0, 1.0, 1.0]  # f, l[0], l[1].m, z
    run = await save_run(db, Run(labels=NEGATIVE))
    assert run.id is not None
    result = await save_result(
        db,
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=NEGATIVE, run_id=run.id
        ),
    )
    assert result.id is not None
    await save_file_record(db, FileRecord(path="a/b", metadata=NEGATIVE))
    await set_config(db, "s", "k", NEGATIVE)
    written = [run.labels, result.metadata]
    read = [
        (await get_run(db, run.id)).labels,
        (await get_result(db, result.id)).metadata,
        (await get_file_record_by_path(db, "a/b")).metadata,
        await get_config_value(db, "s", "k", dict),
    ]
    for value in [*written, *read]:
        assert value == NEGATIVE
        assert _signs(value) == expected, value
