"""A worker thread's sort leaves the loop its turns: the GIL is let go between pieces.

`sorted` is one C call that keeps the GIL. Run in a worker thread to keep the loop free, a
sort of 300,000 names (a folder's listing, `verify`'s new files, the artifact cache's entries
before an eviction) held the loop 100 to 900 ms all the same.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _lag import MAX_LAG, within
from persistence._loop import SORT_PIECE, sorted_in_pieces


@given(
    items=st.lists(st.tuples(st.integers(0, 5), st.text(max_size=3)), max_size=3 * SORT_PIECE),
)
def test_pieces_sort_as_sorted_does(items: list[tuple[int, str]]) -> None:
    """The same order as `sorted`, equal keys as they came, with and without a key."""
    assert sorted_in_pieces(items) == sorted(items)
    assert sorted_in_pieces(items, key=lambda item: item[0]) == sorted(items, key=lambda i: i[0])


def test_pieces_past_one_sort_as_sorted_does() -> None:
    """Many pieces, ties across them kept in their order."""
    rng = random.Random(7)  # noqa: S311  # test data
    items = [(rng.randrange(50), n) for n in range(5 * SORT_PIECE + 3)]
    assert sorted_in_pieces(items, key=lambda item: item[0]) == sorted(items, key=lambda i: i[0])


@pytest.mark.timed
async def test_a_thread_sorting_a_million_names_leaves_the_loop_free() -> None:
    """One `sorted` of these held the loop about a second; in pieces, a piece's time."""
    rng = random.Random(11)  # noqa: S311  # test data
    names = [f"{rng.getrandbits(160):040x}.log" for _ in range(1_000_000)]
    ordered = await within(MAX_LAG, "the sort", lambda: asyncio.to_thread(sorted_in_pieces, names))
    assert ordered[0] == min(names)
    assert ordered[-1] == max(names)
