"""The report's fixed prose: what each contender does, and how the layer runs SQLite."""

from __future__ import annotations

from typing import Final

__all__ = ["CONTENDERS_TEXT", "EXECUTION_MODEL", "LIMITS_TEXT"]

LIMITS_TEXT: Final = """## What limits the missed targets

The sentence beside each missed ratio is built from this run's figures. The causes below
were measured apart, with small scripts against the layer on this machine (2026-11-25).

- **Per-call SQLite, 10 times aiosqlite.** The thread hop costs less here than the issue
  assumed: aiosqlite took about 60 to 105 us a call on this machine, and sqlite3 called on
  the loop 10 to 26 us. No layer can be 10 times aiosqlite when the driver with no layer at
  all is less than that. The layer stays within about 1.5 times sqlite3 on the loop, which
  is the target that measures the layer itself.
- **`save_concurrent`, 10 times aiosqlite.** The commit is shared (one fsync for the whole
  batch of queued writes), so the layer costs about 45 us a row, nearly all of it work on the
  loop: building the parameters, the insert, waking the caller. aiosqlite pays one commit and
  its fsync per row, about 300 us here; 10 times that would need the layer near 30 us a row.
- **Loop lag.** The layer gives the loop back every 0.5 ms of its own work on it, reads a
  statement on the loop for at most 1 ms before moving it to a thread, and decodes rows and
  maps them to models in slices of 250 rows. What remains is not the layer's to bound:
  - full (generation 2) garbage collections of a process holding tens of thousands of models
    and their dicts take 40 to 80 ms here, and land on whatever thread allocates; the collector
    is the process's, and a library must not retune it;
  - a worker thread running Python (the bulk insert binding its rows, a long read building its
    tuples) holds the GIL for up to the 5 ms switch interval before the loop gets it back.
- **Read into models.** Building each frozen model costs about 1.5 us a row over the driver's
  rows. On PostgreSQL the garbage collector weighs more: the layer makes a row tuple and a
  model for each record, and with 50,000 of them alive the collector's full passes take tens
  of milliseconds. Measured apart, the layer read 1.38 to 1.86 times asyncpg's time with the
  collector on, and 1.48 times with it off.
- **Search write cost** (the Search section). Keeping the full-text index costs far more than
  the insert: FTS5 adds about 90 us a row on SQLite; on PostgreSQL `to_tsvector` over about
  2 KB of text costs about 150 us a row and the GIN index about 130 us. Meeting 1.5 times the
  bare insert would mean indexing after the write, or indexing less of the text.
- **Search against LIKE at the least.** A search whose words match many rows must rank every
  match (about 5 to 8 us a match); the medians are far above 50 times LIKE.
- **Redis tier alone.** On loopback one Redis round trip, JSON and the model's checks cost more
  than one PostgreSQL round trip on a kept connection; the Redis cache as opened, with its
  memory tier, answers in about 1 us.
- **Per-call PostgreSQL ratios move between runs.** Each call is one loopback round trip, and
  its time follows the load that other work puts on this 2-core machine.
- **SQLAlchemy's lag.** SQLAlchemy's async API runs its Python work (statement compilation,
  the ORM's unit of work, building objects) in a greenlet on the loop's own thread; only the
  driver calls leave it. Its bulk and read workloads stall the loop for hundreds of
  milliseconds."""

EXECUTION_MODEL: Final = """## How the layer runs SQLite: what runs on the event loop, and why

`sqlite3` is a C library called in-process: a short statement (an insert, a get by id) takes a
few microseconds. Handing it to a worker thread and back, as aiosqlite does for every call,
costs several times that: compare aiosqlite's per-call figures above with sqlite3's on the
loop, which run the same SQL. So the layer (`src/persistence/_sqlite/`)
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
- **Bulk writes** (`save_results`): multi-row inserts of up to 500 rows inside a savepoint,
  so the batch is all or nothing. Its parameters are encoded on the loop first, a slice at a
  time.
- **Reads that run long.** A progress handler looks at the clock every 1,000 SQLite
  virtual-machine steps; once a read on the loop has run for 1 ms it is interrupted, and run
  again in a thread: on a reader connection kept for threads, or, inside a transaction, on
  the writer. A short read pays nothing for this; a long one costs the loop about 1 ms, once,
  and the work done in that time is thrown away. The rows a read gives, on the loop or from a
  thread, are decoded on the loop 250 at a time, and mapped to models 250 at a time.
- **Waiting for a lock held by another process.** `BEGIN IMMEDIATE` that finds the database
  locked is retried after short sleeps (1, 2, 5, 10, 20, then 50 ms) on the loop, which is free
  to run other tasks meanwhile, until the busy timeout. A read that finds the file busy is
  retried in a thread, where SQLite's own busy wait may block.

**Sharing the loop.** A task that awaits call after call that never has to wait would
otherwise keep the loop to itself: each call that runs on the loop first gives the loop back
(`await asyncio.sleep(0)`) if the layer has held it for 0.5 ms since it last did.

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
