"""A :one result used without a None check is rejected; so is awaiting a :many."""

from persistence._queries import Queries
from persistence._sqltypes import Connection


async def use(q: Queries, conn: Connection) -> int:
    row = await q.get_file_record(conn, id=1)
    print(row["path"])  # E: Value of type "FileRecordsRow | None" is not indexable
    await q.list_file_records(conn)  # E: Incompatible types in "await"
    return row["size"]  # E: Value of type "FileRecordsRow | None" is not indexable
