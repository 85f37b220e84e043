"""One large JSON value encoded and decoded in pieces, each one short call of `json`'s C code.

`json`'s C encoder and scanner each handle a whole value in one call, holding the GIL for all
of it: a value of megabytes, handled in a worker thread (`_loop.off_loop_if_large`), still
held the event loop 50 to 135 ms. Here the top levels of a large object or array are walked
in Python, each item handled by the C code: between two items the interpreter may switch
threads. The result, and any error with its position, is the one-call result.
"""

from __future__ import annotations

import json
import json.decoder
import json.encoder
import re
import sys
from collections.abc import Callable
from typing import Any, Final

from persistence._codecs import JSON_ENCODER, EncodedJson, in_jsonb_order, json_size
from persistence._interface import JsonObject

JSON_PIECE: Final = 32_768
"""Characters of JSON handled in one C call at most (about 1.5 ms), bar one long scalar."""

_make_encoder: Final = getattr(json.encoder, "c_make_encoder", None)
_scan_string: Final[Callable[[str, int, bool], tuple[str, int]]] = json.decoder.scanstring  # type: ignore[attr-defined]  # untyped in typeshed
_skip_space: Final[Callable[[str, int], re.Match[str]]] = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]  # untyped in typeshed

_NAMES_TRAILING_COMMAS: Final = sys.version_info >= (3, 13)
"""Whether json says "Illegal trailing comma" at a comma before a closing bracket (3.13 on)."""


def _past_comma(text: str, comma: int, closing: str, what: str) -> int:
    """Give where the item after the comma at `comma` begins; refuse a trailing comma as json does.

    Before 3.13 json found no value (array) or no key (object) at the bracket; since, it names
    the comma.
    """
    idx = _skip_space(text, comma + 1).end()
    if _NAMES_TRAILING_COMMAS and text[idx : idx + 1] == closing:
        raise json.JSONDecodeError(f"Illegal trailing comma before end of {what}", text, comma)
    return idx


_Encode = Callable[[object], str]
_COMMAS_TRIED: Final = 8
"""Commas looked at for the end of a run of items: an item of small objects holds a few."""


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


def encoded_ahead(value: JsonObject) -> EncodedJson:
    """Encode a JSON object as a write stores it, a run of items at a time, for a thread.

    Its keys go in jsonb's order, as `encode_json_as_jsonb` writes them for SQLite; PostgreSQL
    takes any order. Between the runs the thread lets the event loop have the GIL.
    """
    return EncodedJson(encode_in_pieces(JSON_ENCODER, in_jsonb_order(value)))


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


