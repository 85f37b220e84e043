"""A user's own chain of migrations beside the package's, on both engines."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from _migration_helpers import write_both
from persistence import (
    Database,
    MigrationError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    all_results,
    connect,
    get_result,
    migrate,
    migration_status,
    migrations,
    save_result,
    transaction,
)
from persistence._backend import ScriptStatement
from persistence._migration_files import MIGRATION_FILE_LIMIT
from persistence._migration_scripts import checked_statements
from persistence.database import Engine
from persistence.migrations import Chain, Migration, discover_migrations, migrations_folder

VIEW = (
    "-- a report over the package's own table\n"
    "CREATE VIEW failed_results AS\n"
    "SELECT id, test_type FROM test_results WHERE status = 'failed';\n"
)
NOTES = "CREATE TABLE my_notes (id integer PRIMARY KEY, body text NOT NULL);\n"


@pytest.fixture(name="mine")
def user_folder(tmp_path: Path) -> Path:
    """A user's migrations folder holding one migration per engine."""
    folder = tmp_path / "my_migrations"
    write_both(folder, "0001_failed_view.sql", VIEW)
    return folder


@pytest.fixture(name="empty")
async def empty_database(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with nothing applied, of each engine."""
    async with connect(database_url) as db:
        yield db


async def _rows(db: Database, statement: str) -> list[tuple[object, ...]]:
    """Run one query over a connection of the test's own, bypassing the package."""
    if db.engine.value == "sqlite":
        with closing(sqlite3.connect(db.url)) as lite:
            return [tuple(row) for row in lite.execute(statement)]
    pg = await asyncpg.connect(db.url)
    try:
        return [tuple(row) for row in await pg.fetch(statement)]
    finally:
        await pg.close()


async def _tables(db: Database) -> set[str]:
    if db.engine.value == "sqlite":
        query = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
    else:
        query = (
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "UNION SELECT viewname FROM pg_views WHERE schemaname = 'public'"
        )
    return {str(row[0]) for row in await _rows(db, query)}


async def test_the_users_chain_runs_after_the_packages(empty: Database, mine: Path) -> None:
    """`migrate(db, folder)` applies the package's chain, then the user's, each in its history."""
    packaged = discover_migrations(migrations_folder(empty.engine))
    applied = await migrate(empty, mine)
    assert [(m.chain, m.version) for m in applied] == [
        *((Chain.PACKAGE, m.version) for m in packaged),
        (Chain.USER, 1),
    ]
    assert "failed_results" in await _tables(empty)
    assert await _rows(empty, "SELECT version, name FROM persistence_user_migrations") == [
        (1, "0001_failed_view")
    ]
    versions = await _rows(empty, "SELECT version FROM persistence_migrations ORDER BY version")
    assert [row[0] for row in versions] == [m.version for m in packaged]
    status = await migration_status(empty, mine)
    assert status.up_to_date
    assert status.user is not None
    assert [(a.chain, a.name) for a in status.user.applied] == [(Chain.USER, "0001_failed_view")]
    assert await migrate(empty, mine) == []


async def test_a_migrated_database_takes_the_users_chain(empty: Database, mine: Path) -> None:
    """A database the package already migrated takes the user's chain without complaint."""
    await migrate(empty)
    assert "persistence_user_migrations" not in await _tables(empty)
    before = await migration_status(empty, mine)
    assert before.user is not None
    assert [m.name for m in before.user.pending] == ["0001_failed_view"]
    assert not before.up_to_date
    assert [m.name for m in await migrate(empty, mine)] == ["0001_failed_view"]
    write_both(mine, "0002_notes.sql", NOTES)
    assert [m.name for m in await migrate(empty, mine)] == ["0002_notes"]
    assert (await migration_status(empty)).user is None  # no folder, no user chain reported


async def test_an_edited_user_file_stops_the_run_until_accepted(
    empty: Database, mine: Path
) -> None:
    """Drift in the user's chain names the file and the user's accept option."""
    await migrate(empty, mine)
    write_both(mine, "0001_failed_view.sql", VIEW + "-- an edit\n")
    with pytest.raises(MigrationError, match=r"0001_failed_view\.sql was edited.*--accept-user"):
        await migrate(empty, mine)
    with pytest.raises(MigrationError, match=r"0001_failed_view\.sql was edited"):
        await migrate(empty, mine, accept=[1])  # the package's 0001 is another migration
    with pytest.raises(MigrationError, match="cannot accept your migration 7"):
        await migrate(empty, mine, accept_user=[1, 7])  # all or nothing: 1 stays drifted
    status = await migration_status(empty, mine)
    assert status.user is not None
    assert [d.applied.version for d in status.user.drifted] == [1]
    assert await migrate(empty, mine, accept_user=[1]) == []
    assert (await migration_status(empty, mine)).up_to_date


async def test_a_deleted_user_file_says_whose_it_was(empty: Database, mine: Path) -> None:
    """A user migration applied but no longer in the folder is called the user's, not the code's."""
    write_both(mine, "0002_notes.sql", NOTES)
    await migrate(empty, mine)
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0002_notes.sql").unlink()
    with pytest.raises(MigrationError, match=r"your migration 0002_notes .*--accept-user 2"):
        await migrate(empty, mine)
    assert await migrate(empty, mine, accept_user=[2]) == []
    assert await _rows(empty, "SELECT version FROM persistence_user_migrations") == [(1,)]


async def test_a_bad_user_folder_is_refused_before_anything_runs(
    empty: Database, tmp_path: Path
) -> None:
    """A one-engine folder, a missing folder or a bad file stop migrate with nothing written."""
    one_engine = tmp_path / "flat"
    one_engine.mkdir()
    (one_engine / "0001_x.sql").write_text(NOTES, encoding="utf-8")
    with pytest.raises(MigrationError, match=rf"has no {empty.engine.value}/ folder"):
        await migrate(empty, one_engine)
    with pytest.raises(MigrationError, match="does not exist"):
        await migrate(empty, tmp_path / "nowhere")
    (tmp_path / "a-file").write_text("", encoding="utf-8")  # said not to exist, there
    with pytest.raises(MigrationError, match=r"a-file is not a folder$"):
        await migrate(empty, tmp_path / "a-file")
    sneaky = tmp_path / "sneaky"
    write_both(sneaky, "0001_sneaky.sql", "CREATE TABLE s (id integer);\nCOMMIT;\n")
    with pytest.raises(MigrationError, match=r"0001_sneaky\.sql:2: COMMIT is not allowed"):
        await migrate(empty, sneaky)
    with pytest.raises(ValidationError, match="folder"):
        await migrate(empty, "my_migrations")  # type: ignore[arg-type]  # a str, refused clearly
    with pytest.raises(ValidationError, match="package_folder"):
        await migrate(empty, package_folder="sql")  # type: ignore[arg-type]  # a str too
    with pytest.raises(ValidationError, match="accept_user"):
        await migrate(empty, accept_user=[1])
    assert await _tables(empty) <= {"sqlite_sequence"}


async def test_a_user_file_may_not_lead_out_of_the_folder(
    empty: Database, mine: Path, tmp_path: Path
) -> None:
    """A user migration that is a symlink out of the migrations folder is refused, unread.

    Read, its text ran as SQL, and its errors and `migrate --dry-run` printed it. A link to a
    file inside the folder works, and so does an engine folder that is itself a link.
    """
    outside = tmp_path / "outside.sql"
    outside.write_text("CREATE TABLE leaked (id integer);\n", encoding="utf-8")
    shared = mine / "shared" / "notes.sql"
    shared.parent.mkdir()
    shared.write_text(NOTES, encoding="utf-8")
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0002_notes.sql").symlink_to(outside)
    with pytest.raises(MigrationError, match=r"0002_notes\.sql leads out of"):
        await migrate(empty, mine)
    assert await _tables(empty) <= {"sqlite_sequence"}
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0002_notes.sql").unlink()
        (mine / engine / "0002_notes.sql").symlink_to(shared)
    assert [m.name for m in await migrate(empty, mine)][-2:] == ["0001_failed_view", "0002_notes"]
    real, linked = tmp_path / "real", tmp_path / "linked"
    write_both(real, "0001_failed_view.sql", VIEW)
    write_both(real, "0002_notes.sql", NOTES)
    linked.mkdir()
    for engine in ("sqlite", "postgres"):
        (linked / engine).symlink_to(real / engine, target_is_directory=True)
    assert await migrate(empty, linked) == []
    assert (await migration_status(empty, linked)).up_to_date


async def test_a_file_past_the_limit_is_refused_unread_whole(empty: Database, mine: Path) -> None:
    """A migration of over 64 MiB is refused by name, having read no more than the limit.

    Before, it was read whole: a file of gigabytes ran the process out of memory, and
    `persistence migrate` ended in a traceback.
    """
    for engine in ("sqlite", "postgres"):
        with (mine / engine / "0002_load.sql").open("wb") as file:
            file.truncate(MIGRATION_FILE_LIMIT + 1)  # sparse: no disk, read as NULs
    with pytest.raises(MigrationError, match=r"0002_load\.sql is over 64 MiB"):
        await migrate(empty, mine)
    assert await _tables(empty) <= {"sqlite_sequence"}
    for engine in ("sqlite", "postgres"):
        with (mine / engine / "0002_load.sql").open("r+b") as file:
            file.truncate(MIGRATION_FILE_LIMIT)  # at the limit: read, and refused for its NULs
    with pytest.raises(MigrationError, match=r"0002_load\.sql holds a NUL"):
        await migrate(empty, mine)


async def test_a_symlink_loop_in_the_folder_is_named(empty: Database, mine: Path) -> None:
    """A migration file that is a link to itself is refused by name, with nothing run.

    Python 3.11's `Path.resolve` raised RuntimeError on the loop, which `migrate` let out and
    the command line printed as a traceback.
    """
    for engine in ("sqlite", "postgres"):
        (mine / engine / "0002_loop.sql").symlink_to("0002_loop.sql")
    with pytest.raises(MigrationError, match=r"0002_loop\.sql cannot be read") as caught:
        await migrate(empty, mine)
    assert caught.value.migration == "0002_loop.sql"
    assert await _tables(empty) <= {"sqlite_sequence"}


SESSION_SETTINGS = (
    "CREATE TEMPORARY TABLE scratch (id integer);\n"
    "SET default_transaction_read_only = on;\n"
    "SET search_path = pg_catalog, public;\n"
)


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_a_migrations_session_settings_stay_in_it(
    postgres_url: str, mine: Path, pool_size: int
) -> None:
    """What a user migration sets for its session never reaches a later call (PostgreSQL).

    A plain SET in a transaction that commits lasts for the session: the pooled connection
    came back read-only, and creating its tables in pg_catalog, to the calls and migrations
    after it.
    """
    write_both(mine, "0002_settings.sql", SESSION_SETTINGS)
    write_both(mine, "0003_notes.sql", NOTES)
    async with connect(postgres_url, pool_size=pool_size) as db:
        applied = await migrate(db, mine)
        assert [m.name for m in applied][-2:] == ["0002_settings", "0003_notes"]
        saved = await asyncio.gather(
            *(
                save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
                for _ in range(6)
            )
        )
        assert len({result.id for result in saved}) == 6
        assert len(await all_results(db)) == 6
        write_both(mine, "0004_more.sql", "CREATE TABLE more_notes (id integer);\n")
        assert [m.name for m in await migrate(db, mine)] == ["0004_more"]


RETYPED_HISTORY = "ALTER TABLE persistence_user_migrations ALTER COLUMN duration_ms TYPE real;\n"
RETYPED_RESULTS = "ALTER TABLE test_results ALTER COLUMN execution_time TYPE real;\n"


@pytest.mark.parametrize("pool_size", [1, 3])
async def test_a_column_a_migration_retyped_is_read_anew_in_transactions(
    postgres_url: str, mine: Path, pool_size: int
) -> None:
    """What pooled connections prepared before a migration retyped a column is prepared anew.

    asyncpg keeps each connection's prepared statements, and PostgreSQL fails one whose
    result's type changed ("cached statement plan is invalid"). Outside a transaction asyncpg
    prepares it again; inside one it failed: the next migration's read of its history, and a
    program's block after `migrate` (asyncpg's pool lends its last connection back first).
    """
    write_both(mine, "0002_retype_history.sql", RETYPED_HISTORY)
    write_both(mine, "0003_notes.sql", NOTES)
    async with connect(postgres_url, pool_size=pool_size) as db:
        applied = await migrate(db, mine)
        assert [m.name for m in applied][-2:] == ["0002_retype_history", "0003_notes"]
        typed = "SELECT DISTINCT pg_typeof(duration_ms)::text FROM persistence_user_migrations"
        assert await _rows(db, typed) == [("real",)]
        timed = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, execution_time=0.5)
        saved = await save_result(db, timed)
        assert saved.id is not None
        async with transaction(db) as block:
            assert (await get_result(block, saved.id)).execution_time == 0.5
        write_both(mine, "0004_retype_results.sql", RETYPED_RESULTS)
        assert [m.name for m in await migrate(db, mine)] == ["0004_retype_results"]
        async with transaction(db) as block:
            assert (await get_result(block, saved.id)).execution_time == 0.5


