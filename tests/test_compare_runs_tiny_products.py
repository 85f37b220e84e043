"""`compare_runs` answers when a base time times `slower_ratio` is too small for a float.

PostgreSQL's float multiplication raises `value out of range: underflow` when a product of two
numbers that are not zero rounds to zero, where SQLite, Python and the oracle give 0.0. A ratio
below 1 (or a tiny one) and a tiny base time made `compare_runs` a DatabaseError on PostgreSQL
only; both engines now give the oracle's answer.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Final

import pytest

from _history_oracle import compare_oracle
from persistence import Run, TestResult, TestStatus, TestType, all_results, save_results, save_run
from persistence.run_history import compare_runs, slower_least

if TYPE_CHECKING:
    from persistence import Database

TINY: Final = 5e-324
"""The smallest float above zero: half of it rounds to zero."""

CASES: Final = [
    (TINY, 2 * TINY, 0.5),  # 5e-324 * 0.5 is a tie, rounded to even: zero
    (TINY, TINY, 0.5),  # the same product, and a head time not above it
    (1e-200, 2e-200, 1e-200),  # both factors far from zero, the product below every float
    (TINY, 1e-323, TINY),
    (2 * TINY, 3 * TINY, 0.5),  # 1e-323 * 0.5 is 5e-324: no underflow
    (0.0, TINY, 1e-300),  # a zero factor never underflowed
    (sys.float_info.min, 1.0, 1e-300),
    (1.0, 2.0, TINY),
]
"""(base time, head time, ratio), each a passed test in both runs, with no floor."""


@pytest.mark.parametrize(("base_time", "head_time", "ratio"), CASES)
async def test_a_product_below_every_float_is_zero_on_both_engines(
    db: Database, base_time: float, head_time: float, ratio: float
) -> None:
    """A base time times the ratio that rounds to zero compares as zero, as in Python."""
    base, head = await save_run(db, Run()), await save_run(db, Run())
    assert base.id is not None
    assert head.id is not None
    await save_results(
        db,
        [
            TestResult(
                test_type=TestType.UNIT,
                status=TestStatus.PASSED,
                execution_time=seconds,
                run_id=run,
                test_id="t",
            )
            for run, seconds in ((base.id, base_time), (head.id, head_time))
        ],
    )
    stored = await all_results(db)
    expected = compare_oracle(
        [r for r in stored if r.run_id == base.id],
        [r for r in stored if r.run_id == head.id],
        ratio,
        0.0,
    )
    comparison = await compare_runs(db, base.id, head.id, slower_ratio=ratio, slower_floor=0.0)
    assert list(comparison.changes) == expected


@pytest.mark.parametrize("ratio", [0.0, TINY, 1e-300, 0.25, 0.5, 0.75, 1.0, 3.0, 1e300])
def test_slower_least_is_the_least_base_time_whose_product_is_not_zero(ratio: float) -> None:
    """Below the bound every product is zero; from it on, none is (for a ratio above zero)."""
    least = slower_least(ratio)
    if ratio == 0.0:
        assert least == 0.0
        return
    assert least * ratio > 0.0
    below = math.nextafter(least, 0.0)
    assert below * ratio == 0.0
