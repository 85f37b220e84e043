"""The three outputs of a run: results.json, the chart, and BENCHMARKS.md, all under one folder.

`make bench` writes them under build/bench/; `make bench-report` copies them to docs/.
The report's first screen is the layer against the strongest hand-written code of each
workload: how much faster or slower, with the spread of the rounds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bench._chart import draw_chart
from bench._measure import DESCRIPTIONS, ENGINES, LABELS, PEER, TABLES, Measurement, strongest
from bench._targets import LAG_MAX, Verdict, check_targets
from bench._texts import CONTENDERS_TEXT, EXECUTION_MODEL, LIMITS_TEXT

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench._lag import Lag
    from bench._section import Outcome

__all__ = ["CHART", "JSON", "REPORT", "in_words", "machine_description", "write_reports"]

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


def in_words(ratio: float) -> str:
    """Say a layer/contender time ratio in words: `12% slower`, `2.1x faster`, `as fast`."""
    if 0.97 <= ratio <= 1.03:  # noqa: PLR2004  # closer than this is no difference worth a word
        return "as fast"
    if ratio > 1:
        return f"{ratio:.1f}x slower" if ratio >= 2 else f"{(ratio - 1) * 100:.0f}% slower"  # noqa: PLR2004
    return f"{1 / ratio:.1f}x faster" if ratio <= 0.5 else f"{(1 / ratio - 1) * 100:.0f}% faster"  # noqa: PLR2004


def write_reports(
    measurements: list[Measurement],
    *,
    machine: dict[str, object],
    settings: dict[str, object],
    idle: Lag,
    wake_us: float,
    skipped: dict[str, str],
    seconds: float,
    durations: dict[str, float],
    out: Path,
    say: Callable[[str], None],
    sections: dict[str, tuple[str, str, Outcome]],
) -> None:
    """Write results.json, the chart and the Markdown page under `out`; print the summary.

    `sections` are the run's other benchmarks, by key: their title, introduction and outcome.
    """
    verdicts = check_targets(measurements)
    for _, _, outcome in sections.values():
        verdicts += outcome.verdicts
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    document: dict[str, object] = {
        "generated_at": generated,
        "machine": machine,
        "settings": settings,
        "run_seconds": round(seconds, 1),
        "part_seconds": {name: round(s, 1) for name, s in durations.items()},
        "idle_lag": idle.to_json(),
        "thread_wake_us_at_start": round(wake_us, 1),
        "skipped": skipped,
        "results": [m.to_json() for m in measurements],
        "targets": [v.to_json() for v in verdicts],
        **{key: outcome.figures for key, (_, _, outcome) in sections.items()},
    }
    (out / JSON).parent.mkdir(parents=True, exist_ok=True)
    (out / JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if measurements:
        draw_chart(measurements, out / CHART)
    glance = _glance(measurements)
    targets = _targets_table(verdicts)
    body = "".join(
        f"\n## {title}\n\n{intro}\n\n{outcome.markdown}\n"
        for title, intro, outcome in sections.values()
    )
    (out / REPORT).write_text(
        _markdown(
            document,
            settings=settings,
            machine=machine,
            idle=idle,
            wake_us=wake_us,
            skipped=skipped,
            glance=glance,
            rates=_rates_tables(measurements),
            lags=_lag_tables(measurements),
            targets=targets,
            sections=body,
            verdicts=verdicts,
            measurements=measurements,
        ),
        encoding="utf-8",
    )
    say("\n" + glance + "\n\n" + targets)
    say(f"\nwrote {out / REPORT}, {out / JSON} and {out / CHART} ({seconds:.0f} s)")


def _engines(measurements: list[Measurement]) -> list[str]:
    return [e for e in ENGINES if any(m.engine == e for m in measurements)]


def _names(measurements: list[Measurement]) -> list[str]:
    names: list[str] = []
    for m in measurements:
        names.extend(name for name in m.contenders if name not in names)
    return names


def _glance(measurements: list[Measurement]) -> str:
    """Write the first screen: each workload, the layer against its strongest hand-written rival."""
    lines = [
        (
            "| engine | workload | table | layer us/row | strongest hand-written | its us/row "
            "| layer time / its time, median (min-max) | so the layer is | layer / peer driver |"
        ),
        "|---|---|---|---:|---|---:|---:|---|---:|",
    ]
    for m in measurements:
        if "layer" not in m.times:
            continue
        peer = PEER[m.engine]
        peer_cell = f"{m.ratio('layer', peer).text()} x {peer}" if peer in m.times else "-"
        for index, other in enumerate(c for c in strongest(m.engine, m.workload) if c in m.times):
            spread = m.ratio("layer", other)
            noise = " (within the rounds' noise)" if spread.low <= 1 <= spread.high else ""
            lines.append(
                f"| {ENGINES[m.engine] if index == 0 else ''} | `{m.name}` "
                f"| {'indexed' if m.table == 'indexed' else 'plain'} "
                f"| {m.us('layer'):.1f} | {LABELS[other]} | {m.us(other):.1f} "
                f"| {spread.text()} | {in_words(spread.median)}{noise} "
                f"| {peer_cell if index == 0 else ''} |"
            )
    return "\n".join(lines)


def _headline(measurements: list[Measurement]) -> str:
    """Count where the layer is faster and slower than the strongest hand-written code."""
    faster, slower, even = [], [], []
    for m in measurements:
        rivals = [c for c in strongest(m.engine, m.workload) if c in m.times]
        if "layer" not in m.times or not rivals:
            continue
        spread = m.ratio("layer", rivals[0])
        label = f"{ENGINES[m.engine]} `{m.name}`{'' if m.table == 'indexed' else ' (plain)'}"
        if spread.high < 1:
            faster.append(f"{label} {in_words(spread.median)}")
        elif spread.low > 1:
            slower.append(f"{label} {in_words(spread.median)}")
        else:
            even.append(f"{label} ({in_words(spread.median)} at the median)")
    parts = [
        (
            f"- **Faster than the strongest hand-written code** in every round: "
            f"{', '.join(faster) or 'nowhere'}."
        ),
        f"- **Slower** in every round: {', '.join(slower) or 'nowhere'}.",
        (
            f"- **Within the noise of the rounds** (some faster, some slower): "
            f"{', '.join(even) or 'nowhere'}."
        ),
    ]
    return "\n".join(parts)


def _rates_tables(measurements: list[Measurement]) -> str:
    tables = []
    for engine in _engines(measurements):
        for table in TABLES:
            rows = [m for m in measurements if m.engine == engine and m.table == table]
            if not rows:
                continue
            names = _names(rows)
            head = " | ".join(LABELS[n] for n in names)
            lines = [
                (
                    f"**{ENGINES[engine]}, {TABLES[table]}**, rows (or calls) per second, "
                    "median round:"
                ),
                "",
                f"| workload | size | {head} |",
                "|---|---:|" + "---:|" * len(names),
            ]
            for m in rows:
                cells = " | ".join(f"{m.rate(n):,.0f}" if n in m.times else "-" for n in names)
                lines.append(f"| `{m.name}`: {DESCRIPTIONS[m.workload]} | {m.size:,} | {cells} |")
            tables.append("\n".join(lines))
    return "\n\n".join(tables)


def _lag_tables(measurements: list[Measurement]) -> str:
    tables = []
    for engine in _engines(measurements):
        for table in TABLES:
            rows = [m for m in measurements if m.engine == engine and m.table == table]
            if not rows:
                continue
            names = _names(rows)
            head = " | ".join(LABELS[n] for n in names)
            lines = [
                (
                    f"**{ENGINES[engine]}, {TABLES[table]}**, event-loop lag in ms, "
                    "p99 / max over every round:"
                ),
                "",
                f"| workload | {head} |",
                "|---|" + "---:|" * len(names),
            ]
            for m in rows:
                cells = " | ".join(_lag_cell(m, n) for n in names)
                lines.append(f"| `{m.name}` | {cells} |")
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
        lines.append(f"| {v.what} | {v.target} | {v.measured} | {verdict} | {v.limit or ''} |")
    return "\n".join(lines)


def _wake_line(measurements: list[Measurement], wake_us: float) -> str:
    """Say how much of the layer-vs-aiosqlite figures is the machine's thread wake-up."""
    per_call = [
        m for m in measurements if m.engine == "sqlite" and "aiosqlite" in m.times and m.wake_us
    ]
    wakes = sorted(w for m in per_call for w in m.wake_us)
    if not wakes:
        return f"A round trip to a worker thread took {wake_us:.0f} us at the start of the run."
    get = next((m for m in per_call if m.workload == "get_by_id"), None)
    share = ""
    if get is not None:
        wake = get.wake()
        assert wake is not None  # noqa: S101  # filtered above
        share = (
            f" In `get_by_id`, aiosqlite took {get.us('aiosqlite'):.0f} us a call, of which one "
            f"such round trip ({wake.median:.0f} us) is {wake.median / get.us('aiosqlite'):.0%}: "
            'the "x aiosqlite" figures move with the machine\'s idle state, and are not '
            "targets."
        )
    return (
        f"**Thread wake-up probe.** A round trip to an idle worker thread and back, measured "
        f"before every round, took {wakes[len(wakes) // 2]:.0f} us at the median "
        f"({wakes[0]:.0f} to {wakes[-1]:.0f} us over the run).{share}"
    )


