"""A finite amount (a ratio, a floor, a timeout) is any number that is a finite float, ints too."""

from __future__ import annotations

import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import Database, ValidationError, duration_figures
from persistence._guards import finite_amount

LARGEST_FLOAT_INT = int(sys.float_info.max)
"""The largest int a float holds exactly: 2**1024 less 2**971."""


@example(2**1023)
@example(LARGEST_FLOAT_INT)
@example(LARGEST_FLOAT_INT + 2**969)  # rounds down to the largest float
@example(LARGEST_FLOAT_INT + 2**970)  # rounds up, past it
@example(2**1024)
@given(st.integers(0, 2**1100))
def test_an_int_is_taken_when_it_is_a_finite_float(number: int) -> None:
    """An int is taken as the float it rounds to, refused only where that float overflows."""
    try:
        expected = float(number)
    except OverflowError:
        with pytest.raises(ValidationError, match=r"^Run\.ratio: must be a finite number >= 0"):
            finite_amount("Run", "ratio", number, "a number")
    else:
        assert finite_amount("Run", "ratio", number, "a number") == expected


def test_an_int_past_the_largest_float_is_shown_by_its_size() -> None:
    """The refusal names the int's size, not the inf it is not."""
    with pytest.raises(ValidationError, match=r"got an int of 1025 bits$"):
        finite_amount("Run", "ratio", 2**1024, "a number")
    with pytest.raises(ValidationError, match=r"got an int of 1031 bits$"):
        finite_amount("Run", "ratio", -(2**1030), "a number")


async def test_a_ratio_of_1024_bits_is_asked_on_both_engines(db: Database) -> None:
    """A question takes a ratio of 2**1023, a finite float, where it said it was inf."""
    figures = await duration_figures(db, "a", slower_ratio=2**1023)
    assert figures.results == 0
