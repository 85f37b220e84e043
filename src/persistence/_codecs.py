"""How values neither driver stores as they are become text and back, for both backends."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from json.scanner import make_scanner
from typing import Final

from persistence.exceptions import ValidationError

_FROM_ISO = dt.datetime.fromisoformat
_UTC: Final = dt.UTC
_TO_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""One encoder for every write: `json.dumps` with options builds a new one per call."""
_SCAN_ONCE = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # takes a decoder


def encode_datetime(value: dt.datetime) -> str:
    """Store an aware datetime as fixed-width UTC ISO 8601 text, which sorts in time order."""
    if value.tzinfo is _UTC:  # as models keep their times: nothing to check or shift
        return value.isoformat(timespec="microseconds")
    if value.utcoffset() is None:
        raise ValidationError("query", "datetime", f"naive datetime {value} cannot be stored")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def encode_json(value: object) -> str:
    """Write JSON the same way everywhere: compact, UTF-8, no NaN."""
    return _TO_JSON.encode(value)


def _unreadable(field: str, kind: str, stored: str, error: BaseException) -> ValidationError:
    """Say that stored text does not decode: plain SQL may write anything there."""
    reason = f"stored text {stored!r:.80} is not {kind} ({type(error).__name__}: {error})"
    return ValidationError("stored row", field, reason)


def decode_datetime(raw: object) -> object:
    """Read a datetime stored as ISO 8601 text with its offset; None, or a driver's, as it is."""
    if raw is None or isinstance(raw, dt.datetime):
        return raw
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


def decode_json_text(text: str) -> object:
    """Read one JSON text as `json.loads` does, at a third of the cost: its scanner, unchecked."""
    try:
        try:
            value, end = _SCAN_ONCE(text, 0)
        except StopIteration:  # nothing at the start that the scanner reads: json.loads says why
            return json.loads(text)
        return value if end == len(text) else json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep for Python
        raise _unreadable("json", "one JSON value", text, error) from None


def decode_json(raw: object) -> object:
    """Read JSON stored as text; anything else as it is."""
    # Most metadata is empty; decoding costs far more than this comparison even for "{}".
    if raw == "{}":
        return {}
    return decode_json_text(raw) if isinstance(raw, str) else raw


def decode_datetime_column(rows: Sequence[Sequence[object]], index: int) -> list[object]:
    """Read column `index` of every row as `decode_datetime` would, without a call per row."""
    texts = [row[index] for row in rows]
    try:
        times = list(map(_FROM_ISO, texts))  # type: ignore[arg-type]  # a TypeError if not str
    except (TypeError, ValueError):  # not all text, or text that is no time: row by row
        return [decode_datetime(text) for text in texts]
    if None in {time.tzinfo for time in times}:  # a time without its offset: row by row
        return [decode_datetime(text) for text in texts]
    return times  # type: ignore[return-value]  # datetimes are objects


_JOINED_FROM: Final = 4
"""Fewer rows than this are read one by one: one array costs more to build than it saves."""


def decode_json_column(rows: Sequence[Sequence[object]], index: int) -> list[object]:
    """Read column `index` of every row as `decode_json` would, in one pass of the decoder.

    The texts are read as one JSON array: one call, and a key repeated across rows is one
    string. Each stored text is one JSON value (a CHECK holds it to `json_valid`), so the
    array has one item per row; anything else is read row by row.
    """
    texts = [row[index] for row in rows]
    if len(texts) < _JOINED_FROM:
        return [decode_json(text) for text in texts]
    if all(type(text) is str for text in texts):
        try:
            values: object = json.loads(f"[{','.join(texts)}]")  # type: ignore[arg-type]  # all str
        except (ValueError, RecursionError):  # read row by row, which names the bad text
            pass
        else:
            if type(values) is list and len(values) == len(texts):
                return values
    return [decode_json(text) for text in texts]


def decode_bool(raw: object) -> object:
    """Read a boolean stored as an integer; anything else as it is."""
    return bool(raw) if isinstance(raw, int) else raw
