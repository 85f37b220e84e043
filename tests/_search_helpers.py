"""What the search-edge tests share: a failed stress result, and what a search finds."""

from __future__ import annotations

import datetime as dt
from typing import Final

from persistence import Database, TestResult, TestStatus, TestType, search_results

T0: Final = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def result(output: str | None, error: str | None = None, *, minutes: int = 0) -> TestResult:
    """A failed stress result with this output and error message."""
    return TestResult(
        test_type=TestType.STRESS,
        status=TestStatus.FAILED,
        output=output,
        error_message=error,
        created_at=T0 + dt.timedelta(minutes=minutes),
    )


async def found(db: Database, text: str) -> list[int]:
    """The ids of every result a search finds, in rank order."""
    page = await search_results(db, text, limit=10_000)
    return [hit.result.id or 0 for hit in page.items]
