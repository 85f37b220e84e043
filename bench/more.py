"""Three sections measured by their own modules: run history, the copy to PostgreSQL, tracing.

Each module also runs alone (`python -m bench.history`, `bench.copy`, `bench.tracing`); here
each becomes a section of the report, with its targets among the report's verdicts.
"""

from __future__ import annotations

from typing import Final

from bench import copy, history, tracing
from bench._section import Outcome, Run
from bench._targets import Verdict

__all__ = [
    "COPY_INTRO",
    "HISTORY_INTRO",
    "TRACING_INTRO",
    "copy_section",
    "history_section",
    "tracing_section",
]

HISTORY_INTRO: Final = (
    "The run-history questions of docs/HISTORY.md over 1,000,000 results (10,000 tests, 100 "
    "runs), best of three calls, on both engines; JUnit import speed into SQLite (200,000 "
    "cases), and the memory growth of importing a 100 MB report, in a process of its own."
)
COPY_INTRO: Final = (
    "`copy_database` of 1,000,000 results from SQLite into an empty, migrated PostgreSQL "
    "database, in one transaction, with the client's and the server's CPU per row."
)
TRACING_INTRO: Final = (
    "What tracing costs a point read: no hook at all, the hook with nothing set up, and an "
    "SDK tracer with no exporter. The target is judged on the hook timed alone, since whole "
    "calls differ by more than the hook from one round to the next."
)

_AT_MOST: Final = {"compare_runs", "flaky_tests", "test_history_page", "duration_figures"}


def _seconds(value: float) -> str:
    return f"{value * 1000:,.1f} ms"


async def history_section(run: Run) -> Outcome:
    """Time the run-history questions, the JUnit import and its memory growth."""
    figures, markdown = await history.measure(quick=run.quick)
    engines = figures["engines"]
    if not isinstance(engines, dict):
        raise TypeError(engines)
    verdicts = []
    for engine, found in engines.items():
        for name in sorted(_AT_MOST & found.keys()):
            target = history.TARGETS[name]
            verdicts.append(
                Verdict(
                    what=f"{engine} `{name}` over the history",
                    target=f"≤ {_seconds(target)}",
                    measured=_seconds(found[name]),
                    met=found[name] <= target,
                    limit=None,
                )
            )
    sqlite = engines.get("sqlite", {})
    if "junit_cases_per_second" in sqlite:
        rate = sqlite["junit_cases_per_second"]
        verdicts.append(
            Verdict(
                what="JUnit import into SQLite",
                target="≥ 50,000 cases/s",
                measured=f"{rate:,.0f} cases/s",
                met=rate >= history.TARGETS["junit_cases_per_second"],
                limit="the insert into test_results and its five indexes, in SQLite's thread, "
                "while the loop parses: docs/HISTORY.md (Speed)",
            )
        )
    if "junit_memory_mb" in sqlite:
        growth = sqlite["junit_memory_mb"]
        verdicts.append(
            Verdict(
                what="JUnit import of a 100 MB report, peak memory growth",
                target="≤ 150 MB",
                measured=f"{growth:,.0f} MB",
                met=growth <= history.TARGETS["junit_memory_mb"],
                limit=None,
            )
        )
    return Outcome(figures=figures, markdown=markdown, verdicts=verdicts)


async def copy_section(run: Run) -> Outcome:
    """Copy 1,000,000 results (10,000 in a smoke run) from SQLite into PostgreSQL."""
    figures = await copy.main(10_000 if run.quick else 1_000_000)
    rate = figures["rows_per_second"]
    if not isinstance(rate, int):
        raise TypeError(rate)
    verdict = Verdict(
        what=f"copy of {figures['rows']:,} results, SQLite to PostgreSQL",
        target=f"≥ {copy.TARGET_RATE:,} rows/s",
        measured=f"{rate:,} rows/s",
        met=rate >= copy.TARGET_RATE,
        limit="the server's own work per row (COPY, the generated search vector's two "
        "to_tsvector calls, the index builds after the rows): server CPU "
        f"{figures['server_cpu_us_per_row']} us a row, in one transaction",
    )
    return Outcome(figures=figures, markdown=copy.table(figures), verdicts=[verdict])


async def tracing_section(_run: Run) -> Outcome:
    """Time the hook with tracing off, and a tracer with it on."""
    costs = await tracing.measure()
    verdicts = [
        Verdict(
            what=f"{cost.engine} point read, tracing not set up",
            target=f"≤ {tracing.OFF_TARGET:.0%} of a call",
            measured=f"{cost.hook_share:.2%}",
            met=cost.hook_share <= tracing.OFF_TARGET,
            limit=None,
        )
        for cost in costs
    ]
    figures: dict[str, object] = {
        cost.engine: {"micros_per_call": cost.micros, "hook_share": cost.hook_share}
        for cost in costs
    }
    return Outcome(figures=figures, markdown=tracing.table(costs), verdicts=verdicts)
