"""None is rejected where the column is NOT NULL, and accepted where it may be NULL."""

import datetime as dt

from persistence.queries import InsertTestResultsParams, Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    await q.delete_test_results_before_batch(conn, cutoff=None, batch_size=1)  # E: Argument "cutoff" to "delete_test_results_before_batch" of "Queries" has incompatible type "None"
    await q.forget_migration(conn, version=None)  # E: incompatible type "None"; expected "int"
    row: InsertTestResultsParams = {
        "test_type": None,  # E: has type "None", TypedDict item "test_type" has type "str"
        "status": "passed",
        "execution_time": 0.0,
        "memory_usage": 0,
        "test_cases_passed": 0,
        "test_cases_total": 0,
        "error_message": None,
        "output": None,
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "metadata": {},
        "run_id": None,
        "test_id": None,
    }
    await q.insert_test_results(conn, [row])
