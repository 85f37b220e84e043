"""`compare_runs` answers from one committed state: the runs and their results together.

It compared first, then looked for the runs with later statements: a run committed with its
results in between was compared as if empty, every test of the base `removed`, though no state
ever held the run without its results.
"""

from __future__ import annotations

import pytest

import persistence.run_history
from persistence import (
    Database,
    NotFoundError,
    Run,
    TestResult,
    TestStatus,
    TestType,
    connect,
    save_results,
    save_run,
)
from persistence.run_history import compare_runs
from persistence.runs import find_run


def _results(run_id: int | None) -> list[TestResult]:
    return [
        TestResult(
            test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run_id, test_id=f"t{i}"
        )
        for i in range(5)
    ]


async def test_a_run_written_while_it_is_compared_is_not_compared_empty(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The head run and its results, committed once the comparison was read, are not found."""
    base = await save_run(db, Run())
    assert base.id is not None
    await save_results(db, _results(base.id))
    head_id = base.id + 1  # the next run written
    real = find_run
    written: list[int] = []

    async def find_after_a_write(seen: Database, run_id: int) -> Run | None:
        if not written:  # another program writes the head run, whole, in one transaction
            async with connect(database_url) as other:
                head = await save_run(other, Run())
                assert head.id is not None
                await save_results(other, _results(head.id))
                written.append(head.id)
        return await real(seen, run_id)

    monkeypatch.setattr(persistence.run_history, "find_run", find_after_a_write)
    with pytest.raises(NotFoundError):
        await compare_runs(db, base.id, head_id)
    assert written == [head_id]
    monkeypatch.setattr(persistence.run_history, "find_run", real)
    same = await compare_runs(db, base.id, head_id)
    assert same.changes == ()  # the same tests, each passed: nothing changed
