"""Each engine's splitter on long hostile scripts, within a bound of time.

In conftest's TIMED_MODULES: `make test` runs these alone, so that no worker steals their CPU.
"""

from __future__ import annotations

import contextlib
import time
from typing import Final

import pytest

from persistence import MigrationError
from persistence.database import Engine, split_script

BOUND: Final = 2.0
"""Seconds for one script of 200,000 characters: ten times what a linear reading takes."""
HOSTILE: Final = {
    "quotes": "'" * 200_001,
    "dollars": "$a" * 100_000,
    "comment openings": "/*" * 100_000,
    "nested comments": "/*" * 50_000 + "*/" * 50_000,
    "a string of semicolons": "'" + ";" * 200_000,
    "an insert of semicolons": "INSERT INTO t VALUES ('" + ";" * 200_000 + "');",
    "escapes": "E'" + "\\'" * 100_000,
    "parentheses": "(" * 200_000,
    "cases": "CREATE FUNCTION f() BEGIN ATOMIC " + "CASE " * 40_000,
    "statements": "SELECT 1;" * 22_000,
    "a trigger's cases": "CREATE TRIGGER t AFTER INSERT ON x BEGIN "
    + "UPDATE x SET a = CASE WHEN 1 THEN 2 END;" * 5_000
    + " END;",
}


@pytest.mark.parametrize("engine", list(Engine))
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_long_hostile_script_is_split_or_refused_in_bounded_time(
    engine: Engine, kind: str
) -> None:
    """No pattern backtracks without end, and no loop reads the script again per `;`."""
    started = time.perf_counter()
    with contextlib.suppress(MigrationError):
        split_script(engine, HOSTILE[kind])
    assert time.perf_counter() - started < BOUND, kind
