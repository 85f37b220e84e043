"""The one budget for work done on the event loop, shared by every part of the package.

Work on the loop calls `share_loop()` between small steps: once the loop has been held for
`LOOP_SLICE`, the caller yields, so that no other task waits long behind it.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from operator import length_hint
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from persistence._cancelling import finish_then_cancel

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison, SupportsRichComparisonT

_R = TypeVar("_R")
_T = TypeVar("_T")

LOOP_SLICE: Final = 0.0005
"""Seconds of work on the event loop after which the package gives the loop back."""

SLICE_ITEMS: Final = 250
"""Items handled between two looks at the clock: a slice of rows takes well under 1 ms."""

FIRST_SLICE_ITEMS: Final = 1
"""Items in a list's first slice, before `Pace` knows how long one takes."""
_CHEAP: Final = LOOP_SLICE / 16

OFF_LOOP_SIZE: Final = 32_768
"""Characters of one value past which `off_loop_if_large` handles it in a worker thread.

Reading or writing a JSON value, checked, takes about 0.15 µs a character: 4 to 5 ms at
this size, well within the budget, where the hop to a thread and back (100 to 300 µs) costs a
few per cent; a hop for smaller values would slow them for little gain.
"""


async def off_loop_if_large(size: int, call: Callable[[], _T]) -> _T:
    """Give `call()`: made here if `size` is at most OFF_LOOP_SIZE, else in a worker thread.

    For one value too large to cut in slices (a config value of megabytes): its decoding,
    encoding and checks are one call. `call` must only compute, writing nothing: a caller
    cancelled meanwhile is cancelled once the thread has ended, its result dropped. The
    executor's future, not a task: code cancelling other tasks (a shutdown handler) cannot
    reach it.
    """
    if size <= OFF_LOOP_SIZE:
        return call()
    return await off_loop(call)


async def off_loop(call: Callable[[], _T]) -> _T:
    """Give `call()`, made in a worker thread: for one step that no slice can cut, of any size.

    `call` must only compute, as for `off_loop_if_large`: a caller cancelled meanwhile is
    cancelled once the thread has ended.
    """
    return await finish_then_cancel(asyncio.get_running_loop().run_in_executor(None, call))


class _GivenBack(threading.local):
    """When the package last gave back this thread's loop (cheaper than a weak dict by loop)."""

    loop: asyncio.AbstractEventLoop | None = None
    at: float = 0.0


_GIVEN_BACK: Final = _GivenBack()


async def imported(name: str) -> None:
    """Import module `name` in a worker thread, the first time: there it shares the GIL.

    A driver's first import (asyncpg, redis) runs its modules' code, 65 to 640 ms: on the
    loop, in one go. Imported already, nothing is done.
    """
    if not _ready(name):
        await asyncio.to_thread(importlib.import_module, name)


def _ready(name: str) -> bool:
    """Tell whether module `name` is imported, and not still being imported (by a thread)."""
    module = sys.modules.get(name)
    # In sys.modules from the start of its import: one another task's thread runs is waited
    # for in a thread too, where the loop's own import would wait on the module's lock.
    return module is not None and not getattr(
        getattr(module, "__spec__", None), "_initializing", False
    )


_NOT_INSTALLED: Final[set[str]] = set()


async def imported_if_installed(*names: str) -> None:
    """Import an optional extra's modules as `imported` does; if one is missing, none of them.

    They are looked for once a process: an extra found missing is not looked for at each open.
    """
    wanted = [name for name in names if name not in _NOT_INSTALLED and not _ready(name)]

    def load() -> None:
        try:
            for name in wanted:
                importlib.import_module(name)
        except ImportError:
            _NOT_INSTALLED.update(wanted)

    if wanted:
        await asyncio.to_thread(load)


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


class Pace:
    """How many items of a list the next slice takes: SLICE_ITEMS at most, fewer if they are slow.

    Most items (rows, models) take microseconds, a slice of SLICE_ITEMS well under 1 ms. A
    row holding JSON of hundreds of kB takes 10 ms to encode or decode, and SLICE_ITEMS of
    them held the loop for seconds: so the first slice takes FIRST_SLICE_ITEMS, and each next
    one as many as fit in LOOP_SLICE at the pace the last one went. Call `slice_done` after
    each slice: it measures the slice, and gives the loop back if that is due.
    """

    __slots__ = ("_began", "size")

    def __init__(self) -> None:
        self.size = FIRST_SLICE_ITEMS
        self._began = time.perf_counter()

    async def slice_done(self, count: int) -> None:
        """Note that a slice of `count` items is done; give the loop back if due."""
        took = time.perf_counter() - self._began
        # A slice done in a sixteenth of LOOP_SLICE is of cheap items, whose time is mostly the
        # mapper's own per call: SLICE_ITEMS of them took well under 1 ms before paces were kept.
        fits = SLICE_ITEMS if took <= _CHEAP else int(count * LOOP_SLICE / took)
        self.size = max(1, min(SLICE_ITEMS, fits))
        await share_loop()
        self._began = time.perf_counter()


