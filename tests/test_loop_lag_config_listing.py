"""The event loop stays free while a listing of config entries reads one of megabytes.

`test_loop_lag_huge_values.py` reads one such value by its key; here it is one row of a
listing, whose rows are mapped to models a slice at a time: no slice cuts one row, so a row
of megabytes is decoded and checked in a worker thread (`off_loop_if_large`). Each workload
runs beside the benchmark's lag probe, as there; in conftest's TIMED_MODULES.

With the rows mapped on the loop, the huge values here (4 MB and 2.7 MB, on one page) held it
220 to 680 ms in a listing or a page and 275 to 920 ms on a cache's miss, on both engines;
now 10 to 60 ms on two busy CPUs, where the package's own steps on the loop take at most 6 ms
and SQLite's fetch of the two rows 11 ms.
"""

from __future__ import annotations

import functools
from typing import Final

import pytest

from _lag import MAX_LAG, every_page_within, huge_config, within
from persistence import (
    ConfigEntry,
    ConfigEntryFilter,
    Database,
    all_config_entries,
    list_config_entries,
    set_config,
)
from persistence.cache import open_memory_cache, open_redis_cache
from persistence.models import ConfigValue

pytestmark = pytest.mark.timed

_ENTRY_KEYS: Final = 54_000
"""Keys of the huge dict stored here: 4 MB of JSON."""

_LIST_ITEMS: Final = 200_000
"""Items of the huge list stored here: short texts, 2.7 MB of JSON."""

_SMALL: Final = 20
"""Small entries around the huge ones, so that they fall mid-page and mid-slice.

Even, so that the two huge ones share a page of 2. The faults held the loop with the huge rows,
whatever the small ones around them: 100 of each made 308 pages, each measured apart."""


def _huge_values() -> dict[str, ConfigValue]:
    """The values of megabytes stored here, by key: a nested dict and a list of short texts."""
    return {
        "dict": huge_config(_ENTRY_KEYS),
        "list": [f"item {index}" for index in range(_LIST_ITEMS)],
    }


async def _store(db: Database) -> dict[str, ConfigValue]:
    """Store the huge values in section "huge", among small entries; give them by key."""
    values = _huge_values()
    for index in range(_SMALL):
        await set_config(db, "a-small", f"key{index:04}", index)
    for key, value in values.items():
        await set_config(db, "huge", key, value)
    for index in range(_SMALL):
        await set_config(db, "z-small", f"key{index:04}", f"text {index}")
    return values


def _check(
    entries: list[ConfigEntry] | tuple[ConfigEntry, ...], values: dict[str, ConfigValue]
) -> None:
    """Check a listing of every entry: in order, the huge ones whole."""
    assert len(entries) == 2 * _SMALL + len(values)
    assert [entry.value for entry in entries[:_SMALL]] == list(range(_SMALL))
    huge = {entry.key: entry.value for entry in entries if entry.section == "huge"}
    assert huge == values
    assert entries[-1].value == f"text {_SMALL - 1}"


async def test_listing_every_config_entry_with_huge_ones_shares_the_loop(db: Database) -> None:
    """Each row of megabytes is read as its model in a worker thread, the rest on the loop."""
    values = await _store(db)
    _check(await within(MAX_LAG, "the listing", lambda: all_config_entries(db)), values)
    huge = ConfigEntryFilter(section="huge")
    section = await within(MAX_LAG, "the section", lambda: all_config_entries(db, huge))
    assert {entry.key: entry.value for entry in section} == values


async def test_pages_of_config_entries_with_huge_ones_share_the_loop(db: Database) -> None:
    """A page holding a row of megabytes, alone, with another, or among small ones.

    One store, read in pages of each size: storing megabytes took most of each test's time.
    """
    values = await _store(db)
    for limit in (1, 2, 100):
        read = functools.partial(list_config_entries, db, None, limit=limit)
        _check(await every_page_within(MAX_LAG, f"a page of {limit}", read), values)


async def test_a_memory_cache_miss_of_every_config_entry_with_huge_ones_shares_the_loop(
    db: Database,
) -> None:
    """The cache's miss reads the listing as above, then keeps it, its size estimated in pieces."""
    values = await _store(db)
    cache = await open_memory_cache(db)
    try:
        _check(await within(MAX_LAG, "the miss", cache.all_config_entries), values)
        assert cache.stats().misses == 1
    finally:
        await cache.close()


async def test_a_redis_cache_miss_of_every_config_entry_with_huge_ones_shares_the_loop(
    db: Database, redis_url: str, namespace: str
) -> None:
    """The miss reads the listing as above, then writes it to Redis, its JSON in pieces."""
    values = await _store(db)
    cache = await open_redis_cache(
        db, redis_url, namespace=namespace, local_size=0, max_entry_bytes=32 * 1024 * 1024
    )
    try:
        _check(await within(MAX_LAG, "the miss", cache.all_config_entries), values)
        assert (cache.stats().misses, cache.stats().faults) == (1, 0)
    finally:
        await cache.close()
