"""A misspelt query name is rejected."""

from persistence.queries import Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    await q.get_test_reslt(conn, id=1)  # E: "Queries" has no attribute "get_test_reslt"
    await q.GetTestResult(conn, id=1)  # E: "Queries" has no attribute "GetTestResult"
