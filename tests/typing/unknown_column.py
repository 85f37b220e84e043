"""A column the query does not return, or a dict method on a row, is rejected."""

from persistence.queries import Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    row = await q.get_test_result(conn, id=1)
    if row is not None:
        print(row.missing)  # E: "TestResultsRow" has no attribute "missing"
        print(row.get("id"))  # E: "TestResultsRow" has no attribute "get"
    for stat in await q.test_result_stats(conn):
        print(stat.id)  # E: "TestResultStatsRow" has no attribute "id"
