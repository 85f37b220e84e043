"""A misspelt parameter name is rejected."""

from persistence.queries import Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    await q.get_test_result(conn, idd=1)  # E: Unexpected keyword argument "idd"
    await q.delete_file_record_by_path(conn, pth="a")  # E: Unexpected keyword argument "pth"
