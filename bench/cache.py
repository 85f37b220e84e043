# ruff: noqa: T201, S101, S608, ASYNC240, E501, PLR2004
# (a benchmark script: it prints its table, checks its own figures and runs the engines' shells)
"""Cache benchmark: cached vs uncached setting reads, Redis vs PostgreSQL, staleness by writer.

`python -m bench.cache` prints Markdown tables and writes build/bench/cache.json; `make bench`
runs it as a section. Every cache is opened through `open_persistence`, as an application
opens it; only the "Redis tier alone" read opens the Redis tier by itself, since
`open_persistence` always puts the memory tier in front of it. It uses the
PostgreSQL server at BENCH_DATABASE_URL (default: the local one) and Redis at
BENCH_REDIS_URL, else TEST_REDIS_URL, else database 15 of the local server (never
database 0). BENCH_CACHE_WRITES sets the writes measured per writer through the package
(1,000); the shell and killed writers make one write in 20 of that, at least 5 (each is a
process of its own).

Staleness is the time from a write's end (the call's return, the shell's exit, the killed
writer's death) to the first read here that sees it, for three writers: another process
through the package, the engine's own shell (`sqlite3`, `psql`), and a process killed
right after its commit.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench._scratch import scratch_postgres
from bench._section import Outcome, Run
from persistence import connect, get_config_value, migrate, open_persistence, set_config
from persistence.cache import Cache
from persistence.cache.distributed import open_redis_cache

ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = (
    os.environ.get("BENCH_REDIS_URL")
    or os.environ.get("TEST_REDIS_URL")
    or "redis://127.0.0.1:6379/15"
)
WRITES = int(os.environ.get("BENCH_CACHE_WRITES", "1000"))
QUICK_WRITES = 40
STALENESS_TARGET_MS = 50.0
INTRO = """`persistence.cache` (see `docs/CACHE.md`), opened through `open_persistence`: a setting
read from the memory cache against the same read from the database, the Redis tier alone
against the PostgreSQL read it replaces, and how soon a committed write shows, for three
writers: another process through the package, the engine's own shell (`sqlite3`, `psql`),
and a process killed right after its commit (issue 17's target: p99 ≤ 50 ms)."""
OUT = Path("build/bench/cache.json")
WRITER = """
import asyncio, sys
from persistence import connect, set_config
async def main(url):
    async with connect(url) as db:
        print("ready", flush=True)
        number = 0
        while line := sys.stdin.readline():
            number = int(line)
            await set_config(db, "cache", "value", number)
            print(number, flush=True)
asyncio.run(main(sys.argv[1]))
"""
KILLED = """
import asyncio, os, signal, sys
from persistence import connect, set_config
from persistence.database import watch_writes
async def main(url, value):
    async with connect(url) as db:
        watch_writes(db, lambda tables: os.kill(os.getpid(), signal.SIGKILL))
        await set_config(db, "cache", "value", value)
asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

Read = Callable[[], Awaitable[int]]


async def per_call(read: Callable[[], Awaitable[object]], calls: int) -> float:
    """Best of 5 rounds: seconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            await read()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


async def seen_after(read: Read, number: int, ended: float) -> tuple[float, int]:
    """Read until `number` shows; give the seconds since `ended` and the stale reads."""
    stale = 0
    while await read() != number:
        stale += 1
        assert time.perf_counter() - ended < 10, f"write {number} never seen"
        await asyncio.sleep(0)
    return time.perf_counter() - ended, stale


def figures_of(delays: list[float], stale: int) -> dict[str, float]:
    """Summarise the delays of one writer."""
    delays.sort()
    return {
        "writes": len(delays),
        "stale_reads": stale,
        "median_ms": delays[len(delays) // 2] * 1000,
        "p99_ms": delays[min(len(delays) - 1, int(len(delays) * 0.99))] * 1000,
        "max_ms": delays[-1] * 1000,
    }


async def package_writer(url: str, read: Read, first: int, writes: int) -> dict[str, float]:
    """Another process writes through the package, one value at a time."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    delays, stale = [], 0
    await child.stdout.readline()
    for number in range(first, first + writes):
        child.stdin.write(f"{number}\n".encode())
        await child.stdin.drain()
        await child.stdout.readline()
        delay, reads = await seen_after(read, number, time.perf_counter())
        delays.append(delay)
        stale += reads
    child.stdin.close()
    await child.wait()
    return figures_of(delays, stale)


def shell_command(url: str, number: int) -> list[str] | None:
    """Give the engine's own shell command that sets the value with plain SQL; None without one."""
    sql = f"UPDATE config_entries SET value = '{number}' WHERE section = 'cache' AND key = 'value'"
    if url.startswith("postgresql"):
        psql = shutil.which("psql")
        return None if psql is None else [psql, "-q", url, "-c", sql]
    sqlite3 = shutil.which("sqlite3")
    return None if sqlite3 is None else [sqlite3, url, sql]


async def shell_writer(url: str, read: Read, first: int, writes: int) -> dict[str, float] | None:
    """Set the value with the engine's shell, one process per write."""
    delays, stale = [], 0
    for number in range(first, first + max(5, writes // 20)):
        command = shell_command(url, number)
        if command is None:
            return None
        shell = await asyncio.create_subprocess_exec(*command)
        assert await shell.wait() == 0
        delay, reads = await seen_after(read, number, time.perf_counter())
        delays.append(delay)
        stale += reads
    return figures_of(delays, stale)


async def killed_writer(url: str, read: Read, first: int, writes: int) -> dict[str, float]:
    """Write through the package from a process SIGKILLed right after each commit."""
    delays, stale = [], 0
    for number in range(first, first + max(5, writes // 20)):
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED, url, str(number))
        assert await child.wait() == -9
        delay, reads = await seen_after(read, number, time.perf_counter())
        delays.append(delay)
        stale += reads
    return figures_of(delays, stale)


async def staleness(url: str, read: Read, writes: int) -> dict[str, dict[str, float] | None]:
    """Give the staleness of each writer, seen through `read`."""
    await read()
    return {
        "package": await package_writer(url, read, 1, writes),
        "shell": await shell_writer(url, read, 1_000_000, writes),
        "killed": await killed_writer(url, read, 2_000_000, writes),
    }


def reads_of(cache: Cache) -> tuple[Read, Read]:
    """Give the two reads measured through `cache`: the setting, and the written value."""

    async def setting() -> int:
        return await cache.get_config_value("runner", "workers", int)

    async def value() -> int:
        return await cache.get_config_value("cache", "value", int)

    return setting, value


async def engine(url: str, folder: Path, redis_url: str, writes: int) -> dict[str, object]:
    """Every figure for one database: reads, then staleness with and without Redis."""
    figures: dict[str, object] = {}
    async with connect(url) as db:
        await migrate(db)
        await set_config(db, "runner", "workers", 4)
        await set_config(db, "cache", "value", 0)
        figures["uncached_us"] = 1e6 * await per_call(
            lambda: get_config_value(db, "runner", "workers", int), 2000
        )
        if url.startswith("postgresql"):
            redis = await open_redis_cache(
                db, redis_url, local_size=0, namespace=f"bench-{uuid.uuid4().hex}"
            )
            await redis.get_config_value("runner", "workers", int)
            figures["redis_tier_us"] = 1e6 * await per_call(
                lambda: redis.get_config_value("runner", "workers", int), 2000
            )
            await redis.close()
    for label, tier in (("memory", None), ("redis", redis_url)):
        async with open_persistence(url, files=folder / label, redis=tier, heartbeat=0.2) as p:
            setting, value = reads_of(p.cache)
            await setting()
            figures[f"{label}_cached_us"] = 1e6 * await per_call(setting, 20000)
            figures[f"{label}_staleness"] = await staleness(url, value, writes)
    return figures


async def measure(
    admin_url: str = ADMIN, redis_url: str = REDIS, writes: int = WRITES
) -> tuple[dict[str, object], str]:
    """Run on SQLite and PostgreSQL; give the figures and their Markdown tables."""
    async with scratch_postgres(admin_url, "bench_cache") as pg:
        with tempfile.TemporaryDirectory() as folder:
            lite = str(Path(folder) / "bench.db")
            sqlite = await engine(lite, Path(folder), redis_url, writes)
            postgres = await engine(pg, Path(folder) / "pg", redis_url, writes)
    results: dict[str, object] = {"sqlite": sqlite, "postgres": postgres}
    return results, tables(sqlite, postgres)


async def section(run: Run) -> Outcome:
    """Run the caches as a section of `make bench` (it needs PostgreSQL and Redis)."""
    assert run.postgres is not None
    assert run.redis is not None
    figures, markdown = await measure(
        run.postgres, run.redis, QUICK_WRITES if run.quick else WRITES
    )
    return Outcome(figures, markdown)


def tables(sqlite: dict[str, object], postgres: dict[str, object]) -> str:
    """Write the reads table and the staleness table in Markdown."""
    rows = [
        ("sqlite", "memory cache vs uncached setting read", sqlite, "memory_cached_us", 10),
        ("postgres", "memory cache vs uncached setting read", postgres, "memory_cached_us", 50),
        (
            "postgres",
            "Redis cache as opened (memory tier on) vs the read",
            postgres,
            "redis_cached_us",
            1,
        ),
        (
            "postgres",
            "Redis tier alone (memory tier off) vs the read",
            postgres,
            "redis_tier_us",
            1,
        ),
    ]
    lines = [
        "| engine | measure | uncached µs | cached µs | ratio | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for engine_name, what, found, field, target in rows:
        slow, fast = found["uncached_us"], found[field]
        assert isinstance(slow, float)
        assert isinstance(fast, float)
        ratio = slow / fast
        verdict = "met" if ratio >= target else "**missed**"
        lines.append(
            f"| {engine_name} | {what} | {slow:.1f} | {fast:.2f} | {ratio:.1f} | ≥ {target} {verdict} |"
        )
    lines += [
        "",
        "| engine | cache | writer | writes | stale reads | median ms | p99 ms | max ms | target |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for engine_name, found in (("sqlite", sqlite), ("postgres", postgres)):
        for cache in ("memory", "redis"):
            by_writer = found[f"{cache}_staleness"]
            assert isinstance(by_writer, dict)
            for writer, figures in by_writer.items():
                if figures is None:
                    lines.append(f"| {engine_name} | {cache} | {writer} | no shell | | | | | |")
                    continue
                met = figures["p99_ms"] <= STALENESS_TARGET_MS
                lines.append(
                    f"| {engine_name} | {cache} | {writer} | {figures['writes']} | {figures['stale_reads']} "
                    f"| {figures['median_ms']:.2f} | {figures['p99_ms']:.2f} | {figures['max_ms']:.2f} "
                    f"| p99 ≤ {STALENESS_TARGET_MS:g} ms {'met' if met else '**missed**'} |"
                )
    return "\n".join(lines)


async def main() -> None:
    """Print the tables; write build/bench/cache.json."""
    results, markdown = await measure()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown)


if __name__ == "__main__":
    asyncio.run(main())
