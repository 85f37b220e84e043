"""The event loop stays free while the package handles one value too large to cut in slices.

`test_loop_lag_large_values.py` measures many large values, each handled in its own slice;
here it is one value of megabytes, read, checked and written in one call: such a call runs in
a worker thread (`off_loop_if_large`). Each workload runs beside the benchmark's lag probe, as
there; in conftest's TIMED_MODULES.
"""

from __future__ import annotations

from persistence import Database, get_config_value, set_config
from persistence._interface import JsonObject
from persistence.cache import open_memory_cache
from test_loop_lag import MAX_LAG
from test_loop_lag_large_values import _held

_HUGE_KEYS = 18_000
"""Keys of `_huge_config`: 1.5 MB of JSON, which took 150 to 250 ms to check and write."""


def _huge_config(keys: int = _HUGE_KEYS) -> JsonObject:
    """A config value of 1.5 MB: an object of many small objects, as a settings file is."""
    return {
        f"key{index}": {"name": f"value {index}", "n": index, "share": index / 3, "on": True}
        for index in range(keys)
    }


async def test_setting_and_reading_a_huge_config_value_shares_the_loop(db: Database) -> None:
    """Its checks, encoding and decoding run in a worker thread, not on the loop.

    A value of 740 kB held the loop 80 to 140 ms when set and when read, on both engines.
    """
    value = _huge_config()
    lag, entry = await _held(lambda: set_config(db, "huge", "value", value))
    assert entry.value == value
    assert lag < MAX_LAG, f"setting held the loop for {lag * 1000:.0f} ms"
    lag, read = await _held(lambda: get_config_value(db, "huge", "value", dict))
    assert read == value
    assert lag < MAX_LAG, f"reading held the loop for {lag * 1000:.0f} ms"


async def test_a_cache_hit_of_a_huge_config_value_shares_the_loop(db: Database) -> None:
    """The private copy a hit gives its caller is made in a worker thread too."""
    value = _huge_config()
    await set_config(db, "huge", "value", value)
    cache = await open_memory_cache(db)
    try:
        for read in ("miss", "hit"):
            lag, got = await _held(lambda: cache.get_config_value("huge", "value", dict))
            assert got == value
            assert lag < MAX_LAG, f"a {read} held the loop for {lag * 1000:.0f} ms"
    finally:
        await cache.close()
