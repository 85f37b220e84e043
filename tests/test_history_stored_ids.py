"""The history questions refuse a test id that plain SQL stored past a result's rules.

The column holds any non-empty text, and on SQLite a blob: `compare_runs`, `flaky_tests` and
`slowest_tests` handed such an id on as it was (bytes, a NUL, 2,000 characters), the commands
that print them failed with a traceback, and the look-ups by test id refused the very id they
gave. Each now raises a ValidationError on `stored row.test_results.test_id`.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Final

import pytest

from persistence import Run, ValidationError, compare_runs, flaky_tests, save_run
from persistence import slowest_tests as slowest
from test_plain_ids import plain_sql

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from persistence import Database

T0: Final = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


async def _two_runs_of(db: Database, test_id: str) -> tuple[int, int]:
    """Two runs of one commit, where the test passed, then failed: flaky, and a new failure."""
    runs = []
    for index, status in enumerate(("passed", "failed")):
        at = T0 + dt.timedelta(minutes=index)
        run = await save_run(db, Run(started_at=at, labels={"commit": "c"}))
        assert run.id is not None
        runs.append(run.id)
        created = (at + dt.timedelta(seconds=1)).isoformat(timespec="microseconds")
        await plain_sql(
            db.url,
            "INSERT INTO test_results (test_type, status, execution_time, created_at, run_id,"  # noqa: S608  # the test's own values
            f" test_id) VALUES ('unit', '{status}', 1.0, '{created}', {run.id}, {test_id})",
        )
    return runs[0], runs[1]


async def _each_question_refuses(
    db: Database, test_id: str, reason: str, begins: str = "'x"
) -> None:
    """Compared, flaky and slowest: each names the column, what is wrong, and how the id begins.

    A listing names the row's id; the questions' rows hold many results, and named none: the
    id's start finds them (`WHERE test_id LIKE ...`).
    """
    base, head = await _two_runs_of(db, test_id)
    questions: list[Callable[[], Awaitable[object]]] = [
        lambda: compare_runs(db, base, head),
        lambda: flaky_tests(db, T0 - dt.timedelta(days=1)),
        lambda: slowest(db),
    ]
    for question in questions:
        with pytest.raises(ValidationError, match=r"stored row\.test_results\.test_id") as error:
            await question()
        assert reason in str(error.value)
        assert f"the results holding it have a test id beginning {begins}" in str(error.value)


async def test_each_question_refuses_a_test_id_of_2000_characters(db: Database) -> None:
    """Past the 1,024 bytes a result's test id may have, on both engines."""
    await _each_question_refuses(db, "'" + "x" * 2000 + "'", "at most 1024 bytes")


@pytest.mark.parametrize(
    ("test_id", "reason"),
    [("X'6869'", "expected str, got bytes"), ("'a' || char(0) || 'b'", "NUL")],
    ids=["a blob", "a NUL"],
)
async def test_sqlite_questions_refuse_a_blob_or_a_nul_for_a_test_id(
    sqlite_db: Database, test_id: str, reason: str
) -> None:
    """What PostgreSQL's text cannot hold, SQLite's column takes."""
    begins = "b'hi'" if test_id.startswith("X") else "'a"
    await _each_question_refuses(sqlite_db, test_id, reason, begins)
