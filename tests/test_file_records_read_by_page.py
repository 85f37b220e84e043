"""`all_file_records` reads a page at a time, as every `all_...` function does (READ_PAGE).

It read the whole table in one query: every row of the driver alive at once, long enough to
reach the oldest GC generation, and all of them mapped in one go.
"""

from __future__ import annotations

from typing import Any

import pytest

from persistence import Database, all_file_records
from persistence._loans import run_query
from persistence._paging import READ_PAGE
from test_plain_ids import plain_sql

ROWS = 2 * READ_PAGE + 500
TIES = 700
"""Access times to share out: most rows share theirs with others, so the id breaks ties."""


def _insert_rows(database_url: str) -> str:
    """One statement that stores ROWS records, as another program would."""
    if "://" in database_url:
        return (
            "INSERT INTO file_records (path, size, hash, created_at, accessed_at, metadata) "  # noqa: S608  # the test's own SQL
            "SELECT 'f' || i, i, '', '2026-01-01+00', "
            f"timestamptz '2026-01-01+00' + (i % {TIES}) * interval '1 minute', '{{}}' "
            f"FROM generate_series(1, {ROWS}) AS i"
        )
    return (
        f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "  # noqa: S608  # the test's own SQL
        "INSERT INTO file_records (path, size, hash, created_at, accessed_at, metadata) "
        "SELECT 'f' || i, i, '', '2026-01-01T00:00:00.000000+00:00', "
        "strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', '2026-01-01', "
        f"'+' || (i % {TIES}) || ' minutes'), '{{}}' FROM n"
    )


async def test_all_file_records_reads_a_page_at_a_time(
    db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No query gives more than READ_PAGE rows; the whole table still comes, in its order."""
    await plain_sql(database_url, _insert_rows(database_url))
    fetched: list[int] = []

    async def counted(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401  # run_query's own
        rows = await run_query(*args, **kwargs)
        if isinstance(rows, list):
            fetched.append(len(rows))
        return rows

    monkeypatch.setattr("persistence.file_records.run_query", counted)
    records = await all_file_records(db)
    assert max(fetched) <= READ_PAGE
    # More than a page is read again from its start in one snapshot: the first page twice.
    assert sum(fetched) == len(records) + READ_PAGE == ROWS + READ_PAGE
    keys = [(record.accessed_at, record.id or 0) for record in records]
    assert keys == sorted(keys, reverse=True)
    assert len({record.id for record in records}) == ROWS
