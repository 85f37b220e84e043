# ruff: noqa: T201, S101, ASYNC240, E501
# (a benchmark script: it prints its table and checks its own figures)
"""Cache benchmark: cached vs uncached setting reads, Redis vs PostgreSQL, cross-process staleness.

`python -m bench.cache` prints a markdown table and writes build/bench/cache.json. It uses
the PostgreSQL server at BENCH_DATABASE_URL (default: the local one) and Redis at
BENCH_REDIS_URL (default: the local one); BENCH_CACHE_WRITES sets the writes measured for
staleness (1,000).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from persistence import connect, get_config_value, migrate, set_config
from persistence.cache import open_memory_cache, open_redis_cache

ADMIN = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")  # never db 0
WRITES = int(os.environ.get("BENCH_CACHE_WRITES", "1000"))
OUT = Path("build/bench/cache.json")
WRITER = """
import asyncio, sys
from persistence import connect, set_config
from persistence.cache import open_redis_cache
async def main(url, redis):
    async with connect(url) as db:
        cache = await open_redis_cache(db, redis, heartbeat=0.2) if redis else None
        print("ready", flush=True)
        number = 0
        while sys.stdin.readline():
            number += 1
            await set_config(db, "cache", "value", number)
            print(number, flush=True)
        if cache is not None:
            await cache.close()
asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
"""


async def per_call(read: Callable[[], Awaitable[object]], calls: int) -> float:
    """Best of 5 rounds: seconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            await read()
        best = min(best, (time.perf_counter() - started) / calls)
    return best


async def staleness(
    url: str, read: Callable[[], Awaitable[int]], redis: str | None
) -> dict[str, float]:
    """Seconds from each write's return in a child process to the first read here that saw it."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        url,
        *([redis] if redis else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    delays, stale = [], 0
    await child.stdout.readline()
    await read()
    for number in range(1, WRITES + 1):
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        await child.stdout.readline()
        written = time.perf_counter()
        while await read() != number:
            stale += 1
            await asyncio.sleep(0)
        delays.append(time.perf_counter() - written)
    child.stdin.close()
    await child.wait()
    delays.sort()
    return {
        "writes": WRITES,
        "stale_reads": stale,
        "median_ms": delays[len(delays) // 2] * 1000,
        "p99_ms": delays[int(len(delays) * 0.99)] * 1000,
        "max_ms": delays[-1] * 1000,
    }


async def engine(url: str) -> dict[str, object]:
    """Every figure for one database."""
    figures: dict[str, object] = {}
    async with connect(url) as db:
        await migrate(db)
        await set_config(db, "runner", "workers", 4)
        await set_config(db, "cache", "value", 0)
        cache = await open_memory_cache(db)
        await cache.get_config_value("runner", "workers", int)
        figures["uncached_us"] = 1e6 * await per_call(
            lambda: get_config_value(db, "runner", "workers", int), 2000
        )
        figures["cached_us"] = 1e6 * await per_call(
            lambda: cache.get_config_value("runner", "workers", int), 20000
        )
        figures["memory_staleness"] = await staleness(
            url, lambda: cache.get_config_value("cache", "value", int), None
        )
        await cache.close()
        if url.startswith("postgresql"):
            redis = await open_redis_cache(
                db, REDIS, local_size=0, namespace=f"bench-{uuid.uuid4().hex}"
            )
            await redis.get_config_value("runner", "workers", int)
            figures["redis_tier_us"] = 1e6 * await per_call(
                lambda: redis.get_config_value("runner", "workers", int), 2000
            )
            await redis.close()
            redis = await open_redis_cache(db, REDIS, heartbeat=0.2)
            await redis.get_config_value("runner", "workers", int)
            figures["redis_cached_us"] = 1e6 * await per_call(
                lambda: redis.get_config_value("runner", "workers", int), 20000
            )
            figures["redis_staleness"] = await staleness(
                url, lambda: redis.get_config_value("cache", "value", int), REDIS
            )
            await redis.close()
    return figures


async def measure() -> tuple[dict[str, object], str]:
    """Run on SQLite and PostgreSQL; give the figures and their Markdown tables."""
    name = f"bench_cache_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        with tempfile.TemporaryDirectory() as folder:
            sqlite = await engine(str(Path(folder) / "bench.db"))
        postgres = await engine(ADMIN.rsplit("/", 1)[0] + f"/{name}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    results: dict[str, object] = {"sqlite": sqlite, "postgres": postgres}
    return results, tables(sqlite, postgres)


def tables(sqlite: dict[str, object], postgres: dict[str, object]) -> str:
    """Write the reads table and the staleness table in Markdown."""
    rows = [
        (
            "sqlite",
            "cached vs uncached setting read",
            sqlite["uncached_us"],
            sqlite["cached_us"],
            10,
        ),
        (
            "postgres",
            "cached vs uncached setting read",
            postgres["uncached_us"],
            postgres["cached_us"],
            50,
        ),
        (
            "postgres",
            "Redis cache as opened (memory tier on) vs the PostgreSQL read",
            postgres["uncached_us"],
            postgres["redis_cached_us"],
            1,
        ),
        (
            "postgres",
            "Redis tier alone (memory tier off) vs the PostgreSQL read",
            postgres["uncached_us"],
            postgres["redis_tier_us"],
            1,
        ),
    ]
    lines = [
        "| engine | measure | uncached µs | cached µs | ratio | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for engine_name, what, slow, fast, target in rows:
        assert isinstance(slow, float)
        assert isinstance(fast, float)
        ratio = slow / fast
        verdict = "met" if ratio >= target else "**missed**"
        lines.append(
            f"| {engine_name} | {what} | {slow:.1f} | {fast:.2f} | {ratio:.1f} | ≥ {target} {verdict} |"
        )
    lines += [
        "",
        "| cache | writes | stale reads | median ms | p99 ms | max ms | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, found, bound in (
        ("sqlite memory", sqlite["memory_staleness"], 0.0),
        ("postgres memory", postgres["memory_staleness"], 50.0),
        ("postgres + Redis", postgres["redis_staleness"], 50.0),
    ):
        assert isinstance(found, dict)
        met = found["stale_reads"] == 0 if bound == 0 else found["max_ms"] <= bound
        lines.append(
            f"| {label} | {found['writes']} | {found['stale_reads']} | {found['median_ms']:.2f} "
            f"| {found['p99_ms']:.2f} | {found['max_ms']:.2f} | "
            f"{'at once' if bound == 0 else f'≤ {bound:g} ms'} {'met' if met else '**missed**'} |"
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
