"""Fault tests: a writer killed mid-stream, and several processes writing at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import attrs
import pytest

from _fault_writer import BATCH_SIZE, expected_result
from persistence import TestResult, all_results, connect, migrate

HERE = Path(__file__).parent
WRITER = str(HERE / "_fault_writer.py")
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
KILLS = 10
WORKERS = 4
PER_WORKER = 2_000
SQLITE_PER_TRANSACTION = 1  # every save commits alone: the most lock hand-overs
POSTGRES_PER_TRANSACTION = 4  # row locks never clash here; fewer commits keep the test short


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        WRITER,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=CHILD_ENV,
    )


def _acknowledged(output: bytes) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Parse the complete lines a killed writer printed: single saves by seq, and batches."""
    singles: dict[int, int] = {}
    batches: list[tuple[int, int]] = []
    for line in output.decode().splitlines(keepends=True):
        if not line.endswith("\n"):
            continue  # cut off by the kill: not acknowledged
        kind, first, second = line.split()
        if kind == "S":
            singles[int(first)] = int(second)
        else:
            batches.append((int(first), int(second)))
    return singles, batches


def _integrity(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]


async def _stored_by_seq(url: str | Path) -> dict[tuple[int, int], TestResult]:
    """Every stored result, keyed by (worker, seq), which must be unique."""
    async with connect(url) as db:
        stored = await all_results(db)
    by_seq = {(int(r.metadata["worker"]), int(r.metadata["seq"])): r for r in stored}  # type: ignore[arg-type]
    assert len(by_seq) == len(stored), "a sequence number was stored twice"
    return by_seq


def _expected_as_stored(stored: TestResult) -> TestResult:
    """What a stored row must equal: the writer's result for its seq, with the stored id."""
    seq = int(stored.metadata["seq"])  # type: ignore[arg-type]
    worker = int(stored.metadata["worker"])  # type: ignore[arg-type]
    batch = stored.metadata.get("batch")
    batch_key = None if batch is None else (int(batch[0]), int(batch[1]))  # type: ignore[index, arg-type]
    return attrs.evolve(expected_result(seq, worker, batch_key), id=stored.id)


async def test_killed_writer_loses_no_acknowledged_row(tmp_path: Path) -> None:
    """A SQLite writer killed ten times keeps the file intact and every acknowledged row."""
    path = tmp_path / "crash.db"
    async with connect(path) as db:
        await migrate(db)
    rng = random.Random(20261125)  # noqa: S311  # picks moments to kill, not secrets
    acknowledged: dict[int, int] = {}
    batches: list[tuple[int, int]] = []
    for round_ in range(KILLS):
        child = await _spawn("crash", str(path), str(round_ * 1_000_000))
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), timeout=20) == b"ready\n"
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        child.send_signal(signal.SIGKILL)
        output, _ = await child.communicate()
        assert child.returncode == -signal.SIGKILL
        singles, new_batches = _acknowledged(output)
        assert singles or new_batches, "the writer acknowledged nothing before the kill"
        acknowledged |= singles
        batches += new_batches

        assert _integrity(path) == ["ok"]
        stored = await _stored_by_seq(path)
        for result in stored.values():
            assert result == _expected_as_stored(result)
        for seq, result_id in acknowledged.items():
            assert stored[0, seq].id == result_id
        for first, count in batches:
            assert all((0, seq) in stored for seq in range(first, first + count))
        # A batch is all or nothing, acknowledged or not.
        for (_, seq), result in stored.items():
            batch = result.metadata.get("batch")
            if batch is not None:
                start = int(batch[0])  # type: ignore[index, arg-type]
                assert all((0, s) in stored for s in range(start, start + BATCH_SIZE)), seq


async def _run_workers(url: str, per_transaction: int) -> None:
    """Start the workers, let them all go at once, and check they finished cleanly."""
    children = [
        await _spawn("concurrent", url, str(worker), str(PER_WORKER), str(per_transaction))
        for worker in range(WORKERS)
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), timeout=20) == b"ready\n"
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    try:
        outputs = await asyncio.wait_for(
            asyncio.gather(*(child.communicate() for child in children)), timeout=45
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr.decode()[-2000:]
        assert stdout == b"done\n"
        assert b"locked" not in stderr


async def _check_all_rows(url: str | Path) -> None:
    stored = await _stored_by_seq(url)
    assert len(stored) == WORKERS * PER_WORKER
    expected_keys = {(w, s) for w in range(WORKERS) for s in range(PER_WORKER)}
    assert set(stored) == expected_keys
    for result in stored.values():
        assert result == _expected_as_stored(result)


async def test_concurrent_sqlite_writers_lose_nothing(tmp_path: Path) -> None:
    """Four processes saving 2,000 results each into one SQLite file store exactly 8,000."""
    path = tmp_path / "shared.db"
    async with connect(path) as db:
        await migrate(db)
    await _run_workers(str(path), SQLITE_PER_TRANSACTION)
    assert _integrity(path) == ["ok"]
    await _check_all_rows(path)


@pytest.mark.usefixtures("postgres_admin")
async def test_concurrent_postgres_writers_lose_nothing(postgres_url: str) -> None:
    """Four processes saving 2,000 results each into one PostgreSQL database store 8,000."""
    async with connect(postgres_url) as db:
        await migrate(db)
    await _run_workers(postgres_url, POSTGRES_PER_TRANSACTION)
    await _check_all_rows(postgres_url)