@pytest.mark.parametrize(
    "pragma",
    [
        "PRAGMA query_only = 1;",
        "pragma locking_mode=EXCLUSIVE;",
        "PRAGMA main.ignore_check_constraints = ON;",
        '/* a note */ PRAGMA "writable_schema"(1);',
        "PRAGMA busy_timeout = 0;",
        "PRAGMA journal_mode = DELETE;",
        "EXPLAIN PRAGMA ignore_check_constraints = ON;",
        "explain query plan /* a note */ PRAGMA query_only = 1;",
    ],
)
async def test_a_pragma_that_outlives_its_migration_is_refused(
    tmp_path: Path, mine: Path, pragma: str
) -> None:
    """A PRAGMA that would outlive its migration is refused before anything runs (SQLite).

    One that sets the package's connection stayed set after the migration: `query_only` left
    every later write of the process failing, and `locking_mode` kept every other connection
    out. One that cannot take effect in a transaction failed late or did nothing. The
    database's own, such as `user_version`, and questions such as `foreign_key_check`, apply.
    Under `EXPLAIN` SQLite still prepares a PRAGMA, which takes effect: it passed the check.
    """
    (mine / "sqlite" / "0002_pragma.sql").write_text(f"{pragma}\n{NOTES}", encoding="utf-8")
    async with connect(tmp_path / "app.db") as db:
        with pytest.raises(
            MigrationError, match=r"0002_pragma\.sql:\d+: PRAGMA \w+ is not allowed"
        ):
            await migrate(db, mine)
        assert await _tables(db) <= {"sqlite_sequence"}
        own = "PRAGMA user_version = 7;\nPRAGMA foreign_key_check;\nPRAGMA table_info(my_notes);\n"
        (mine / "sqlite" / "0002_pragma.sql").write_text(NOTES + own, encoding="utf-8")
        assert [m.name for m in await migrate(db, mine)][-1] == "0002_pragma"
        assert (
            await save_result(db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
        ).id
        assert await _rows(db, "PRAGMA user_version") == [(7,)]


@pytest.mark.parametrize(
    ("left", "refused"),
    [
        ("ATTACH DATABASE ':memory:' AS other;", "ATTACH is not allowed"),
        ("attach ':memory:' as other;\nDETACH other;", "ATTACH is not allowed"),
        ("EXPLAIN ATTACH DATABASE ':memory:' AS other;", "ATTACH is not allowed"),
        ("CREATE TEMP TABLE scratch (id integer);", "leaves the temporary table scratch"),
        (
            (
                "CREATE TEMPORARY TRIGGER mark AFTER INSERT ON test_results "
                "BEGIN UPDATE test_results SET output = 'marked' WHERE id = new.id; END;"
            ),
            "leaves the temporary trigger mark",
        ),
    ],
)
async def test_a_migration_leaves_nothing_on_the_connection(
    tmp_path: Path, mine: Path, left: str, refused: str
) -> None:
    """An attached database or a temporary object would outlive its migration: refused (SQLite).

    Both stayed on the package's connection: a temporary trigger fired on the process's later
    writes, and only until it restarted. A temporary table dropped by its migration is fine.
    """
    (mine / "sqlite" / "0002_left.sql").write_text(f"{left}\n{NOTES}", encoding="utf-8")
    async with connect(tmp_path / "app.db") as db:
        await migrate(db)
        with pytest.raises(MigrationError, match=rf"0002_left\.sql:\d*:? ?.*{refused}"):
            await migrate(db, mine)
        assert "my_notes" not in await _tables(db)
        saved = await save_result(
            db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, output="x")
        )
        assert [result.output for result in await all_results(db)] == [saved.output]
        dropped = "CREATE TEMP TABLE scratch (id integer);\nDROP TABLE scratch;\n"
        (mine / "sqlite" / "0002_left.sql").write_text(dropped + NOTES, encoding="utf-8")
        assert [m.name for m in await migrate(db, mine)][-1] == "0002_left"


