"""The targets of issue 11, checked against one run's measurements.

Each target is a ratio of two contenders' best times on one workload, or a bound on the
layer's event-loop lag. A missed target carries a sentence that names what limits it:
built from this run's figures where they show it, else what was measured apart (the
report's notes say how).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import attrs

from bench._measure import DESCRIPTIONS, ENGINES, LABELS, RAW, Measurement

__all__ = ["LAG_MAX", "LAG_P99", "Verdict", "check_targets", "describe"]

LAG_P99: Final = 0.002
"""The bound on the layer's p99 event-loop lag during every SQLite workload, in seconds."""
LAG_MAX: Final = 0.020
"""The bound on the layer's worst event-loop lag during every SQLite workload, in seconds."""

Found = Mapping[tuple[str, str], Measurement]
"""Every measurement of a run, by engine and workload."""
Limit = Callable[[Measurement, Found], str]


@attrs.frozen
class Verdict:
    """One target, what this run measured for it, and whether it was met."""

    engine: str
    workload: str
    target: str
    measured: str
    met: bool
    limit: str | None

    def to_json(self) -> dict[str, object]:
        """Give the machine-readable form."""
        return attrs.asdict(self)


@attrs.frozen
class _Ratio:
    """`slower`'s best time over `faster`'s, at least or at most `bound`."""

    engine: str
    workload: str
    slower: str
    faster: str
    bound: float
    at_least: bool
    target: str
    limit: Limit

    def check(self, m: Measurement, found: Found) -> Verdict:
        value = m.ratio(self.slower, self.faster)
        met = value >= self.bound if self.at_least else value <= self.bound
        return Verdict(
            engine=self.engine,
            workload=self.workload,
            target=self.target,
            measured=f"{value:.2f}",
            met=met,
            limit=None if met else self.limit(m, found),
        )


def _us(m: Measurement, name: str) -> float:
    """Microseconds per row of one contender's best round."""
    return m.best(name) / m.rows * 1e6


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.1f} ms"  # noqa: PLR2004  # where a decimal starts to matter


def _hop_limit(m: Measurement, _found: Found) -> str:
    """Why the layer is not 10 times aiosqlite on a per-call workload."""
    floor = m.ratio("aiosqlite", "sqlite3")
    if floor < 10:  # noqa: PLR2004  # the target's own bound
        return (
            f"the driver: sqlite3 itself, on the loop with no hop at all, is only "
            f"{floor:.1f}x aiosqlite here ({_us(m, 'sqlite3'):.1f} against "
            f"{_us(m, 'aiosqlite'):.1f} us a call), so 10x is out of reach of any layer"
        )
    return _own_cost(m, _found)


def _own_cost(m: Measurement, _found: Found) -> str:
    """Name the layer's own cost per call, over sqlite3 on the loop."""
    return (
        f"the layer's own work per call: {_us(m, 'layer'):.1f} us against "
        f"sqlite3's {_us(m, 'sqlite3'):.1f} us"
    )


def _group_commit_limit(m: Measurement, found: Found) -> str:
    """Why group commit is not 10 times aiosqlite's commit per row."""
    in_transaction = found.get(("sqlite", "save_one"))
    per_call = (
        f", near its {_us(in_transaction, 'layer'):.0f} us per call inside a transaction"
        if in_transaction is not None
        else ""
    )
    return (
        f"the layer's own work on the loop: {_us(m, 'layer'):.0f} us a row{per_call}; "
        f"the commit is shared, but aiosqlite's {_us(m, 'aiosqlite'):.0f} us a row "
        f"(one commit and fsync each) is only {m.ratio('aiosqlite', 'layer'):.1f} times that"
    )


def _read_limit(m: Measurement, _found: Found) -> str:
    """Why reading into models costs more than the driver's rows."""
    raw = RAW[m.engine]
    return (
        f"building the models: {_us(m, 'layer') - _us(m, raw):.2f} us a row over the driver's "
        f"{_us(m, raw):.2f} us, much of it the process's garbage collector, which the row tuple "
        "and the model (two more tracked objects a row than the driver's record) keep busy; "
        "measured apart with the collector off, the ratio was 1.48"
    )


def _listing_limit(m: Measurement, _found: Found) -> str:
    """Why the layer's filtered listing is slower than Core's."""
    raw = RAW[m.engine]
    if m.ratio(raw, "sqlalchemy_core") > 1.2:  # noqa: PLR2004  # the target's own bound
        return (
            f"the query: asyncpg by hand running the layer's SQL takes {_ms(m.best(raw))} too, "
            f"against Core's {_ms(m.best('sqlalchemy_core'))}; its `col = coalesce($n, col)` "
            "filters leave the plan no index to use, where Core names only the set filters"
        )
    return (
        f"the layer's own work: {_ms(m.best('layer'))} against the same SQL by hand's "
        f"{_ms(m.best(raw))}"
    )


def _overhead_limit(m: Measurement, _found: Found) -> str:
    """Name the layer's cost per row over the driver's, and how much the rounds moved."""
    raw = RAW[m.engine]
    return (
        f"the layer adds {_us(m, 'layer') - _us(m, raw):.1f} us a row "
        f"to the driver's {_us(m, raw):.1f} us; the rounds ranged {_spread(m, 'layer')} "
        f"for the layer and {_spread(m, raw)} for the driver"
    )


