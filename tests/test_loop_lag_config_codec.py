"""A config value of megabytes, encoded or decoded in a worker thread, leaves the loop free.

`off_loop_if_large` moves the work off the loop, but `json`'s C encoder and scanner each hold
the GIL for a whole value: the loop waited for all of it. In conftest's TIMED_MODULES.
"""

from __future__ import annotations

from typing import Final

from _lag import MAX_LAG, huge_config, within
from persistence._loop import off_loop
from persistence._rows import decode_config_value, encode_config_value
from persistence.models import ConfigType

_KEYS: Final = 54_000
"""Keys of the config value here: 4 MB of JSON, which `json` wrote in 100 to 300 ms in one call."""
_THREAD_LAG: Final = MAX_LAG / 3
"""Lag left to a value handled in pieces: the interpreter switches threads every 5 ms."""


async def test_encoding_a_large_config_value_in_a_thread_leaves_the_loop_free() -> None:
    """The value is written a run of items at a time, each a short call holding the GIL."""
    value = huge_config(_KEYS)
    text = await within(
        _THREAD_LAG,
        "encoding",
        lambda: off_loop(lambda: encode_config_value(ConfigType.DICT, value, in_pieces=True)),
    )
    assert len(text) > 4_000_000


async def test_decoding_a_large_config_value_in_a_thread_leaves_the_loop_free() -> None:
    """The text is read a run of items at a time, each a short call holding the GIL."""
    value = huge_config(_KEYS)
    text = encode_config_value(ConfigType.DICT, value)
    read = await within(
        _THREAD_LAG,
        "decoding",
        lambda: off_loop(lambda: decode_config_value(ConfigType.DICT, text)),
    )
    assert read == value
