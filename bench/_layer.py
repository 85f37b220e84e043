"""This layer, through its public functions only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench._contenders import in_tasks
from persistence import (
    all_results,
    get_result,
    list_results,
    save_result,
    save_results,
    transaction,
)

if TYPE_CHECKING:
    from persistence import Database, PageCursor, ResultFilter, TestResult

__all__ = ["Layer"]


class Layer:
    """The `persistence` package, used as its documentation says."""

    name = "layer"

    def __init__(self, db: Database) -> None:
        self.db = db

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_one(self, results: list[TestResult]) -> None:
        """Call `save_result` once per row inside `transaction`."""
        async with transaction(self.db) as tx:
            for result in results:
                await save_result(tx, result)

    async def save_many(self, results: list[TestResult]) -> None:
        """Call `save_results` once."""
        await save_results(self.db, results)

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """Call `save_result` outside any transaction, from one task per batch."""
        db = self.db
        await in_tasks(batches, lambda result: save_result(db, result))

    async def save_durable(self, results: list[TestResult]) -> None:
        """Call `save_result` outside any transaction, from one task: each call durable."""
        for result in results:
            await save_result(self.db, result)

    async def get_by_id(self, ids: list[int]) -> int:
        """Call `get_result` once per id."""
        found = 0
        for result_id in ids:
            await get_result(self.db, result_id)
            found += 1
        return found

    async def read_all(self) -> int:
        """Call `all_results`."""
        return len(await all_results(self.db))

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Call `list_results` page after page."""
        count = 0
        cursor: PageCursor | None = None
        while True:
            page = await list_results(self.db, where, limit=page_size, after=cursor)
            count += len(page.items)
            if page.next_cursor is None:
                return count
            cursor = page.next_cursor
