"""The report's fixed prose: what each contender does, and how the layer runs SQLite."""

from __future__ import annotations

from typing import Final

__all__ = ["CONTENDERS_TEXT", "EXECUTION_MODEL", "LIMITS_TEXT"]

LIMITS_TEXT: Final = """## What limits the missed targets

The sentence beside each missed ratio is built from this run's figures. The causes of lag
were measured apart, with small scripts against the layer as of 2026-11-25 (the public API,
plus counters patched onto the SQLite backend), on this machine; a later layer may have moved
them.

- **Per-call SQLite, 10 times aiosqlite.** The thread hop costs less here than the issue
  assumed: aiosqlite took about 60 to 105 us a call on this machine, and sqlite3 called on
  the loop 10 to 26 us. No layer can be 10 times aiosqlite when the driver with no layer at
  all is less than that: 3.4 to 9.9 times in the full runs of 2026-11-25. The layer stayed
  within 1.6 times of sqlite3 on the loop, which is the target that measures the layer
  itself.
- **Lag in the per-call workloads (`save_one`, `get_by_id`).** An awaited `save_result` or
  `get_result` that needs no thread never suspends: it runs on the loop and returns. A caller
  that makes 10,000 such calls in a row therefore holds the loop for all of them, 150 to 350
  ms here, and the probe wakes once, at the end. sqlite3 on the loop behaves the same; the
  aiosqlite contender does not (every call suspends). Yielding to the loop (`await
  asyncio.sleep(0)`) once about a millisecond has passed since the last yield would bound
  this at the price of one loop pass per millisecond.
- **Lag in `save_many`.** `save_results` turns the 50,000 models into parameters on the loop
  before the bulk insert goes to its thread: about 50 ms of conversion, and the longest stall
  measured during it was about 100 ms. While the thread runs `executemany`, encoding each
  row's parameters in Python, it holds the GIL; the loop waits up to the 5 ms switch interval
  (`sys.getswitchinterval()`) for it each time, which is the p99. Doing the conversion in the
  thread, or in chunks between yields, would take it off the loop.
- **`save_concurrent`.** With 100 tasks, 10,000 saves made 100 commits of 100 writes each.
  A cycle took about 4.4 ms: the group-commit runner ran the 100 inserts on the loop in one
  step, without a yield (about 2.4 ms); the commit ran in a thread while the loop had nothing
  to do, since every task waited for that commit; and the 100 tasks woken by it made their
  next calls (most of the rest). So the layer costs about 44 us a row, nearly all of it loop
  time, and one loop pass lasts about 4 ms alone, more on a busy machine (the p99 lag).
  aiosqlite pays one commit and its fsync per row (sqlite3 alone commits in about 0.36 ms on
  this disk). Reaching 10 times aiosqlite needs the layer's time per row near 34 us;
  yielding within a long batch would shorten each loop pass.
- **`read_all`.** `all_results` reads pages of 10,000 rows. Each page runs 2 ms on the loop,
  is read again in a thread, and then becomes 10,000 models on the loop in one go (a whole
  page took about 78 ms). During one read of 50,000 rows, the collector ran two full
  (generation 2) collections of 65 and 95 ms, over the models built so far; they match the
  worst lag. Model construction per row is also what keeps the layer above 1.5 times the
  driver on SQLite.
- **`list_paged` on SQLite.** Each 500-row page takes sqlite3 by hand 1.3 to 1.7 ms. The
  layer decodes timestamps and JSON in the row factory, inside the fetch, and the 2 ms budget
  counts that time too, so every page (19 of 19, counted) ran past the budget, was dropped,
  and was read again in a thread whose decoding then held the GIL. That is why the layer's
  listing is about twice aiosqlite's time on SQLite, and its lag p99 is several
  milliseconds.
- **PostgreSQL listing.** asyncpg by hand running the layer's SQL is as slow as the layer:
  the cost is the query (`col = coalesce($n, col)` for every filter, which no index serves
  under a generic plan), not the layer's Python. SQLAlchemy Core's statement names only the
  set filters.
- **Per-call PostgreSQL ratios move between runs.** Each call is one loopback round trip,
  and its time follows the load that other work puts on this 2-core machine. In two full runs
  of the same code on 2026-11-25, `get_by_id` layer/raw came out 1.15 and 1.38; within the
  second, asyncpg's own three rounds took 0.90 to 1.57 s. A single run's per-call ratio near
  its bound says little; the table's sentence gives the spread of the rounds.
- **SQLAlchemy's lag.** SQLAlchemy's async API runs its Python work (statement compilation,
  the ORM's unit of work, building objects) in a greenlet on the loop's own thread; only the
  driver calls leave it. Its bulk and read workloads stall the loop for hundreds of
  milliseconds."""

