"""The event loop stays free while a point read reads a row of megabytes.

`test_loop_lag_huge_rows.py` lists such rows; here one is read by its id (`get_result`,
`find_result`, `get_run`) or key (`get_config_entry_by_key`). A point read maps its row as
a listing does (`_loop.map_slices` given the row's stored value): a row whose JSON is past
OFF_LOOP_SIZE is decoded and mapped in a worker thread, on both engines. Mapped on the loop,
3.5 MB of metadata held it 250 to 300 ms. Each read runs beside the benchmark's lag probe,
as there; in conftest's TIMED_MODULES.
"""

from __future__ import annotations

from typing import cast

import pytest

from persistence import (
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    find_result,
    get_result,
    get_run,
    save_result,
    save_run,
    set_config,
    transaction,
)
from persistence._interface import JsonValue
from persistence.config import get_config_entry_by_key
from test_loop_lag import MAX_LAG
from test_loop_lag_huge_rows import _huge_metadata
from test_loop_lag_large_values import _held

pytestmark = pytest.mark.timed


def _metadata() -> dict[str, JsonValue]:
    """About 3.5 MB of JSON, as `test_loop_lag_huge_rows.py` stores."""
    return cast("dict[str, JsonValue]", _huge_metadata())


async def test_a_point_read_of_a_result_of_megabytes_shares_the_loop(db: Database) -> None:
    """`get_result`, `find_result` and `get_run` decode the row's JSON in a worker thread."""
    run = await save_run(db, Run(labels={"big": _metadata()}))
    run_id = run.id
    assert run_id is not None
    saved = await save_result(
        db,
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            metadata=_metadata(),
            run_id=run_id,
        ),
    )
    result_id = saved.id
    assert result_id is not None
    lag, result = await _held(lambda: get_result(db, result_id))
    assert result.metadata == saved.metadata
    assert lag < MAX_LAG, f"get_result held the loop for {lag * 1000:.0f} ms"
    lag, found = await _held(lambda: find_result(db, result_id))
    assert found is not None
    assert len(found.metadata) == len(saved.metadata)
    assert lag < MAX_LAG, f"find_result held the loop for {lag * 1000:.0f} ms"
    lag, read_run = await _held(lambda: get_run(db, run_id))
    assert read_run.labels == run.labels
    assert lag < MAX_LAG, f"get_run held the loop for {lag * 1000:.0f} ms"

    async def in_transaction() -> TestResult:
        async with transaction(db) as tx:
            return await get_result(tx, result_id)

    lag, result = await _held(in_transaction)
    assert len(result.metadata) == len(saved.metadata)
    assert lag < MAX_LAG, f"get_result in a transaction held the loop for {lag * 1000:.0f} ms"


async def test_a_point_read_of_a_config_entry_of_megabytes_shares_the_loop(db: Database) -> None:
    """`get_config_entry_by_key` decodes and checks the value in a worker thread."""
    await set_config(db, "big", "value", _metadata())
    lag, entry = await _held(lambda: get_config_entry_by_key(db, "big", "value"))
    assert entry.value == _huge_metadata()
    assert lag < MAX_LAG, f"get_config_entry held the loop for {lag * 1000:.0f} ms"
