"""A column the query does not return is rejected."""

from persistence._queries import Queries
from persistence._sqltypes import Connection


async def use(q: Queries, conn: Connection) -> None:
    row = await q.get_test_result(conn, id=1)
    if row is not None:
        print(row["missing"])  # E: TypedDict "TestResultsRow" has no key "missing"
    async for stat in q.test_result_stats(conn):
        print(stat["id"])  # E: TypedDict "TestResultStatsRow" has no key "id"
