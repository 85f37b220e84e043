"""Event-loop lag: a task that asks to wake every millisecond and records how late it wakes.

The probe also times every run of CPython's cyclic garbage collector while it is open: a
full collection walks every tracked object of the process and holds the loop meanwhile,
whoever's code triggered it, so a stall that one collection explains is the interpreter's,
not the code under test's; the report says which it was.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from typing import TYPE_CHECKING, Final, Self

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = [
    "INTERVAL",
    "OLDEST",
    "Collections",
    "CollectorRuns",
    "Lag",
    "LagProbe",
    "gc_of",
    "lag_of",
    "percentile",
]

INTERVAL: Final = 0.001
"""How long the probe sleeps between two wake-ups, in seconds."""

OLDEST: Final = len(gc.get_threshold()) - 1
"""The collector's oldest generation: a collection of it is a full one."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples` (0 < fraction <= 1); 0.0 for none.

    The nearest rank is a value that was measured: the p99 of 100 samples is the 99th
    smallest, and no interpolation invents a lag that never happened.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = math.ceil(fraction * len(ordered))
    return ordered[rank - 1]


@attrs.frozen
class Lag:
    """How late the probe woke during one workload, in seconds."""

    p99: float
    max: float
    samples: int

    def to_json(self) -> dict[str, float | int]:
        """Give the machine-readable form, in milliseconds."""
        return {
            "p99_ms": round(self.p99 * 1000, 3),
            "max_ms": round(self.max * 1000, 3),
            "samples": self.samples,
        }


def lag_of(samples: Sequence[float]) -> Lag:
    """Summarise lag samples as their 99th percentile and their maximum."""
    return Lag(p99=percentile(samples, 0.99), max=max(samples, default=0.0), samples=len(samples))


@attrs.frozen
class Collections:
    """The garbage collector's runs while a probe was open: how many, and the longest."""

    count: int
    longest: float
    """Seconds of the longest single collection (all generations)."""
    full: int
    """How many were full collections (the oldest generation)."""

    def to_json(self) -> dict[str, float | int]:
        """Give the machine-readable form, in milliseconds."""
        return {"count": self.count, "longest_ms": round(self.longest * 1000, 3), "full": self.full}


def gc_of(pauses: Sequence[tuple[int, float]]) -> Collections:
    """Summarise (generation, seconds) collector runs."""
    return Collections(
        count=len(pauses),
        longest=max((seconds for _, seconds in pauses), default=0.0),
        full=sum(generation == OLDEST for generation, _ in pauses),
    )


class CollectorRuns:
    """Each run of the garbage collector between `start()` and `stop()`: (generation, seconds)."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, float]] = []
        self._started = 0.0

    def start(self) -> None:
        """Begin recording."""
        gc.callbacks.append(self._on_gc)

    def stop(self) -> None:
        """Stop recording; the runs so far stay in `runs`."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.runs.append((info["generation"], time.perf_counter() - self._started))


class LagProbe:
    """Wake every `interval` seconds while open; each sample is how late one wake-up came.

    Use as `async with LagProbe() as probe: ...`; the samples are in `probe.samples`. When
    the block ends while the probe is still asleep past its due time (the loop was blocked
    to the end), that last lateness is recorded too, so a stall is never lost. Each run of
    the garbage collector meanwhile is in `probe.collections`, as (generation, seconds).
    """

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._collector = CollectorRuns()
        self.collections = self._collector.runs
        self._due = math.inf
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._collector.start()
        self._task = asyncio.get_running_loop().create_task(self._run())
        await asyncio.sleep(0)  # the probe is asleep, with its first due time, before work starts
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        late = time.perf_counter() - self._due
        if late > 0:
            self.samples.append(late)
        self._collector.stop()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # never raises the probe's own cancellation

    async def _run(self) -> None:
        interval = self.interval
        samples = self.samples
        clock = time.perf_counter
        while True:
            self._due = clock() + interval
            await asyncio.sleep(interval)
            samples.append(max(0.0, clock() - self._due))
            self._due = math.inf