async def test_a_failing_user_migration_keeps_the_packages(empty: Database, mine: Path) -> None:
    """A user migration that fails rolls back alone; the package's chain stays applied."""
    write_both(mine, "0002_broken.sql", "CREATE TABLE half (id integer);\nSELECT * FROM nowhere;\n")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql") as raised:
        await migrate(empty, mine)
    said = '0002_broken.sql:2: in the statement starting "SELECT * FROM nowhere": '
    assert str(raised.value).startswith(said), str(raised.value)
    assert (raised.value.migration, raised.value.line) == ("0002_broken", 2)
    status = await migration_status(empty, mine)
    assert status.user is not None
    assert [a.version for a in status.user.applied] == [1]
    assert [m.version for m in status.user.pending] == [2]
    assert status.pending == ()
    assert "half" not in await _tables(empty)


async def test_two_runners_apply_each_user_migration_once(database_url: str, mine: Path) -> None:
    """Two runners with the same user chain at once: every migration is recorded once."""
    for number in range(2, 6):
        write_both(mine, f"{number:04d}_t{number}.sql", f"CREATE TABLE t{number} (id integer);\n")
    async with connect(database_url) as first, connect(database_url) as second:
        results = await asyncio.gather(migrate(first, mine), migrate(second, mine))
        names = sorted(m.name for result in results for m in result if m.chain is Chain.USER)
        assert names == sorted(p.stem for p in (mine / "sqlite").iterdir())
        status = await migration_status(first, mine)
        assert status.up_to_date


