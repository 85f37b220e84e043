"""Where one call of the layer spends its time: the evidence a missed target names.

After a workload's timed rounds, the runner calls the layer once more under cProfile, outside
the timing, and keeps a short summary: the shares of the call's time spent in the layer's
own code, in the driver, in the event loop, waiting in the loop's selector (for a worker
thread or the server: cProfile sees only this thread), and elsewhere (json, datetime, attrs),
with the layer's three costliest functions. cProfile slows Python code more than C code, so
the shares lean towards the layer; they say where the time goes, not how long a call takes.
"""

from __future__ import annotations

import cProfile
import pstats
from typing import TYPE_CHECKING, Final

import attrs

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = ["Profile", "part_of", "profiled", "summarise"]

PARTS: Final = ("layer", "driver", "event loop", "waiting", "other")
TOP: Final = 3

Entry = tuple[str, int, str]
"""cProfile's key of one function: its file, its line and its name."""


def part_of(entry: Entry) -> str:
    """Say whose code one profiled function is: the layer's, the driver's, the loop's, or other.

    The loop's wait in its selector, for a thread or a socket, is `waiting`.
    """
    path, _, name = entry
    if "select.epoll" in name or "select.select" in name or "select.kqueue" in name:
        return "waiting"
    where = path.replace("\\", "/")
    if "/persistence/" in where or where.endswith("aiosql/sqlite.sql") or "/aiosql/" in where:
        return "layer"
    if "sqlite3" in name or "sqlite3" in where or "asyncpg" in where or "asyncpg" in name:
        return "driver"
    if "asyncio" in where or "_asyncio" in name or "selectors" in where or "select." in name:
        return "event loop"
    return "other"


@attrs.frozen
class Profile:
    """The shares of one profiled call's own time, by part, and the layer's costliest functions."""

    seconds: float
    shares: dict[str, float]
    top: tuple[tuple[str, float], ...]
    """The layer's costliest functions, by own time: their name and share of the call."""

    def text(self) -> str:
        """Say it in one sentence fragment."""
        parts = ", ".join(f"{part} {self.shares.get(part, 0.0):.0%}" for part in PARTS)
        costly = ", ".join(f"`{name}` {share:.0%}" for name, share in self.top)
        return f"one call under cProfile: {parts} of its time" + (
            f"; the layer's costliest: {costly}" if costly else ""
        )

    def to_json(self) -> dict[str, object]:
        """Give the machine-readable form."""
        return {
            "seconds": round(self.seconds, 4),
            "shares": {part: round(share, 4) for part, share in self.shares.items()},
            "top": [[name, round(share, 4)] for name, share in self.top],
        }


def summarise(own: dict[Entry, float]) -> Profile:
    """Summarise each function's own time (seconds) as shares by part, and the layer's top."""
    total = sum(own.values()) or 1.0
    shares = dict.fromkeys(PARTS, 0.0)
    for entry, seconds in own.items():
        shares[part_of(entry)] += seconds / total
    layer = sorted(
        ((entry, seconds) for entry, seconds in own.items() if part_of(entry) == "layer"),
        key=lambda item: -item[1],
    )
    top = tuple(
        (f"{entry[0].rsplit('/', 1)[-1]}:{entry[2]}", seconds / total)
        for entry, seconds in layer[:TOP]
    )
    return Profile(seconds=sum(own.values()), shares=shares, top=top)


async def profiled(call: Callable[[], Awaitable[object]]) -> Profile:
    """Run one call under cProfile and summarise where its time went."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        await call()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]  # pstats keeps it untyped
    own = {entry: float(row[2]) for entry, row in stats.items()}
    return summarise(own)