EXECUTION_MODEL: Final = """## How the layer runs SQLite: what runs on the event loop, and why

`sqlite3` is a C library called in-process: a short statement (an insert, a get by id) takes a
few microseconds. Handing it to a worker thread and back, as aiosqlite does for every call,
costs several times that: compare aiosqlite's per-call figures above with sqlite3's on the
loop, which run the same SQL. So the layer (`src/persistence/_sqlite.py`)
calls `sqlite3` directly from the event loop for short work, and sends to worker threads only
what can take long, because whatever runs on the loop stops every other task for as long as
it runs.

**On the loop**, in the calling task:

- Reads outside a transaction, on a reader connection of their own. The file is in WAL mode,
  so a reader sees the last commit and never waits for the writer.
- Every statement inside `transaction()`, on the writer connection, which the block holds.
- `BEGIN IMMEDIATE`, tried once without waiting; savepoints; `ROLLBACK`.
- Single-call writes outside a transaction (`save_result`, `delete_result`, ...), run by the
  group-commit runner described below.

**Off the loop**, in a small pool of worker threads:

- **Every `COMMIT`.** With `synchronous = FULL` a commit waits for an fsync of the WAL file,
  hundreds of microseconds to milliseconds depending on the disk: far too long to stop the
  loop for.
- **Bulk writes** (`save_results`): one `executemany` inside a savepoint, so it is all or
  nothing.
- **Reads that run long.** A progress handler looks at the clock every 1,000 SQLite
  virtual-machine steps; once a read on the loop has run for 2 ms it is interrupted, and run
  again in a thread: on a reader connection kept for threads, or, inside a transaction, on
  the writer. A short read pays nothing for this; a long one costs the loop about 2 ms, once,
  and the work done in those 2 ms is thrown away.
- **Waiting for a lock held by another process.** `BEGIN IMMEDIATE` that finds the database
  locked is retried after short sleeps (1, 2, 5, 10, 20, then 50 ms) on the loop, which is free
  to run other tasks meanwhile, until the busy timeout. A read that finds the file busy is
  retried in a thread, where SQLite's own busy wait may block.

**Group commit.** Outside `transaction()`, a single-call write is queued and its caller waits.
A runner task opens one transaction (`BEGIN IMMEDIATE`), runs each queued write on the loop
(letting tasks that became ready add theirs before it stops), then commits them all with one
`COMMIT` in a thread. Each caller returns only once that commit is durable. A write that fails
(a constraint, say) fails alone: SQLite undoes only that statement, and the others still
commit. Only if SQLite itself rolls the whole transaction back (a full disk, an I/O error) do
all the writes of that batch fail, with its error. At most 1,000 writes share a commit; a
`transaction()` block waits its turn in the same queue and then holds the writer for its
whole block. With many tasks writing at once, one fsync is shared by all of them instead of
paid by each: that is what the concurrent workload (`save_concurrent`) measures.

PostgreSQL needs none of this: asyncpg is asynchronous from end to end, the server does the
fsync, and the layer keeps a pool with a fast lane for single statements."""

CONTENDERS_TEXT: Final = """## What runs

The rows follow the seed's `test_results` shape: 10 columns written and 11 read, metadata as
JSON, built once (as validated `TestResult` models) before any timing. Every contender uses the
same table, the same rows and, where it writes SQL, the same SQL as `sql/queries/test_results.sql`.

- **layer**: the public functions of `persistence` only. `save_one` is
  `async with transaction(db) as tx: for r in rows: await save_result(tx, r)`; `save_many` is
  `save_results`; `save_concurrent` is `save_result(db, r)` outside any transaction, from every
  task at once; `get_by_id` is `get_result`; `read_all` is `all_results`; `list_paged` is
  `list_results` with a `ResultFilter` (one test type, from a quarter of the way in), 500 a
  page, following `next_cursor` to the end.
- **sqlite3 on the loop** (SQLite only): plain `sqlite3` calls made directly in the async
  functions, never leaving the event loop, commits and their fsync included. Parameters and
  rows are converted as for aiosqlite below. This is the limit an async layer could reach, and
  its lag figures show what it costs every other task.
- **aiosqlite by hand** / **asyncpg by hand**: the driver, used the quickest way a careful hand
  would. Parameters are converted from the models by hand (enum values; on SQLite, UTC ISO 8601
  text and JSON text). Reads are the driver's plain rows: sqlite3 tuples (with the schema's
  declared-type converters, so timestamps and metadata come back as datetimes and dicts) and
  asyncpg Records (with a jsonb codec). aiosqlite: one awaited call per row,
  `executemany` for the batch. asyncpg: `fetchval`/`fetchrow` per row,
  `copy_records_to_table` for the batch. Reads page with the same keyset query and page sizes
  as the layer.
- **SQLAlchemy Core**: the 2.x expression language, async (aiosqlite and asyncpg dialects), the
  same table. `insert(...).returning(id)` per row, an `insert` with every row's parameters for
  the batch, `select(...).where(id == ...)` per id; reads are `Row`s, converted by the column
  types, with the same keyset pages. The filtered listing names only the filters that are set.
- **SQLAlchemy ORM**: a mapped class of the same table. `save_one` is `session.add` then
  `flush` per row (so each row gets its id, as `save_result` gives it), one commit; `save_many`
  is `add_all` and one commit; `get_by_id` is `session.get`; reads are `select(OrmResult)` with
  the same keyset pages. The mapped objects to insert are built before timing, like the models.

**The concurrent workload** (`save_concurrent`) starts one task per batch of rows; each task
saves its rows one call at a time, and every row is its own commit, outside any transaction:
the layer's `save_result(db, r)`; aiosqlite: one `INSERT ... RETURNING id` on one shared
connection in autocommit mode (the insert and its commit in one call, one hop), under an
`asyncio.Lock`; sqlite3 on the loop: the same insert, and the task yields to the loop after
each save so that the tasks take turns; asyncpg: `pool.fetchval` of the insert from a pool of
the layer's size (10); SQLAlchemy: `engine.begin()` (Core) or a session with `session.begin()`
(ORM) per row.

SQLAlchemy's engines get the layer's settings: on SQLite the layer's pragmas and one pooled
connection (SQLite takes one writer at a time: tasks queue for the connection rather than in
SQLite's busy handler, which sleeps between tries); on PostgreSQL a pool of 10 and no overflow.

SQLite runs on a temporary file in WAL mode with `synchronous = FULL` (the layer's setting)
for every contender. PostgreSQL runs on a scratch database that is dropped afterwards."""
