"""What each contender does for each workload; the runner times these calls and nothing else."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence import ResultFilter, TestResult

__all__ = ["Contender", "in_tasks"]

_T = TypeVar("_T")


class Contender(Protocol):
    """One way of doing the six workloads against one open database."""

    name: str
    """A short key, the same on every engine where the contender runs (`layer`, `sqlite3`)."""

    def prepare(self, results: list[TestResult]) -> None:
        """Get ready to write `results`; called outside the timed part."""

    async def save_one(self, results: list[TestResult]) -> None:
        """Insert the results one call per row, inside one transaction."""

    async def save_many(self, results: list[TestResult]) -> None:
        """Insert the results in one batch."""

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """Insert each batch from a task of its own, one call and one commit per row."""

    async def get_by_id(self, ids: list[int]) -> int:
        """Fetch each id in turn, converted; return how many were found."""

    async def read_all(self) -> int:
        """Read every row, newest first; return how many."""

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Page through the filtered listing, newest first; return how many rows."""


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
