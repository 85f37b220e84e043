"""The report's fixed prose: what each contender does, and how the layer runs SQLite."""

from __future__ import annotations

from typing import Final

__all__ = ["CONTENDERS_TEXT", "EXECUTION_MODEL", "LIMITS_TEXT"]

LIMITS_TEXT: Final = """## Reading the limits

The sentence beside each missed ratio is built from this run's figures: the layer's
microseconds a row against the contender that shows the floor, and, where a thread is
involved, the thread wake-up measured in the same rounds. For `read_all` it splits the
cost three ways: the driver's raw tuples, decoding them by hand into the models' values,
and the layer's work over that decode. After each workload's rounds the layer makes one
more call under cProfile, outside the timing, and a missed ratio names where that call's
time went: the layer's own code (with its three costliest functions), the driver, the event
loop, the loop waiting for a thread or the server, and the rest. The lag probe times every
run of the garbage collector during each round, and a missed lag target says when one
collection is most of the stall. Causes measured apart, with small scripts on this
kind of machine (2026-11-25, before issue 17's changes; rerun them before relying on them):

- **Against aiosqlite.** Every aiosqlite call is one round trip to its thread. That round
  trip costs what the thread-wake probe shows, and it moves with the machine: 30 to 280 us
  a call was seen for the same code. The layer runs short statements on the loop and has
  no such hop, so "x aiosqlite" figures say more about the machine than about either; they
  are shown, and no target rests on them, except `save_durable`, where both pay one commit
  and fsync per call.
- **Loop lag.** Full (generation 2) garbage collections of a process holding tens of
  thousands of models took 40 to 80 ms (130 to 180 ms on 2026-12-04 with 50,000 results
  read into a process holding 50,000 more, and the same for the hand-written decode), and
  land on whatever code allocates: a collection walks the whole heap in one go, and no
  yielding between slices of rows splits it. With the collector off, the same read of
  50,000 rows held the loop 17 to 58 ms at worst on a loaded machine, 11 to 15 ms at p99. A worker
  thread running Python (binding a bulk insert's rows) holds the GIL for up to the 5 ms
  switch interval before the loop gets it back. The hand-written contenders' lag beside the
  layer's shows what the same work costs the loop without the layer.
- **The full-text index.** Its triggers (SQLite) or its generated tsvector column and GIN
  index (PostgreSQL) cost every contender alike, tens of microseconds a row; the plain-table
  runs show each contender without it, so the layer's own cost stands out.
- **Search write cost** (the Search section). FTS5 added about 90 us a row on SQLite; on
  PostgreSQL `to_tsvector` over about 2 KB of text about 150 us a row and the GIN index about
  130 us.
- **Redis tier alone.** On loopback one Redis round trip, JSON and the model's checks cost
  more than one PostgreSQL round trip on a kept connection; the Redis cache as opened, with
  its memory tier, answers in about 1 us.
- **Memory cache against a SQLite read.** An uncached setting read on SQLite is about 20 us,
  with no thread hop. A hit costs about 2.3 us (measured by hand, 2026-12-04): about 1 us to
  check the change feed's version and find the entry, 0.5 to 0.7 us to share the loop (a hit
  never waits, so 10,000 hits in a row held the loop 345 ms before it did), and the rest to
  check and copy the value. The 10x target would need the loop check dropped.
- **SQLAlchemy's lag.** SQLAlchemy's async API runs its Python work (statement compilation,
  the ORM's unit of work, building objects) in a greenlet on the loop's own thread; only the
  driver calls leave it."""

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

**Off the loop**, in a small pool of worker threads:

- **Single-call writes outside a transaction** (`save_result`, `delete_result`, ...), run
  by the group-commit runner described below: an insert into `test_results` may make FTS5
  merge its index segments, tens of milliseconds inside one step that no budget sees.
- **Every `COMMIT`.** With `synchronous = FULL` a commit waits for an fsync of the WAL file,
  hundreds of microseconds to milliseconds depending on the disk: far too long to stop the
  loop for.
- **Bulk writes** (`save_results`): multi-row inserts of up to 2,000 rows inside a savepoint,
  so the batch is all or nothing. Its parameters are encoded on the loop first, a slice at a
  time, each object that many rows share (a datetime, a metadata dict) once.
- **Reads that run long.** A progress handler looks at the clock every 1,000 SQLite
  virtual-machine steps; once a read on the loop has run for 1 ms it is interrupted, and run
  again in a thread: on a reader connection kept for threads, or, inside a transaction, on
  the writer. The handler is set only while a statement runs on the loop: in a thread it
  would take the GIL every 1,000 steps, each time waiting for the loop's thread to let go. A
  short read pays nothing for this; a long one costs the loop about 1 ms, once, and the work
  done in that time is thrown away. The rows a read gives, on the loop or from a
  thread, are decoded on the loop 250 at a time, and mapped to models 250 at a time.
- **Waiting for a lock held by another process.** `BEGIN IMMEDIATE` that finds the database
  locked is retried after short sleeps (1, 2, 5, 10, 20, then 50 ms) on the loop, which is free
  to run other tasks meanwhile, until the busy timeout. A read that finds the file busy is
  retried in a thread, where SQLite's own busy wait may block.

**Sharing the loop.** A task that awaits call after call that never has to wait would
otherwise keep the loop to itself: each call that runs on the loop first gives the loop back
(`await asyncio.sleep(0)`) if the layer has held it for 0.5 ms since it last did.

