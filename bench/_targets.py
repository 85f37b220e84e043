"""The targets (issues 17 and 19), checked against one run's measurements.

A ratio target holds the layer's time against the strongest hand-written contender of its
workload, round by round: the verdict is on the median of the rounds, and the least and
most are shown beside it. A missed target carries what limits it, built from this run's
figures: the contender that shows the floor, and the layer's own cost over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import attrs

from bench._measure import DESCRIPTIONS, ENGINES, LABELS, TABLES, Measurement

__all__ = ["LAG_MAX", "Verdict", "check_targets", "lag_verdict"]

LAG_MAX: Final = 0.020
"""The bound on the layer's worst event-loop lag during every workload, in seconds."""

SAME_STALL: Final = 0.8
"""A hand-written contender whose worst stall is this share of the layer's shows the floor."""

Found = Mapping[tuple[str, str, str], Measurement]
"""Every measurement of a run, by engine, table and workload."""
Limit = Callable[[Measurement, str, Found], str]


@attrs.frozen
class Verdict:
    """One target, what this run measured for it, and whether it was met."""

    what: str
    target: str
    measured: str
    met: bool
    limit: str | None

    def to_json(self) -> dict[str, object]:
        """Give the machine-readable form."""
        return attrs.asdict(self)


def describe(m: Measurement) -> str:
    """Name a measurement's engine, table and workload for a table row."""
    table = "" if m.table == "indexed" else f", {TABLES[m.table]}"
    return f"{ENGINES[m.engine]} `{m.name}` ({DESCRIPTIONS[m.workload]}{table})"


def _wake(m: Measurement) -> str:
    wake = m.wake()
    return "" if wake is None else f"; a thread wake-up took {wake.text(0)} us in the same rounds"


def _profiled(m: Measurement) -> str:
    """Add where one call of the layer spent its time, when the run profiled one."""
    return "" if m.profile is None else f". Profile: {m.profile.text()}"


def _own_cost(m: Measurement, other: str, _found: Found) -> str:
    """Name the layer's own cost per row over the contender that shows the floor."""
    more = m.us("layer") - m.us(other)
    said = f", {more:.1f} us more" if more > 0 else " at the medians, but more in most rounds"
    return (
        f"the layer's own work: {m.us('layer'):.1f} us a row against {m.us(other):.1f} us for "
        f"{LABELS[other]} on the same rows{said}{_wake(m)}"
    )


def _read_cost(m: Measurement, other: str, found: Found) -> str:
    """Split the read's cost: the driver's tuples, decoding them, and building models."""
    del other, found
    if "hand" not in m.times or "sqlite3" not in m.times:
        return _own_cost(m, "asyncpg", {})
    raw, hand, layer = m.us("sqlite3"), m.us("hand"), m.us("layer")
    return (
        f"building models: raw tuples cost {raw:.2f} us a row, decoding them by hand "
        f"{hand - raw:.2f} us more, and the layer {layer - hand:.2f} us over that hand decode "
        f"({layer:.2f} us a row in all)"
    )


def _durable_cost(m: Measurement, other: str, found: Found) -> str:
    """Why one durable save per call is slower than the contender's."""
    del found
    if m.us("layer") <= m.us(other):
        return (
            f"the rounds disagree: at the median round the layer took {m.us('layer'):.0f} us a "
            f"call against {m.us(other):.0f} us for {LABELS[other]}, so the median of the "
            f"round-by-round ratios is the rounds' noise more than a floor{_wake(m)}"
        )
    return (
        f"each call waits for its own commit and fsync: {m.us('layer'):.0f} us a call against "
        f"{m.us(other):.0f} us for {LABELS[other]}{_wake(m)}"
    )


@attrs.frozen
class _Within:
    """The layer's time within `bound` times `other`'s on one engine's workload."""

    engine: str
    workload: str
    other: str
    bound: float
    limit: Limit = _own_cost

    def check(self, m: Measurement, found: Found) -> Verdict:
        spread = m.ratio("layer", self.other)
        met = spread.median <= self.bound
        return Verdict(
            what=describe(m),
            target=f"layer time ≤ {self.bound:g}x {LABELS[self.other]}",
            measured=spread.text(),
            met=met,
            limit=None if met else self.limit(m, self.other, found) + _profiled(m),
        )


