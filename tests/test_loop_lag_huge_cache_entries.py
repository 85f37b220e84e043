"""The event loop stays free while a cache keeps, stores and reads one entry of megabytes.

`test_loop_lag_huge_values.py` sets and reads such a value; here it goes through a cache's
tiers. The memory tier estimates what an entry it keeps holds by writing its JSON, and the
Redis tier writes and reads the entry as JSON: for a value of megabytes each is done in a
worker thread, a run of items at a time. Each workload runs beside the benchmark's lag probe,
as there; in conftest's TIMED_MODULES.
"""

from __future__ import annotations

import json
from typing import Final

from _lag import MAX_LAG, huge_config, within
from persistence import Database, set_config
from persistence.cache import open_memory_cache, open_redis_cache

_ENTRY_KEYS: Final = 54_000
"""Keys of the config value cached here: 4 MB of JSON, three times `huge_config`'s default.

The steps that held the loop grow with the value, the loop's share of each piece does not:
for 1.35 MB they held it 30 to 95 ms on a miss of the memory tier, 45 to 90 ms on a miss of
the Redis tier and 100 to 280 ms on a hit of it, where the read of the value alone (no
cache) holds it 10 to 20 ms; for 4 MB, a miss of either tier held it 115 to 205 ms.
"""


async def test_a_memory_cache_miss_of_a_huge_config_value_shares_the_loop(db: Database) -> None:
    """The size of the entry it keeps is estimated in a worker thread, its JSON in pieces.

    Estimated on the loop (the whole value written as JSON in one call), a miss of a value
    of 1.35 MB held it 30 to 95 ms.
    """
    value = huge_config(_ENTRY_KEYS)
    await set_config(db, "huge", "value", value)
    cache = await open_memory_cache(db)
    try:
        got = await within(
            MAX_LAG, "the miss", lambda: cache.get_config_value("huge", "value", dict)
        )
        assert got == value
        assert cache.stats().held_bytes > len(json.dumps(value))  # kept, its JSON counted
    finally:
        await cache.close()


async def test_a_redis_cache_miss_and_hit_of_a_huge_config_value_share_the_loop(
    db: Database, redis_url: str, namespace: str
) -> None:
    """The entry is written as JSON, and read and checked, in a worker thread, in pieces.

    The memory tier is off, so that the second read is Redis's. Done on the loop, a miss of
    a value of 1.35 MB held it 45 to 90 ms, a hit 100 to 280 ms.
    """
    value = huge_config(_ENTRY_KEYS)
    await set_config(db, "huge", "value", value)
    cache = await open_redis_cache(
        db, redis_url, namespace=namespace, local_size=0, max_entry_bytes=16 * 1024 * 1024
    )
    try:
        for read in ("miss", "hit"):
            got = await within(
                MAX_LAG, f"a {read}", lambda: cache.get_config_value("huge", "value", dict)
            )
            assert got == value
        stats = cache.stats()
        assert (stats.misses, stats.hits, stats.faults) == (1, 1, 0)
    finally:
        await cache.close()


async def test_a_memory_cache_hit_of_every_config_entry_with_a_huge_one_shares_the_loop(
    db: Database,
) -> None:
    """The private copy of an entry holding a value of megabytes is made in a worker thread.

    A tuple's items were copied a slice at a time on the loop, but no slice cuts one item:
    with a value of 4 MB among them, a hit of `all_config_entries` held the loop 180 to 330
    ms; one entry was copied on the loop in one go.
    """
    value = huge_config(_ENTRY_KEYS)
    await set_config(db, "huge", "value", value)
    await set_config(db, "small", "value", 3)
    cache = await open_memory_cache(db)
    try:
        await cache.all_config_entries()  # a miss: the listing's own read is not the cache's
        entries = await within(MAX_LAG, "the hit", cache.all_config_entries)
        assert [entry.value for entry in entries] == [value, 3]
        assert entries[0].value is not (await cache.all_config_entries())[0].value  # a copy
        assert cache.stats().hits == 2
        await cache.find_config_entry_by_key("huge", "value")
        entry = await within(
            MAX_LAG, "the entry's hit", lambda: cache.find_config_entry_by_key("huge", "value")
        )
        assert entry is not None
        assert entry.value == value
    finally:
        await cache.close()


async def test_a_redis_cache_hit_of_every_config_entry_with_a_huge_one_shares_the_loop(
    db: Database, redis_url: str, namespace: str
) -> None:
    """A tuple's entry of megabytes is read as its models in a worker thread too.

    Its items were read as models a slice at a time on the loop, but no slice cuts one item:
    with a value of 4 MB among them, a hit of `all_config_entries` held the loop 230 to 420 ms.
    """
    value = huge_config(_ENTRY_KEYS)
    await set_config(db, "huge", "value", value)
    await set_config(db, "small", "value", 3)
    cache = await open_redis_cache(
        db, redis_url, namespace=namespace, local_size=0, max_entry_bytes=16 * 1024 * 1024
    )
    try:
        await cache.all_config_entries()  # a miss: the listing's own read is not the cache's
        entries = await within(MAX_LAG, "the hit", cache.all_config_entries)
        assert [entry.value for entry in entries] == [value, 3]
        assert (cache.stats().hits, cache.stats().faults) == (1, 0)
    finally:
        await cache.close()
