"""A file listing by a glob over long paths leaves the event loop free, on SQLite.

SQLite's GLOB compares a path with the pattern in one step of its engine, and a pattern of
long literal runs after a `*` compares each run at every place of the path: over paths of
1,000 characters, a few milliseconds a path, where the progress handler that keeps the loop's
budget looks only every 1,000 steps, some 60 paths. The listing runs beside the benchmark's
lag probe.
"""

from __future__ import annotations

from _lag import MAX_STATEMENT_LAG, within
from persistence import Database, FileRecord, FileRecordFilter, list_file_records, save_file_record

_PATHS = 60
_PATH_CHARS = 1_000


async def test_a_glob_over_long_paths_leaves_the_loop_free(sqlite_db: Database) -> None:
    """A glob of a long literal run after `*`, matching no path: every path is compared."""
    for number in range(_PATHS):
        head = f"{number:04d}/"
        await save_file_record(sqlite_db, FileRecord(path=head + "a" * (_PATH_CHARS - len(head))))
    pattern = "*" + "a" * 900 + "b"
    page = await within(
        MAX_STATEMENT_LAG,
        "the glob",
        lambda: list_file_records(sqlite_db, FileRecordFilter(path_glob=pattern)),
        collector=True,
    )
    assert page.items == ()