def _markdown(
    document: dict[str, object],
    *,
    settings: dict[str, object],
    machine: dict[str, object],
    idle: Lag,
    wake_us: float,
    skipped: dict[str, str],
    glance: str,
    rates: str,
    lags: str,
    targets: str,
    sections: str,
    verdicts: list[Verdict],
    measurements: list[Measurement],
) -> str:
    load = machine.get("load_average") or ["?", "?"]
    assert isinstance(load, list)  # noqa: S101  # set by the runner
    skipped_text = "".join(f"\n- **{part} skipped**: {why}" for part, why in skipped.items())
    quick = (
        "\n> **BENCH_QUICK smoke run**: every size is cut, and named by its size (`name@size`). "
        "These figures show that the harness works, not how fast anything is.\n"
        if settings.get("quick")
        else ""
    )
    missed = sum(not v.met for v in verdicts)
    parts = document.get("part_seconds") or {}
    assert isinstance(parts, dict)  # noqa: S101  # set above
    part_text = ", ".join(f"{name} {s:.0f} s" for name, s in parts.items())
    return f"""# Benchmarks

Generated by `make bench` on {document["generated_at"]} and committed by `make bench-report`;
do not edit by hand, rerun instead. Figures: [`{JSON}`]({JSON}); chart: [`{CHART}`]({CHART}).
{quick}
## The layer against the best hand-written code

Each workload's strongest hand-written contender is what a careful author would write by
hand for that job, with the same SQL and the same conversions (see "What runs" below).
Ratios are the layer's time over that contender's, round by round (the contenders take
turns within a round); the median is given with the least and most of
{settings["repeat"]} rounds. Below 1 the layer is faster.

{_headline(measurements)}

{glance}

{_wake_line(measurements, wake_us)}

"indexed" is the schema as migrated, with the full-text index; "plain" is the same table
without it (its triggers, or its tsvector column and GIN index, dropped), where the index's
cost, paid alike by every contender, no longer hides the layer's own cost per call.
{missed} of {len(verdicts)} targets were missed this run; each names its limit below.

![The layer beside the strongest hand-written contender, rows per second]({CHART})

## Targets

Ratios are the median of the rounds (least-most in brackets); the verdict is on the median.
The lag bound ({LAG_MAX * 1000:g} ms at worst) applies to the layer in every workload, on
both engines.

{targets}

## Machine and run

- CPU: {machine["cpu"]}, {machine["cores"]} cores ({machine["os"]})
- Python {machine["python"]}, SQLite {machine["sqlite"]},
  PostgreSQL {machine["postgresql"] or "not run"}
- aiosqlite {machine["aiosqlite"]}, asyncpg {machine["asyncpg"]},
  SQLAlchemy {machine["sqlalchemy"]}
- 1-minute load average at the start and the end of the run: {load[0]} and {load[1]}
  (other work on the machine moves the per-call figures; the spreads show how much)
- The lag probe alone, on an idle loop, woke {idle.p99 * 1000:.3f} ms late at p99 and
  {idle.max * 1000:.3f} ms at worst: the floor of the lag figures.
- The whole run took {document["run_seconds"]} s ({part_text}).{skipped_text}

Sizes are fixed, whatever the environment: each workload runs at the size it is named for
(`save_many` 50,000 rows, `read_all` 50,000, `save_one` and `get_by_id` 10,000 calls,
`save_concurrent` 100 tasks of 100, `save_durable` 2,000). `BENCH_N` is no longer read.
A SQLAlchemy contender that has spent {settings["budget"]} s on a workload sits out its
remaining rounds (no target depends on it); the others run every round.

```sh
make bench                       # writes build/bench/ (aim: 15 minutes on 2 quiet cores)
make bench-report                # the same, then copies the report, JSON and chart to docs/
BENCH_QUICK=1 make bench         # a smoke run of every part at small, named sizes
BENCH_REPEAT=5 make bench        # more rounds (at least 3)
BENCH_ONLY=contenders,loop make bench   # some parts only: contenders and the section keys
BENCH_OUT=/tmp/bench make bench  # another output folder
BENCH_DATABASE_URL=postgresql://user@host/db make bench   # another PostgreSQL server
BENCH_REDIS_URL=redis://127.0.0.1:6379/7 make bench       # Redis for the caches (never index 0)
```

## Every contender

Rows (or calls) per second, from each contender's median round:

{rates}

## Event-loop lag

During every timed call a probe task asks to wake every 1 ms and records how late it wakes.

{lags}
{sections}
{LIMITS_TEXT}

{EXECUTION_MODEL}

{CONTENDERS_TEXT}
"""
