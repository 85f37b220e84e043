"""The benchmark's hand-written contenders bind what the layer's insert takes, on both engines.

A column added to test_results must reach them too, or `make bench` fails far into its run.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._raw_postgres import _params as postgres_params
from bench._raw_sqlite import params_of as sqlite_params
from bench._rows import make_results
from bench._sql import COLUMNS, INSERT_POSTGRES, INSERT_SQLITE


@pytest.fixture(autouse=True)
def _sqlite3_converters_as_they_were() -> Iterator[None]:
    """The hand-written contenders register sqlite3 converters, which are per process: undo it."""
    before = dict(sqlite3.converters)
    yield
    sqlite3.converters.clear()
    sqlite3.converters.update(before)


def test_the_raw_contenders_give_every_column_of_the_insert() -> None:
    """Each raw contender gives one value per parameter of the generated insert."""
    (result,) = make_results(1)
    sqlite_numbers = {int(n) for n in re.findall(r"\?(\d+)", INSERT_SQLITE)}
    postgres_numbers = {int(n) for n in re.findall(r"\$(\d+)", INSERT_POSTGRES)}
    assert len(sqlite_params(result)) == max(sqlite_numbers) == len(COLUMNS)
    assert len(postgres_params(result)) == max(postgres_numbers) == len(COLUMNS)


def test_a_ratio_carries_its_spread_over_rounds() -> None:
    """Ratios are taken round by round: the median, with the least and the most."""
    from bench._measure import Measurement  # noqa: PLC0415  # only these tests need it

    m = Measurement(
        engine="sqlite",
        workload="save_one",
        rows=10_000,
        times={"layer": [1.0, 2.0, 3.0], "sqlite3": [1.0, 1.0, 1.0]},
        lag_samples={"layer": [], "sqlite3": []},
    )
    spread = m.ratio("layer", "sqlite3")
    assert (spread.low, spread.median, spread.high) == (1.0, 2.0, 3.0)
    assert spread.text() == "2.00 (1.00-3.00)"
    assert m.name == "save_one"


def test_a_workload_off_its_named_size_is_named_by_its_size() -> None:
    """A smoke run's workload says its size, so it cannot pass for the named one."""
    from bench._measure import Measurement  # noqa: PLC0415

    m = Measurement("sqlite", "read_all", 1_000, {"layer": [1.0]}, {"layer": []}, calls=1_000)
    assert m.name == "read_all@1,000"


def test_the_report_says_faster_or_slower_in_words() -> None:
    """The first screen's words match the ratio."""
    from bench._report import in_words  # noqa: PLC0415

    assert in_words(1.25) == "25% slower"
    assert in_words(2.5) == "2.5x slower"
    assert in_words(0.8) == "25% faster"
    assert in_words(0.4) == "2.5x faster"
    assert in_words(1.01) == "as fast"


async def test_the_hand_decode_gives_the_models_values(tmp_path: Path) -> None:
    """The tight hand-written decode reads back exactly the values the layer's models hold."""
    from bench._hand_sqlite import HandSqlite  # noqa: PLC0415
    from persistence import all_results, connect, migrate, save_results  # noqa: PLC0415

    path = str(tmp_path / "hand.db")
    results = make_results(30)
    async with connect(path) as db:
        await migrate(db)
        hand = HandSqlite(path)
        try:
            await hand.save_concurrent([results[:10], results[10:20]])
            await hand.save_durable(results[20:])
            models = await all_results(db)
            rows = hand.reader.execute(
                "SELECT * FROM test_results ORDER BY created_at DESC, id DESC"
            ).fetchall()
        finally:
            hand.close()
        await save_results(db, results)
    from bench._hand_sqlite import decode_rows  # noqa: PLC0415

    decoded = decode_rows([tuple(row) for row in rows])
    assert len(models) == len(decoded) == 30
    for model, row in zip(models, decoded, strict=True):
        assert (model.id, model.test_type, model.status, model.created_at, model.metadata) == (
            row[0],
            row[1],
            row[2],
            row[9],
            row[10],
        )


