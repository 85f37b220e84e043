"""A -0.0 that SQLite kept inside stored JSON (rows from before the models took it as 0.0).

The models write 0.0 for it now, but SQLite keeps JSON text as written: metadata and labels
stored by an older version of the package, or by plain SQL, still held `-0.0`, and came back
as -0.0 where PostgreSQL's jsonb gives 0.0. Every read of stored JSON now gives 0.0.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from pathlib import Path
from typing import Final

from persistence import (
    Database,
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    all_results,
    connect,
    get_config_value,
    get_file_record_by_path,
    get_result,
    get_run,
    migrate,
    save_file_record,
    save_result,
    save_run,
)
from persistence.cache import open_memory_cache, open_redis_cache
from test_plain_ids import plain_sql

STORED: Final = '{"f":-1.5,"l":[-0.0,{"m":-0e0}],"z":-0.0}'
"""JSON text as SQLite kept it: a negative zero at each depth, and a negative float that stays."""
ROWS: Final = 5  # enough for the reads of many rows, which decode a page in one pass


def _signs(value: object) -> list[float]:
    """Give the sign of each float in a JSON value, depth first, an object's by its keys."""
    if isinstance(value, dict):
        return [sign for _, item in sorted(value.items()) for sign in _signs(item)]
    if isinstance(value, list):
        return [sign for item in value for sign in _signs(item)]
    return [math.copysign(1.0, value)] if isinstance(value, float) else []


async def test_a_negative_zero_kept_in_stored_json_reads_as_zero(tmp_path: Path) -> None:
    """Read alone and many at once, metadata and labels give 0.0, and -1.5 stays."""
    expected = [-1.0, 1.0, 1.0, 1.0]  # f, l[0], l[1].m, z
    file = tmp_path / "app.db"
    async with connect(file) as db:
        await migrate(db)
        run = await save_run(db, Run())
        assert run.id is not None
        unit = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, run_id=run.id)
        ids = [(await save_result(db, unit)).id for _ in range(ROWS)]
        await save_file_record(db, FileRecord(path="a/b"))
        with contextlib.closing(sqlite3.connect(file)) as plain, plain:  # as an older version
            plain.execute("UPDATE test_results SET metadata = ?", (STORED,))
            plain.execute("UPDATE runs SET labels = ?", (STORED,))
            plain.execute("UPDATE file_records SET metadata = ?", (STORED,))
        read = [
            (await get_run(db, run.id)).labels,
            (await get_file_record_by_path(db, "a/b")).metadata,
            *[(await get_result(db, id_)).metadata for id_ in ids if id_ is not None],
            *[result.metadata for result in await all_results(db)],
        ]
    assert len(read) == 2 + 2 * ROWS
    for value in read:
        assert _signs(value) == expected, value


async def test_a_negative_zero_in_a_stored_config_value_reads_as_zero_by_every_path(
    database_url: str, db: Database, redis_url: str, namespace: str
) -> None:
    """A list or dict config value gives 0.0 read directly, cached in memory and in Redis.

    It gave -0.0 from the database and the memory tier, and 0.0 once Redis held it: the entry
    is rebuilt through the converter, which writes 0.0. A float value keeps its sign
    everywhere, as the converter keeps it.
    """
    at = "'2026-05-01T00:00:00.000000+00:00'"
    rows = [("d", STORED, "dict"), ("l", "[-0.0]", "list"), ("f", "-0.0", "float")]
    values = ", ".join(f"('p', '{key}', '{text}', '{kind}', {at})" for key, text, kind in rows)
    # The test's own constants, never input.
    insert = f"INSERT INTO config_entries (section, key, value, type, updated_at) VALUES {values}"  # noqa: S608
    await plain_sql(database_url, insert)
    memory = await open_memory_cache(db)
    tiered = await open_redis_cache(db, redis_url, namespace=namespace, local_size=0)
    try:
        dicts = [  # read directly, in memory, then from Redis: a miss, and a hit
            await get_config_value(db, "p", "d", dict),
            await memory.get_config_value("p", "d", dict),
            await tiered.get_config_value("p", "d", dict),
            await tiered.get_config_value("p", "d", dict),
        ]
        lists = [
            await get_config_value(db, "p", "l", list),
            await memory.get_config_value("p", "l", list),
            await tiered.get_config_value("p", "l", list),
            await tiered.get_config_value("p", "l", list),
        ]
        floats = [
            await get_config_value(db, "p", "f", float),
            await memory.get_config_value("p", "f", float),
            await tiered.get_config_value("p", "f", float),
            await tiered.get_config_value("p", "f", float),
        ]
        assert [_signs(value) for value in dicts] == [[-1.0, 1.0, 1.0, 1.0]] * 4, dicts
        assert [_signs(value) for value in lists] == [[1.0]] * 4, lists
        assert [_signs(value) for value in floats] == [[-1.0]] * 4, floats
    finally:
        await memory.close()
        await tiered.close()
