"""The event loop stays free while the package handles one value too large to cut in slices.

`test_loop_lag_large_values.py` measures many large values, each handled in its own slice;
here it is one value of megabytes, read, checked and written in one call: such a call runs in
a worker thread (`off_loop_if_large`). Each workload runs beside the benchmark's lag probe, as
there; in conftest's TIMED_MODULES.
"""

from __future__ import annotations

from _lag import MAX_LAG, huge_config, within
from persistence import Database, get_config_value, set_config
from persistence.cache import open_memory_cache


async def test_setting_and_reading_a_huge_config_value_shares_the_loop(db: Database) -> None:
    """Its checks, encoding and decoding run in a worker thread, not on the loop.

    `huge_config`'s 1.5 MB of JSON took 150 to 250 ms to check and write; a value of 740 kB
    held the loop 80 to 140 ms when set and when read, on both engines.
    """
    value = huge_config()
    entry = await within(MAX_LAG, "setting", lambda: set_config(db, "huge", "value", value))
    assert entry.value == value
    read = await within(MAX_LAG, "reading", lambda: get_config_value(db, "huge", "value", dict))
    assert read == value


async def test_a_cache_hit_of_a_huge_config_value_shares_the_loop(db: Database) -> None:
    """The private copy a hit gives its caller is made in a worker thread too."""
    value = huge_config()
    await set_config(db, "huge", "value", value)
    cache = await open_memory_cache(db)
    try:
        for read in ("miss", "hit"):
            got = await within(
                MAX_LAG, f"a {read}", lambda: cache.get_config_value("huge", "value", dict)
            )
            assert got == value
    finally:
        await cache.close()
