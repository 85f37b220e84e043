"""The event loop stays free while an export writes one text of tens of megabytes, on both engines.

A result's output has no bound on its size, and escaping it for XML or JSON is one C call
over the whole text, which keeps the GIL (a worker thread would not help): each text is
escaped a piece at a time (`persistence._loop.map_text`), the loop given back between. The
run is read first, as the export reads it, and its writing runs beside the benchmark's lag
probe, as in `test_loop_lag.py`: reading the row is the driver's (asyncpg decodes a text of
40 MB in one call, 50 to 100 ms). In conftest's TIMED_MODULES: `make test` runs these alone,
so that no worker steals their CPU.
"""

from __future__ import annotations

import json
from typing import Final

from _lag import MAX_LAG, within
from persistence import Database, Run, TestResult, TestStatus, TestType, save_results, save_run
from persistence.report_common import read_run
from persistence.report_json_export import ctrf_text, jsonl_text
from persistence.report_junit_export import junit_text

_LONG_CHARS: Final = 40_000_000
"""Characters of the one long output: escaping it in one call held the loop 300 to 800 ms."""

_JUNIT_CHARS: Final = 8_000_000
"""Characters of the output the JUnit export writes: its escaping, in one call, held the loop
1.7 s for 40 MB, so about 340 ms for these 8 MB."""


def _long_output(chars: int = _LONG_CHARS) -> str:
    """One line of `chars` (40 MB), with what each format escapes (`<`, `&`, quotes, CR) in it.

    ASCII: reading a result checks that its text holds no lone surrogate, by encoding it
    unless it is ASCII, in one call that holds the loop too (50 to 250 ms for 40 MB).
    """
    unit = 'step 1 < 2 & "done" \r\t'
    return ("\x1b" + unit * (chars // len(unit) + 1))[:chars]


async def _a_run_of_one_long_output(db: Database, chars: int = _LONG_CHARS) -> int:
    """Save a run of one failed result whose output is `_long_output(chars)`; give the run's id."""
    run = await save_run(db, Run())
    assert run.id is not None
    result = TestResult(
        test_type=TestType.UNIT,
        status=TestStatus.FAILED,
        error_message="assert False",
        output=_long_output(chars),
        run_id=run.id,
        test_id="tests::test_loud",
    )
    await save_results(db, [result])
    return run.id


async def test_exporting_one_long_output_as_junit_shares_the_loop(db: Database) -> None:
    """Its XML escaping, in one call, held the loop 1.7 s for 40 MB of this text.

    The output here is of `_JUNIT_CHARS`, 8 MB: escaped in one call, about 340 ms. What is
    left is the one copy of the whole document, made once: 35 to 60 ms at 40 MB.
    """
    run, results = await read_run(db, await _a_run_of_one_long_output(db, _JUNIT_CHARS))
    text = await within(MAX_LAG, "the export", lambda: junit_text(run, results))
    assert text.count("&lt; 2 &amp; ") == _long_output(_JUNIT_CHARS).count("< 2 & ")


async def test_exporting_one_long_output_as_json_shares_the_loop(db: Database) -> None:
    """CTRF and JSON Lines: JSON's string encoding, in one call, held the loop 200 to 650 ms.

    The run is read once for both: each export is the work measured.
    """
    run, results = await read_run(db, await _a_run_of_one_long_output(db))
    expected = json.dumps(_long_output(), ensure_ascii=False)
    text = await within(MAX_LAG, "the CTRF export", lambda: ctrf_text(run, results))
    assert text.count(expected) == 1
    del text
    text = await within(MAX_LAG, "the JSON Lines export", lambda: jsonl_text(results))
    assert text.count(expected) == 1
