"""Counterexamples: the failing input of a stress or time-limit test, kept for replay.

`keep_counterexample` saves a failing result with its input (and expected and actual outputs),
each a content-addressed file under `.cache/counterexamples/`, linked to the result in
`result_artifacts`. Keeps and sweeps work under the files' path locks, so a file that a result
names is never removed; docs/HISTORY.md ("Counterexamples") tells how.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs

from persistence._cancelling import noted_if_cancelled
from persistence._database_value import require_database
from persistence._files.locks import LockBusyError, perform
from persistence._files.paths import CACHE_DIR
from persistence._guards import argument, byte_string, of_type
from persistence._loans import borrow
from persistence._loop import off_loop, share_loop
from persistence._rows import result_params, saved_params, with_id
from persistence.cache.disk import (
    HeldEntries,
    entry_at,
    entry_keys,
    has_entry,
    is_key,
    read_entry,
    remove_entries,
    shard_keys,
    shard_names,
    stage_held_puts,
    stage_hold_entries,
)
from persistence.database import Database, transaction
from persistence.exceptions import StorageError, ValidationError
from persistence.models import TestResult, TestType
from persistence.run_history import FAILING
from persistence.storage import Storage, storage_root

if TYPE_CHECKING:
    from persistence.queries import InsertResultArtifactsParams, ReferencedArtifactsRow

__all__ = ["FOLDER", "CounterexampleStore", "keep_counterexample", "open_counterexample_store"]

FOLDER: Final = f"{CACHE_DIR}/counterexamples"
"""Where the kept files live, under the storage root."""

SWEEP_BATCH: Final = 64
"""Files a sweep locks, looks up and removes at once: a query and two worker-thread hops each.

A batch takes a lock file (one of 4,096 stripes) a file, all at once or none, holding a
descriptor for each: few enough that other operations rarely share one of its stripes, and
that a sweep beside others does not run the process out of descriptors. 20,000 files on
SQLite: 0.9 to 1.0 s in batches of 64, 0.7 to 0.9 s in batches of 256, 6.9 s one at a time.
"""

KEPT_TYPES: Final = frozenset({TestType.STRESS, TestType.TLE})
"""The test types whose results may keep a counterexample."""

_LOG: Final = logging.getLogger("persistence.counterexamples")
"""Where a sweep says, at INFO, which files it left busy: their hashes are the record's `left`."""


@attrs.frozen
class CounterexampleStore:
    """The kept files of counterexamples under one storage root; see the module."""

    root: Path

    async def read(self, sha256: str) -> bytes | None:
        """Give the content of a kept file once its hash is checked; None if it is not kept.

        A file whose content no longer has its hash is None too, and left as it is: the read
        removes nothing that a result may name (a hard link to it, made to replay it, is no
        fault here). Keeping that content again puts the file right.
        """
        self.path_of(sha256)  # the same check of the hash, named as this store's
        return await asyncio.to_thread(
            functools.partial(read_entry, self.root, FOLDER, sha256, cached=False)
        )

    def path_of(self, sha256: str) -> Path:
        """Give where the kept file of `sha256` lives, for a program to read it directly.

        Only the hash is checked (64 lower-case hex digits), not the file: `read` is the checked
        way in. The command line prints these paths for a shell to replay.
        """
        if not is_key(argument("CounterexampleStore", "sha256", str, sha256, "a SHA-256")):
            raise ValidationError("CounterexampleStore", "sha256", f"is not a SHA-256: {sha256!r}")
        return self.root / entry_at(sha256, FOLDER)

    async def contains(self, sha256: str) -> bool:
        """Tell whether the file of `sha256` is kept, by the confined walk, without reading it."""
        self.path_of(sha256)  # the same check of the hash
        return await asyncio.to_thread(has_entry, self.root, FOLDER, sha256)

    async def keys(self) -> list[str]:
        """Give the hashes of every kept file, sorted."""
        return await asyncio.to_thread(entry_keys, self.root, FOLDER)

    async def sweep(self, db: Database) -> int:
        """Remove the kept files that no result of `db` names any more; give how many.

        They go a batch at a time, under the batch's locks, once their links are looked up
        again under those locks. A batch whose locks are not all free at once is halved until
        each busy file is alone; those are tried once more at the end. One still busy then (a
        keep about to name it, another sweep, an operation sharing its lock file) is left for
        the next sweep and logged at INFO on `persistence.counterexamples`; the sweep neither
        waits for it nor fails: a file in use is no fault of retention.
        """
        if require_database(db).in_transaction:
            raise ValidationError(
                "CounterexampleStore",
                "db",
                "sweep runs outside a transaction: a link it cannot see yet may commit",
            )
        removed = 0
        busy: list[str] = []
        # Each shard's files are listed and compared with its named hashes in a worker
        # thread: on the loop, a pass over a store of a million files held it 100 ms or more.
        for shard in await off_loop(functools.partial(shard_names, self.root, FOLDER)):
            high = "g" if shard == "ff" else f"{int(shard, 16) + 1:02x}"  # the next shard's start
            async with borrow(db) as conn:
                rows = await db.queries.referenced_artifacts(conn, low=shard, high=high)
            unnamed = await off_loop(functools.partial(_unnamed, self.root, shard, rows))
            removed += await self._remove_batches(db, unnamed, busy)
            await share_loop()
        left: list[str] = []
        for _, keys in itertools.groupby(sorted(busy), key=lambda key: key[:2]):
            removed += await self._remove_batches(db, list(keys), left)
        if left:
            files = "file" if len(left) == 1 else "files"
            _LOG.info(
                "sweep of %s left %d kept %s to the operations holding their locks, or to the next",
                FOLDER,
                len(left),
                files,
                extra={"left": left},
            )
        return removed

    async def _remove_batches(self, db: Database, keys: list[str], busy: list[str]) -> int:
        """Remove the unnamed among `keys`, of one shard, whose locks are free now, by batches.

        Add the busy ones to `busy`. A part of a batch whose locks are not all free at once is
        tried again in halves, without waiting: one busy file does not keep the others waiting
        for their locks. So is one whose lock files the process has no descriptors left to open.
        """
        removed = 0
        parts = [keys[start : start + SWEEP_BATCH] for start in range(0, len(keys), SWEEP_BATCH)]
        parts.reverse()  # taken from the end: the first batch first
        while parts:
            part = parts.pop()
            try:
                removed += await self._remove_unnamed(db, part)
            except LockBusyError:
                if len(part) == 1:
                    busy.extend(part)
                    continue
            except StorageError as error:
                if len(part) == 1 or not _out_of_descriptors(error):
                    raise
            else:
                continue
            half = len(part) // 2
            parts += [part[half:], part[:half]]
        return removed

    async def _remove_unnamed(self, db: Database, keys: list[str]) -> int:
        """Under the locks of `keys`, of one shard, remove those that no result names.

        The locks are tried once, all or none: a LockBusyError when one is taken.
        """
        removed = 0

        async def record(held: HeldEntries) -> None:
            nonlocal removed
            async with borrow(db) as conn:
                rows = await db.queries.named_artifacts(conn, sha256s=keys)
            named = {row.sha256 for row in rows}
            if unnamed := [key for key in keys if key not in named]:
                removed = await asyncio.to_thread(remove_entries, held, unnamed)

        stage = functools.partial(stage_hold_entries, self.root, FOLDER, keys)
        await perform(stage, record, lock_wait=0.0)
        return removed


