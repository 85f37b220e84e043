"""Retention beside other retentions and run deletes on PostgreSQL: no deadlock.

Retention's batch locked its rows in the order of its plan, which changes with the batch
size: three retentions at once failed with `deadlock detected` in 4 trials of 5, and one
beside `delete_run` of the same rows in 2 of 4. Both now lock the rows in one order (the
listing's, created_at then id) before they delete them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import pytest

from persistence import (
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    delete_results_before,
    delete_run,
    migrate,
    save_results,
    save_run,
)

pytestmark = pytest.mark.usefixtures("postgres_admin")

_T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_ROWS = 20_000


async def _deleters(url: str, runs: list[int]) -> list[object]:
    """Three retentions and a delete of every run, each on a database value of its own."""

    async def retention() -> int:
        async with connect(url) as db:
            return await delete_results_before(db, _T0 + dt.timedelta(days=1))

    async def run_deletes() -> int:
        async with connect(url) as db:
            return sum([await delete_run(db, run_id) for run_id in reversed(runs)])

    return list(
        await asyncio.gather(
            retention(), retention(), retention(), run_deletes(), return_exceptions=True
        )
    )


async def test_retentions_and_run_deletes_at_once_do_not_deadlock(
    migrated_postgres_url: str,
) -> None:
    """Each ends without an error, and no result before the cut-off is left."""
    url = migrated_postgres_url
    shuffled = random.Random(7)  # noqa: S311  # times spread the same each run
    for _ in range(3):
        async with connect(url) as db:
            await migrate(db)
            runs = []
            for _ in range(40):
                run = await save_run(db, Run(started_at=_T0 - dt.timedelta(days=1)))
                assert run.id is not None
                runs.append(run.id)
            await save_results(
                db,
                [
                    TestResult(
                        test_type=TestType.UNIT,
                        status=TestStatus.PASSED,
                        run_id=runs[index % len(runs)],
                        test_id=f"t{index}",
                        created_at=_T0 - dt.timedelta(seconds=shuffled.randrange(5000)),
                    )
                    for index in range(_ROWS)
                ],
            )
        outcomes = await _deleters(url, runs)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        async with connect(url) as db:
            assert await all_results(db) == []
