"""How values neither driver stores as they are become text and back, for both backends."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from json.scanner import make_scanner
from typing import Final

from persistence._guards import (
    JSON_SCALARS,
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_JSON_FLOAT,
    MIN_INT,
    is_json_container,
    json_value,
)
from persistence._interface import JsonValue
from persistence.exceptions import ValidationError

_FROM_ISO = dt.datetime.fromisoformat
_UTC: Final = dt.UTC
JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""One encoder for every write: `json.dumps` with options builds a new one per call."""


class EncodedJson(dict[str, JsonValue]):
    """A JSON object's text, encoded ahead, where the object would go as a parameter.

    A large one is encoded in a worker thread, a run of items at a time (`_json_pieces.
    encoded_ahead`): encoded as the parameter is bound, on SQLite's writer or by asyncpg's
    codec on the loop, one object of megabytes held the loop for hundreds of milliseconds in
    one C call. It holds no items: a dict, so that it goes where the queries take an object,
    which both engines' encoders (`encode_json`, `encode_json_as_jsonb`) write as its text.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def __repr__(self) -> str:
        """Show the object's text, where a dict shows its items: a traced parameter's value."""
        return self.text


def encode_datetime(value: dt.datetime) -> str:
    """Store an aware datetime as fixed-width UTC ISO 8601 text, which sorts in time order."""
    if value.tzinfo is _UTC:  # as models keep their times: nothing to check or shift
        return value.isoformat(timespec="microseconds")
    if value.utcoffset() is None:
        raise ValidationError("query", "datetime", f"naive datetime {value} cannot be stored")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


AFTER_EVERY_VALUE: Final = b"\xff" * 1024
"""After every stored text: SQLite sorts a blob after every text, and this blob after every
blob that plain SQL may have stored instead (short of 1 KiB of 0xff)."""


def encode_time_bound(value: dt.datetime) -> str | bytes:
    """Give SQLite an unset end of a time filter (`TimeBound`): before or after every time.

    A time column has TEXT affinity, so it holds text or, past its CHECK, a blob.
    """
    return "" if value.year == 1 else AFTER_EVERY_VALUE


def encode_key_bound(_value: str) -> bytes:
    """Give SQLite an unset upper end of a text range (`KeyBound`): after every text and blob."""
    return AFTER_EVERY_VALUE


def encode_json(value: object) -> str:
    """Write JSON the same way everywhere: compact, UTF-8, no NaN; `EncodedJson` as its text."""
    if type(value) is EncodedJson:
        return value.text
    return JSON_ENCODER.encode(value)


def json_size(value: object, limit: int, *, item: int = 8) -> int:
    """Roughly the characters of `value` as JSON: each item `item`, a text its length.

    Counted only until past `limit`, so that the count costs little whatever the value's size:
    enough to tell a value that `off_loop_if_large` should handle in a worker thread. With
    `item=0` it counts the texts alone, a least size: each character is a byte at least. The
    models hold plain dicts and lists (`_guards.json_value`), told apart by their type alone; a
    caller's own mapping or sequence, not yet checked, is counted as one.
    """
    size = 0
    pending = [value]
    while pending and size <= limit:
        found = pending.pop()
        if type(found) is str:
            size += len(found)
        elif type(found) is dict or type(found) is list:
            size += item * len(found)
            if size <= limit:
                pending += found.values() if type(found) is dict else found
        elif type(found) in JSON_SCALARS or not is_json_container(found):
            size += item
        else:  # a caller's own mapping or sequence, before its check
            items = found.values() if isinstance(found, Mapping) else found
            size += item * len(items)
            if size <= limit:
                pending.extend(items)
    return size


_CONTAINERS: Final = frozenset({dict, list})
"""The types of JSON value whose items `in_jsonb_order` walks: the models give plain ones."""


def _jsonb_key(item: tuple[str, object]) -> tuple[int, bytes]:
    key = item[0].encode("utf-8", "surrogatepass")
    return len(key), key


def in_jsonb_order(value: object) -> object:
    """Give a JSON value with each object's keys in the order PostgreSQL's jsonb keeps them.

    jsonb lists an object's keys shorter first (in UTF-8 bytes), then by their bytes, whatever
    order they were written in; arrays keep theirs.
    """
    if isinstance(value, dict) and value:
        items = sorted(value.items(), key=_jsonb_key) if len(value) > 1 else value.items()
        if _CONTAINERS.isdisjoint(map(type, value.values())):  # most metadata: scalars
            return dict(items)
        return {key: in_jsonb_order(item) for key, item in items}
    if isinstance(value, list) and not _CONTAINERS.isdisjoint(map(type, value)):
        return [in_jsonb_order(item) for item in value]
    return value  # a scalar, or a list of scalars, which keeps its order


def encode_json_as_jsonb(value: object) -> str:
    """Write JSON as `encode_json` does, each object's keys in jsonb's order (`in_jsonb_order`).

    SQLite keeps the text it is given, so objects written so read back as from PostgreSQL.
    An `EncodedJson` was written so ahead: its text is given as it is.
    """
    if type(value) is EncodedJson:
        return value.text
    return JSON_ENCODER.encode(in_jsonb_order(value))


def _unreadable(field: str, kind: str, stored: str, error: BaseException) -> ValidationError:
    """Say that stored text does not decode: plain SQL may write anything there."""
    reason = f"stored text {stored!r:.80} is not {kind} ({type(error).__name__}: {error})"
    return ValidationError("stored row", field, reason)


def stored_value_error(error: ValidationError, column: str, row_id: object) -> ValidationError:
    """Name a stored value's refusal by its table and column, and by its row's id if it has one.

    Plain SQL may store what the models refuse: the error says where to find it.
    """
    reason = error.reason if row_id is None else f"id {row_id}: {error.reason}"
    return ValidationError("stored row", column, reason)


def decode_datetime(raw: object, column: str = "time", row_id: object = None) -> object:
    """Read a datetime stored as ISO 8601 text with its offset; None, or a driver's, as it is.

    A refusal names `column` (`table.column`) and `row_id`, where the row mapper gives them.
    """
    if raw is None or isinstance(raw, dt.datetime):
        return raw
    try:
        return _decode_datetime(raw)
    except ValidationError as error:
        raise stored_value_error(error, column, row_id) from None


def _decode_datetime(raw: object) -> object:
    if not isinstance(raw, str):  # a blob or a number, which SQLite's time columns also take
        reason = f"stored {type(raw).__name__} {raw!r:.80} is not an ISO 8601 time"
        raise ValidationError("stored row", "time", reason)
    try:
        value = _FROM_ISO(raw)
    except ValueError as error:
        raise _unreadable("time", "an ISO 8601 time", raw, error) from None
    if value.tzinfo is None:
        reason = f"stored text {raw!r:.80} is a time without its UTC offset"
        raise ValidationError("stored row", "time", reason)
    return value


def _within_rules(value: object, text: str) -> object:
    """Give `value`, read from `text`, unless the models would refuse it."""
    try:
        json_value(value, "stored row", "json")
    except ValidationError as error:
        reason = f"stored text {text!r:.80} breaks the models' rules: {error.reason}"
        raise ValidationError("stored row", "json", reason) from None
    return value


def _stored_float(text: str) -> float:
    """Read a JSON float as the models take it: finite, below 2**53 (1e400 reads as inf).

    A -0.0 reads as 0.0, as the models write it and PostgreSQL's jsonb gives it: SQLite keeps
    the JSON text of rows stored before. Adding 0.0 changes no other float.
    """
    value = float(text) + 0.0
    if math.isfinite(value) and abs(value) < MAX_JSON_FLOAT:
        return value
    _within_rules(value, text)  # raises: no such float is within them
    return value


def _stored_int(text: str) -> int:
    """Read a JSON int as the models take it: within 64 bits."""
    value = int(text)
    if MIN_INT <= value <= MAX_INT:
        return value
    _within_rules(value, text)  # raises: no int beyond 64 bits is within them
    return value


def _no_constant(text: str) -> float:
    """Refuse `NaN` and `Infinity`, which Python's decoder takes and JSON does not."""
    raise ValueError(f"{text} is no JSON value")


