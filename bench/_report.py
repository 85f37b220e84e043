"""The three outputs of a run: results.json, the chart, and BENCHMARKS.md, all under one folder.

`make bench` writes them under build/bench/; `make bench-report` copies them to docs/.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench._chart import draw_chart
from bench._measure import DESCRIPTIONS, ENGINES, LABELS, RAW, Measurement
from bench._targets import LAG_MAX, LAG_P99, Verdict, check_targets, describe
from bench._texts import CONTENDERS_TEXT, EXECUTION_MODEL, LIMITS_TEXT

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench._lag import Lag

__all__ = ["CHART", "JSON", "REPORT", "machine_description", "write_reports"]

REPORT: Final = Path("BENCHMARKS.md")
JSON: Final = Path("benchmarks") / "results.json"
CHART: Final = Path("benchmarks") / "rows_per_second.png"
"""Where each output goes, relative to the output folder; the report links the other two."""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


def machine_description(versions: dict[str, str]) -> dict[str, object]:
    """Describe the CPU, cores, OS and the versions that the figures depend on."""
    import aiosqlite  # noqa: PLC0415  # versions only, read where they are reported
    import asyncpg  # noqa: PLC0415
    import sqlalchemy  # noqa: PLC0415

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": versions.get("sqlite"),
        "postgresql": versions.get("postgres"),
        "aiosqlite": aiosqlite.__version__,
        "asyncpg": asyncpg.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }


def write_reports(
    measurements: list[Measurement],
    *,
    machine: dict[str, object],
    settings: dict[str, int],
    idle: Lag,
    skipped: dict[str, str],
    seconds: float,
    out: Path,
    say: Callable[[str], None],
    sections: dict[str, tuple[dict[str, object], str]] | None = None,
) -> None:
    """Write results.json, the chart and the Markdown page under `out`; print the tables.

    `sections` are the other benchmarks of the run (caches, search), by name: their figures
    for results.json and their Markdown, which follows the targets.
    """
    sections = sections or {}
    verdicts = check_targets(measurements)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    document: dict[str, object] = {
        "generated_at": generated,
        "machine": machine,
        "settings": settings,
        "run_seconds": round(seconds, 1),
        "idle_lag": idle.to_json(),
        "skipped": skipped,
        "results": [m.to_json() for m in measurements],
        "targets": [v.to_json() for v in verdicts],
        **{name: figures for name, (figures, _) in sections.items()},
    }
    (out / JSON).parent.mkdir(parents=True, exist_ok=True)
    (out / JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    draw_chart(measurements, out / CHART)
    rates = _rates_tables(measurements)
    lags = _lag_tables(measurements)
    targets = _targets_table(verdicts)
    (out / REPORT).write_text(
        _markdown(
            document,
            settings=settings,
            machine=machine,
            idle=idle,
            skipped=skipped,
            rates=rates,
            lags=lags,
            targets=targets,
            sections="".join(f"\n{markdown}\n" for _, markdown in sections.values()),
        ),
        encoding="utf-8",
    )
    say("\n" + rates + "\n\n" + lags + "\n\n" + targets)
    say(f"\nwrote {out / REPORT}, {out / JSON} and {out / CHART} ({seconds:.0f} s)")


def _engines(measurements: list[Measurement]) -> list[str]:
    return [e for e in ENGINES if any(m.engine == e for m in measurements)]


def _names(measurements: list[Measurement]) -> list[str]:
    names: list[str] = []
    for m in measurements:
        names.extend(name for name in m.contenders if name not in names)
    return names


def _rates_tables(measurements: list[Measurement]) -> str:
    tables = []
    for engine in _engines(measurements):
        rows = [m for m in measurements if m.engine == engine]
        names = _names(rows)
        raw = RAW[engine]
        head = " | ".join(LABELS[n] for n in names)
        lines = [
            f"**{ENGINES[engine]}**, rows per second (best round):",
            "",
            f"| workload | rows | {head} | layer/raw time |",
            "|---|---:|" + "---:|" * len(names) + "---:|",
        ]
        for m in rows:
            cells = " | ".join(f"{m.rate(n):,.0f}" if n in m.times else "-" for n in names)
            lines.append(
                f"| `{m.workload}`: {DESCRIPTIONS[m.workload]} | {m.rows:,} | {cells} "
                f"| {m.ratio('layer', raw):.2f} |"
            )
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _lag_tables(measurements: list[Measurement]) -> str:
    tables = []
    for engine in _engines(measurements):
        rows = [m for m in measurements if m.engine == engine]
        names = _names(rows)
        head = " | ".join(LABELS[n] for n in names)
        lines = [
            f"**{ENGINES[engine]}**, event-loop lag in ms, p99 / max over every round:",
            "",
            f"| workload | {head} |",
            "|---|" + "---:|" * len(names),
        ]
        for m in rows:
            cells = " | ".join(_lag_cell(m, n) for n in names)
            lines.append(f"| `{m.workload}` | {cells} |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _lag_cell(m: Measurement, name: str) -> str:
    if name not in m.times:
        return "-"
    lag = m.lag(name)
    return f"{lag.p99 * 1000:.2f} / {lag.max * 1000:.1f}"


def _targets_table(verdicts: list[Verdict]) -> str:
    lines = [
        "| workload | target | measured | verdict | what limits it |",
        "|---|---|---:|---|---|",
    ]
    for v in verdicts:
        verdict = "met" if v.met else "**missed**"
        lines.append(f"| {describe(v)} | {v.target} | {v.measured} | {verdict} | {v.limit or ''} |")
    return "\n".join(lines)


def _markdown(
    document: dict[str, object],
    *,
    settings: dict[str, int],
    machine: dict[str, object],
    idle: Lag,
    skipped: dict[str, str],
    rates: str,
    lags: str,
    targets: str,
    sections: str,
) -> str:
    load = machine.get("load_average") or ["?", "?"]
    assert isinstance(load, list)  # noqa: S101  # set by the runner
    skipped_text = "".join(f"\n- **{engine} skipped**: {why}" for engine, why in skipped.items())
    return f"""# Benchmarks

