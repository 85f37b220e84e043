"""What one workload measured: each contender's times and loop lag, round by round.

Ratios are taken round by round (the contenders take turns within a round, so one round's
times share the machine's state) and given as the median with the least and most of the
rounds: the spread says how much of a ratio is noise.
"""

from __future__ import annotations

import statistics
from typing import Final

import attrs

from bench._lag import Collections, Lag, gc_of, lag_of
from bench._profile import Profile

__all__ = [
    "CONTENDERS",
    "DESCRIPTIONS",
    "ENGINES",
    "LABELS",
    "NOMINAL",
    "PEER",
    "STRONGEST",
    "TABLES",
    "WORKLOADS",
    "Measurement",
    "Spread",
    "strongest",
]

ENGINES: Final = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

TABLES: Final = {
    "indexed": "with the full-text index",
    "plain": "plain table (no full-text index)",
}
"""The two schemas each engine runs: as migrated, and with the search index's triggers
(SQLite) or tsvector column and GIN index (PostgreSQL) dropped, so that the layer's own cost
per call is not hidden under the index's."""

CONTENDERS: Final = (
    "layer",
    "hand",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy_core",
    "sqlalchemy_orm",
)
"""Every contender's key, in the order the tables show them."""

LABELS: Final = {
    "layer": "layer",
    "hand": "hand-written best (sqlite3 + one thread)",
    "sqlite3": "sqlite3 on the loop, yielding",
    "aiosqlite": "aiosqlite",
    "asyncpg": "asyncpg by hand",
    "sqlalchemy_core": "SQLAlchemy Core",
    "sqlalchemy_orm": "SQLAlchemy ORM",
}

SHORT: Final = {
    "layer": "layer",
    "hand": "hand-written",
    "sqlite3": "sqlite3 on loop",
    "aiosqlite": "aiosqlite",
    "asyncpg": "asyncpg",
    "sqlalchemy_core": "SA Core",
    "sqlalchemy_orm": "SA ORM",
}

PEER: Final = {"sqlite": "aiosqlite", "postgres": "asyncpg"}
"""The async driver a user would pick instead of the layer, on each engine."""

WORKLOADS: Final = (
    "save_one",
    "save_many",
    "save_concurrent",
    "save_durable",
    "get_by_id",
    "read_all",
    "list_paged",
)

WRITES: Final = ("save_one", "save_many", "save_concurrent", "save_durable")

NOMINAL: Final = {
    "save_one": 10_000,
    "save_many": 50_000,
    "save_concurrent": 10_000,
    "save_durable": 2_000,
    "get_by_id": 10_000,
    "read_all": 50_000,
    "list_paged": 50_000,
}
"""The size each workload is named for: rows written or read, or calls made; `list_paged`
pages through a table of this many rows. A run at other sizes (BENCH_QUICK) names the size."""

DESCRIPTIONS: Final = {
    "save_one": "save one row per call, in one transaction",
    "save_many": "save all rows in one batch",
    "save_concurrent": "100 tasks at once, one call and one durable commit per row",
    "save_durable": "one task, one call and one durable commit per row",
    "get_by_id": "get one row by id, per call",
    "read_all": "read every row (the layer: into models)",
    "list_paged": "filtered listing, 500 a page, paged through",
}

STRONGEST: Final = {
    ("sqlite", "save_one"): ("sqlite3",),
    ("sqlite", "save_many"): ("hand",),
    ("sqlite", "save_concurrent"): ("hand",),
    ("sqlite", "save_durable"): ("hand", "aiosqlite"),
    ("sqlite", "get_by_id"): ("hand",),
    ("sqlite", "read_all"): ("hand", "sqlite3"),
    ("sqlite", "list_paged"): ("hand",),
}
"""The strongest hand-written contender of each SQLite workload, first; some have a second
that the targets name too (raw tuples for `read_all`, aiosqlite for `save_durable`). On
PostgreSQL it is asyncpg by hand throughout (COPY for the batch)."""


def strongest(engine: str, workload: str) -> tuple[str, ...]:
    """Give the contenders the layer is held against on one workload, the strongest first."""
    return STRONGEST.get((engine, workload), ("asyncpg",) if engine == "postgres" else ())


@attrs.frozen
class Spread:
    """The median of a figure over the rounds, with the least and the most."""

    low: float
    median: float
    high: float

    def text(self, digits: int = 2) -> str:
        """Write it as `median (low-high)`."""
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"

    def to_json(self) -> dict[str, float]:
        """Give the machine-readable form."""
        return {
            "min": round(self.low, 4),
            "median": round(self.median, 4),
            "max": round(self.high, 4),
        }


