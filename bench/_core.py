"""SQLAlchemy 2 Core, async: the same table, statements built with its expression language.

Rows come back as SQLAlchemy `Row`s, converted by the column types (timestamps and JSON),
as a Core user gets them. The filtered listing names only the filters that are set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert, select

from bench._contenders import in_tasks
from bench._orm import OrmResult, keyset_after
from persistence._paging import READ_PAGE

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from persistence import ResultFilter, TestResult

__all__ = ["Core"]

_READ_PAGE = READ_PAGE  # all_results reads pages of this size, with the same query

_TABLE = OrmResult.__table__
assert isinstance(_TABLE, Table)  # noqa: S101  # a declarative class maps one Table
_C = _TABLE.c

_INSERT = insert(_TABLE)
_INSERT_RETURNING = insert(_TABLE).returning(_C.id)
_GET = select(_TABLE).where(_C.id == bindparam("id"))
_NEWEST_FIRST = (_C.created_at.desc(), _C.id.desc())


def _values(result: TestResult) -> dict[str, Any]:
    return {
        "test_type": result.test_type.value,
        "status": result.status.value,
        "execution_time": result.execution_time,
        "memory_usage": result.memory_usage,
        "test_cases_passed": result.test_cases_passed,
        "test_cases_total": result.test_cases_total,
        "error_message": result.error_message,
        "output": result.output,
        "created_at": result.created_at,
        "metadata": result.metadata,
    }


def _conditions(where: ResultFilter) -> list[Any]:
    """Name only the filters that are set, so the database can use its indexes."""
    conditions: list[Any] = []
    if where.test_type is not None:
        conditions.append(_C.test_type == where.test_type.value)
    if where.status is not None:
        conditions.append(_C.status == where.status.value)
    if where.created_from is not None:
        conditions.append(_C.created_at >= where.created_from)
    if where.created_until is not None:
        conditions.append(_C.created_at < where.created_until)
    return conditions


class Core:
    """SQLAlchemy Core connections over an async engine."""

    name = "sqlalchemy_core"

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: parameters are built from the models as they are written."""

    async def save_one(self, results: list[TestResult]) -> None:
        """One INSERT ... RETURNING id per row, in one transaction."""
        async with self.engine.begin() as conn:
            for result in results:
                (await conn.execute(_INSERT_RETURNING, _values(result))).scalar_one()

    async def save_many(self, results: list[TestResult]) -> None:
        """One INSERT with every row's parameters (an executemany), in one transaction."""
        async with self.engine.begin() as conn:
            await conn.execute(_INSERT, [_values(r) for r in results])

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: a connection per row, INSERT ... RETURNING id, and its commit."""
        engine = self.engine

        async def save(result: TestResult) -> object:
            async with engine.begin() as conn:
                return (await conn.execute(_INSERT_RETURNING, _values(result))).scalar_one()

        await in_tasks(batches, save)

    async def save_durable(self, results: list[TestResult]) -> None:
        """From one task: a connection per row, INSERT ... RETURNING id, and its commit."""
        for result in results:
            async with self.engine.begin() as conn:
                (await conn.execute(_INSERT_RETURNING, _values(result))).scalar_one()

    async def get_by_id(self, ids: list[int]) -> int:
        """One SELECT per id, on one connection."""
        found = 0
        async with self.engine.connect() as conn:
            for result_id in ids:
                found += (await conn.execute(_GET, {"id": result_id})).first() is not None
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, as Rows."""
        return await self._pages([], _READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, naming only the set filters."""
        return await self._pages(_conditions(where), page_size)

    async def _pages(self, conditions: list[Any], page_size: int) -> int:
        kept: list[object] = []  # kept to the end, as `all_results` keeps its models
        query = select(_TABLE).where(*conditions).order_by(*_NEWEST_FIRST).limit(page_size)
        async with self.engine.connect() as conn:
            page = query
            while True:
                rows = (await conn.execute(page)).all()
                kept += rows
                if len(rows) < page_size:
                    return len(kept)
                last = rows[-1]
                page = query.where(keyset_after(last.created_at, last.id))