Generated by `make bench` on {document["generated_at"]} and committed by `make bench-report`;
do not edit by hand, rerun instead.
The machine-readable figures are in [`{JSON}`]({JSON}); the chart is [`{CHART}`]({CHART}).

## Machine

- CPU: {machine["cpu"]}, {machine["cores"]} cores ({machine["os"]})
- Python {machine["python"]}, SQLite {machine["sqlite"]},
  PostgreSQL {machine["postgresql"] or "not run"}
- aiosqlite {machine["aiosqlite"]}, asyncpg {machine["asyncpg"]},
  SQLAlchemy {machine["sqlalchemy"]}
- 1-minute load average at the start and the end of the run: {load[0]} and {load[1]}
  (other work on the machine makes the per-call figures noisy; compare ratios, not times)

## Run

- N = {settings["n"]:,} rows.
- The per-call workloads (`save_one`, `get_by_id`) made {settings["n_calls"]:,} calls.
- The concurrent workload (`save_concurrent`) ran {settings["tasks"]:,} tasks of
  {settings["task_saves"]:,} saves each.

Each time is the best of {settings["repeat"]} rounds; in each round the contenders take turns,
on the same database, with the same rows. A SQLAlchemy contender that has spent
{settings["budget"]} s on a workload sits out its remaining rounds (no target depends on its
slowest workloads; `results.json` lists every round); the others run every round. The lag
figures pool every round.
The whole run took {document["run_seconds"]} s.{skipped_text}

```sh
make bench                       # writes build/bench/; N = 50,000
make bench-report                # the same, then copies the report, JSON and chart to docs/
BENCH_N=10000 make bench         # fewer rows
BENCH_N_CALLS=2000 make bench    # fewer calls in the per-call workloads only
BENCH_TASKS=20 BENCH_TASK_SAVES=50 make bench   # a smaller concurrent workload
BENCH_REPEAT=5 make bench        # more rounds (the best time is kept)
BENCH_BUDGET=60 make bench       # let SQLAlchemy run every round too
BENCH_OUT=/tmp/bench make bench  # another output folder
BENCH_DATABASE_URL=postgresql://user@host/db make bench   # another PostgreSQL server
```

## Rows per second

![Rows per second of each contender and workload, log scale]({CHART})

{rates}

"layer/raw time" is the layer's best time over the raw async driver's (aiosqlite on SQLite,
asyncpg on PostgreSQL): above 1 is the layer's overhead.

## Event-loop lag

During every timed call a probe task asks to wake every {1:g} ms and records how late it wakes.
Alone, on an idle loop, it wakes {idle.p99 * 1000:.3f} ms late at p99 and {idle.max * 1000:.3f} ms
at worst: that is the floor of these figures.

{lags}

## Targets

Ratios are of the best times of one run. The lag bounds ({LAG_P99 * 1000:g} ms at p99,
{LAG_MAX * 1000:g} ms at worst) apply to the layer during every SQLite workload.

{targets}
{sections}
{LIMITS_TEXT}

{EXECUTION_MODEL}

{CONTENDERS_TEXT}
"""
