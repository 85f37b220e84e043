"""A datetime whose tzinfo gives no valid offset: refused by the argument's name, before a query."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from persistence import (
    Run,
    RunFilter,
    ValidationError,
    delete_results_before,
    end_run,
    list_runs,
    save_run,
)
from persistence.run_history import flaky_tests, slowest_tests

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence import Database


class _Offset(dt.tzinfo):
    """A time zone whose offset is whatever it was given: out of range, or not a timedelta."""

    def __init__(self, offset: object) -> None:
        self.offset = offset

    def utcoffset(self, _: dt.datetime | None) -> dt.timedelta | None:
        return self.offset  # type: ignore[return-value]  # the hostile offset tested

    def dst(self, _: dt.datetime | None) -> dt.timedelta | None:
        return None

    def tzname(self, _: dt.datetime | None) -> str:
        return "hostile"


ZONES = [_Offset(dt.timedelta(hours=30)), _Offset(-dt.timedelta(days=1)), _Offset(30), _Offset("1")]


@pytest.mark.parametrize("zone", ZONES, ids=["30-hours", "minus-a-day", "an-int", "a-str"])
async def test_a_time_zone_without_a_valid_offset_is_refused_by_name(
    db: Database, zone: dt.tzinfo
) -> None:
    """The datetime module raised its own ValueError or TypeError, naming no argument."""
    when = dt.datetime(2026, 1, 1, tzinfo=zone)
    run = await save_run(db, Run())
    assert run.id is not None
    run_id = run.id
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "FlakyTest.since": lambda: flaky_tests(db, when),
        "SlowTest.created_from": lambda: slowest_tests(db, created_from=when),
        "SlowTest.created_until": lambda: slowest_tests(db, created_until=when),
        "TestResult.cutoff": lambda: delete_results_before(db, when),
        "Run.ended_at": lambda: end_run(db, run_id, when),
        "RunFilter.started_from": lambda: list_runs(db, RunFilter(started_from=when)),
        "Run.started_at": lambda: save_run(db, Run(started_at=when)),
    }
    for name, call in calls.items():
        with pytest.raises(ValidationError, match="offset") as refused:
            await call()
        assert str(refused.value).startswith(f"{name}: "), str(refused.value)
    assert (await end_run(db, run_id)).ended_at is not None