async def map_slices(
    mapper: Callable[[Sequence[_R]], Iterable[_T]],
    items: Sequence[_R],
    stored_of: Callable[[_R], object] | None = None,
) -> list[_T]:
    """Map `items` by `mapper`, which maps a slice of them in one call, a slice at a time.

    The slices are as long as `Pace` says, the loop given back between them. No slice cuts
    one item: given `stored_of`, a cheap look at an item's value that may be of megabytes
    (a row's JSON text), each item whose value is past OFF_LOOP_SIZE in length is mapped
    alone in a worker thread (`off_loop_if_large`), the runs between in slices on the loop.
    A value without a length (a number that plain SQL stored) counts as small.
    """
    if stored_of is not None and max(map(length_hint, map(stored_of, items)), default=0) > (
        OFF_LOOP_SIZE
    ):
        return await _map_around_large(mapper, items, stored_of)
    if len(items) <= FIRST_SLICE_ITEMS:
        return list(mapper(items))
    mapped: list[_T] = []
    pace = Pace()
    start = 0
    while start < len(items):
        part = items[start : start + pace.size]
        mapped += mapper(part)
        start += len(part)
        if start < len(items):
            await pace.slice_done(len(part))
    return mapped


async def _map_around_large(
    mapper: Callable[[Sequence[_R]], Iterable[_T]],
    items: Sequence[_R],
    stored_of: Callable[[_R], object],
) -> list[_T]:
    """Map each item past OFF_LOOP_SIZE alone in a worker thread, the runs between in slices.

    Mapped on the loop, one row holding 3.5 MB of JSON metadata held it 250 to 1,180 ms.
    """
    mapped: list[_T] = []
    start = 0
    for at, item in enumerate(items):
        size = length_hint(stored_of(item))
        if size > OFF_LOOP_SIZE:
            mapped += await map_slices(mapper, items[start:at])
            one = items[at : at + 1]
            mapped += await off_loop_if_large(size, functools.partial(_mapped, mapper, one))
            start = at + 1
    mapped += await map_slices(mapper, items[start:])
    return mapped


TEXT_PIECE: Final = 65_536
"""Characters of a text that `map_text` escapes in one call: 0.2 to 1.3 ms of XML escaping."""


async def map_text(escape: Callable[[str], str], text: str, piece: int = TEXT_PIECE) -> list[str]:
    """Give `escape(text)` as pieces, each escaped apart, the loop given back between.

    For a text of megabytes, escaped for XML or JSON in one C call that keeps the GIL: 40 MB
    held the loop 0.2 to 2.7 s. `escape` must act on each character alone (a str holds code
    points, so no piece splits one): the pieces then join to exactly `escape(text)`. They
    are given apart, for the caller's one join of the whole: each copy of 40 MB takes 35 ms.
    A slice takes as many pieces of `piece` characters as `Pace` says.
    """
    if len(text) <= piece:
        return [escape(text)]
    starts = range(0, len(text), piece)
    return await map_slices(lambda part: [escape(text[at : at + piece]) for at in part], starts)


def _mapped(mapper: Callable[[Sequence[_R]], Iterable[_T]], items: Sequence[_R]) -> list[_T]:
    return list(mapper(items))


async def map_in_slices(
    mapper: Callable[[_R], _T], items: Iterable[_R], stored_of: Callable[[_R], object] | None = None
) -> list[_T]:
    """Map `items` (each slice by `map`, no Python step per item), giving the loop back between.

    Given `stored_of`, each item whose value is past OFF_LOOP_SIZE is mapped alone in a worker
    thread, as `map_slices` says.
    """
    given = items if isinstance(items, list) else list(items)
    return await map_slices(lambda part: map(mapper, part), given, stored_of)


async def drop_in_slices(items: list[_T]) -> None:
    """Empty `items` a slice at a time (as long as `Pace` says), giving the loop back between.

    Freeing tens of thousands of objects that hold others (models with metadata, parsed
    JSON) takes tens of milliseconds: dropped in one go, when a function returns, the loop
    would wait for all of it.
    """
    pace = Pace()
    while items:
        count = min(pace.size, len(items))
        del items[-count:]
        await pace.slice_done(count)


async def joined(pieces: list[str]) -> str:
    """Join text's pieces in one copy, then drop them a slice at a time, emptying `pieces`.

    An export of tens of thousands of results is hundreds of thousands of pieces: freed in
    one go, as the list they are in goes, they held the loop tens of milliseconds more.
    """
    text = "".join(pieces)
    await drop_in_slices(pieces)
    return text


SORT_PIECE: Final = 8_192
"""Items a worker thread sorts in one call (`sorted_in_pieces`): a few ms, the GIL kept."""


def empty_in_pieces(items: list[Any]) -> None:
    """Empty `items` SORT_PIECE at a time: for a worker thread, beside the loop.

    A list's items are freed in one C call as it goes: the artifact cache's scan of 300,000
    entries, freed as its eviction ended, held the loop 40 to 50 ms from a worker thread.
    Between two pieces the GIL may pass to the loop.
    """
    while items:
        del items[-SORT_PIECE:]


@overload
def sorted_in_pieces(
    items: Iterable[SupportsRichComparisonT], *, key: None = None
) -> list[SupportsRichComparisonT]: ...
@overload
def sorted_in_pieces(
    items: Iterable[_T], *, key: Callable[[_T], SupportsRichComparison]
) -> list[_T]: ...
def sorted_in_pieces(items: Iterable[Any], *, key: Any = None) -> list[Any]:
    """Give `sorted(items, key=key)`, sorted in pieces: for a worker thread, beside the loop.

    `sorted` is one C call that keeps the GIL: 300,000 names took 100 to 500 ms, and a thread
    that sorted them held the loop as long, though its work was off the loop. Each piece of
    SORT_PIECE is sorted in one call; the pieces are merged in Python, which lets the GIL go
    between items. The merge keeps `sorted`'s order, equal items as they came.
    """
    given = list(items)
    if len(given) <= SORT_PIECE:
        return sorted(given, key=key)
    pieces = [
        sorted(given[at : at + SORT_PIECE], key=key) for at in range(0, len(given), SORT_PIECE)
    ]
    return list(heapq.merge(*pieces, key=key))
