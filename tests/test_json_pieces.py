"""A JSON value encoded in pieces is the one-call result, and so is every error.

`_json_pieces` walks the top levels of a large value in Python, each run of items one call of
`json`'s C code; a tiny piece size here makes every value large, so that every path is taken.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from hypothesis import example, given, settings
from hypothesis import strategies as st

from persistence._codecs import _TO_JSON
from persistence._json_pieces import encode_in_pieces
from strategies import IN_MEMORY

_CONFIG_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
"""As `json.dumps(value, ensure_ascii=False, allow_nan=False)` writes a config value."""
_ENCODERS: Final = [_TO_JSON, _CONFIG_JSON, json.JSONEncoder()]
_PIECES: Final = st.integers(min_value=1, max_value=96)


def _outcome(call: Callable[[], object]) -> tuple[object, ...]:
    """What `call` gives, told apart to the sign of a zero and the order of keys, or its error."""
    try:
        return ("value", repr(call()))
    except (ValueError, TypeError, RecursionError) as error:
        return ("error", type(error), str(error))


_SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats()
    | st.sampled_from([-0.0, 0.0, 1e300, 2.0**53, 1 / 3])
    | st.text()
    | st.text(alphabet='\x00\ud800"\\/\n é☃', max_size=8)
)
_VALUES: Final = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=4), inner, max_size=6)
        | st.dictionaries(st.integers() | st.none() | st.booleans(), inner, max_size=2)
        | st.tuples(inner, inner)
    ),
    max_leaves=40,
)


@settings(IN_MEMORY, max_examples=400)
@given(value=_VALUES, piece=_PIECES, which=st.sampled_from(range(len(_ENCODERS))))
@example(value={"a": [1, {"b": float("nan")}], "c": 2}, piece=1, which=0)
@example(value=[{1: "x"}, {"k": [1, 2, 3]}], piece=1, which=1)
def test_a_value_encodes_in_pieces_as_in_one_call(value: object, piece: int, which: int) -> None:
    """Same text to the byte (separators, key order, non-ASCII kept), or the same error."""
    encoder = _ENCODERS[which]
    assert _outcome(lambda: encode_in_pieces(encoder, value, piece)) == _outcome(
        lambda: encoder.encode(value)
    )


def test_a_circular_value_is_refused_as_in_one_call() -> None:
    """A list holding itself, deep in a large value, is refused as the C encoder says."""
    looped: list[object] = [1, 2]
    looped.append({"back": [looped]})
    value = {"a": list(range(50)), "b": looped}
    assert _outcome(lambda: encode_in_pieces(_TO_JSON, value, 4)) == _outcome(
        lambda: _TO_JSON.encode(value)
    )
