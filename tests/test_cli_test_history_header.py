r"""`persistence test-history` heads its output with the test id as its tables show one.

The tables of the history commands show an odd test id escaped, as Python writes it (a
control character, a space at either end, a decomposed accent, an invisible character:
tests/test_cli_history.py). The line that heads `test-history`, the test id and the sparkline
of its durations, printed the id as given: an id read from a report, as `flaky --json` gives
it, such as `x\x1b[2Jy`, cleared the terminal, and `a ` read as `a`.
"""

from __future__ import annotations

import asyncio

import pytest

from _cli_helpers import run
from persistence import Run, TestResult, TestStatus, TestType, connect, save_results, save_run

_ODD = ["x\x1b[2Jy", "a ", "e\u0301", "one\ntwo"]


async def _store(url: str) -> None:
    """One passed result of each odd test id."""
    async with connect(url) as db:
        run_id = (await save_run(db, Run())).id
        await save_results(
            db,
            [
                TestResult(
                    test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run_id, test_id=k
                )
                for k in _ODD
            ],
        )


@pytest.mark.parametrize("test_id", _ODD)
def test_the_heading_shows_an_odd_test_id_escaped(
    capsys: pytest.CaptureFixture[str], database_url: str, test_id: str
) -> None:
    """The first line starts with the id as `ascii` writes it; no control character is printed."""
    db = ["--database", database_url]
    assert run(capsys, "migrate", *db)[0] == 0
    asyncio.run(_store(database_url))
    code, out, _ = run(capsys, "test-history", test_id, *db)
    assert code == 0
    assert out.splitlines()[0].startswith(ascii(test_id) + "  ")
    assert "\x1b" not in out
    assert len(out.splitlines()) == 4  # the heading, the figures, the table's head and one row
