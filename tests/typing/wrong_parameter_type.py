"""A parameter of the wrong type is rejected."""

import datetime as dt

from persistence.queries import Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    await q.get_test_result(conn, id="1")  # E: Argument "id" to "get_test_result" of "Queries" has incompatible type "str"; expected "int"
    await q.delete_test_results_before_batch(conn, cutoff=dt.date(2026, 1, 1), batch_size=1)  # E: incompatible type "date"; expected "datetime"
    await q.insert_test_results(conn, [{"test_type": 1}])  # E: Missing keys
    await q.insert_test_results(conn, rows=[])  # E: Unexpected keyword argument "rows"
    NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    q.list_test_results_by_type(conn, test_types="unit", created_from=NOW, created_until=NOW, cursor_created_at=NOW, cursor_id=0, page_size=1)  # E: Argument "test_types" to "list_test_results_by_type" of "Queries" has incompatible type "str"; expected "list[str]"