def decode_in_pieces(decoder: json.JSONDecoder, text: str, piece: int = JSON_PIECE) -> object:
    """Give `decoder.decode(text)`, each large object or array walked here an item at a time.

    For a decoder without object hooks; its own scanner (`make_scanner`, with its parse
    hooks) reads each item. An item is read from a copy of the next `2 * piece` characters, so
    that one too large fails at once, and is walked in turn.
    """
    hooked = getattr(decoder, "object_hook", None) or getattr(decoder, "object_pairs_hook", None)
    if len(text) <= piece or hooked is not None:
        return decoder.decode(text)
    reader = _PieceReader(decoder, text, piece)
    try:
        start = _skip_space(text, 0).end()
        try:
            value, end = reader.walk(start)
        except StopIteration as error:
            raise json.JSONDecodeError("Expecting value", text, error.value) from None
    except RecursionError:  # each level takes a frame here: the one call may go deeper
        return decoder.decode(text)
    end = _skip_space(text, end).end()
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class _PieceReader:
    """The walk of one text: its decoder's scanner, and the copy of text that it reads from."""

    def __init__(self, decoder: json.JSONDecoder, text: str, piece: int) -> None:
        self.scan: Callable[[str, int], tuple[object, int]] = decoder.scan_once  # type: ignore[attr-defined]  # set by JSONDecoder
        self.strict = decoder.strict
        self.text = text
        self.piece = piece
        self.window = ""
        self.window_at = 0
        self.failed_cut = -1

    def walk(self, idx: int) -> tuple[object, int]:
        """Read the value at `idx` of the text, an object or array an item at a time."""
        opening = self.text[idx : idx + 1]
        if opening == "{":
            return self.walk_object(idx + 1)
        if opening == "[":
            return self.walk_array(idx + 1)
        return self.scan(self.text, idx)  # a scalar, or what no value starts with

    def item(self, idx: int) -> tuple[object, int]:
        """Read the item at `idx`: in one call from the window if it fits, else walked."""
        found = self.in_one_call(idx)
        return self.walk(idx) if found is None else found

    def in_one_call(self, idx: int) -> tuple[object, int] | None:
        """Read the value at `idx` in one call: an object or array from the window, if it fits.

        None for one that does not (too large, or wrong: walked, it fails where it is wrong).
        """
        if self.text[idx : idx + 1] not in ("{", "["):  # "": a StopIteration, as in one call
            return self.scan(self.text, idx)
        window_end = self.window_at + len(self.window)
        if idx + self.piece > window_end and window_end < len(self.text):
            self.window, self.window_at = self.text[idx : idx + 2 * self.piece], idx
        try:  # an object or array ends at its bracket: the scanner reads nothing past it
            value, end = self.scan(self.window, idx - self.window_at)
        except Exception:  # noqa: BLE001  # StopIteration too: too large, or wrong
            return None
        return value, end + self.window_at

    def run_of_items(self, idx: int, brackets: str) -> tuple[object, int] | None:
        """Read the items from `idx` to the last comma within a piece, in one call, if it can.

        The text between, set in `brackets`, reads to its end only if that comma ends an item
        of this object or array: one inside a string leaves it open, one inside an item leaves
        that item's brackets or these open. Else (or if the text is wrong) None, and the items
        up to that comma are read one by one. Gives the items, and where the comma ends.
        """
        if idx <= self.failed_cut:
            return None
        cut = self._balanced_comma(idx)
        if cut <= idx:
            return None
        run = brackets[0] + self.text[idx:cut] + brackets[1]
        try:
            value, end = self.scan(run, 0)
        except Exception:  # noqa: BLE001  # any error is met again, item by item
            end = -1
        if end != len(run):
            self.failed_cut = cut
            return None
        return value, cut + 1

    def _balanced_comma(self, idx: int) -> int:
        """Give the last comma within a piece from `idx` with as many brackets opened as closed.

        Brackets inside strings count too: such a comma is only likely to end an item. A few
        are looked at, from the last; -1 if none of them.
        """
        text = self.text
        end = idx + self.piece
        for _ in range(_COMMAS_TRIED):
            cut = text.rfind(",", idx, end)
            if cut <= idx:
                break
            if text.count("{", idx, cut) == text.count("}", idx, cut) and text.count(
                "[", idx, cut
            ) == text.count("]", idx, cut):
                return cut
            end = cut
        return -1

    def walk_object(self, idx: int) -> tuple[object, int]:
        """Read an object's items from `idx`, past its "{", as json's C scanner does."""
        text = self.text
        idx = _skip_space(text, idx).end()
        value: dict[str, object] = {}
        if text[idx : idx + 1] == "}":
            return value, idx + 1
        while True:
            run = self.run_of_items(idx, "{}")
            if run is not None:
                value.update(run[0])  # type: ignore[call-overload]  # the scanner gives a dict
                idx = _past_comma(text, run[1] - 1, "}", "object")
                continue  # an item must follow its comma, as in one call
            if text[idx : idx + 1] != '"':
                message = "Expecting property name enclosed in double quotes"
                raise json.JSONDecodeError(message, text, idx)
            key, idx = _scan_string(text, idx + 1, self.strict)
            idx = _skip_space(text, idx).end()
            if text[idx : idx + 1] != ":":
                raise json.JSONDecodeError("Expecting ':' delimiter", text, idx)
            idx = _skip_space(text, idx + 1).end()
            value[key], idx = self.item(idx)
            idx = _skip_space(text, idx).end()
            after = text[idx : idx + 1]
            if after == "}":
                return value, idx + 1
            if after != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, idx)
            idx = _past_comma(text, idx, "}", "object")

    def walk_array(self, idx: int) -> tuple[object, int]:
        """Read an array's items from `idx`, past its "[", as json's C scanner does."""
        text = self.text
        idx = _skip_space(text, idx).end()
        value: list[object] = []
        if text[idx : idx + 1] == "]":
            return value, idx + 1
        while True:
            run = self.run_of_items(idx, "[]")
            if run is not None:
                value.extend(run[0])  # type: ignore[arg-type]  # the scanner gives a list
                idx = _past_comma(text, run[1] - 1, "]", "array")
                continue  # an item must follow its comma, as in one call
            item, idx = self.item(idx)
            value.append(item)
            idx = _skip_space(text, idx).end()
            after = text[idx : idx + 1]
            if after == "]":
                return value, idx + 1
            if after != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, idx)
            idx = _past_comma(text, idx, "]", "array")


_LOADS: Final = json.JSONDecoder()
"""As `json.loads` decodes text, without arguments."""


class TextValues:
    """The JSON values at places in one text, each read as `raw_decode` reads it there.

    For a document read a part at a time (a report's tests): `small` reads a part in one call
    where it fits a piece, `walked` any part, an object or array an item at a time, in a
    worker thread (the GIL let go between items). Their errors are json's, at their place in
    the text; a StopIteration is "Expecting value", as `raw_decode` says.
    """

    def __init__(self, text: str, piece: int = JSON_PIECE) -> None:
        self._reader = _PieceReader(_LOADS, text, piece)

    def small(self, idx: int) -> tuple[object, int] | None:
        """Give the value at `idx` and where it ends, read in one call; None if too large."""
        return self._scanned(self._reader.in_one_call, idx)

    def walked(self, idx: int) -> tuple[object, int]:
        """Give the value at `idx` and where it ends, walked an item at a time."""
        try:
            found = self._scanned(self._reader.walk, idx)
        except RecursionError:  # each level walked takes frames here: the one call goes deeper
            return _LOADS.raw_decode(self._reader.text, idx)
        assert found is not None  # noqa: S101  # a walk always reads the value or fails
        return found

    def _scanned(
        self, read: Callable[[int], tuple[object, int] | None], idx: int
    ) -> tuple[object, int] | None:
        try:
            return read(idx)
        except StopIteration as error:  # the scanner's "no value here"
            raise json.JSONDecodeError("Expecting value", self._reader.text, error.value) from None


def loads_in_pieces(
    text: str, piece: int = JSON_PIECE, decoder: json.JSONDecoder = _LOADS
) -> object:
    """Give `decoder.decode(text)` (`json.loads`'s by default), in pieces (`decode_in_pieces`)."""
    if text.startswith("\ufeff"):
        return json.loads(text)  # which refuses it, saying why, as it refuses any such text
    return decode_in_pieces(decoder, text, piece)
