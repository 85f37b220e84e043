"""How `map_slices` cuts a list: cheap items in few calls, slow ones a few at a time."""

from __future__ import annotations

import time
from collections.abc import Sequence

from persistence._loop import LOOP_SLICE, SLICE_ITEMS, map_slices


async def test_cheap_items_are_mapped_in_two_calls_at_most() -> None:
    """A page of ordinary rows pays the mapper's own cost per call about once, not per slice.

    Each slice was paced by the first: one row timed with the mapper's own cost per call
    looked slow, and a page of 50 went in five calls, a tenth slower than in one. Its first
    call is timed: a preemption of 31 us on a busy machine paces one try slow (the rerun of
    the fresh clones of the last two stops), so the best of three is asserted.
    """
    items = list(range(SLICE_ITEMS))
    tries: list[list[int]] = []
    for _ in range(3):  # the best of three: one preemption of the first call paces it slow
        calls: list[int] = []

        def mapper(part: Sequence[int], calls: list[int] = calls) -> list[int]:
            calls.append(len(part))
            return [item * 2 for item in part]

        assert await map_slices(mapper, items) == [item * 2 for item in items]
        tries.append(calls)
    assert min(map(len, tries)) <= 2, tries


async def test_slow_items_are_mapped_a_few_at_a_time() -> None:
    """Items taking 2 ms each go one or two to a call: the loop is never held for long."""
    calls: list[int] = []

    def mapper(part: Sequence[int]) -> list[int]:
        calls.append(len(part))
        time.sleep(0.002 * len(part))
        return list(part)

    assert await map_slices(mapper, list(range(12))) == list(range(12))
    assert max(calls) * 0.002 <= max(LOOP_SLICE * 4, 0.004), calls