async def test_a_smoke_run_writes_the_report_json_and_chart(tmp_path: Path) -> None:
    """Every contender runs every workload at a tiny size on SQLite; the three outputs appear."""
    import json  # noqa: PLC0415

    from bench._lag import lag_of  # noqa: PLC0415
    from bench._report import write_reports  # noqa: PLC0415
    from bench._runner import Bench, Sizes, run_sqlite  # noqa: PLC0415

    sizes = Sizes(
        per_call=10, bulk=20, tasks=2, task_saves=3, durable=3, reads=20, repeat=3, budget=60
    )
    bench = Bench(sizes, collect=False, wake_hops=10)
    names = frozenset({"layer", "hand", "sqlite3", "aiosqlite"})
    await run_sqlite(bench, "indexed", names)
    await run_sqlite(bench, "plain", names)
    said: list[str] = []
    write_reports(
        bench.measurements,
        machine={
            "cpu": "test",
            "cores": 1,
            "os": "test",
            "python": "3",
            "sqlite": "3",
            "postgresql": None,
            "aiosqlite": "0",
            "asyncpg": "0",
            "sqlalchemy": "2",
            "load_average": [0, 0],
        },
        settings={"repeat": 3, "budget": 60, "quick": True},
        idle=lag_of([0.0001]),
        wake_us=50.0,
        skipped={},
        seconds=1.0,
        durations={},
        out=tmp_path,
        say=said.append,
        sections={},
    )
    report = (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8")
    figures = json.loads((tmp_path / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert (tmp_path / "benchmarks" / "rows_per_second.png").stat().st_size > 0
    assert "hand-written best (sqlite3 + one thread)" in report.split("## Targets")[0]
    assert "`read_all@20`" in report
    tables = {(r["table"], r["workload"]) for r in figures["results"]}
    assert ("plain", "save_many") in tables
    assert ("indexed", "read_all") in tables
    assert ("plain", "read_all") not in tables  # reads do not touch the index
    read_all = next(r for r in figures["results"] if r["workload"] == "read_all")
    assert {"layer", "hand", "sqlite3", "aiosqlite"} <= set(read_all["times"])
    assert all(len(times) == 3 for times in read_all["times"].values())
    assert set(read_all["gc"]) == set(read_all["times"])
    shares = read_all["layer_profile"]["shares"]
    assert abs(sum(shares.values()) - 1) < 1e-3
    assert shares["layer"] > 0
    assert shares["driver"] > 0


def test_every_section_is_registered_once_with_what_the_report_needs() -> None:
    """One registration list: unique keys, a title, an introduction and a measure each."""
    import inspect  # noqa: PLC0415

    from bench._sections import SECTIONS  # noqa: PLC0415

    keys = [section.key for section in SECTIONS]
    assert len(keys) == len(set(keys))
    assert {"search", "loop", "memory", "search_under_writes", "caches"} <= set(keys)
    for section in SECTIONS:
        assert section.title
        assert section.intro
        assert inspect.iscoroutinefunction(section.measure)


def test_a_missed_memory_target_names_the_hand_decode_as_its_floor() -> None:
    """When decoding by hand holds as much as the models, the limit says so."""
    from bench.memory import _verdicts  # noqa: PLC0415

    figures: dict[str, object] = {
        "engine": "sqlite",
        "results": 100_000,
        "layer": {"held_mb": 117.0, "peak_mb": 150.0},
        "raw": {"held_mb": 66.0, "peak_mb": 67.0},
        "hand": {"held_mb": 116.0, "peak_mb": 148.0},
    }
    (verdict,) = _verdicts([figures])
    assert not verdict.met
    assert verdict.limit is not None
    assert "not the models" in verdict.limit


def test_a_profile_splits_a_call_between_the_layer_the_driver_and_the_loop() -> None:
    """Each profiled function is put in its part; the layer's costliest come first."""
    from bench._profile import part_of, summarise  # noqa: PLC0415

    layer = ("/x/src/persistence/results.py", 154, "find_result")
    driver = ("~", 0, "<method 'execute' of 'sqlite3.Cursor' objects>")
    loop = ("/usr/lib/python3.11/asyncio/base_events.py", 1845, "_run_once")
    wait = ("~", 0, "<method 'poll' of 'select.epoll' objects>")
    other = ("/usr/lib/python3.11/json/decoder.py", 343, "raw_decode")
    assert [part_of(e) for e in (layer, driver, loop, wait, other)] == [
        "layer",
        "driver",
        "event loop",
        "waiting",
        "other",
    ]
    profile = summarise({layer: 0.4, driver: 0.3, loop: 0.1, wait: 0.1, other: 0.1})
    assert profile.shares == pytest.approx(
        {"layer": 0.4, "driver": 0.3, "event loop": 0.1, "waiting": 0.1, "other": 0.1}
    )
    ((name, share),) = profile.top
    assert name == "results.py:find_result"
    assert share == pytest.approx(0.4)
    assert "layer 40%" in profile.text()
    assert "`results.py:find_result` 40%" in profile.text()
