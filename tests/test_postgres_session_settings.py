"""The package's own sessions on a PostgreSQL database whose settings differ from the defaults."""

from __future__ import annotations

import asyncpg

from persistence import (
    FileRecord,
    FileRecordFilter,
    connect,
    list_file_records,
    migrate,
    save_file_record,
)


async def test_globs_match_on_a_database_reading_backslashes_as_escapes(postgres_url: str) -> None:
    r"""A database set to standard_conforming_strings = off still runs the package's queries.

    The glob query escapes `\`, `%` and `_` with literals such as `'\'`; with the setting off,
    the server read `'\', '\\'` as one string and refused the query, or matched other paths.
    Each pooled connection now asks for the setting on, as the SQL is written.
    """
    name = postgres_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET standard_conforming_strings = off')
    finally:
        await admin.close()
    async with connect(postgres_url) as db:
        await migrate(db)
        for path in ("a_b.txt", "axb.txt", "a\\b.txt", "a%b.txt"):
            await save_file_record(db, FileRecord(path=path))
        for glob, expected in (
            ("a_b.*", ["a_b.txt"]),
            ("a\\b.*", ["a\\b.txt"]),
            ("a%b.*", ["a%b.txt"]),
            ("a?b.txt", ["a%b.txt", "a\\b.txt", "a_b.txt", "axb.txt"]),
        ):
            page = await list_file_records(db, FileRecordFilter(path_glob=glob))
            assert [record.path for record in page.items] == expected, glob
    server = await asyncpg.connect(postgres_url)
    try:
        assert await server.fetchval("SHOW standard_conforming_strings") == "off"
    finally:
        await server.close()