async def test_the_history_of_an_earlier_version_keeps_working(empty: Database, mine: Path) -> None:
    """A database with the old history and no user table is adopted, then takes the user chain."""
    await migrate(empty)
    await _rows(empty, "SELECT 1")  # the database answers over a connection of our own
    if empty.engine.value == "sqlite":
        with closing(sqlite3.connect(empty.url)) as lite:
            lite.execute("ALTER TABLE persistence_migrations RENAME TO schema_migrations")
            lite.commit()
    else:
        pg = await asyncpg.connect(empty.url)
        try:
            await pg.execute("ALTER TABLE persistence_migrations RENAME TO schema_migrations")
        finally:
            await pg.close()
    assert [m.name for m in await migrate(empty, mine)] == ["0001_failed_view"]
    assert (await migration_status(empty, mine)).up_to_date


async def _user_rows(db: Database) -> int:
    if USER_TABLE not in await _tables(db):
        return 0
    return len(await _rows(db, f"SELECT version FROM {USER_TABLE}"))  # noqa: S608  # a constant


USER_TABLE = "persistence_user_migrations"


@pytest.mark.parametrize("after", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("extra", [0.0, 0.002])
async def test_a_cancelled_run_leaves_each_user_migration_whole(
    database_url: str, mine: Path, after: int, extra: float
) -> None:
    """Cancelled mid-chain, migrate leaves each user migration applied with its row, or neither.

    The run is cancelled once `after` user migrations are recorded (and `extra` seconds more),
    so the cancellation lands in the next one's transaction, wherever that has got to. The
    cancellation names, in a note, those the run applied and kept, as an error does.
    """
    for number in range(2, 7):
        write_both(mine, f"{number:04d}_t{number}.sql", f"CREATE TABLE t{number} (id integer);\n")
    async with connect(database_url) as db:
        await migrate(db)  # the package's chain: what is cancelled is the user's
        task = asyncio.ensure_future(migrate(db, mine))
        while not task.done() and await _user_rows(db) < after:  # noqa: ASYNC110  # progress is in the database
            await asyncio.sleep(0.001)
        await asyncio.sleep(extra)
        task.cancel()
        notes: list[str] | None = None  # None: the run ended before the cancellation
        try:
            await task
        except asyncio.CancelledError as cancelled:
            notes = getattr(cancelled, "__notes__", [])
        recorded = {
            int(str(row[0]))
            for row in (
                await _rows(db, f"SELECT version FROM {USER_TABLE}")  # noqa: S608  # a constant
                if USER_TABLE in await _tables(db)
                else []
            )
        }
        made = {int(name[1:]) for name in await _tables(db) if re.fullmatch(r"t\d", name)}
        assert made == recorded - {1}
        if notes is not None:
            _check_notes(notes, recorded)
        await migrate(db, mine)
        assert (await migration_status(db, mine)).up_to_date
        made = {int(name[1:]) for name in await _tables(db) if re.fullmatch(r"t\d", name)}
        assert made == {2, 3, 4, 5, 6}


def _check_notes(notes: list[str], recorded: set[int]) -> None:
    """Check that a cancelled run's notes name what it kept, and the commit it may have met."""
    kept = "this run applied and kept, before it: "
    said = [
        name for note in notes if note.startswith(kept) for name in note[len(kept) :].split(", ")
    ]
    met = [note for note in notes if note.startswith("the cancellation met the commit of ")]
    assert len(notes) == (1 if said else 0) + len(met), notes
    named = {int(name.removeprefix("user/")[:4]) for name in said}
    assert named <= recorded
    if met:  # the one after those kept; committed or not
        maybe = max(named, default=0) + 1
        assert met[0].startswith(f"the cancellation met the commit of user/{maybe:04d}_"), notes
        assert recorded - named <= {maybe}
    else:
        assert named == recorded


SLOW = {
    "sqlite": (
        "CREATE TABLE t2 (id integer);\n"
        "INSERT INTO t2 (id) WITH RECURSIVE c(x) AS "
        "(SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000000) SELECT x FROM c;\n"
    ),
    "postgres": "CREATE TABLE t2 (id integer);\nSELECT pg_sleep(3);\n",
}


async def test_a_killed_runner_leaves_no_half_migration(
    database_url: str, mine: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-way through a user migration: neither its table nor its row stays."""
    for engine, text in SLOW.items():
        (mine / engine / "0002_slow.sql").write_text(text, encoding="utf-8")
    runner = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "persistence",
        "migrate",
        "--database",
        database_url,
        "--migrations",
        str(mine),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with connect(database_url) as db:
            deadline = time.monotonic() + 30
            while await _user_rows(db) < 1 and time.monotonic() < deadline:  # noqa: ASYNC110  # progress is in the database
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            assert runner.returncode is None, "the slow migration ended before it was killed"
            runner.send_signal(signal.SIGKILL)
            await asyncio.wait_for(runner.wait(), 10)
            assert "t2" not in await _tables(db)
            assert await _user_rows(db) == 1
            for engine in SLOW:
                (mine / engine / "0002_slow.sql").write_text(NOTES, encoding="utf-8")
            assert [m.name for m in await migrate(db, mine, lock_timeout=20)] == ["0002_slow"]
            assert (await migration_status(db, mine)).up_to_date
    finally:
        if runner.returncode is None:
            runner.kill()
            await asyncio.wait_for(runner.wait(), 10)


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("-- notes\n\nCREATE TABLE n (id integer);\nPRAGMA journal_mode = DELETE;\n", ":4: PRAGMA"),
        (
            "CREATE TABLE n (id integer);\n\n/* the last */\nCREATE TABLE m (id integer)\n",
            ":4: the",
        ),
        ("CREATE TABLE n (id integer); ATTACH ':memory:' AS x;\n", ":1: ATTACH"),
        ("CREATE TABLE n (id integer);\n-- done\n\nCOMMIT;\n", ":4: COMMIT"),
    ],
)
async def test_a_check_before_anything_runs_names_the_line(
    tmp_path: Path, mine: Path, text: str, refused: str
) -> None:
    """The checks made before a migration runs name the line, as a failing statement's error does.

    They named the file alone: a PRAGMA, an ATTACH, a COMMIT or a last statement without its
    `;` was left to be looked for in it.
    """
    (mine / "sqlite" / "0002_checked.sql").write_text(text, encoding="utf-8")
    async with connect(tmp_path / "app.db") as db:
        with pytest.raises(MigrationError, match=rf"0002_checked\.sql{refused}") as caught:
            await migrate(db, mine)
        assert caught.value.line == int(refused.split(":")[1])


async def test_a_schema_named_after_the_role_hides_no_history(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: a user migration making a schema of the role's name keeps one history.

    That schema comes first in the default search path (`"$user", public`). The history was
    looked for in the current schema, so it went missing: the next migration's history row
    went to a second table made there, and the next `migrate` applied every migration again,
    into the new schema, whose empty tables the package then read.
    """
    admin = await asyncpg.connect(postgres_url)
    try:
        role = await admin.fetchval("SELECT current_user")
    finally:
        await admin.close()
    mine = tmp_path / "mine"
    write_both(mine, "0001_schema.sql", f'CREATE SCHEMA "{role}";\n')
    write_both(mine, "0002_notes.sql", NOTES)
    async with connect(postgres_url) as db:
        assert [m.name for m in await migrate(db, mine)][-2:] == ["0001_schema", "0002_notes"]
        assert (await migration_status(db, mine)).up_to_date
        assert await migrate(db, mine) == []
        histories = await _rows(
            db,
            "SELECT schemaname::text, tablename::text FROM pg_tables "
            "WHERE tablename LIKE 'persistence%' ORDER BY 1, 2",
        )
        assert histories == [
            ("public", "persistence_migrations"),
            ("public", "persistence_user_migrations"),
        ]


@pytest.mark.parametrize(
    "copy", ["COPY my_notes (id, body) FROM stdin", "copy (SELECT 1)\nTO STDOUT WITH (FORMAT csv)"]
)
async def test_a_copy_through_the_client_is_refused_before_anything_runs(
    postgres_url: str, tmp_path: Path, copy: str
) -> None:
    """PostgreSQL: a COPY of pg_dump's kind, FROM STDIN or TO STDOUT, is named at its line.

    The runner sends and reads no rows of a COPY: FROM STDIN waited for them until the command
    timeout, then said a COMMIT may have taken effect; TO STDOUT ran, its rows unread.
    """
    mine = tmp_path / "mine"
    write_both(mine, "0001_notes.sql", f"{NOTES}\n{copy};\n")
    async with connect(postgres_url) as db:
        with pytest.raises(
            MigrationError, match=r"^0001_notes\.sql:3: COPY FROM STDIN or TO STDOUT"
        ):
            await migrate(db, mine)
        assert (await migration_status(db, mine)).applied == ()  # the files are checked first
        assert "my_notes" not in await _tables(db)


@pytest.mark.parametrize(
    "setting",
    ["SELECT pg_catalog.set_config('search_path', '', false);", "SET search_path TO pg_catalog;"],
)
async def test_a_migration_that_leaves_another_search_path_is_named(
    postgres_url: str, tmp_path: Path, setting: str
) -> None:
    """PostgreSQL: its history row cannot be written; the error names the file and why.

    It said that the database was not migrated, to run `persistence migrate`, while migrating,
    and named no file. pg_dump's output starts with the first of these lines.
    """
    mine = tmp_path / "mine"
    write_both(mine, "0001_dump.sql", f"{setting}\nCREATE TABLE public.dumped (x integer);\n")
    async with connect(postgres_url) as db:
        with pytest.raises(MigrationError) as caught:
            await migrate(db, mine)
        said = str(caught.value)
        assert said.startswith("0001_dump.sql: it ran, but its row in persistence_user_migrations")
        assert "search_path" in said
        assert "run `persistence migrate" not in said
        user = (await migration_status(db, mine)).user
        assert user is not None
        assert [m.name for m in user.pending] == ["0001_dump"]
        assert "dumped" not in await _tables(db)


@pytest.mark.parametrize(
    ("copy", "refused"),
    [
        ("COPY u2 FROM '/srv/from stdin.csv'", False),  # a file of the server's, named so
        ("COPY u2 FROM '/srv/u2.csv' /* not FROM STDIN */", False),
        ("COPY (SELECT 'a;b' AS x) TO STDOUT", True),
        ("COPY u2 (x) FROM\n  STDIN WITH (FORMAT csv)", True),
    ],
)
def test_only_a_copy_through_the_client_is_refused(copy: str, *, refused: bool) -> None:
    """The words FROM STDIN in a quoted file name or a comment refuse nothing."""
    sql = f"CREATE TABLE u2 (x text);\n{copy};\n"
    if refused:
        with pytest.raises(MigrationError, match=r"^0002_copy\.sql:2: COPY FROM STDIN"):
            checked_statements(Engine.POSTGRES, sql, "0002_copy.sql", "0002_copy")
    else:
        assert len(checked_statements(Engine.POSTGRES, sql, "0002_copy.sql", "0002_copy")) == 2


async def test_the_files_are_read_and_split_off_the_loop(
    empty: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading and splitting a chain's files runs in a worker thread, for each entry point.

    A user's migration of 35,000 statements held the loop 0.5 s on SQLite and 1.2 s on
    PostgreSQL as `migrate` split it, one of 57 MB 5 to 10 s; `migration_status` read and
    decoded it on the loop, 0.4 s.
    """
    write_both(tmp_path / "mine", "0001_notes.sql", NOTES)
    loop_thread = threading.current_thread()
    on_loop: list[str] = []
    real_split, real_read = migrations._statements, migrations.discover_migrations  # noqa: SLF001  # watched

    def split(engine: Engine, migration: Migration) -> tuple[ScriptStatement, ...]:
        if threading.current_thread() is loop_thread:
            on_loop.append(f"split {migration.path.name}")
        return real_split(engine, migration)

    def read(folder: Path, chain: Chain = Chain.PACKAGE) -> list[Migration]:
        if threading.current_thread() is loop_thread:
            on_loop.append(f"read {folder}")
        return real_read(folder, chain)

    monkeypatch.setattr(migrations, "_statements", split)
    monkeypatch.setattr(migrations, "discover_migrations", read)
    await migration_status(empty, tmp_path / "mine")
    await migrations.pending_migrations(empty, tmp_path / "mine")
    await migrate(empty, tmp_path / "mine")
    assert on_loop == []
