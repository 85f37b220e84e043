"""A forked child that calls through its parent's SQLite database is told so, at once.

The README's one `asyncio.run()` a call works on SQLite, and a pool of forked workers (a
stress runner's) inherits the database: each worker's write waited for good for a writer
thread that only the parent has, past its own `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import warnings
from pathlib import Path

import pytest

from persistence import (
    DatabaseError,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    close_database,
    migrate,
    open_database,
    save_result,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")


def _result() -> TestResult:
    return TestResult(test_type=TestType.STRESS, status=TestStatus.PASSED)


@pytest.mark.parametrize("child_loop", ["new", "the parent's"])
def test_a_forked_child_calling_through_its_parents_database_is_refused(
    tmp_path: Path, child_loop: str
) -> None:
    """The child's write fails with DatabaseError naming the parent; the parent goes on.

    On the parent's own loop (a loop run with `run_until_complete`, an `asyncio.Runner`
    kept), the call was not refused either: it found its loop the database's.
    """
    with asyncio.Runner() as runner:
        _refused_in_a_child(tmp_path, runner, same_loop=child_loop != "new")


def _refused_in_a_child(tmp_path: Path, runner: asyncio.Runner, *, same_loop: bool) -> None:
    db = runner.run(open_database(tmp_path / "app.db"))
    try:
        runner.run(migrate(db))
        runner.run(save_result(db, _result()))
        reading, writing = os.pipe()
        with warnings.catch_warnings():  # a fork beside threads: this child calls none of them
            warnings.simplefilter("ignore", DeprecationWarning)
            child = os.fork()
        if child == 0:  # pragma: no cover  # the child: says what happened, then ends at once
            said = b"wrote"
            try:

                async def bounded() -> None:
                    async with asyncio.timeout(5):
                        await save_result(db, _result())

                runner.run(bounded()) if same_loop else asyncio.run(bounded())
            except DatabaseError as error:
                said = str(error).encode()
            except BaseException as error:  # noqa: BLE001  # told to the parent
                said = repr(error).encode()
            os.write(writing, said[:4000])
            os._exit(0)
        os.close(writing)
        ready, _, _ = select.select([reading], [], [], 15)
        told = os.read(reading, 4000).decode() if ready else "nothing within 15 s"
        os.close(reading)
        if not ready:  # a child waiting for good: ended here
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        assert f"was opened in process {os.getpid()}" in told, told
        runner.run(save_result(db, _result()))
        assert len(runner.run(all_results(db))) == 2
    finally:
        runner.run(close_database(db))
