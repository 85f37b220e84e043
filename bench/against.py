"""Set one run's ratios beside an earlier run's, to see whether the layer kept its pace.

Run with `python -m bench.against EARLIER.json LATER.json [--out FILE]`, two `results.json`
files of `make bench`. For every workload both runs measured on the schema as migrated, and
every contender both ran, it gives the layer's time over that contender's in each run and
the change. A ratio is judged kept when the later one is at most `KEPT` times the earlier:
within 10 %, or better.

Both runs are read with the earlier report's statistic, the best time of each contender over
its rounds; the later run's median of the round-by-round ratios stands beside it, since a
best time can be one lucky round. Each side's own time a row, later over earlier, stands
beside the ratio too: a ratio can move because the contender's code or the machine changed,
not the layer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

__all__ = ["KEPT", "Comparison", "compare", "main", "render"]

KEPT: Final = 1.10
"""The later ratio may be this many times the earlier one and still count as kept."""

Times = Mapping[str, Sequence[float]]


@attrs.frozen
class Comparison:
    """The layer's time over one contender's, in a workload, in the earlier and the later run."""

    engine: str
    workload: str
    contender: str
    earlier: float
    later: float
    later_median: float
    layer_own: float
    """The layer's best time a row in the later run over the earlier run's."""
    contender_own: float
    """The contender's best time a row in the later run over the earlier run's."""

    @property
    def change(self) -> float:
        """The later ratio over the earlier one: below 1 the layer gained on the contender."""
        return self.later / self.earlier

    @property
    def kept(self) -> bool:
        """Whether the later ratio is within `KEPT` of the earlier one, or better."""
        return self.change <= KEPT


def _measured(results: object) -> dict[tuple[str, str], tuple[Times, int]]:
    """Each workload's round times and rows on the schema as migrated, by engine and workload."""
    if not isinstance(results, dict) or not isinstance(results.get("results"), list):
        msg = "not a results.json of make bench: it has no list 'results'"
        raise ValueError(msg)  # noqa: TRY004  # bad input, read from a file: main reports it
    found: dict[tuple[str, str], tuple[Times, int]] = {}
    for entry in results["results"]:
        if entry.get("table", "indexed") != "indexed":
            continue
        times = entry["times"]
        if not isinstance(times, dict) or "layer" not in times:
            msg = f"{entry.get('engine')} {entry.get('workload')}: no round times of the layer"
            raise ValueError(msg)
        found[(str(entry["engine"]), str(entry["workload"]))] = times, int(entry.get("rows", 1))
    return found


def _median_ratio(layer: Sequence[float], other: Sequence[float]) -> float:
    """Give the median of the round-by-round ratios (rounds one contender sat out are left out)."""
    return statistics.median(mine / theirs for mine, theirs in zip(layer, other, strict=False))


def compare(earlier: object, later: object) -> list[Comparison]:
    """Every ratio that both runs measured, in the earlier run's order."""
    before, after = _measured(earlier), _measured(later)
    compared: list[Comparison] = []
    for key, (old, old_rows) in before.items():
        if key not in after:
            continue
        new, new_rows = after[key]
        for contender in old:
            if contender == "layer" or contender not in new:
                continue
            compared.append(
                Comparison(
                    engine=key[0],
                    workload=key[1],
                    contender=contender,
                    earlier=min(old["layer"]) / min(old[contender]),
                    later=min(new["layer"]) / min(new[contender]),
                    later_median=_median_ratio(new["layer"], new[contender]),
                    layer_own=(min(new["layer"]) / new_rows) / (min(old["layer"]) / old_rows),
                    contender_own=(min(new[contender]) / new_rows)
                    / (min(old[contender]) / old_rows),
                )
            )
    return compared


def _stamp(results: object) -> str:
    return str(results.get("generated_at", "?")) if isinstance(results, dict) else "?"


def render(earlier: object, later: object, compared: Sequence[Comparison]) -> str:
    """Write the comparison as a Markdown page."""
    kept = sum(c.kept for c in compared)
    stamps = f"the run of {_stamp(earlier)} (earlier) and the run of {_stamp(later)} (later)"
    reading = (
        "Each ratio is the layer's time over the contender's, best round against best round, "
        "on the schema as migrated; below 1 the layer is faster. A ratio is kept when the "
        f"later one is at most {KEPT:.2f} times the earlier one. The later run's median of "
        "the round-by-round ratios is given too, since a best round can be a lucky one. The "
        "last two columns give each side's own best time a row, later over earlier: a ratio "
        "that moved while the layer's own time held moved with the contender's code or the "
        "machine."
    )
    summary = f"**{kept} of {len(compared)} ratios kept**, {len(compared) - kept} worse"
    summary += f" by more than {round((KEPT - 1) * 100)} %"
    held = sum(not c.kept and c.layer_own <= KEPT for c in compared)
    summary += f"; in {held} of those the layer's own time a row held within the same bound."
    lines = [
        "# The layer's ratios, then and now",
        "",
        f"Written by `python -m bench.against` from {stamps}; do not edit by hand.",
        "",
        reading,
        "",
        summary,
        "",
        (
            "| engine | workload | layer over | earlier | later | later, median | change | kept "
            "| layer's own | contender's own |"
        ),
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for c in compared:
        verdict = "yes" if c.kept else "**no**"
        lines.append(
            f"| {c.engine} | `{c.workload}` | {c.contender} | {c.earlier:.2f} | {c.later:.2f} "
            f"| {c.later_median:.2f} | {c.change:.2f} | {verdict} | {c.layer_own:.2f} "
            f"| {c.contender_own:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Compare two results.json files; print the page, or write it with --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.against", description=__doc__)
    parser.add_argument("earlier", type=Path)
    parser.add_argument("later", type=Path)
    parser.add_argument("--out", type=Path, help="write the page here instead of printing it")
    args = parser.parse_args(argv)
    try:
        earlier = json.loads(args.earlier.read_text(encoding="utf-8"))
        later = json.loads(args.later.read_text(encoding="utf-8"))
        compared = compare(earlier, later)
    except (OSError, ValueError, KeyError) as error:
        sys.stderr.write(f"bench.against: {error}\n")
        return 2
    page = render(earlier, later, compared)
    if args.out is None:
        sys.stdout.write(page)
    else:
        args.out.write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
