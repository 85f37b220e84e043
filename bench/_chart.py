"""The report's chart: the layer beside the strongest hand-written contender of each workload.

One panel per engine; per workload (and table, indexed or plain), a bar for the layer, one
for each strongest hand-written contender, and one for the peer driver (aiosqlite or
asyncpg), in rows per second on a log scale, each with the spread of its rounds as a
whisker. The layer's bar is labelled with its time over the strongest contender's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench._measure import ENGINES, LABELS, PEER, strongest

if TYPE_CHECKING:
    from pathlib import Path

    from bench._measure import Measurement

__all__ = ["draw_chart"]

COLOURS: Final = {
    "layer": "#d62728",
    "hand": "#2ca02c",
    "sqlite3": "#98df8a",
    "aiosqlite": "#7f7f7f",
    "asyncpg": "#1f77b4",
}


def _bars(m: Measurement) -> list[str]:
    names = ["layer", *strongest(m.engine, m.workload), PEER[m.engine]]
    return [n for n in dict.fromkeys(names) if n in m.times]


def draw_chart(measurements: list[Measurement], path: Path) -> None:
    """Draw one panel per engine, a group of horizontal bars per workload; write a PNG."""
    engines = [e for e in ENGINES if any(m.engine == e for m in measurements)]
    rows_of = {
        e: [m for m in measurements if m.engine == e and "layer" in m.times] for e in engines
    }
    tall = max(len(rows) for rows in rows_of.values())
    figure = Figure(figsize=(12, 1.0 + 0.55 * tall * len(engines)), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no global state
    axes = figure.subplots(len(engines), 1, squeeze=False)[:, 0]
    every = [m.size / t for m in measurements for ts in m.times.values() for t in ts]
    low, high = min(every) / 1.5, max(every) * 4  # one scale for every panel; room for labels
    for ax, engine in zip(axes, engines, strict=True):
        rows = rows_of[engine]
        seen: set[str] = set()
        for row, m in enumerate(rows):
            names = _bars(m)
            height = 0.8 / len(names)
            for index, name in enumerate(names):
                rates = [m.size / t for t in m.times[name]]
                middle = m.rate(name)
                label = LABELS[name] if name not in seen else None
                seen.add(name)
                position = row - 0.4 + height * (index + 0.5)
                ax.barh(
                    position,
                    middle,
                    height=height,
                    color=COLOURS.get(name, "#bbbbbb"),
                    label=label,
                    xerr=[[middle - min(rates)], [max(rates) - middle]],
                    error_kw={"elinewidth": 0.8, "capsize": 1.5},
                )
                text = f"{middle:,.0f}"
                rivals = [c for c in strongest(m.engine, m.workload) if c in m.times]
                if name == "layer" and rivals:
                    text += f"  ({m.ratio('layer', rivals[0]).median:.2f}x the time)"
                ax.text(max(rates) * 1.08, position, text, va="center", fontsize=6.5)
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ticks = [f"{m.name}{'' if m.table == 'indexed' else ' (plain)'}" for m in rows]
        ax.set_yticks(range(len(rows)), ticks)
        ax.invert_yaxis()
        ax.set_xlabel("rows (or calls) per second, median round; log scale, longer is faster")
        ax.set_title(f"{ENGINES[engine]}: the layer beside the strongest hand-written contender")
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
