"""What the loop-lag tests share: the lag probe's check of one operation, its bounds, its data.

Each operation runs beside the benchmark's lag probe, a task that asks to wake every
millisecond: the longest it waited past its time is the longest the loop was held. The bounds
are generous, for a loaded machine; the faults they guard held the loop longer, most of them
for hundreds of ms. `make bench` measures the lag of its workloads against the 20 ms target.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import gc
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Generic, Protocol, TypeVar

import attrs

from _test_databases import LAG_LOCK_VARIABLE, lag_lock
from bench._lag import LagProbe
from persistence._interface import JsonObject
from persistence._paging import Page

MAX_LAG: Final = float(os.environ.get("TEST_MAX_LOOP_LAG", "0.1"))
"""The longest the loop may be held during one workload, in seconds."""

MAX_STATEMENT_LAG: Final = float(os.environ.get("TEST_MAX_STATEMENT_LAG", "0.03"))
"""The same, for retention, whose statements run off the loop: on the loop, one of its
deletes took 15-70 ms (FTS5 merges segments inside it), the probe saw 50-76 ms. Retention's
sweep of files and a glob's listing are held to it too."""

MAX_IMPORT_LAG: Final = float(os.environ.get("TEST_MAX_IMPORT_LAG", "0.05"))
"""A JUnit import's bound: it held the loop 8 to 17 ms, and 30 ms twice in some twenty runs
on a quiet machine; the fault it guards held it over 100 ms."""

_T = TypeVar("_T")
_C = TypeVar("_C")

LOCK_VARIABLE: Final = LAG_LOCK_VARIABLE
"""Names the file whose lock each measurement holds: `pytest -n 2` runs the timed tests on two
workers, whose measurements must not overlap (tests/conftest.py names one per run). The test
databases' copies, resets and drops hold it shared (tests/_test_databases.py)."""


@contextlib.asynccontextmanager
async def _alone() -> AsyncIterator[None]:
    """Hold the measurements' lock, where one is named: no other process measures meanwhile."""
    held_lock = lag_lock(fcntl.LOCK_EX)
    await asyncio.to_thread(held_lock.__enter__)
    try:
        yield
    finally:
        held_lock.__exit__(None, None, None)


@attrs.frozen
class Held(Generic[_T]):
    """What one operation gave, and how it held the loop, in seconds."""

    lag: float
    """The longest the probe waited past its time."""
    took: float
    """How long the operation took."""
    outcome: _T


async def held(work: Callable[[], Awaitable[_T]], *, collector: bool = False) -> Held[_T]:
    """Run `work` beside the lag probe: the longest lag, the time taken and what it gave.

    The collector runs first and is off meanwhile, unless `collector` lets it run as it would:
    a full collection holds the loop as long as the whole heap takes to walk, whoever's code
    triggered it (`make bench` reports it apart).
    """
    if not collector:
        gc.collect()
        gc.disable()
    try:
        async with _alone(), LagProbe() as probe:
            started = time.perf_counter()
            outcome = await work()
            took = time.perf_counter() - started
    finally:
        if not collector:
            gc.enable()
    return Held(max(probe.samples, default=0.0), took, outcome)


def assert_lag(operation: str, lag: float, bound: float, took: float | None = None) -> None:
    """Check that `operation` held the loop less than `bound`, saying how long it did."""
    of = "" if took is None else f" of {took:.2f} s"
    assert lag < bound, f"{operation} held the loop for {lag * 1000:.0f} ms{of}"


async def within(
    bound: float,
    operation: str,
    work: Callable[[], Awaitable[_T]],
    *,
    collector: bool = False,
) -> _T:
    """Run `work` beside the lag probe, check that it held the loop less than `bound`: its outcome.

    `operation` names the work in the failure's message, as its subject ("the listing");
    `collector` is `held`'s.
    """
    measured = await held(work, collector=collector)
    assert_lag(operation, measured.lag, bound, measured.took)
    return measured.outcome


class PageReader(Protocol[_T, _C]):
    """A listing's read of one page: `list_results` and the others, their arguments but `after`."""

    def __call__(self, *, after: _C | None) -> Awaitable[Page[_T, _C]]: ...


async def every_page_within(bound: float, operation: str, read: PageReader[_T, _C]) -> list[_T]:
    """Read a listing page by page, each page within `bound`: all their items."""
    items: list[_T] = []
    cursor: _C | None = None
    while True:
        page = await within(bound, operation, functools.partial(read, after=cursor))
        items += page.items
        cursor = page.next_cursor
        if cursor is None:
            return items


HUGE_CONFIG_KEYS: Final = 18_000
"""Keys of `huge_config`'s value by default: 1.5 MB of JSON."""


def huge_config(keys: int = HUGE_CONFIG_KEYS) -> JsonObject:
    """A config value of megabytes: an object of many small objects, as a settings file is.

    54,000 keys make 4 MB of JSON.
    """
    return {
        f"key{index}": {"name": f"value {index}", "n": index, "share": index / 3, "on": True}
        for index in range(keys)
    }


HUGE_METADATA_KEYS: Final = 100_000
"""Keys of `huge_metadata`: about 3.5 MB of JSON."""


def huge_metadata() -> JsonObject:
    """Metadata of megabytes: many short keys, as a tool's per-case figures are."""
    return {f"case{index}": {"ms": index, "ok": True} for index in range(HUGE_METADATA_KEYS)}
