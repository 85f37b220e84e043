"""The event loop stays free while a point read reads a row of megabytes.

`test_loop_lag_huge_rows.py` lists such rows; here one is read by its id (`get_result`,
`find_result`, `get_run`) or key (`get_config_entry_by_key`). A point read maps its row as
a listing does (`_loop.map_slices` given the row's stored value): a row whose JSON is past
OFF_LOOP_SIZE is decoded and mapped in a worker thread, on both engines. Mapped on the loop,
3.5 MB of metadata held it 250 to 300 ms. Each read runs beside the benchmark's lag probe,
as there; in conftest's TIMED_MODULES.
"""

from __future__ import annotations

import pytest

from _lag import MAX_LAG, huge_metadata, within
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
from persistence.config import get_config_entry_by_key

pytestmark = pytest.mark.timed


async def test_a_point_read_of_a_result_of_megabytes_shares_the_loop(db: Database) -> None:
    """`get_result`, `find_result` and `get_run` decode the row's JSON in a worker thread."""
    run = await save_run(db, Run(labels={"big": huge_metadata()}))
    run_id = run.id
    assert run_id is not None
    saved = await save_result(
        db,
        TestResult(
            test_type=TestType.UNIT,
            status=TestStatus.PASSED,
            metadata=huge_metadata(),
            run_id=run_id,
        ),
    )
    result_id = saved.id
    assert result_id is not None
    result = await within(MAX_LAG, "get_result", lambda: get_result(db, result_id))
    assert result.metadata == saved.metadata
    found = await within(MAX_LAG, "find_result", lambda: find_result(db, result_id))
    assert found is not None
    assert len(found.metadata) == len(saved.metadata)
    read_run = await within(MAX_LAG, "get_run", lambda: get_run(db, run_id))
    assert read_run.labels == run.labels

    async def in_transaction() -> TestResult:
        async with transaction(db) as tx:
            return await get_result(tx, result_id)

    result = await within(MAX_LAG, "get_result in a transaction", in_transaction)
    assert len(result.metadata) == len(saved.metadata)


async def test_a_point_read_of_a_config_entry_of_megabytes_shares_the_loop(db: Database) -> None:
    """`get_config_entry_by_key` decodes and checks the value in a worker thread."""
    await set_config(db, "big", "value", huge_metadata())
    entry = await within(
        MAX_LAG, "get_config_entry", lambda: get_config_entry_by_key(db, "big", "value")
    )
    assert entry.value == huge_metadata()