_DECODER: Final = json.JSONDecoder(parse_float=_stored_float, parse_constant=_no_constant)
"""Floats are checked as they are read, at no cost to text without them; ints are checked
on the whole text, in `_may_hold_escape_or_long_int`."""
_ONE: Final = json.JSONDecoder(
    parse_float=_stored_float, parse_int=_stored_int, parse_constant=_no_constant
)
"""For one text, where checking each int as it is read costs less than looking for them."""
_SCAN_ONE = make_scanner(_ONE)  # type: ignore[arg-type]  # takes a decoder
_DIGITS_ONLY: Final = bytes(ord("0") if chr(c) in "0123456789" else ord(" ") for c in range(256))
"""A table for `bytes.translate`: each ASCII digit to b"0", every other byte to a space."""
_LONGEST_INT: Final = b"0" * 19
"""A run of digits as long as 2**63's: no int of fewer digits is beyond 64 bits."""
_NESTED_FROM: Final = 2 * MAX_JSON_DEPTH
"""No shorter text nests deeper than the models take: each level is two brackets."""


def _may_hold_escape_or_long_int(joined: str) -> bool:
    """Tell, at little cost, if JSON text may hold an escape or an int beyond 64 bits.

    The decoder takes both, and the models refuse an escape of a NUL or a lone surrogate, and
    such an int. False means that the text holds neither.
    """
    if "\\u" in joined:
        return True
    return _LONGEST_INT in joined.encode("utf-8", "surrogatepass").translate(_DIGITS_ONLY)