def _out_of_descriptors(error: StorageError) -> bool:
    """Tell whether `error` is this process's (or the system's) running out of descriptors."""
    cause = error.__cause__
    return isinstance(cause, OSError) and cause.errno in {errno.EMFILE, errno.ENFILE}


def _unnamed(root: Path, shard: str, rows: list[ReferencedArtifactsRow]) -> list[str]:
    """Give the keys of the files kept in `shard` that none of `rows` names, sorted."""
    named = {row.sha256 for row in rows}
    return [key for key in shard_keys(root, FOLDER, shard) if key not in named]


async def open_counterexample_store(storage: Storage) -> CounterexampleStore:
    """Open the counterexample files under `storage`'s root."""
    return CounterexampleStore(storage_root("CounterexampleStore", storage))


async def keep_counterexample(
    db: Database,
    store: CounterexampleStore,
    result: TestResult,
    *,
    input: bytes,  # noqa: A002  # the name a counterexample's parts are known by
    expected: bytes | None = None,
    actual: bytes | None = None,
) -> TestResult:
    """Save a failing stress or time-limit result with the input it failed on; return it saved.

    The input, and the expected and actual outputs when given, are stored once each by
    their SHA-256 and linked to the new result, all in one transaction: nothing is linked
    unless the result is saved. Not inside `transaction()`: the links commit while the
    files' locks are held, so that no sweep removes a file a result names.
    """
    result = of_type(TestResult, result, "result")
    store = argument("TestResult", "store", CounterexampleStore, store, "a CounterexampleStore")
    if result.id is not None:
        raise ValidationError("TestResult", "id", f"keeps a new result; it has id {result.id}")
    if result.test_type not in KEPT_TYPES:
        raise ValidationError(
            "TestResult",
            "test_type",
            f"must be stress or tle to keep a counterexample, got {result.test_type.value}",
        )
    if result.status not in FAILING:
        raise ValidationError(
            "TestResult",
            "status",
            f"must be failed, timeout or error to keep a counterexample, got {result.status.value}",
        )
    if result.test_id is None:
        raise ValidationError("TestResult", "test_id", "is needed to list its counterexamples")
    parts = {
        role: byte_string("TestResult", role, data)
        for role, data in (("input", input), ("expected", expected), ("actual", actual))
        if data is not None or role == "input"
    }
    if require_database(db).in_transaction:
        raise ValidationError(
            "TestResult",
            "db",
            "keep_counterexample commits on its own: call it outside transaction()",
        )
    params = await saved_params(result, result_params, result.metadata)  # before any file
    contents = list(dict.fromkeys(parts.values()))  # one put per distinct content
    saved: list[TestResult] = []

    async def record(published: list[tuple[str, int | None]]) -> None:
        keys = {data: key for data, (key, _) in zip(contents, published, strict=True)}
        async with transaction(db) as tx, borrow(tx) as conn:
            new_id = await tx.queries.insert_test_result(conn, **params)
            links: list[InsertResultArtifactsParams] = [
                {"result_id": new_id, "role": role, "sha256": keys[data], "size": len(data)}
                for role, data in parts.items()
            ]
            await tx.queries.insert_result_artifacts(conn, links)
            kept.append(
                f"the cancellation met the commit of result {new_id}, which may have taken "
                f"effect: find_result(db, {new_id}) tells"
            )
        kept.append(f"result {new_id} was saved, with its counterexample")
        saved.append(with_id(result, new_id))

    with noted_if_cancelled() as kept:  # a COMMIT runs to its end first: say what it kept
        await perform(functools.partial(stage_held_puts, store.root, FOLDER, contents), record)
    return saved[0]