def _spread(m: Measurement, name: str) -> str:
    times = m.times[name]
    return f"{min(times):.2f} to {max(times):.2f} s"


def _faster(engine: str, workload: str, bound: float, other: str, limit: Limit) -> _Ratio:
    return _Ratio(
        engine,
        workload,
        slower=other,
        faster="layer",
        bound=bound,
        at_least=True,
        target=f"layer ≥ {bound:g}x {LABELS[other]}",
        limit=limit,
    )


def _within(engine: str, workload: str, bound: float, other: str, limit: Limit) -> _Ratio:
    return _Ratio(
        engine,
        workload,
        slower="layer",
        faster=other,
        bound=bound,
        at_least=False,
        target=f"layer time ≤ {bound:g}x {LABELS[other]}",
        limit=limit,
    )


RATIOS: Final = (
    _faster("sqlite", "save_one", 10, "aiosqlite", _hop_limit),
    _within("sqlite", "save_one", 2.0, "sqlite3", _own_cost),
    _faster("sqlite", "get_by_id", 10, "aiosqlite", _hop_limit),
    _within("sqlite", "get_by_id", 2.0, "sqlite3", _own_cost),
    _faster("sqlite", "save_concurrent", 10, "aiosqlite", _group_commit_limit),
    _within("sqlite", "read_all", 1.5, "aiosqlite", _read_limit),
    _within("postgres", "read_all", 1.5, "asyncpg", _read_limit),
    _within("postgres", "list_paged", 1.2, "sqlalchemy_core", _listing_limit),
    _within("sqlite", "save_many", 1.4, "aiosqlite", _overhead_limit),
    _within("postgres", "save_many", 1.4, "asyncpg", _overhead_limit),
    _within("postgres", "save_one", 1.3, "asyncpg", _overhead_limit),
    _within("postgres", "get_by_id", 1.3, "asyncpg", _overhead_limit),
)


def _no_yield(m: Measurement) -> str | None:
    """Say so when no call suspended: the longest stall is most of the run itself."""
    if m.lag("layer").max < m.best("layer") / 2:
        return None
    return (
        f"no call suspends: a short statement runs to its end on the loop, so {m.rows:,} "
        f"calls in a row hold it for the whole run ({_ms(m.best('layer'))} at best); "
        "sqlite3 on the loop does the same"
    )


def _lag_cause(m: Measurement) -> str:
    """Name what stalls the loop during one of the layer's SQLite workloads."""
    if (cause := _no_yield(m)) is not None:
        return cause
    return LAG_CAUSES.get(m.workload, "not analysed")


_GC_AND_GIL = (
    "full (generation 2) garbage collections of the process's models, 40 to 80 ms here, and a "
    "worker thread holding the GIL for up to the 5 ms switch interval; the layer itself gives "
    "the loop back every 0.5 ms"
)

LAG_CAUSES: Final = {
    "save_one": _GC_AND_GIL,
    "get_by_id": _GC_AND_GIL,
    "save_many": (
        "the bulk insert's thread binding its rows holds the GIL for up to the 5 ms switch "
        "interval at a time, and full garbage collections land on the loop; the parameters are "
        "built and encoded on the loop in slices"
    ),
    "save_concurrent": (
        "one loop pass runs the next call of every task woken by a commit; the runner gives the "
        "loop back every 0.5 ms"
    ),
    "read_all": (
        "full (generation 2) garbage collections of the models built so far land on the loop; "
        "rows are decoded and mapped in slices of 250"
    ),
    "list_paged": (
        "a page read on the loop may run 1 ms before it moves to a thread, and the page is "
        "decoded and mapped after it; full garbage collections land on the loop too"
    ),
}
"""What stalls the loop in each workload, as measured apart (see the notes below the table)."""


def _lag_verdicts(m: Measurement) -> list[Verdict]:
    lag = m.lag("layer")
    cause = _lag_cause(m)
    return [
        Verdict(
            engine=m.engine,
            workload=m.workload,
            target=f"layer's loop lag p99 ≤ {LAG_P99 * 1000:g} ms",
            measured=f"{lag.p99 * 1000:.2f} ms",
            met=lag.p99 <= LAG_P99,
            limit=None if lag.p99 <= LAG_P99 else cause,
        ),
        Verdict(
            engine=m.engine,
            workload=m.workload,
            target=f"layer's loop lag max ≤ {LAG_MAX * 1000:g} ms",
            measured=f"{lag.max * 1000:.1f} ms",
            met=lag.max <= LAG_MAX,
            limit=None if lag.max <= LAG_MAX else cause,
        ),
    ]


def check_targets(measurements: list[Measurement]) -> list[Verdict]:
    """Check every target whose workload ran; in the order of the issue's list."""
    found = {(m.engine, m.workload): m for m in measurements}

    def ratios(targets: tuple[_Ratio, ...]) -> list[Verdict]:
        return [
            target.check(found[target.engine, target.workload], found)
            for target in targets
            if (target.engine, target.workload) in found
        ]

    lags = [v for m in measurements if m.engine == "sqlite" for v in _lag_verdicts(m)]
    return [*ratios(RATIOS[:5]), *lags, *ratios(RATIOS[5:])]


def describe(verdict: Verdict) -> str:
    """Name a verdict's engine and workload for a table row."""
    return f"{ENGINES[verdict.engine]} `{verdict.workload}` ({DESCRIPTIONS[verdict.workload]})"
