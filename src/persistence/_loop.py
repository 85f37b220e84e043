"""The one budget for work done on the event loop, shared by every part of the package.

Work on the loop calls `share_loop()` between small steps: once the loop has been held for
`LOOP_SLICE`, the caller yields, so that no other task waits long behind it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from typing import Final, TypeVar

_R = TypeVar("_R")
_T = TypeVar("_T")

LOOP_SLICE: Final = 0.0005
"""Seconds of work on the event loop after which the package gives the loop back."""

SLICE_ITEMS: Final = 250
"""Items handled between two looks at the clock: a slice of rows takes well under 1 ms."""


class _GivenBack(threading.local):
    """When the package last gave back this thread's loop (cheaper than a weak dict by loop)."""

    loop: asyncio.AbstractEventLoop | None = None
    at: float = 0.0


_GIVEN_BACK: Final = _GivenBack()


def loop_held() -> bool:
    """Whether `share_loop()` would give the loop back now, or first meet this loop.

    A look without a coroutine, for code that runs once per query:
    `if loop_held(): await share_loop()`.
    """
    given = _GIVEN_BACK
    return (
        given.loop is not asyncio.get_running_loop() or time.perf_counter() - given.at > LOOP_SLICE
    )


async def share_loop() -> None:
    """Give the loop back if the package has held it for a slice since it last did."""
    loop = asyncio.get_running_loop()
    now = time.perf_counter()
    given = _GIVEN_BACK
    if given.loop is not loop:
        given.loop, given.at = loop, now
    elif now - given.at > LOOP_SLICE:
        await asyncio.sleep(0)
        given.at = time.perf_counter()


def gave_back() -> None:
    """Note that the caller has just given the loop back by waiting on something."""
    given = _GIVEN_BACK
    given.loop, given.at = asyncio.get_running_loop(), time.perf_counter()


async def map_in_slices(mapper: Callable[[_R], _T], items: Iterable[_R]) -> list[_T]:
    """Map `items` (each slice by `map`, no Python step per item), giving the loop back between."""
    given = items if isinstance(items, list) else list(items)
    if len(given) <= SLICE_ITEMS:
        return list(map(mapper, given))
    mapped: list[_T] = []
    for start in range(0, len(given), SLICE_ITEMS):
        mapped += map(mapper, given[start : start + SLICE_ITEMS])
        await share_loop()
    return mapped


async def map_each(mapper: Callable[[_R], _T], items: Iterable[_R]) -> list[_T]:
    """Map `items` one at a time, looking at the budget after each.

    For items of tens of microseconds each (a report's test parsed or written), where a
    slice of `SLICE_ITEMS` would hold the loop for many milliseconds.
    """
    mapped: list[_T] = []
    for item in items:
        mapped.append(mapper(item))
        await share_loop()
    return mapped


async def drop_in_slices(items: list[_T]) -> None:
    """Empty `items` a slice at a time, giving the loop back between.

    Freeing tens of thousands of objects that hold others (models with metadata, parsed
    JSON) takes tens of milliseconds: dropped in one go, when a function returns, the loop
    would wait for all of it.
    """
    while items:
        del items[-SLICE_ITEMS:]
        await share_loop()
