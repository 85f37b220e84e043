"""The move to PostgreSQL: `copy_database` of a SQLite database of many results, timed.

Run with `python -m bench.copy`. It fills a SQLite database with results shaped as the main
benchmark's (`bench._rows`), migrates a new PostgreSQL database, and copies every row into it
with `copy_database`, timing the copy alone. Besides rows per second it reports the CPU time per
row of this process (the reads, the conversions, COPY's encoding) and of the server's backends
(COPY, the generated search_vector, the indexes), read from /proc when the server runs on this
machine: the copy is pipelined, so the slower of the two bounds it on an idle machine.

Settings, from the environment:

- `BENCH_COPY_ROWS`: results to copy (default 1,000,000; the target is 50,000 rows/s);
- `BENCH_DATABASE_URL`: the PostgreSQL server to make the database on.

It prints a markdown table and writes `build/bench/copy.json` (or under `BENCH_OUT`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import asyncpg

from bench._rows import make_results
from bench._scratch import scratch_postgres
from persistence import connect, copy_database, migrate, save_results

ADMIN: Final = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROWS: Final = int(os.environ.get("BENCH_COPY_ROWS", "1000000"))
TARGET_RATE: Final = 50_000
_FILL_BATCH: Final = 50_000


def _cpu_seconds(pid: int) -> float | None:
    """Give the CPU time of a process of this machine; None when it is not one."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _server_cpu(url: str) -> dict[int, float] | None:
    """Give the CPU time of each server backend on the database of `url`, by pid."""
    connection = await asyncpg.connect(url)
    try:
        pids = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    times = {int(row[0]): _cpu_seconds(int(row[0])) for row in pids}
    if any(seconds is None for seconds in times.values()):
        return None  # the server runs elsewhere
    return {pid: seconds for pid, seconds in times.items() if seconds is not None}


async def _fill(path: Path, rows: int) -> None:
    async with connect(path) as db:
        await migrate(db)
        for start in range(0, rows, _FILL_BATCH):
            batch = make_results(min(_FILL_BATCH, rows - start), seed=start)
            await save_results(db, batch)


async def main(rows: int = ROWS) -> dict[str, object]:
    """Fill, copy, and give the figures."""
    async with scratch_postgres(ADMIN, "persistence_bench_copy") as url:
        with tempfile.TemporaryDirectory(prefix="persistence-bench-copy-") as folder:
            source = Path(folder) / "source.db"
            started = time.perf_counter()
            await _fill(source, rows)
            filled = time.perf_counter() - started
            async with connect(source) as db, connect(url, pool_size=2) as pg:
                await migrate(pg)
                server_before = await _server_cpu(url)
                client_before = time.process_time()
                started = time.perf_counter()
                report = await copy_database(db, pg)
                seconds = time.perf_counter() - started
                client = time.process_time() - client_before
                server_after = await _server_cpu(url)
    server = (
        None
        if server_before is None or server_after is None
        else sum(t - server_before.get(pid, 0.0) for pid, t in server_after.items())
    )
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": report.rows,
        "fill_seconds": round(filled, 2),
        "copy_seconds": round(seconds, 2),
        "rows_per_second": round(report.rows / seconds),
        "target_rows_per_second": TARGET_RATE,
        "client_cpu_us_per_row": round(client / report.rows * 1e6, 1),
        "server_cpu_us_per_row": None if server is None else round(server / report.rows * 1e6, 1),
        "load_average": os.getloadavg(),
        "cpus": os.cpu_count(),
    }


def table(figures: dict[str, object]) -> str:
    """Give the figures as a Markdown table."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        "| rows | copy s | rows/s | target | client CPU us/row | server CPU us/row | load |\n"
        "|---:|---:|---:|---:|---:|---:|---|\n"
        f"| {figures['rows']:,} | {figures['copy_seconds']} | {figures['rows_per_second']:,} "
        f"| {TARGET_RATE:,} | {figures['client_cpu_us_per_row']} "
        f"| {figures['server_cpu_us_per_row']} | {load} |\n"
    )


if __name__ == "__main__":
    results = asyncio.run(main())
    sys.stdout.write(table(results))
    out = Path(os.environ.get("BENCH_OUT") or "build/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "copy.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    sys.exit(0)
