"""A missing parameter, or one passed by position, is rejected."""

from persistence.queries import Queries
from persistence.queries import Connection


async def use(q: Queries, conn: Connection) -> None:
    await q.get_config_entry_by_key(conn, section="ui")  # E: Missing named argument "key"
    await q.get_test_result(conn, 1)  # E: Too many positional arguments
