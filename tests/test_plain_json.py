"""The fast re-check of a model's JSON at a save (`plain_json`) against the full one.

`plain_json` may pass only what `json_value` gives back unchanged, and must pass what a model
holds once built: a row it refuses goes to a worker thread for the full check, so a miss there
costs a thread hop a row (a batch of results whose metadata held a `TestType` saved 6 times
slower than the same batch of plain strings).
"""

from __future__ import annotations

import enum
import math
import sys
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from persistence import (
    Database,
    TestResult,
    TestStatus,
    TestType,
    _loop,
    _rows,
    all_results,
    save_results,
)
from persistence._guards import json_value
from persistence._json_recheck import plain_json
from persistence.exceptions import ValidationError
from strategies import IN_MEMORY
from strategies.hostile import hostile_values
from strategies.values import json_values


class _Level(enum.IntEnum):
    LOW = 1


def _same(given: object, back: object) -> bool:
    """Equal, and of the same types all the way down: what "unchanged" means here."""
    if type(given) is not type(back):
        return False
    if isinstance(given, dict) and isinstance(back, dict):
        return list(given) == list(back) and all(_same(given[k], back[k]) for k in given)
    if isinstance(given, list) and isinstance(back, list):
        return len(given) == len(back) and all(map(_same, given, back))
    if isinstance(given, float) and isinstance(back, float):
        return math.copysign(1.0, given) == math.copysign(1.0, back) and given == back
    return given == back


_VALUES = st.recursive(
    st.one_of(json_values(), hostile_values(), st.sampled_from([TestType.UNIT, _Level.LOW])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@IN_MEMORY
@given(value=_VALUES)
def test_what_it_passes_the_full_check_gives_back_unchanged(value: object) -> None:
    """Passed, a value is one `json_value` takes and gives back as it is."""
    if plain_json(value, sys.maxsize):
        assert _same(value, json_value(value, "M", "f"))


@IN_MEMORY
@given(metadata=st.dictionaries(st.text(max_size=4), _VALUES, max_size=4))
@example(metadata={"type": TestType.UNIT, "level": _Level.LOW, "in": [TestType.TLE]})
def test_it_passes_what_a_model_holds_once_built(metadata: dict[str, Any]) -> None:
    """A model's metadata, as its converter left it, is passed: only a change since is looked at."""
    try:
        result = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=metadata)
    except ValidationError:
        return
    assert plain_json(result.metadata, sys.maxsize)


async def test_a_batch_of_enum_metadata_stays_on_the_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No row of small metadata goes to a worker thread, whatever `json_value` kept in it."""
    hops = 0
    real = _loop.off_loop

    async def counted(call: Any) -> Any:  # noqa: ANN401  # passed on as it is
        nonlocal hops
        hops += 1
        return await real(call)

    monkeypatch.setattr(_rows, "off_loop", counted)
    metadata: dict[str, Any] = {"type": TestType.STRESS, "level": _Level.LOW, "tags": ["a"]}
    rows = [TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=metadata)] * 3
    assert await save_results(db, rows) == 3
    assert hops == 0
    assert [r.metadata for r in await all_results(db)] == [
        {"type": "stress", "level": 1, "tags": ["a"]}
    ] * 3
