"""Retention's sweep of counterexample files leaves the event loop free, on both engines.

The sweep walks `.cache/counterexamples/` one shard folder at a time. It listed every kept
file up front, and then, for each shard, compared all of them with the shard's named hashes
on the loop: the loop was held for a pass over the whole store per shard, some 100 ms a
shard at a million files. The hold grows with the files of the store, so a store of
`TEST_SWEEP_FILES` files in 16 shards shows it; the sweep runs, as retention's, beside the
benchmark's lag probe. In conftest's TIMED_MODULES.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Final

import pytest

from _lag import MAX_STATEMENT_LAG, within
from persistence import (
    CounterexampleStore,
    Database,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    delete_results_before,
    open_counterexample_store,
    save_results,
    transaction,
)
from persistence._loans import borrow
from persistence.counterexample_store import FOLDER
from persistence.queries import InsertResultArtifactsParams
from persistence.storage import open_storage

_FILES: Final = int(os.environ.get("TEST_SWEEP_FILES", "100000"))
"""Kept files in the store: the old sweep's hold grew with them all, not with a shard's."""

_SHARDS: Final = tuple(f"{digit:x}3" for digit in range(16))
"""The shards the files are dealt to: 6,250 each, where a million files give 256 some 3,900."""
_ROLES: Final = ("input", "expected", "actual")
_OLD: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_NEW: Final = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
_OLD_EVERY: Final = 100
"""One file in this many is named only by an old result: the sweep removes it."""


def _keys(count: int) -> list[str]:
    """Give `count` distinct hashes, dealt to the shards in turn."""
    keys = []
    for number in range(count):
        digest = hashlib.sha256(b"%d" % number).hexdigest()
        keys.append(_SHARDS[number % len(_SHARDS)] + digest[2:])
    return keys


def _plant(root: Path, keys: list[str]) -> None:
    """Make an empty file for each key where the store keeps it: the sweep reads none."""
    for shard in _SHARDS:
        (root / FOLDER / shard).mkdir(parents=True, exist_ok=True)
    for key in keys:
        os.close(os.open(root / FOLDER / key[:2] / key, os.O_CREAT | os.O_WRONLY, 0o644))


async def _link(db: Database, keys: list[str], created_at: dt.datetime) -> None:
    """Save results naming `keys`, three to a result (one file per role)."""
    count = (len(keys) + len(_ROLES) - 1) // len(_ROLES)
    test = f"sweep#{created_at.month}"
    results = [
        TestResult(
            test_type=TestType.STRESS,
            status=TestStatus.FAILED,
            test_id=test,
            created_at=created_at,
        )
        for _ in range(count)
    ]
    await save_results(db, results)
    saved = await all_results(db)
    ids = sorted(result.id for result in saved if result.test_id == test and result.id is not None)
    links: list[InsertResultArtifactsParams] = [
        {"result_id": ids[index // 3], "role": _ROLES[index % 3], "sha256": key, "size": 0}
        for index, key in enumerate(keys)
    ]
    async with transaction(db) as tx, borrow(tx) as conn:
        await tx.queries.insert_result_artifacts(conn, links)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A storage root holding the store's files, planted once for both engines' tests.

    Each file costs the file system some 50 to 100 us to make here: made for each test, the
    files took longer than the test itself. The few a sweep removes are planted again.
    """
    root = tmp_path_factory.mktemp("planted")
    keys = _keys(_FILES)
    _plant(root, keys)
    return root, keys


async def test_retention_sweeping_a_large_store_leaves_the_loop_free(
    db: Database, planted: tuple[Path, list[str]]
) -> None:
    """Old results go, and the files only they named; the loop waits a few ms at a time.

    With the listing and comparing on the loop, 100,000 files in 16 shards held it 28 to 31
    ms of CPU a step (a pass over every file per shard, and the shards' names taken from
    every file), which the probe saw as 110 to 270 ms on a busy machine; now 5 to 6 ms.
    """
    root, keys = planted
    old = keys[::_OLD_EVERY]
    await asyncio.to_thread(_plant, root, old)  # those the other engine's test swept
    store = await open_counterexample_store(await open_storage(root))
    await _link(db, old, _OLD)
    await _link(db, [key for index, key in enumerate(keys) if index % _OLD_EVERY], _NEW)
    # The collector is kept out of the measure, as in the other lag tests: a full collection
    # walks the whole heap, 100,000 keys of this module's included, whoever's code set it off:
    # with it, the sweep measured 31 to 43 ms on a slow machine (`make bench` reports it apart).
    deleted = await within(
        MAX_STATEMENT_LAG,
        "the sweep",
        lambda: delete_results_before(db, _NEW, artifacts=store),
    )
    assert deleted == (len(old) + 2) // 3
    assert await store.keys() == sorted(set(keys) - set(old))


async def test_a_sweep_cancelled_at_any_step_removes_only_unnamed_files(
    db: Database, store: CounterexampleStore
) -> None:
    """Cancelled while a shard is listed, looked up or swept, a sweep leaves named files alone.

    Each cancel comes a few more turns of the loop later; the files left unnamed are all
    gone after one sweep to the end, and the named ones all there.
    """
    keys = _keys(96)
    await asyncio.to_thread(_plant, store.root, keys)
    named = [key for index, key in enumerate(keys) if index % 4]
    await _link(db, named, _NEW)
    cancelled = 0
    for turns in range(0, 60, 3):
        task = asyncio.ensure_future(store.sweep(db))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        cancelled += task.cancelled()
        assert set(named) <= set(await store.keys()), f"cancelled after {turns} turns"
    assert cancelled > 1, "no sweep was cancelled midway"
    await store.sweep(db)
    assert await store.keys() == sorted(named)
