"""What one workload measured: the times and event-loop lag of every contender that ran it."""

from __future__ import annotations

import statistics
from typing import Final

import attrs

from bench._lag import Lag, lag_of

__all__ = [
    "CONTENDERS",
    "DESCRIPTIONS",
    "ENGINES",
    "LABELS",
    "RAW",
    "WORKLOADS",
    "Measurement",
]

ENGINES: Final = {"sqlite": "SQLite", "postgres": "PostgreSQL"}

CONTENDERS: Final = (
    "layer",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "sqlalchemy_core",
    "sqlalchemy_orm",
)
"""Every contender's key, in the order the tables show them."""

LABELS: Final = {
    "layer": "layer",
    "sqlite3": "sqlite3 on the loop",
    "aiosqlite": "aiosqlite by hand",
    "asyncpg": "asyncpg by hand",
    "sqlalchemy_core": "SQLAlchemy Core",
    "sqlalchemy_orm": "SQLAlchemy ORM",
}

RAW: Final = {"sqlite": "aiosqlite", "postgres": "asyncpg"}
"""The raw async driver of each engine: what "layer/raw" divides by."""

WORKLOADS: Final = (
    "save_one",
    "save_many",
    "save_concurrent",
    "get_by_id",
    "read_all",
    "list_paged",
)

DESCRIPTIONS: Final = {
    "save_one": "save one row per call, in one transaction",
    "save_many": "save all rows in one batch",
    "save_concurrent": "concurrent tasks, one call and one commit per row",
    "get_by_id": "get one row by id, per call",
    "read_all": "read every row into models",
    "list_paged": "filtered listing, paged through",
}


@attrs.frozen
class Measurement:
    """The times (seconds, one per round) and lag samples of each contender on one workload."""

    engine: str
    workload: str
    rows: int
    times: dict[str, list[float]]
    lag_samples: dict[str, list[float]]

    @property
    def contenders(self) -> list[str]:
        """The contenders that ran this workload, in table order."""
        return [name for name in CONTENDERS if name in self.times]

    def best(self, name: str) -> float:
        """Return the best time of one contender."""
        return min(self.times[name])

    def rate(self, name: str) -> float:
        """Return one contender's rows per second, from its best time."""
        return self.rows / self.best(name)

    def ratio(self, name: str, other: str) -> float:
        """How many times `other`'s best time `name` takes."""
        return self.best(name) / self.best(other)

    def lag(self, name: str) -> Lag:
        """Return the lag of one contender, over the samples of every round."""
        return lag_of(self.lag_samples[name])

    def line(self) -> str:
        """One terminal line: rows per second and lag (p99/max ms) of each contender."""
        cells = "  ".join(
            f"{name} {self.rate(name):>9,.0f}/s "
            f"lag {self.lag(name).p99 * 1000:.1f}/{self.lag(name).max * 1000:.1f}ms"
            for name in self.contenders
        )
        return f"{self.engine:8} {self.workload:15} {self.rows:>7,}  {cells}"

    def to_json(self) -> dict[str, object]:
        """Give the machine-readable form."""
        names = self.contenders
        return {
            "engine": self.engine,
            "workload": self.workload,
            "description": DESCRIPTIONS[self.workload],
            "rows": self.rows,
            "times": {name: [round(t, 6) for t in self.times[name]] for name in names},
            "best": {name: round(self.best(name), 6) for name in names},
            "median": {name: round(statistics.median(self.times[name]), 6) for name in names},
            "rows_per_second": {name: round(self.rate(name)) for name in names},
            "lag": {name: self.lag(name).to_json() for name in names},
        }
