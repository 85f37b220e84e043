"""The look at a model's JSON again at a save: its caller may have changed it since the build.

A model's dict or list is the caller's to change in place, and its converter (`_guards.
json_value`) ran once. `plain_json` passes, at a glance, what that converter would give back
unchanged and is small; `still_json` checks anything else in full.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Final, TypeVar, cast

from persistence._guards import (
    MAX_INT,
    MAX_JSON_DEPTH,
    MAX_JSON_FLOAT,
    MIN_INT,
    json_value,
    text_problem,
)
from persistence._interface import JsonValue

_J = TypeVar("_J", bound=JsonValue)


def still_json(value: _J, model: str, field: str) -> _J:
    """Check again, at a save, JSON a model held when built: a caller may have changed it since.

    A model's dict or list is the caller's to change in place, and its converter ran once.
    What `plain_json` passes is given as it is, several times faster than `json_value`, which
    checks anything else and names what is wrong.
    """
    if plain_json(value, sys.maxsize):
        return value
    return cast("_J", json_value(value, model, field))  # a copy of the same kind: dict, list...


def plain_json(value: object, limit: int) -> bool:
    """Whether `json_value` would give this dict or list back unchanged, and it is small.

    Exact dicts and lists pass, with what `json_value` keeps as it is: a StrEnum among them
    (a model's metadata may hold a `TestType`, and such rows went to a worker thread one at
    a time). Its size, counted as `json_size` counts it (an item 8, a text or a name its
    length), must be at most `limit`: a container's items are counted before they are
    walked, so that the walk stops within about `limit / 8` items, whatever the value's size.
    """
    if type(value) is dict and len(value) <= _FLAT_ITEMS and _flat_and_plain(value):
        return True  # most metadata: a few names of short ASCII text, scalars and short lists
    size = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if type(item) is not dict and type(item) is not list:
            return False
        size += 8 * len(item)
        if size > limit or (item and depth >= MAX_JSON_DEPTH):
            return False
        if type(item) is dict:
            size += _plain_names(item)
        size += _plain_items(item.values() if type(item) is dict else item, depth, pending)
        if size > limit:
            return False
    return True


def _plain_items(items: Iterable[object], depth: int, pending: list[tuple[object, int]]) -> int:
    """Give the length of the texts among `items`, past `MAX_INT` if one is not plain.

    Their dicts and lists are added to `pending`, to walk one level deeper.
    """
    size = 0
    for item in items:
        if type(item) is dict or type(item) is list:
            pending.append((item, depth + 1))
        elif isinstance(item, str):  # a StrEnum too, which `json_value` keeps as it is
            if text_problem(item) is not None:
                return MAX_INT + 1
            size += len(item)
        elif not _plain_scalar(item):
            return MAX_INT + 1
    return size


_FLAT_ITEMS: Final = 64
"""The most names, or list items, that `_flat_and_plain` looks at: well within any limit."""
_FLAT_TEXT: Final = 256
"""The longest text that `_flat_and_plain` takes: 64 of them with 64 names are within 32 kB."""


def _flat_and_plain(value: dict[object, object]) -> bool:
    """Tell, in one pass without calls, whether a dict is of plain short ASCII text and scalars.

    Its values may be lists of those. False is no answer: `plain_json` walks it in full.
    A batch's rows are each looked at, about 0.6 us for five names, against 1.4 us walked.
    """
    for name, item in value.items():
        if type(name) is not str or "\x00" in name or not name.isascii():
            return False
        if type(item) is list:
            if len(item) > _FLAT_ITEMS:
                return False
            for inner in item:
                if not _flat_scalar(inner):
                    return False
        elif not _flat_scalar(item):
            return False
    return True


def _flat_scalar(value: object) -> bool:
    """Tell whether a value is short plain ASCII text, or a scalar `json_value` keeps as it is."""
    if isinstance(value, str):
        return len(value) <= _FLAT_TEXT and "\x00" not in value and value.isascii()
    return _plain_scalar(value)


def _plain_names(names: Iterable[object]) -> int:
    """Give the length of a dict's names, each plain text; past `MAX_INT` if one is not."""
    size = 0
    for name in names:
        if not isinstance(name, str) or text_problem(name) is not None:
            return MAX_INT + 1
        size += len(name)
    return size


def _plain_scalar(value: object) -> bool:
    """Whether `json_value` gives this number, bool or None back unchanged (-0.0 it does not).

    An int of a subclass (a bool, an IntEnum) it keeps as it is; a float it makes plain.
    """
    if type(value) is float:  # NaN fails both comparisons
        return -MAX_JSON_FLOAT < value < MAX_JSON_FLOAT and (
            value != 0.0 or math.copysign(1.0, value) > 0
        )
    if isinstance(value, int):
        return MIN_INT <= value <= MAX_INT
    return value is None