RATIOS: Final = (
    _Within("sqlite", "save_one", "sqlite3", 1.3),
    _Within("sqlite", "get_by_id", "hand", 1.3),
    _Within("sqlite", "read_all", "hand", 1.3, _read_cost),
    _Within("sqlite", "read_all", "sqlite3", 3.0, _read_cost),
    _Within("sqlite", "save_concurrent", "hand", 1.2),
    _Within("sqlite", "save_durable", "aiosqlite", 1.0, _durable_cost),
    _Within("postgres", "read_all", "asyncpg", 1.3, _read_cost),
    _Within("postgres", "save_one", "asyncpg", 1.2),
    _Within("postgres", "get_by_id", "asyncpg", 1.2),
    _Within("postgres", "save_durable", "asyncpg", 1.2, _durable_cost),
    _Within("postgres", "save_concurrent", "asyncpg", 1.2),
    _Within("postgres", "save_many", "asyncpg", 1.2),
)
"""Issue 19's targets, in its order; each is checked on every table the workload ran on."""


def lag_verdict(what: str, worst: float, cause: str | None = None) -> Verdict:
    """Check one workload's worst lag (seconds) against LAG_MAX."""
    met = worst <= LAG_MAX
    return Verdict(
        what=what,
        target=f"layer's loop lag max ≤ {LAG_MAX * 1000:g} ms",
        measured=f"{worst * 1000:.1f} ms",
        met=met,
        limit=None if met else (cause or "not analysed in this run"),
    )


def _floor(m: Measurement) -> str:
    """Name the worst stalls of the hand-written contenders of the same workload."""
    others = [
        f"{LABELS[n]} {m.lag(n).max * 1000:.1f} ms (its longest collection "
        f"{m.gc(n).longest * 1000:.1f} ms)"
        for n in m.contenders
        if n != "layer" and not n.startswith("sqlalchemy")
    ]
    return ", ".join(others) or "none ran"


def _lag_cause(m: Measurement) -> str:
    """Say what this run's figures show about a stall of the layer: the collector, or its own."""
    lag, collected = m.lag("layer"), m.gc("layer")
    if collected.longest >= lag.max / 2:
        return (
            f"CPython's garbage collector: its longest run during the layer's rounds took "
            f"{collected.longest * 1000:.0f} ms of the {lag.max * 1000:.0f} ms stall "
            f"({collected.full} full collections of {collected.count}); a full collection walks "
            "every object the process holds, in one go, whichever code allocated last, and no "
            "yielding between slices splits it. The floor, the hand-written contenders' worst "
            f"stalls on the same rows: {_floor(m)}"
        )
    rivals = [n for n in m.contenders if n != "layer" and not n.startswith("sqlalchemy")]
    alike = [n for n in rivals if m.lag(n).max >= lag.max * SAME_STALL]
    if alike:
        return (
            f"stalls as long for hand-written code in the same rounds ({_floor(m)}), and not "
            f"the collector (its longest run took {collected.longest * 1000:.1f} ms): the "
            "machine's share (other processes on its cores, a worker thread holding the GIL "
            "for its switch interval) more than the layer's own work"
        )
    if lag.max >= m.best("layer") / 2:
        return (
            f"the loop stood still for {lag.max * 1000:.0f} ms at once, while the whole call "
            f"took {m.best('layer') * 1000:.0f} ms at best: most of it ran without giving the "
            "loop back"
        )
    return (
        f"not the collector (its longest run took {collected.longest * 1000:.1f} ms); not "
        f"analysed further in this run. The hand-written contenders' worst stalls here: "
        f"{_floor(m)}"
    )


def check_targets(measurements: list[Measurement]) -> list[Verdict]:
    """Check every target whose workload ran: the ratios, then the lag of each workload."""
    found = {(m.engine, m.table, m.workload): m for m in measurements}
    verdicts = []
    for target in RATIOS:
        for table in TABLES:
            m = found.get((target.engine, table, target.workload))
            if m is not None and target.other in m.times and "layer" in m.times:
                verdicts.append(target.check(m, found))
    for m in measurements:
        if "layer" in m.times:
            lag = m.lag("layer")
            verdicts.append(lag_verdict(describe(m), lag.max, _lag_cause(m)))
    return verdicts
