"""Write results through the layer from a child process, for the fault tests.

`python _fault_writer.py crash DB START` writes forever from sequence number START, one
save per transaction with a batch now and then, and prints each write after it commits:
`S <seq> <id>` for a single save, `B <first> <count>` for a batch.

`python _fault_writer.py concurrent URL WORKER COUNT PER_TX` prints `ready`, waits for a
line on stdin, then writes COUNT results, PER_TX single saves per transaction, and prints
`done`. Every result's content follows from its worker and sequence number alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from persistence import TestResult, TestStatus, TestType, connect, save_result, save_results
from persistence import transaction as begin

BASE_TIME = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
BATCH_EVERY = 5
BATCH_SIZE = 25
_TYPES = tuple(TestType)
_STATUSES = tuple(TestStatus)


def expected_result(seq: int, worker: int = 0, batch: tuple[int, int] | None = None) -> TestResult:
    """The result that `seq` of `worker` stands for, every field derived from the two."""
    total = seq % 97 + 1
    status = _STATUSES[seq % len(_STATUSES)]
    metadata: dict[str, object] = {"seq": seq, "worker": worker, "note": ["é", seq / 4]}
    if batch is not None:
        metadata["batch"] = list(batch)
    return TestResult(
        test_type=_TYPES[seq % len(_TYPES)],
        status=status,
        execution_time=seq / 1000 + worker,
        memory_usage=seq * 4096 + worker,
        test_cases_passed=seq % total,
        test_cases_total=total,
        error_message=None if status is TestStatus.PASSED else f"worker {worker} seq {seq} ✗",
        output="ok\n" * (seq % 7),
        created_at=BASE_TIME + dt.timedelta(microseconds=seq * 1001 + worker),
        metadata=metadata,  # type: ignore[arg-type]  # values are JSON: str, int, float, list
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def crash(path: str, start: int) -> None:
    """Write and acknowledge results until killed."""
    async with connect(path) as db:
        _say("ready")
        seq = start
        round_ = 0
        while True:
            round_ += 1
            if round_ % BATCH_EVERY == 0:
                batch = (seq, BATCH_SIZE)
                results = [expected_result(s, batch=batch) for s in range(seq, seq + BATCH_SIZE)]
                await save_results(db, results)
                _say(f"B {seq} {BATCH_SIZE}")
                seq += BATCH_SIZE
            else:
                async with begin(db) as tx:
                    saved = await save_result(tx, expected_result(seq))
                _say(f"S {seq} {saved.id}")
                seq += 1


async def concurrent(url: str, worker: int, count: int, per_tx: int) -> None:
    """Wait for the go line, then write `count` results in transactions of `per_tx` saves."""
    async with connect(url) as db:
        _say("ready")
        await asyncio.to_thread(sys.stdin.readline)
        for first in range(0, count, per_tx):
            async with begin(db) as tx:
                for seq in range(first, min(first + per_tx, count)):
                    await save_result(tx, expected_result(seq, worker))
        _say("done")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "crash":
        asyncio.run(crash(args[0], int(args[1])))
    else:
        asyncio.run(concurrent(args[0], int(args[1]), int(args[2]), int(args[3])))