def spread_of(values: list[float]) -> Spread:
    """Summarise values as their least, median and most."""
    return Spread(min(values), statistics.median(values), max(values))


@attrs.frozen
class Measurement:
    """One workload on one engine and table: per contender, its seconds and lag, by round.

    `wake_us` is the thread-wake probe of each round (the median microseconds of a round
    trip to a worker thread and back), measured just before the round.
    """

    engine: str
    workload: str
    rows: int
    times: dict[str, list[float]]
    lag_samples: dict[str, list[float]]
    table: str = "indexed"
    calls: int = 0
    """Rows written or read, or calls made: what the size names (`rows` is what came back)."""
    wake_us: tuple[float, ...] = ()
    collections: dict[str, list[tuple[int, float]]] = attrs.field(factory=dict)
    """Per contender, the garbage collector's runs during its rounds: (generation, seconds)."""
    profile: Profile | None = None
    """Where one more call of the layer, under cProfile and outside the timing, spent its time."""

    @property
    def contenders(self) -> list[str]:
        """The contenders that ran this workload, in table order."""
        return [name for name in CONTENDERS if name in self.times]

    @property
    def size(self) -> int:
        """The size the workload ran at."""
        return self.calls or self.rows

    @property
    def name(self) -> str:
        """The workload's name; with its size when that is not the size it is named for."""
        if self.size == NOMINAL.get(self.workload, self.size):
            return self.workload
        return f"{self.workload}@{self.size:,}"

    def best(self, name: str) -> float:
        """Return the best time of one contender."""
        return min(self.times[name])

    def median(self, name: str) -> float:
        """Return the median time of one contender."""
        return statistics.median(self.times[name])

    def rate(self, name: str) -> float:
        """Return one contender's rows (or calls) per second, from its median time."""
        return self.size / self.median(name)

    def us(self, name: str) -> float:
        """Microseconds per row (or call) of one contender's median round."""
        return self.median(name) / self.size * 1e6

    def ratios(self, name: str, other: str) -> list[float]:
        """`name`'s time over `other`'s, round by round, over the rounds both ran."""
        pairs = zip(self.times[name], self.times[other], strict=False)
        return [mine / theirs for mine, theirs in pairs]

    def ratio(self, name: str, other: str) -> Spread:
        """How many times `other`'s time `name` takes: median, least and most over rounds."""
        return spread_of(self.ratios(name, other))

    def lag(self, name: str) -> Lag:
        """Return the lag of one contender, over the samples of every round."""
        return lag_of(self.lag_samples[name])

    def gc(self, name: str) -> Collections:
        """Return the garbage collector's runs during one contender's rounds."""
        return gc_of(self.collections.get(name, []))

    def wake(self) -> Spread | None:
        """Give the thread-wake probe over this workload's rounds, in microseconds."""
        return spread_of(list(self.wake_us)) if self.wake_us else None

    def line(self) -> str:
        """One terminal line: rows per second and lag max of each contender."""
        cells = "  ".join(
            f"{name} {self.rate(name):>8,.0f}/s lag {self.lag(name).max * 1000:.1f}ms"
            for name in self.contenders
        )
        return f"{self.engine:8} {self.table:7} {self.name:16} {cells}"

    def to_json(self) -> dict[str, object]:
        """Give the machine-readable form."""
        names = self.contenders
        wake = self.wake()
        return {
            "engine": self.engine,
            "table": self.table,
            "workload": self.workload,
            "name": self.name,
            "description": DESCRIPTIONS[self.workload],
            "size": self.size,
            "rows": self.rows,
            "times": {name: [round(t, 6) for t in self.times[name]] for name in names},
            "median": {name: round(self.median(name), 6) for name in names},
            "us_per_row": {name: round(self.us(name), 3) for name in names},
            "rows_per_second": {name: round(self.rate(name)) for name in names},
            "layer_over": {
                name: self.ratio("layer", name).to_json()
                for name in names
                if name != "layer" and "layer" in names
            },
            "lag": {name: self.lag(name).to_json() for name in names},
            "gc": {name: self.gc(name).to_json() for name in names},
            "layer_profile": None if self.profile is None else self.profile.to_json(),
            "thread_wake_us": None if wake is None else wake.to_json(),
        }
