"""The report's chart: rows per second of every contender on every workload, on a log scale."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench._measure import CONTENDERS, ENGINES, LABELS, WORKLOADS

if TYPE_CHECKING:
    from pathlib import Path

    from bench._measure import Measurement

__all__ = ["draw_chart"]

COLOURS: Final = {
    "layer": "#d62728",
    "sqlite3": "#2ca02c",
    "aiosqlite": "#1f77b4",
    "asyncpg": "#1f77b4",
    "sqlalchemy_core": "#9467bd",
    "sqlalchemy_orm": "#8c564b",
}


def draw_chart(measurements: list[Measurement], path: Path) -> None:
    """Draw one panel per engine, a group of horizontal bars per workload; write a PNG."""
    engines = [e for e in ENGINES if any(m.engine == e for m in measurements)]
    figure = Figure(figsize=(12, 4.6 * max(1, len(engines))), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no global state
    axes = figure.subplots(len(engines), 1, squeeze=False)[:, 0]
    every = [m.rate(name) for m in measurements for name in m.contenders]
    low, high = min(every) / 1.5, max(every) * 2.5  # one scale for every panel; room for labels
    for ax, engine in zip(axes, engines, strict=True):
        found = {m.workload: m for m in measurements if m.engine == engine}
        workloads = [w for w in WORKLOADS if w in found]
        names = [c for c in CONTENDERS if any(c in found[w].times for w in workloads)]
        height = 0.8 / len(names)
        for index, name in enumerate(names):
            positions, rates = [], []
            for row, workload in enumerate(workloads):
                if name in found[workload].times:
                    positions.append(row - 0.4 + height * (index + 0.5))
                    rates.append(found[workload].rate(name))
            bars = ax.barh(positions, rates, height=height, color=COLOURS[name], label=LABELS[name])
            ax.bar_label(bars, labels=[f"{r:,.0f}" for r in rates], fontsize=6.5, padding=2)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.set_yticks(range(len(workloads)), workloads)
        ax.invert_yaxis()
        ax.set_xlabel("rows per second (log scale; longer is faster)")
        ax.set_title(ENGINES[engine])
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