def _nests_too_deep(text: str) -> bool:
    """Tell if JSON text may nest deeper than the models take. False: it cannot."""
    return len(text) > _NESTED_FROM and text.count("[") + text.count("{") > MAX_JSON_DEPTH


def decode_json_text(text: str) -> object:
    """Read one JSON text as `json.loads` does, at a third of the cost: its scanner alone.

    What it reads is held to the rules the models keep on writes (see `_guards.json_value`):
    plain SQL may have stored anything that the column's CHECK lets through.
    """
    try:
        try:
            value, end = _SCAN_ONE(text, 0)
        except StopIteration:  # nothing at the start that the scanner reads: json.loads says why
            value, end = _ONE.decode(text), len(text)
        if end != len(text):
            value = _ONE.decode(text)
    except ValidationError:
        raise
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep for Python
        raise _unreadable("json", "one JSON value", text, error) from None
    # An escape may be of a NUL or a lone surrogate; a short text cannot nest too deep.
    if "\\u" in text or (len(text) > _NESTED_FROM and _nests_too_deep(text)):
        return _within_rules(value, text)
    return value


def decode_json(raw: object, column: str = "json", row_id: object = None) -> object:
    """Read JSON stored as text; a value the driver decoded (PostgreSQL's) as it is.

    SQLite's `json_valid` takes a blob of JSON text, so its CHECK lets plain SQL store one:
    it is refused here, where it was handed on as bytes in place of a dict. A refusal names
    `column` and `row_id`, as `decode_datetime`'s does.
    """
    # Most metadata is empty; decoding costs far more than this comparison even for "{}".
    if raw == "{}":
        return {}
    if isinstance(raw, bytes):
        blob = ValidationError("stored row", "json", "must be JSON text, got a blob")
        raise stored_value_error(blob, column, row_id)
    if not isinstance(raw, str):
        return raw
    try:
        return decode_json_text(raw)
    except ValidationError as error:
        raise stored_value_error(error, column, row_id) from None


def _row_by_row(
    decode: Callable[[object, str, object], object],
    rows: Sequence[Sequence[object]],
    index: int,
    column: str,
    id_at: int | None,
) -> list[object]:
    """Read column `index` of each row by `decode`, a refusal naming the row's id (at `id_at`)."""
    return [decode(row[index], column, None if id_at is None else row[id_at]) for row in rows]


def decode_datetime_column(
    rows: Sequence[Sequence[object]], index: int, column: str = "time", id_at: int | None = None
) -> list[object]:
    """Read column `index` of every row as `decode_datetime` would, without a call per row.

    A refusal names `column` and the id of its row, at `id_at` in each row, if it has one.
    """
    texts = [row[index] for row in rows]
    try:
        times = list(map(_FROM_ISO, texts))  # type: ignore[arg-type]  # a TypeError if not str
    except (TypeError, ValueError):  # not all text, or text that is no time: row by row
        return _row_by_row(decode_datetime, rows, index, column, id_at)
    if None in {time.tzinfo for time in times}:  # a time without its offset: row by row
        return _row_by_row(decode_datetime, rows, index, column, id_at)
    return times  # type: ignore[return-value]  # datetimes are objects


_JOINED_FROM: Final = 4
"""Fewer rows than this are read one by one: one array costs more to build than it saves."""


def decode_json_column(
    rows: Sequence[Sequence[object]], index: int, column: str = "json", id_at: int | None = None
) -> list[object]:
    """Read column `index` of every row as `decode_json` would, in one pass of the decoder.

    The texts are read as one JSON array: one call, and a key repeated across rows is one
    string. Each stored text is one JSON value (a CHECK holds it to `json_valid`), so the
    array has one item per row; anything else is read row by row. A refusal names `column`
    and its row's id, as `decode_datetime_column`'s does.
    """
    texts = [row[index] for row in rows]
    if len(texts) < _JOINED_FROM:
        return _row_by_row(decode_json, rows, index, column, id_at)
    try:
        joined = f"[{','.join(texts)}]"  # type: ignore[arg-type]  # a TypeError if not all str
        values: object = _DECODER.decode(joined)
    except (TypeError, ValueError, RecursionError):  # read row by row, which names the bad text
        return _row_by_row(decode_json, rows, index, column, id_at)
    may_break = _may_hold_escape_or_long_int(joined) or (
        max(map(len, texts)) > _NESTED_FROM  # type: ignore[arg-type]  # all str
        and any(map(_nests_too_deep, texts))  # type: ignore[arg-type]  # all str
    )
    if type(values) is list and len(values) == len(texts) and not may_break:
        return values
    return _row_by_row(decode_json, rows, index, column, id_at)


def decode_bool(raw: object) -> object:
    """Read a boolean stored as an integer; anything else as it is."""
    return bool(raw) if isinstance(raw, int) else raw
