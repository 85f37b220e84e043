"""A JSON value encoded or decoded in pieces is the one-call result, and so is every error.

`_json_pieces` walks the top levels of a large value in Python, each run of items one call of
`json`'s C code; a tiny piece size here makes every value large, so that every path is taken.
"""

from __future__ import annotations

import functools
import json
import random
import sys
from collections.abc import Callable
from typing import Any, Final, cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from persistence._codecs import _ONE, JSON_ENCODER
from persistence._guards import MAX_JSON_DEPTH
from persistence._json_pieces import (
    TextValues,
    decode_in_pieces,
    encode_in_pieces,
    loads_in_pieces,
)
from strategies import IN_MEMORY

_CONFIG_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
"""As `json.dumps(value, ensure_ascii=False, allow_nan=False)` writes a config value."""
_ENCODERS: Final = [JSON_ENCODER, _CONFIG_JSON, json.JSONEncoder()]
_DECODERS: Final = [_ONE, json.JSONDecoder()]
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
    assert _outcome(lambda: encode_in_pieces(JSON_ENCODER, value, 4)) == _outcome(
        lambda: JSON_ENCODER.encode(value)
    )


_LITERALS: Final = st.sampled_from(
    [
        "0", "-0", "-0.0", "0.0e-0", "1E5", "1e400", "-1e400", "1.5", "12345678901234567890123",
        "9223372036854775808", "-9223372036854775809", "9007199254740993.0", "NaN", "Infinity",
        "-Infinity", "true", "false", "null", '""', '"a,b"', '"[{,"', '"\\u0000"', '"\\ud800"',
        '"\\"\\\\"', '"é☃"', "[]", "{}",
    ]
)  # fmt: skip
_NODES: Final = st.recursive(
    _LITERALS,
    lambda inner: (
        st.lists(inner, max_size=6).map(lambda items: ("array", items))
        | st.lists(
            st.tuples(st.sampled_from(["a", "b", "", "é", "a,b", "{"]), inner), max_size=6
        ).map(lambda pairs: ("object", pairs))
    ),
    max_leaves=40,
)
_SPACES: Final = ["", "", "", " ", "\n", "\t ", "\r\n  "]


def _render(node: object, rnd: random.Random) -> str:
    """Write a tree of `_NODES` as JSON text, random whitespace between its tokens."""

    def space() -> str:
        return rnd.choice(_SPACES)

    if isinstance(node, str):
        return node
    kind, items = cast("tuple[str, list[Any]]", node)
    if kind == "array":
        inner = ",".join(space() + _render(item, rnd) + space() for item in items)
        return f"[{space()}{inner}]"
    inner = ",".join(
        f'{space()}"{key}"{space()}:{space()}{_render(item, rnd)}{space()}' for key, item in items
    )
    return f"{{{space()}{inner}}}"


def _mutated(text: str, rnd: random.Random) -> str:
    """Break `text` at a random place, or not: a character dropped, added or the end cut off."""
    change = rnd.randrange(4)
    if not text or change == 3:
        return text
    at = rnd.randrange(len(text))
    if change == 0:
        return text[:at] + text[at + 1 :]
    if change == 1:
        return text[:at] + rnd.choice(',:[]{}"\\ 0e-.x') + text[at:]
    return text[:at]


@settings(IN_MEMORY, max_examples=600)
@given(
    node=_NODES,
    rnd=st.randoms(use_true_random=False),
    piece=_PIECES,
    which=st.sampled_from(range(len(_DECODERS))),
)
def test_a_text_decodes_in_pieces_as_in_one_call(
    node: object, rnd: random.Random, piece: int, which: int
) -> None:
    """Valid or not: same value (duplicate keys, -0.0, huge ints), or same error and position."""
    text = rnd.choice(_SPACES) + _render(node, rnd) + rnd.choice(_SPACES)
    text = _mutated(text, rnd)
    decoder = _DECODERS[which]
    assert _outcome(lambda: decode_in_pieces(decoder, text, piece)) == _outcome(
        lambda: decoder.decode(text)
    )
    if which == 1:
        assert _outcome(lambda: loads_in_pieces(text, piece)) == _outcome(lambda: json.loads(text))


@settings(IN_MEMORY, max_examples=100)
@given(
    nodes=st.lists(_NODES, min_size=1, max_size=3),
    rnd=st.randoms(use_true_random=False),
    piece=_PIECES,
)
def test_values_at_places_of_a_text_read_as_raw_decode_reads_them(
    nodes: list[object], rnd: random.Random, piece: int
) -> None:
    """Each value of a text, at its place, read in one call or walked: raw_decode's value or error.

    In one call, a value larger than the piece is None, and any other is read as raw_decode
    reads it; walked, every one is.
    """
    parts = [rnd.choice(_SPACES) + _render(node, rnd) for node in nodes]
    text = _mutated(" ".join(parts), rnd)
    values, one_call = TextValues(text, piece), json.JSONDecoder()
    places = sorted({0, *(rnd.randrange(len(text) + 1) for _ in range(3))})
    for at in places:
        expected = _outcome(functools.partial(one_call.raw_decode, text, at))
        assert _outcome(functools.partial(values.walked, at)) == expected
        small = _outcome(functools.partial(values.small, at))
        assert small in {expected, ("value", "None")}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "b": [1, 2], "a": {"c": 3}, "b": 4}',  # the last value, at the first key's place
        "\ufeff[1, 2, 3, 4, 5, 6, 7, 8]",
        "[1, 2, 3, 4, 5, 6, 7, 8,]",
        '{"a": 1, "b": 2, "c": 3, "d": 4,}',
        "[1, 2, 3, 4, 5, 6, 7, 8] x",
        "   ",
        '["' + "a," * 40 + '", [1, 2, 3, 4], {"k": [5, 6, 7, 8]}]',
    ],
)
@pytest.mark.parametrize("decoder", _DECODERS)
@pytest.mark.parametrize("piece", [1, 3, 8, 20])
def test_edge_texts_decode_in_pieces_as_in_one_call(
    text: str, decoder: json.JSONDecoder, piece: int
) -> None:
    """Duplicate keys, a BOM, trailing commas and data, blank text, commas inside strings."""
    assert _outcome(lambda: decode_in_pieces(decoder, text, piece)) == _outcome(
        lambda: decoder.decode(text)
    )
    assert _outcome(lambda: loads_in_pieces(text, piece)) == _outcome(lambda: json.loads(text))


@pytest.mark.parametrize(
    "depth",
    [
        MAX_JSON_DEPTH - 1,
        MAX_JSON_DEPTH,
        MAX_JSON_DEPTH + 1,
        *range(sys.getrecursionlimit() - 40, sys.getrecursionlimit() + 5, 3),
    ],
)
@pytest.mark.parametrize("decoder", _DECODERS)
@pytest.mark.parametrize("piece", [1, 16, 64])
def test_deep_nesting_decodes_in_pieces_as_in_one_call(
    depth: int, decoder: json.JSONDecoder, piece: int
) -> None:
    """Near the models' depth and near Python's recursion limit, in one call or in pieces.

    Each level walked takes frames here: where the one call would still read the text, the
    pieces fall back to it, so that neither reads what the other refuses.
    """
    text = "[1, " * depth + "[2, 3]" + "]" * depth
    assert _outcome(lambda: decode_in_pieces(decoder, text, piece)) == _outcome(
        lambda: decoder.decode(text)
    )
