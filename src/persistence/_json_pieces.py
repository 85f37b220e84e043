"""One large JSON value encoded and decoded in pieces, each one short call of `json`'s C code.

`json`'s C encoder and scanner each handle a whole value in one call, holding the GIL for all
of it: a value of megabytes, handled in a worker thread (`_loop.off_loop_if_large`), still
held the event loop 50 to 135 ms. Here the top levels of a large object or array are walked
in Python, each item handled by the C code: between two items the interpreter may switch
threads. The result, and any error with its position, is the one-call result.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any, Final

from persistence._codecs import json_size

JSON_PIECE: Final = 32_768
"""Characters of JSON handled in one C call at most (about 1.5 ms), bar one long scalar."""

_make_encoder: Final = getattr(json.encoder, "c_make_encoder", None)
_Encode = Callable[[object], str]


def _one_call_encoder(encoder: json.JSONEncoder) -> _Encode:
    """Give a function writing one item as `encoder` would, made once for every item."""
    if _make_encoder is None:  # no C encoder: the Python one, as `encoder.encode` uses
        return encoder.encode
    to_text = json.encoder.encode_basestring_ascii
    if not encoder.ensure_ascii:
        to_text = json.encoder.encode_basestring
    one_call = _make_encoder(
        {},  # the markers of the items it is walking, for its circular check
        encoder.default,
        to_text,
        None,  # no indent
        encoder.key_separator,
        encoder.item_separator,
        False,  # noqa: FBT003  # sort_keys, positional in C
        False,  # noqa: FBT003  # skipkeys, positional in C
        encoder.allow_nan,
    )
    return lambda value: "".join(one_call(value, 0))


def encode_in_pieces(encoder: json.JSONEncoder, value: object, piece: int = JSON_PIECE) -> str:
    """Give `encoder.encode(value)`, each large dict or list written an item at a time.

    For an encoder as `json.dumps` makes one without indent or sorting, which checks for
    cycles; with any other, or for a small value, one call.
    """
    indent: object = encoder.indent  # None unless set, whatever typeshed says
    plain = not (indent is not None or encoder.sort_keys or encoder.skipkeys)
    if not plain or not encoder.check_circular or json_size(value, piece) <= piece:
        return encoder.encode(value)
    writer = _PieceWriter(encoder, piece)
    writer.write(value)
    return "".join(writer.parts)


class _PieceWriter:
    """The writing of one value: its parts so far, and the containers being walked."""

    def __init__(self, encoder: json.JSONEncoder, piece: int) -> None:
        self.one_call = _one_call_encoder(encoder)
        self.item_separator = encoder.item_separator
        self.key_separator = encoder.key_separator
        self.piece = piece
        self.parts: list[str] = []
        self.walking: set[int] = set()

    def write(self, value: object) -> None:
        """Append `value`'s JSON: in one call if small, else a run of items at a time."""
        if type(value) is list and json_size(value, self.piece) > self.piece:
            self.walk(value, value)
        elif (
            type(value) is dict
            and json_size(value, self.piece) > self.piece
            and all(type(key) is str for key in value)  # else one call, which says what is wrong
        ):
            self.walk(value, list(value.items()))
        else:
            self.parts.append(self.one_call(value))

    def walk(self, value: list[object] | dict[object, object], items: list[Any]) -> None:
        """Append a large list's or dict's JSON, each run of items within a piece by one call.

        A run is as long as the last that fitted, or twice if that filled half a piece at most.
        """
        if id(value) in self.walking:
            raise ValueError("Circular reference detected")  # as the one call says
        self.walking.add(id(value))
        parts = self.parts
        parts.append("[" if type(value) is list else "{")
        start, count = 0, 1
        while start < len(items):
            run = items[start : start + count]
            piece = run if type(value) is list else dict(run)
            size = json_size(piece, self.piece)
            if size <= self.piece:
                parts.append(self.item_separator if start else "")
                parts.append(self.one_call(piece)[1:-1])  # its items, without its brackets
                start += count
                count *= 2 if 2 * size <= self.piece else 1
            elif count > 1:
                count //= 2
            else:  # one item, itself large
                parts.append(self.item_separator if start else "")
                if type(value) is list:
                    self.write(run[0])
                else:
                    parts.extend((self.one_call(run[0][0]), self.key_separator))
                    self.write(run[0][1])
                start += 1
        parts.append("]" if type(value) is list else "}")
        self.walking.discard(id(value))
