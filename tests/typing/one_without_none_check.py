"""A :one result used without a None check is rejected; so is a :many not awaited."""

import datetime as dt

from persistence.queries import Queries
from persistence.queries import Connection

NOW = dt.datetime.now(dt.UTC)


async def use(q: Queries, conn: Connection) -> int:
    row = await q.get_file_record(conn, id=1)
    print(row.path)  # E: Item "None" of "FileRecordsRow | None" has no attribute "path"
    for record in q.list_file_records(conn, cursor_accessed_at=NOW, cursor_id=0, page_size=1):  # E: "Coroutine[Any, Any, list[FileRecordsRow]]" has no attribute "__iter__"
        print(record)
    return row.size  # E: Item "None" of "FileRecordsRow | None" has no attribute "size"
