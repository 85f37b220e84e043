"""A sweep removes unnamed counterexample files a batch at a time, on both engines.

It took each file's lock, looked its links up and removed it one file at a time: a query
and two hops to a worker thread per file, 0.3 to 0.8 ms a file, minutes for a store of
hundreds of thousands. A batch of a shard's files is now locked at once, its links looked
up in one query under the locks, and its unnamed files removed in one hop. What the locks
guard is unchanged: a file goes only while its lock is held, after its links were looked
up again under it.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

import pytest

from _sweep_helpers import keys_in, locks_free, plant
from persistence import (
    CounterexampleStore,
    Database,
    TestResult,
    TestStatus,
    TestType,
    keep_counterexample,
)
from persistence.cache.disk import HeldEntries, remove_entries
from persistence.counterexample_store import FOLDER, SWEEP_BATCH
from persistence.queries import QUERY_FACTS

T = TypeVar("T")

_SHARDS: Final = ("3a", "7c", "e1")
_PER_SHARD: Final = 200
"""Unnamed files planted in each shard: 600 in all, several batches a shard."""


def _count_queries(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count each query that `db` runs from now on: one entry, its name, per round trip."""
    ran: list[str] = []
    for name in QUERY_FACTS["sqlite"]:
        real = getattr(db.queries, name, None)
        if real is None:
            continue

        def counted(
            *args: object,
            _real: Callable[..., Awaitable[object]] = real,
            _name: str = name,
            **kwargs: object,
        ) -> Awaitable[object]:
            ran.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(db.queries, name, counted)
    return ran


def _count_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count each call sent to the default executor from now on: one entry per hop."""
    loop = asyncio.get_running_loop()
    real = loop.run_in_executor
    hops: list[str] = []

    def counted(executor: object, call: Callable[..., T], *args: object) -> asyncio.Future[T]:
        if executor is None:
            hops.append(getattr(call, "__name__", type(call).__name__))
        return real(executor, call, *args)  # type: ignore[arg-type]  # passed on as given

    monkeypatch.setattr(loop, "run_in_executor", counted)
    return hops


def _failing() -> TestResult:
    return TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id="sweep#batches")


async def _keep_named(db: Database, store: CounterexampleStore, count: int) -> list[str]:
    """Keep `count` files that a result names; give their hashes."""
    named: list[str] = []
    for number in range(count):
        data = b"%d\n" % number
        await keep_counterexample(db, store, _failing(), input=data)
        named.append(hashlib.sha256(data).hexdigest())
    return named


async def test_a_sweep_costs_a_few_round_trips_and_hops_per_batch_not_per_file(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """600 unnamed files in three shards: a handful of queries and hops, not one or two a file.

    The sweep one file at a time ran 600 link queries and 1,200 hops to a worker thread
    (the lock taken, the file removed); now a shard is one listing and one query of its
    named hashes, and each batch of its files one locking, one query of links, one removal.
    """
    kept = await keep_counterexample(db, store, _failing(), input=b"named\n")
    assert kept.id is not None
    unnamed = []
    for shard in _SHARDS:
        unnamed += keys_in(shard, _PER_SHARD)
        await asyncio.to_thread(plant, store.root / FOLDER / shard, unnamed[-_PER_SHARD:])
    queries = _count_queries(db, monkeypatch)
    hops = _count_hops(monkeypatch)

    removed = await store.sweep(db)
    ran, hopped = len(queries), len(hops)  # before the checks below add their own
    cost = f"{ran} queries and {hopped} hops for {removed} files: {hops}"

    assert removed == len(unnamed)
    assert await store.keys() == [hashlib.sha256(b"named\n").hexdigest()]
    shards = len(_SHARDS) + 1  # the named file's shard too, which has nothing to remove
    batches = len(_SHARDS) * -(-_PER_SHARD // SWEEP_BATCH)
    assert ran <= shards + batches, cost  # a listing a shard, a lookup a batch
    assert hopped <= 1 + shards + 2 * batches, cost  # the shards; a listing a shard;
    # a locking and a removal a batch


async def test_a_shard_of_several_batches_keeps_what_results_name_under_the_lock(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The links are looked up again under the locks: named files stay, though listed unnamed.

    The listing's query is made to name nothing, as if each link committed after it: only
    the lookup under the locks, one per batch, can keep the named files.
    """
    named = await _keep_named(db, store, 40)
    shard = named[0][:2]
    unnamed = keys_in(shard, 2 * SWEEP_BATCH + 10, salt="unnamed")
    await asyncio.to_thread(plant, store.root / FOLDER / shard, unnamed)

    async def nothing_named(*_args: object, **_kwargs: object) -> list[object]:
        return []

    monkeypatch.setattr(db.queries, "referenced_artifacts", nothing_named)
    queries = _count_queries(db, monkeypatch)

    assert await store.sweep(db) == len(unnamed)
    assert await store.keys() == sorted(named)
    shards = len({key[:2] for key in named})
    in_shard = len(unnamed) + sum(key.startswith(shard) for key in named)
    batches = shards - 1 + -(-in_shard // SWEEP_BATCH)  # one in each other shard
    assert len(queries) == shards + batches, queries  # a listing a shard, a lookup a batch


@pytest.mark.parametrize("step", ["links", "removal"])
async def test_a_sweep_cancelled_in_a_batch_finishes_it_and_holds_no_lock(
    db: Database, store: CounterexampleStore, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """Cancelled while a batch's links are looked up, or its files removed: the batch ends whole.

    Its unnamed files are all gone, its named ones all there, the next batches untouched,
    and no lock of any of them is held once the cancelled sweep has returned.
    """
    named = await _keep_named(db, store, 8)
    shard = named[0][:2]
    unnamed = keys_in(shard, SWEEP_BATCH + 50, salt="cancel")
    await asyncio.to_thread(plant, store.root / FOLDER / shard, unnamed)
    everything = sorted(set(named) | set(unnamed))
    first_batch, later = set(unnamed[:SWEEP_BATCH]), set(unnamed[SWEEP_BATCH:])
    reached = asyncio.Event()
    if step == "links":
        real = db.queries.named_artifacts

        async def slow_links(*args: object, **kwargs: object) -> object:
            reached.set()
            await asyncio.sleep(0.05)
            return await real(*args, **kwargs)  # type: ignore[arg-type]  # passed on as given

        monkeypatch.setattr(db.queries, "named_artifacts", slow_links)
    else:
        loop = asyncio.get_running_loop()

        def slow_removal(held: HeldEntries, keys: list[str]) -> int:
            loop.call_soon_threadsafe(reached.set)
            time.sleep(0.05)
            return remove_entries(held, keys)

        module = sys.modules["persistence.counterexample_store"]
        monkeypatch.setattr(module, "remove_entries", slow_removal)

    task = asyncio.ensure_future(store.sweep(db))
    await reached.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()

    left = set(await store.keys())
    assert set(named) <= left
    assert not first_batch & left, "the batch was left half removed"
    assert later <= left, "a later batch was swept after the cancel"
    assert locks_free(store.root, everything)
    monkeypatch.undo()
    await store.sweep(db)
    assert await store.keys() == sorted(named)
