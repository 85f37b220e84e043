"""A worker thread's sort, and its freeing of a list, leave the loop its turns between pieces.

`sorted` is one C call that keeps the GIL. Run in a worker thread to keep the loop free, a
sort of 300,000 names (a folder's listing, `verify`'s new files, the artifact cache's entries
before an eviction) held the loop 100 to 900 ms all the same. So did the list of the artifact
cache's entries, freed in one go as an eviction ended: 300,000 entries, 40 to 50 ms.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _lag import MAX_LAG, MAX_STATEMENT_LAG, within
from persistence._loop import SORT_PIECE, empty_in_pieces, sorted_in_pieces
from persistence.cache import disk
from persistence.storage import Storage


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


def test_a_list_emptied_in_pieces_is_empty() -> None:
    """Every item goes, a piece at a time: fewer than a piece, a piece, and past several."""
    for size in (0, 1, SORT_PIECE, 3 * SORT_PIECE + 1):
        items = list(range(size))
        empty_in_pieces(items)
        assert items == []


_ENTRIES = 1_000_000
"""Entries the eviction's scan gives: freed in one go, they held the loop about 150 ms."""


@pytest.mark.timed
async def test_an_eviction_over_a_million_entries_leaves_the_loop_free(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's entries are freed a piece at a time in the eviction's thread.

    Its scan is stood in for (a million files take minutes to make): entries of no shard on
    disk, passed over, within the budget, so that nothing is evicted.
    """
    cache = await disk.open_artifact_cache(storage, budget=2**62)
    await cache.put(b"an entry")  # its folder, which the eviction scans
    monkeypatch.setattr(disk, "_scan", lambda _: _entries())
    assert await within(MAX_STATEMENT_LAG, "the eviction", cache.evict) == 0


def _entries() -> list[tuple[int, int, str, str]]:
    """A scan's entries, none held but by the list: (last use in ns, size, shard, key)."""
    return [(10**12 + n, 10**6 + n, f"s{n % 256}", f"e{n}") for n in range(_ENTRIES)]
