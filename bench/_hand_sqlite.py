"""The strongest hand-written SQLite code: sqlite3, one worker thread, and tight decoding.

What a careful author who knows SQLite would write for each workload, with the same SQL,
the same parameter conversions and the same file settings as the layer:

- bulk save: multi-row INSERTs of 500 rows (the full-text index is flushed once a
  statement, not once a row), in one transaction, in the worker thread;
- durable single saves, concurrent or not: a shared commit (`SharedCommit`, below) that
  runs every queued insert and one COMMIT in the thread, one hop for the whole batch;
- reads: sqlite3 on the loop, 100 rows at a time, yielding every 0.5 ms, each row decoded
  by hand into the values the layer's models hold (enums, an aware datetime, a dict) in
  one tight comprehension, without building a model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

from bench._contenders import in_tasks, share_loop
from bench._loop_sqlite import Row, open_plain_sqlite, read_pages
from bench._raw_sqlite import END_OF_TIME, READ_PAGE, START_OF_TIME, listing_of, params_of
from bench._sql import GET_SQLITE, INSERT_SQLITE, LIST_SQLITE, multi_row_insert_sqlite
from persistence import TestStatus, TestType

if TYPE_CHECKING:
    from persistence import ResultFilter, TestResult

__all__ = ["HandSqlite", "SharedCommit", "decode_rows"]

BATCH_ROWS: Final = 500
"""Rows per INSERT in the bulk save: the layer's batch size."""

_TYPES: Final = {t.value: t for t in TestType}
_STATUSES: Final = {s.value: s for s in TestStatus}
_from_iso = dt.datetime.fromisoformat
_loads = json.loads


def decode_rows(rows: list[Row]) -> list[Row]:
    """Decode raw rows into the model's values by hand: enums, datetime, dict."""
    types, statuses = _TYPES, _STATUSES
    return [
        (
            i,
            types[t],
            statuses[s],
            e,
            m,
            p,
            n,
            err,
            out,
            _from_iso(c),
            {} if meta == "{}" else _loads(meta),
            run,
            test,
        )
        for (i, t, s, e, m, p, n, err, out, c, meta, run, test) in rows
    ]


class SharedCommit:
    """Durable single inserts that share one commit, in one worker thread: about 25 lines.

    Each caller queues its parameters and waits. The first caller to find no drain running
    starts one; it hands every queued insert to the thread, which runs them and one COMMIT,
    then wakes each caller with its id, and goes again while inserts queued meanwhile.
    """

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.conn, self.thread = conn, thread
        self.queued: list[tuple[tuple[Any, ...], asyncio.Future[int]]] = []
        self.draining = False

    async def insert(self, params: tuple[Any, ...]) -> int:
        """Insert one row; return its id once its commit is durable."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queued.append((params, future))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queued:
            batch, self.queued = self.queued, []
            try:
                ids = await loop.run_in_executor(self.thread, self._write, [p for p, _ in batch])
            except Exception as error:  # noqa: BLE001  # each waiting caller gets the error
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), new_id in zip(batch, ids, strict=True):
                future.set_result(new_id)
        self.draining = False

    def _write(self, rows: list[tuple[Any, ...]]) -> list[int]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [conn.execute(INSERT_SQLITE, row).fetchone()[0] for row in rows]
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return ids


class HandSqlite:
    """sqlite3 with one worker thread for writes, and reads on the loop: the strongest by hand."""

    name = "hand"

    def __init__(self, path: str) -> None:
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="bench-hand")
        self.writer = open_plain_sqlite(path, check_same_thread=False)
        self.reader = open_plain_sqlite(path)
        self.shared = SharedCommit(self.writer, self.thread)

    def close(self) -> None:
        """Close both connections and the thread."""
        self.thread.shutdown()
        self.writer.close()
        self.reader.close()

    def prepare(self, results: list[TestResult]) -> None:
        """Nothing to prepare: the results are written as they are."""

    async def save_many(self, results: list[TestResult]) -> None:
        """Multi-row INSERTs of 500 rows, in one transaction, in the thread."""
        await asyncio.get_running_loop().run_in_executor(self.thread, self._save_many, results)

    def _save_many(self, results: list[TestResult]) -> None:
        conn = self.writer
        full = multi_row_insert_sqlite(BATCH_ROWS)
        conn.execute("BEGIN IMMEDIATE")
        for start in range(0, len(results), BATCH_ROWS):
            batch = results[start : start + BATCH_ROWS]
            sql = full if len(batch) == BATCH_ROWS else multi_row_insert_sqlite(len(batch))
            conn.execute(sql, [value for r in batch for value in params_of(r)])
        conn.execute("COMMIT")

    async def save_concurrent(self, batches: list[list[TestResult]]) -> None:
        """From each task: one insert per row through the shared commit."""
        shared = self.shared
        await in_tasks(batches, lambda result: shared.insert(params_of(result)))

    async def save_durable(self, results: list[TestResult]) -> None:
        """One task: one insert per row through the shared commit, each durable on return."""
        for result in results:
            await self.shared.insert(params_of(result))

    async def get_by_id(self, ids: list[int]) -> int:
        """One SELECT per id on the loop, the row decoded by hand."""
        conn, pace = self.reader, share_loop()
        found = 0
        for result_id in ids:
            found += len(decode_rows(conn.execute(GET_SQLITE, (result_id,)).fetchall()))
            await pace()
        return found

    async def read_all(self) -> int:
        """Read the same keyset pages as `all_results`, decoded by hand."""
        filters = (START_OF_TIME, END_OF_TIME)
        return await read_pages(self.reader, LIST_SQLITE, filters, READ_PAGE, decode_rows)

    async def list_paged(self, where: ResultFilter, page_size: int) -> int:
        """Read the same keyset pages as `list_results`, decoded by hand."""
        sql, filters = listing_of(where)
        return await read_pages(self.reader, sql, filters, page_size, decode_rows)
