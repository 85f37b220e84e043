"""The rows every contender writes and reads: the seed's test_results shape, made the same way."""

from __future__ import annotations

import datetime as dt
import random
from typing import Final

from persistence import ResultFilter, TestResult, TestStatus, TestType

__all__ = [
    "BASE_TIME",
    "PAGE_SIZE",
    "batches_of",
    "listing_filter",
    "make_results",
    "shuffled",
]

BASE_TIME: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
"""When the first result was created; each next one is a second (and a little) later."""

PAGE_SIZE: Final = 500
"""The page size of the filtered listing."""

_TYPES: Final = tuple(TestType)
_STATUSES: Final = tuple(TestStatus)


def batches_of(results: list[TestResult], size: int) -> list[list[TestResult]]:
    """Cut the results into consecutive batches of `size` (the last may be shorter)."""
    return [results[start : start + size] for start in range(0, len(results), size)]


def listing_filter(n: int) -> ResultFilter:
    """Return the listing's filter: one test type, from a quarter of the way in."""
    return ResultFilter(
        test_type=TestType.UNIT, created_from=BASE_TIME + dt.timedelta(seconds=n // 4)
    )


def make_results(n: int, seed: int = 20261125) -> list[TestResult]:
    """Build `n` valid results without ids, the same ones for the same `n` and `seed`."""
    rng = random.Random(seed)  # noqa: S311  # benchmark data, not secrets
    results = []
    for index in range(n):
        status = _STATUSES[(index // 4) % len(_STATUSES)]
        total = rng.randint(1, 200)
        passed = total if status is TestStatus.PASSED else rng.randint(0, total)
        results.append(
            TestResult(
                test_type=_TYPES[index % len(_TYPES)],
                status=status,
                execution_time=round(rng.uniform(0.0, 5.0), 6),
                memory_usage=rng.randint(0, 2**31),
                test_cases_passed=passed,
                test_cases_total=total,
                error_message=None if status is TestStatus.PASSED else f"case {passed + 1} failed",
                output=f"ran {total} cases in run {index}",
                created_at=BASE_TIME + dt.timedelta(seconds=index, microseconds=index % 997),
                metadata={"run": index, "runner": "ci-3", "tags": ["bench", _TYPES[index % 4]]},
            )
        )
    return results


def shuffled(ids: list[int], seed: int = 7) -> list[int]:
    """Return the ids in a fixed random order, so every contender looks them up alike."""
    order = list(ids)
    random.Random(seed).shuffle(order)  # noqa: S311  # benchmark order, not secrets
    return order