**Group commit.** Outside `transaction()`, a single-call write is queued and its caller waits.
A runner task opens one transaction (`BEGIN IMMEDIATE`) and hands the queued writes to a
worker thread together, which runs them one by one; when no other write waits, the same hop
ends with the `COMMIT`, so that a lone write costs one hop, and writes that arrive meanwhile
form the next batch. Each caller returns only once that commit is durable. A write that fails
(a constraint, say) fails alone: SQLite undoes only that statement, and the others still
commit. Only if SQLite itself rolls the whole transaction back (a full disk, an I/O error) do
all the writes of that batch fail, with its error. At most 1,000 writes share a commit; a
`transaction()` block waits its turn in the same queue and then holds the writer for its
whole block. With many tasks writing at once, one fsync is shared by all of them instead of
paid by each: that is what the concurrent workload (`save_concurrent`) measures.

PostgreSQL needs none of this: asyncpg is asynchronous from end to end, the server does the
fsync, and the layer keeps a pool with a fast lane for single statements."""

CONTENDERS_TEXT: Final = """## What runs

The rows follow the seed's `test_results` shape: 12 columns written and 13 read, metadata as
JSON, built once (as validated `TestResult` models) before any timing. Every contender uses the
same table, the same rows and, where it writes SQL, the same SQL as the generated
`sql/aiosql/<engine>.sql`. Parameters are converted from the models by hand alike in every
hand-written contender (enum values; on SQLite, UTC ISO 8601 text and JSON text). Reads keep
every row to the end, as `all_results` keeps its models.

- **layer**: the public functions of `persistence` only. `save_one` is
  `async with transaction(db) as tx: for r in rows: await save_result(tx, r)`; `save_many` is
  `save_results`; `save_concurrent` is `save_result(db, r)` outside any transaction, from 100
  tasks at once; `save_durable` is the same from one task; `get_by_id` is `get_result`;
  `read_all` is `all_results`; `list_paged` is `list_results` with a `ResultFilter` (one test
  type, from a quarter of the way in), 500 a page, following `next_cursor` to the end.
- **hand-written best (sqlite3 + one thread)**, SQLite, the strongest hand-written code for
  each workload it runs (`bench/_hand_sqlite.py`): multi-row INSERTs of 500 rows in one
  transaction in its thread for the batch (the full-text index is flushed once a statement,
  where `executemany` flushes it once a row); a shared commit of about 25 lines for single
  durable saves (queued inserts and one COMMIT run in the thread, one hop for the batch);
  reads on the loop, 100 rows at a time, yielding every 0.5 ms, each row decoded by one tight
  comprehension into the values the models hold (enums, an aware datetime, a dict), no model.
- **sqlite3 on the loop, yielding** (SQLite): plain `sqlite3` calls in the async functions,
  never leaving the event loop, commits and their fsync included, giving the loop back
  whenever it has held it for 0.5 ms. Its reads are sqlite3's raw tuples (timestamps and
  metadata left as text): the floor of any read. Its batch is 16-row INSERTs, yielding
  between them.
- **aiosqlite** / **asyncpg by hand**: the async driver a user would pick instead.
  aiosqlite: one awaited call per row, `executemany` for the batch, rows as tuples with the
  schema's declared-type converters (timestamps and metadata as datetimes and dicts).
  asyncpg, the strongest hand-written contender on PostgreSQL: `fetchval`/`fetchrow` per row,
  `copy_records_to_table` (COPY) for the batch, rows as Records (with a jsonb codec), a pool
  of the layer's size (10) for the concurrent tasks.
- **SQLAlchemy Core**: the 2.x expression language, async (aiosqlite and asyncpg dialects), the
  same table. `insert(...).returning(id)` per row, an `insert` with every row's parameters for
  the batch, `select(...).where(id == ...)` per id; reads are `Row`s, converted by the column
  types, with the same keyset pages. The filtered listing names only the filters that are set.
- **SQLAlchemy ORM**: a mapped class of the same table. `save_one` is `session.add` then
  `flush` per row (so each row gets its id, as `save_result` gives it), one commit; `save_many`
  is `add_all` and one commit; `get_by_id` is `session.get`; reads are `select(OrmResult)` with
  the same keyset pages. The mapped objects to insert are built before timing, like the models.

**The durable workloads.** `save_concurrent` starts 100 tasks of 100 rows; `save_durable` is
one task. Each row is its own durable commit, outside any transaction: the layer's
`save_result(db, r)` (its runner shares one commit between the writes queued meanwhile); the
hand-written shared commit; aiosqlite: one `INSERT ... RETURNING id` in autocommit mode (the
insert and its commit in one call, one hop), under an `asyncio.Lock` when tasks share the
connection; sqlite3 on the loop: the same insert, the task yielding after each; asyncpg: the
insert on a connection (`save_durable`) or from the pool (`save_concurrent`); SQLAlchemy:
`engine.begin()` (Core) or a session with `session.begin()` (ORM) per row.

SQLAlchemy's engines get the layer's settings: on SQLite the layer's pragmas and one pooled
connection; on PostgreSQL a pool of 10 and no overflow. SQLite runs on a temporary file in
WAL mode with `synchronous = FULL` (the layer's setting) for every contender. PostgreSQL runs
on a scratch database that is dropped afterwards. Each round, the contenders' order rotates."""
