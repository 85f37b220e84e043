"""SyncRunner keeps the types of what it runs: each result is inferred, each argument checked."""

from __future__ import annotations

from typing import assert_type

from persistence import Database, SyncRunner, TestResult, connect, find_result, get_result


def use(runner: SyncRunner, db: Database) -> int:
    """Each call through the runner, right and wrong."""
    assert_type(runner.call(get_result, db, 1), TestResult)
    assert_type(runner.run(find_result(db, 1)), TestResult | None)
    assert_type(runner.enter(connect("app.db")), Database)
    wrong: int = runner.call(get_result, db, 1)  # E: Incompatible types in assignment
    runner.call(get_result, db, "1")  # E: has incompatible type "str"; expected "int"
    runner.call(get_result, db, 1, extra=2)  # E: Unexpected keyword argument "extra"
    runner.call(get_result, db)  # E: Missing positional argument
    return wrong
