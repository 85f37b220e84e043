"""What each contender does for each workload; the runner times these calls and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = ["Contender"]


class Contender(Protocol):
    """One way of doing the five workloads against one open database."""

    name: str

    def prepare(self, results: list[TestResult]) -> None:
        """Get ready to write `results`; called outside the timed part."""

    async def save_one(self, results: list[TestResult]) -> None:
        """Insert the results one call per row, inside one transaction."""

    async def save_many(self, results: list[TestResult]) -> None:
        """Insert the results in one batch."""

    async def get_by_id(self, ids: list[int]) -> int:
        """Fetch each id in turn, converted; return how many were found."""

    async def read_all(self) -> int:
        """Read every row, newest first; return how many."""

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Page through the filtered listing, newest first; return how many rows."""
