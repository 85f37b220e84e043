"""The benchmark's event-loop lag probe and its statistics."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench._lag import LagProbe, lag_of, percentile


def test_percentile_is_a_measured_value() -> None:
    """The nearest-rank p99 of 1..100 is 99, and of 1..1000 is 990: never interpolated."""
    assert percentile([float(v) for v in range(100, 0, -1)], 0.99) == 99.0
    assert percentile([float(v) for v in range(1, 1001)], 0.99) == 990.0


def test_percentile_of_few_samples_is_their_maximum() -> None:
    """With fewer than 100 samples, the p99 is the largest one."""
    assert percentile([0.5, 3.0, 1.0], 0.99) == 3.0


def test_percentile_of_nothing_is_zero() -> None:
    """No samples means no lag was seen."""
    assert percentile([], 0.99) == 0.0
    assert lag_of([]).max == 0.0


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_percentile_refuses_a_fraction_outside_zero_to_one(fraction: float) -> None:
    """A fraction must be in (0, 1]."""
    with pytest.raises(ValueError, match="fraction"):
        percentile([1.0], fraction)


def test_lag_of_gives_p99_max_and_count() -> None:
    """The summary holds the p99, the maximum and how many samples there were."""
    samples = [0.0001] * 99 + [0.05]
    lag = lag_of(samples)
    assert (lag.p99, lag.max, lag.samples) == (0.0001, 0.05, 100)
    assert lag.to_json() == {"p99_ms": 0.1, "max_ms": 50.0, "samples": 100}


async def test_probe_sees_a_blocked_loop() -> None:
    """A block that holds the loop for 30 ms shows as a lag of about that much."""
    async with LagProbe() as probe:
        await asyncio.sleep(0.005)
        time.sleep(0.03)  # noqa: ASYNC251  # blocking the loop is the point
        await asyncio.sleep(0.005)
    assert 0.025 <= lag_of(probe.samples).max < 1.0


async def test_probe_records_a_stall_that_lasts_to_the_end() -> None:
    """A loop blocked until the block ends is still recorded, though the probe never woke."""
    async with LagProbe() as probe:
        time.sleep(0.02)  # noqa: ASYNC251  # blocking the loop is the point
    assert probe.samples
    assert max(probe.samples) >= 0.015


async def test_probe_wakes_often_on_an_idle_loop() -> None:
    """On an idle loop the probe keeps waking: ten wake-ups come well within a second.

    Not "within 50 ms": on a loaded machine each wake-up of a 1 ms sleep can come several
    milliseconds late.
    """
    async with LagProbe() as probe:
        deadline = time.perf_counter() + 1.0
        for _ in range(200):  # at most a second, in steps of 5 ms
            if len(probe.samples) >= 10 or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.005)
    assert len(probe.samples) >= 10


def test_the_loop_table_checks_each_workload_against_its_targets() -> None:
    """A workload meets its target when its worst lag is within 20 ms, and its time bound too."""
    from bench.loop import LoopRun, table  # noqa: PLC0415  # only this test needs it

    quick = LoopRun("sqlite", "save_results", 50_000, 2.0, lag_of([0.001, 0.019]))
    stalled = LoopRun("postgres", "delete_results_before", 50_000, 1.0, lag_of([0.001, 0.69]))
    slow = LoopRun("sqlite", "search_32_words", 20, 0.3, lag_of([0.002]), time_target=0.2)
    assert quick.met
    assert not stalled.met
    assert not slow.met
    lines = table([quick, stalled, slow]).splitlines()
    assert "| met (max ≤ 20 ms) |" in lines[2]
    assert "**missed**" in lines[3]
    assert "time ≤ 200 ms" in lines[4]
    assert "- postgres `delete_results_before` missed: not analysed." in lines
    assert stalled.to_json()["lag"] == {"p99_ms": 690.0, "max_ms": 690.0, "samples": 2}


def test_a_loop_workload_stalled_by_a_collection_names_the_collector() -> None:
    """When one collection is most of a loop workload's stall, its verdict says so."""
    from bench._lag import Collections  # noqa: PLC0415
    from bench.loop import LoopRun  # noqa: PLC0415

    def limit(longest: float) -> str | None:
        collected = Collections(count=3, longest=longest, full=1)
        run = LoopRun("sqlite", "x", 10, 1.0, lag_of([0.001, 0.1]), collected=collected)
        (verdict,) = run.verdicts()
        assert not verdict.met
        return verdict.limit

    by_collector = limit(0.08)
    assert by_collector is not None
    assert "garbage collector" in by_collector
    assert "80 ms of the 100 ms" in by_collector
    assert limit(0.01) == "not analysed in this run"


async def test_probe_times_each_run_of_the_garbage_collector() -> None:
    """A full collection inside the probe is recorded, with its generation; none outside it."""
    import gc  # noqa: PLC0415  # this test only

    from bench._lag import OLDEST, gc_of  # noqa: PLC0415

    gc.disable()  # no young collection of its own in between: the count would be 2
    try:
        async with LagProbe() as probe:
            gc.collect()
        gc.collect()  # after the probe closed: not its to record
    finally:
        gc.enable()
    summary = gc_of(probe.collections)
    assert summary.full == 1
    assert summary.count == len(probe.collections) == 1
    assert probe.collections[0][0] == OLDEST
    assert summary.longest > 0


def test_a_lag_miss_that_one_collection_explains_names_the_collector_and_the_floor() -> None:
    """The stall is put on the collector only when a collection is most of it."""
    from bench._measure import Measurement  # noqa: PLC0415
    from bench._targets import check_targets  # noqa: PLC0415

    def lag_limit(layer_gc: float) -> str:
        m = Measurement(
            "sqlite",
            "read_all",
            50_000,
            {"layer": [1.0], "hand": [0.8]},
            {"layer": [0.001, 0.25], "hand": [0.24]},
            calls=50_000,
            collections={"layer": [(0, 0.001), (2, layer_gc)], "hand": [(2, 0.23)]},
        )
        (verdict,) = [v for v in check_targets([m]) if "lag" in v.target]
        assert not verdict.met
        assert verdict.limit is not None
        return verdict.limit

    by_collector = lag_limit(0.2)
    assert "machine" in lag_limit(0.01)  # the hand decode stalled as long: 240 of 250 ms
    assert "garbage collector" in by_collector
    assert "200 ms of the 250 ms" in by_collector
    assert "240.0 ms (its longest collection 230.0 ms)" in by_collector
    assert "garbage collector" not in lag_limit(0.01)
