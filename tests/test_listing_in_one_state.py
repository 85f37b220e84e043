"""`all_results`, `all_runs` and `all_config_entries` read a listing of pages in one state.

Read page after page as writers committed, a row that a write moved past the cursor (a result
or a run given a later time, an entry a section that sorts first) was left out, and one moved
the other way was read twice, as `all_file_records` once did.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import persistence.config
import persistence.results
import persistence.runs
from persistence import (
    ConfigEntry,
    ConfigType,
    Database,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_config_entries,
    all_results,
    all_runs,
    save_config_entry,
    save_results,
    save_run,
)
from persistence._paging import READ_PAGE
from test_plain_ids import plain_sql

_ROWS = READ_PAGE * 2 + READ_PAGE // 2


async def _results(db: Database) -> None:
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                created_at=old + dt.timedelta(seconds=index),
            )
            for index in range(_ROWS)
        ],
    )


async def _runs(db: Database) -> None:
    old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    for index in range(_ROWS):
        await save_run(db, Run(started_at=old + dt.timedelta(seconds=index)))


async def _entries(db: Database) -> None:
    for index in range(_ROWS):
        await save_config_entry(
            db, ConfigEntry(section="m", key=f"k{index:05d}", value=index, type=ConfigType.INT)
        )


_CASES: dict[str, tuple[Callable[[Database], Awaitable[None]], str, Any, str, Any]] = {
    # how to fill, the statement that moves the last row of the listing to its front, the
    # module and name of the page function, and the listing
    "results": (
        _results,
        (
            "UPDATE test_results SET created_at = '2099-01-01T00:00:00.000000+00:00'"
            " WHERE id = (SELECT min(id) FROM test_results)"
        ),
        persistence.results,
        "list_results",
        all_results,
    ),
    "runs": (
        _runs,
        (
            "UPDATE runs SET started_at = '2099-01-01T00:00:00.000000+00:00'"
            " WHERE id = (SELECT min(id) FROM runs)"
        ),
        persistence.runs,
        "list_runs",
        all_runs,
    ),
    "config": (
        _entries,
        "UPDATE config_entries SET section = 'a' WHERE key = 'k02499'",
        persistence.config,
        "list_config_entries",
        all_config_entries,
    ),
}


@pytest.mark.parametrize("case", sorted(_CASES))
async def test_a_row_moved_between_pages_is_listed_once(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Another writer moves the listing's last row to its front after its second page is read."""
    fill, move, module, name, listing = _CASES[case]
    await fill(db)
    real = getattr(module, name)
    pages = 0

    async def page(*args: object, **kwargs: object) -> object:
        nonlocal pages
        read = await real(*args, **kwargs)
        pages += 1
        if pages == 2:
            await plain_sql(database_url, move)
        return read

    monkeypatch.setattr(module, name, page)
    items = await listing(db)
    ids = [item.id for item in items]
    assert len(ids) == len(set(ids)) == _ROWS, (len(ids), len(set(ids)))
    monkeypatch.setattr(module, name, real)
    moved = await listing(db)  # the move is seen by the next listing, at its front
    assert len(moved) == _ROWS
    assert moved[0].id == ids[-1]  # the listing's last row, moved to its front
