"""How values that neither driver stores as they are become text, and come back.

Neutral: both backends and the generated row mappers use it. PostgreSQL stores JSON through
asyncpg's codec with `encode_json`; SQLite stores datetimes and JSON as text and reads them
back with the decoders here.
"""

from __future__ import annotations

import datetime as dt
import json

from persistence.exceptions import ValidationError

__all__ = ["decode_bool", "decode_datetime", "decode_json", "encode_datetime", "encode_json"]


def encode_datetime(value: dt.datetime) -> str:
    """Store an aware datetime as fixed-width UTC ISO 8601 text, which sorts in time order."""
    if value.utcoffset() is None:
        raise ValidationError("query", "datetime", f"naive datetime {value} cannot be stored")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def encode_json(value: object) -> str:
    """Write JSON the same way everywhere: compact, UTF-8, no NaN."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def decode_datetime(raw: object) -> object:
    """Read a datetime stored as ISO 8601 text; anything else as it is."""
    return dt.datetime.fromisoformat(raw) if isinstance(raw, str) else raw


def decode_json(raw: object) -> object:
    """Read JSON stored as text; anything else as it is."""
    # Most metadata is empty; json.loads costs about 1 us even for "{}".
    if raw == "{}":
        return {}
    return json.loads(raw) if isinstance(raw, str) else raw


def decode_bool(raw: object) -> object:
    """Read a boolean stored as an integer; anything else as it is."""
    return bool(raw) if isinstance(raw, int) else raw
