"""SQLAlchemy 2 ORM, async: a mapped class of the same table, used the way its tutorial shows."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, String, and_, event, or_, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bench._contenders import in_tasks
from persistence._paging import READ_PAGE

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.pool import ConnectionPoolEntry

    from persistence import ResultFilter, TestResult

__all__ = ["POOL_SIZE", "Orm", "OrmResult", "keyset_after", "open_orm_engine", "orm_rows"]

_READ_PAGE = READ_PAGE  # all_results reads pages of this size, with the same query

POOL_SIZE = 10
"""The layer's PostgreSQL pool size; SQLAlchemy's pool gets the same, and no overflow."""


class _IsoTimestamp(TypeDecorator[dt.datetime]):
    """SQLite's TIMESTAMP_TEXT column: UTC ISO 8601 text, as the layer writes it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> str | None:
        """Write an aware datetime as UTC ISO 8601 text."""
        del dialect
        return (
            None if value is None else value.astimezone(dt.UTC).isoformat(timespec="microseconds")
        )

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:  # noqa: ANN401  # the base class's signature
        """Read the text back as an aware datetime."""
        del dialect
        return None if value is None else dt.datetime.fromisoformat(value)


class _Base(DeclarativeBase):
    pass


class OrmResult(_Base):
    """The test_results table, mapped."""

    __tablename__ = "test_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    test_type: Mapped[str]
    status: Mapped[str]
    execution_time: Mapped[float]
    memory_usage: Mapped[int]
    test_cases_passed: Mapped[int]
    test_cases_total: Mapped[int]
    error_message: Mapped[str | None]
    output: Mapped[str | None]
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True).with_variant(_IsoTimestamp(), "sqlite")
    )
    # `metadata` is taken by the declarative base: the attribute gets another name.
    meta: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSON().with_variant(JSONB(), "postgresql")
    )


def orm_rows(results: list[TestResult]) -> list[OrmResult]:
    """Build unsaved mapped objects from the results (outside the timed part, like the models)."""
    return [
        OrmResult(
            test_type=r.test_type.value,
            status=r.status.value,
            execution_time=r.execution_time,
            memory_usage=r.memory_usage,
            test_cases_passed=r.test_cases_passed,
            test_cases_total=r.test_cases_total,
            error_message=r.error_message,
            output=r.output,
            created_at=r.created_at,
            meta=r.metadata,
        )
        for r in results
    ]


def _sqlite_pragmas(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:  # noqa: ANN401  # DBAPI connections are untyped
    del record
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def open_orm_engine(url: str) -> AsyncEngine:
    """Create an async engine for the ORM and Core contenders.

    On SQLite: one pooled connection, with the layer's pragmas. SQLite takes one writer
    at a time, so concurrent tasks queue for the pooled connection instead of for the
    lock, where SQLite's busy handler would sleep between tries. On PostgreSQL: the
    layer's pool size.
    """
    sqlite = url.startswith("sqlite")
    engine = create_async_engine(url, pool_size=1 if sqlite else POOL_SIZE, max_overflow=0)
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def keyset_after(created_at: dt.datetime, row_id: int) -> Any:  # noqa: ANN401  # a SQL expression
    """Give the keyset condition: rows strictly after (created_at, id), newest first."""
    table = OrmResult.__table__.c
    return or_(
        table.created_at < created_at,
        and_(table.created_at == created_at, table.id < row_id),
    )


class Orm:
    """SQLAlchemy 2 ORM sessions over an async engine."""

    name = "sqlalchemy_orm"

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.pending: list[OrmResult] = []

    def prepare(self, results: list[TestResult]) -> None:
        """Build the mapped objects the next write will add, outside the timed part."""
        self.pending = orm_rows(results)

    async def save_one(self, results: list[TestResult]) -> None:
        """Call `session.add` and `flush` per row (each gets its id), then commit once."""
        del results  # prepared beforehand as mapped objects
        async with self.sessions() as session, session.begin():
            for row in self.pending:
                session.add(row)
                await session.flush()

    async def save_many(self, results: list[TestResult]) -> None:
        """`session.add_all` and one commit."""
        del results  # prepared beforehand as mapped objects
        async with self.sessions() as session, session.begin():
            session.add_all(self.pending)

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: a session per row, `session.add`, and its commit."""
        pending = iter(self.pending)
        prepared = [[next(pending) for _ in batch] for batch in batches]
        sessions = self.sessions

        async def save(row: OrmResult) -> object:
            async with sessions() as session, session.begin():
                session.add(row)
            return row.id

        await in_tasks(prepared, save)

    async def save_durable(self, results: list[TestResult]) -> None:
        """From one task: a session per row, `session.add`, and its commit."""
        del results  # prepared beforehand as mapped objects
        for row in self.pending:
            async with self.sessions() as session, session.begin():
                session.add(row)

    async def get_by_id(self, ids: list[int]) -> int:
        """`session.get` per id, in one session."""
        found = 0
        async with self.sessions() as session:
            for result_id in ids:
                found += await session.get(OrmResult, result_id) is not None
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, as mapped objects."""
        return await self._pages([], _READ_PAGE)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, as mapped objects."""
        conditions = []
        if where.test_type is not None:
            conditions.append(OrmResult.test_type == where.test_type.value)
        if where.status is not None:
            conditions.append(OrmResult.status == where.status.value)
        if where.created_from is not None:
            conditions.append(OrmResult.created_at >= where.created_from)
        if where.created_until is not None:
            conditions.append(OrmResult.created_at < where.created_until)
        return await self._pages(conditions, page_size)

    async def _pages(self, conditions: list[Any], page_size: int) -> int:
        kept: list[OrmResult] = []  # kept to the end, as `all_results` keeps its models
        last: OrmResult | None = None
        async with self.sessions() as session:
            while True:
                query = select(OrmResult).where(*conditions)
                if last is not None:
                    query = query.where(keyset_after(last.created_at, last.id))
                query = query.order_by(OrmResult.created_at.desc(), OrmResult.id.desc())
                rows = (await session.scalars(query.limit(page_size))).all()
                kept += rows
                if len(rows) < page_size:
                    return len(kept)
                last = rows[-1]
