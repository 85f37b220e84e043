"""Setting one benchmark run's ratios beside an earlier run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.against import KEPT, compare, main, render


def _run(
    stamp: str,
    *entries: tuple[str, str, dict[str, list[float]]],
    table: str = "",
    rows: int | None = None,
) -> object:
    results = []
    for engine, workload, times in entries:
        entry: dict[str, object] = {"engine": engine, "workload": workload, "times": times}
        if table:
            entry["table"] = table
        if rows is not None:
            entry["rows"] = rows
        results.append(entry)
    return {"generated_at": stamp, "results": results}


def test_a_ratio_within_ten_percent_or_better_is_kept() -> None:
    """The best rounds' ratio is compared; a later ratio up to KEPT times the earlier is kept."""
    earlier = _run("then", ("sqlite", "read_all", {"layer": [2.0, 1.0], "hand": [1.0, 2.0]}))
    later = _run(
        "now",
        ("sqlite", "read_all", {"layer": [1.0 * KEPT, 3.0], "hand": [1.0, 1.5]}),
    )
    (kept,) = compare(earlier, later)
    assert kept.earlier == 1.0
    assert kept.later == pytest.approx(KEPT)
    assert kept.kept
    worse = _run("now", ("sqlite", "read_all", {"layer": [1.2, 3.0], "hand": [1.0, 1.5]}))
    (lost,) = compare(earlier, worse)
    assert lost.change == pytest.approx(1.2)
    assert not lost.kept


def test_the_later_median_pairs_the_rounds() -> None:
    """The median of the round-by-round ratios: 2/1, 3/1 and 1/1 give 2."""
    earlier = _run("then", ("postgres", "get_by_id", {"layer": [1.0], "asyncpg": [1.0]}))
    later = _run("now", ("postgres", "get_by_id", {"layer": [2.0, 3.0, 1.0], "asyncpg": [1.0] * 3}))
    (compared,) = compare(earlier, later)
    assert compared.later_median == 2.0
    assert compared.later == 1.0


def test_only_what_both_runs_measured_on_the_migrated_schema_is_compared() -> None:
    """A workload or contender that one run lacks, and plain-table runs, are left out."""
    earlier = _run(
        "then",
        ("sqlite", "save_one", {"layer": [1.0], "aiosqlite": [2.0], "gone": [1.0]}),
        ("sqlite", "dropped", {"layer": [1.0], "aiosqlite": [1.0]}),
    )
    later = _run("now", ("sqlite", "save_one", {"layer": [1.0], "aiosqlite": [4.0], "new": [1.0]}))
    assert [(c.workload, c.contender) for c in compare(earlier, later)] == [
        ("save_one", "aiosqlite")
    ]
    plain = _run("now", ("sqlite", "save_one", {"layer": [1.0], "aiosqlite": [4.0]}), table="plain")
    assert compare(earlier, plain) == []


def test_a_file_that_is_not_a_bench_result_is_refused_by_name(tmp_path: Path) -> None:
    """No 'results' list, or no layer times: a clear error and exit status 2."""
    with pytest.raises(ValueError, match="no list 'results'"):
        compare({"results": {}}, {"results": []})
    with pytest.raises(ValueError, match="sqlite save_one: no round times of the layer"):
        compare(_run("then", ("sqlite", "save_one", {"aiosqlite": [1.0]})), {"results": []})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_run("now")), encoding="utf-8")
    assert main([str(tmp_path / "missing.json"), str(good)]) == 2


def test_the_page_counts_and_marks_what_was_not_kept(tmp_path: Path) -> None:
    """The page says how many ratios were kept and marks each one that was not."""
    earlier = _run(
        "then",
        ("sqlite", "save_one", {"layer": [1.0], "aiosqlite": [2.0], "sqlite3": [1.0]}),
    )
    later = _run(
        "now",
        ("sqlite", "save_one", {"layer": [1.0], "aiosqlite": [1.0], "sqlite3": [1.0]}),
    )
    paths = []
    for name, run in (("then.json", earlier), ("now.json", later)):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(run), encoding="utf-8")
    out = tmp_path / "page.md"
    assert main([*map(str, paths), "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page == render(earlier, later, compare(earlier, later))
    assert "**1 of 2 ratios kept**" in page
    assert "in 1 of those the layer's own time a row held" in page
    row = "| sqlite | `save_one` | aiosqlite | 0.50 | 1.00 | 1.00 | 2.00 | **no** | 1.00 | 0.50 |"
    assert row in page
    row = "| sqlite | `save_one` | sqlite3 | 1.00 | 1.00 | 1.00 | 1.00 | yes | 1.00 | 1.00 |"
    assert row in page


def test_each_sides_own_time_is_compared_a_row() -> None:
    """A ratio lost to a contender that got faster shows the layer's own time a row held.

    The runs may differ in rows: each side's best time is divided by its run's rows first.
    """
    earlier = _run("then", ("sqlite", "save_many", {"layer": [2.0], "sqlite3": [5.0]}), rows=1000)
    later = _run("now", ("sqlite", "save_many", {"layer": [3.0], "sqlite3": [3.0]}), rows=2000)
    (compared,) = compare(earlier, later)
    assert not compared.kept  # the ratio went from 0.4 to 1.0
    assert compared.layer_own == pytest.approx(0.75)  # 3 s / 2000 rows over 2 s / 1000 rows
    assert compared.contender_own == pytest.approx(0.3)  # 3 s / 2000 rows over 5 s / 1000 rows
