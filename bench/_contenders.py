"""What each contender does for each workload; the runner times these calls and nothing else.

A contender runs the workloads it has a method for, named as in `WORKLOADS`:

- `save_one(results)`, `save_many(results)`, `save_durable(results)`: write the results;
- `save_concurrent(batches)`: write each batch from a task of its own;
- `get_by_id(ids)`, `read_all()`, `list_paged(where, page_size)`: read; give the row count.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence import TestResult

__all__ = ["SLICE", "Contender", "in_tasks", "method_of", "share_loop"]

_T = TypeVar("_T")

SLICE: Final = 0.0005
"""How long a hand-written contender on the loop keeps it before it yields: 0.5 ms, as the
layer does."""


class Contender(Protocol):
    """One way of doing some of the workloads against one open database."""

    name: str
    """A short key, the same on every engine where the contender runs (`layer`, `sqlite3`)."""

    def prepare(self, results: list[TestResult]) -> None:
        """Get ready to write `results`; called outside the timed part."""


def method_of(contender: Contender, workload: str) -> Callable[..., Awaitable[object]] | None:
    """Give the contender's method for a workload, or None when it does not run it."""
    method = getattr(contender, workload, None)
    return cast("Callable[..., Awaitable[object]]", method) if callable(method) else None


class share_loop:  # noqa: N801  # used like a function: `await pace()`
    """Yield to the loop when it has been held for SLICE since the last yield.

    What a careful author of code on the loop writes: `pace = share_loop()`, then
    `await pace()` after each small step.
    """

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def __call__(self) -> None:
        """Give the loop back if the slice is used up."""
        if time.perf_counter() - self._since >= SLICE:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


async def in_tasks(
    batches: list[list[_T]], save: Callable[[_T], Awaitable[object]], *, pause: bool = False
) -> None:
    """Run one task per batch, each awaiting `save` for its items in turn.

    With `pause`, each task yields to the loop after every save: a save that never
    suspends (plain sqlite3 on the loop) would otherwise run its whole batch in one go,
    and the tasks would not interleave at all.
    """

    async def one(batch: list[_T]) -> None:
        for item in batch:
            await save(item)
            if pause:
                await asyncio.sleep(0)

    async with asyncio.TaskGroup() as group:
        for batch in batches:
            group.create_task(one(batch))
