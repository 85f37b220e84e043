"""open_persistence against hostile timing, inputs and use, beyond `test_bundle.py`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import random
import re
import uuid
from collections.abc import Awaitable, Generator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from _server import no_connection_left
from persistence import (
    DatabaseError,
    PersistenceError,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
    bundle,
    open_persistence,
    save_result,
)
from persistence.database import Tracing
from persistence.exceptions import StorageError
from persistence.storage import open_storage
from test_descriptors import counts, settled_counts


class CancelledAt:
    """Await `work`, cancelling its task as `work` suspends for the `at`-th time.

    Each suspension is an await that gave the loop back: stepping `at` from 1 until `work`
    ends uncancelled cancels it at every await it makes, in order, with no timing involved.
    `where` names the awaits the cancellation reached, innermost last.
    """

    def __init__(self, work: Awaitable[None], at: int) -> None:
        self._work = work
        self._at = at
        self.suspensions = 0
        self.where = ""

    def __await__(self) -> Generator[Any, Any, None]:
        steps = self._work.__await__()
        sent: object = None
        thrown: BaseException | None = None
        while True:
            try:
                waited = steps.send(sent) if thrown is None else steps.throw(thrown)
            except StopIteration:
                return
            self.suspensions += 1
            if self.suspensions == self._at:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            try:
                sent, thrown = (yield waited), None
            except BaseException as error:  # noqa: BLE001  # the task's, handed on to `work`
                sent, thrown = None, error
                if isinstance(error, asyncio.CancelledError):
                    self.where = awaits_of(self._work)


def awaits_of(work: object) -> str:
    """Name the chain of awaits `work` is suspended in, as `file:line function` each."""
    names = []
    while work is not None:
        frame = getattr(work, "cr_frame", None) or getattr(work, "ag_frame", None)
        inner = getattr(work, "cr_await", None) or getattr(work, "ag_await", None)
        inner = inner or getattr(work, "gi_yieldfrom", None)
        if frame is not None:
            names.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
            manager = frame.f_locals.get("self")  # an async context manager's generator
            if frame.f_code.co_name in {"__aenter__", "__aexit__"} and hasattr(manager, "gen"):
                inner = manager.gen
        work = inner
    return " > ".join(names)


async def redis_clients(url: str, name: str) -> int:
    """The clients of Redis that call themselves `name`: this test's, not other processes'."""
    client = Redis.from_url(url)
    try:
        return sum(1 for found in await client.client_list() if found["name"] == name)
    finally:
        await client.aclose()


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.parametrize("with_redis", [False, True], ids=["memory", "redis"])
async def test_cancelled_at_every_await_of_opening_and_closing_leaves_nothing(
    database_url: str, tmp_path: Path, redis_url: str, *, with_redis: bool
) -> None:
    """Cancelled at each await in turn, from the first of opening to the last of closing.

    Descriptors, mappings, threads and tasks are as before; so are the connections to the
    test's PostgreSQL database and to its Redis database. A SQLite close cancelled at an
    await left the database open: its threads, connections and mappings (3, 7 and 2); a
    Redis cache's close cancelled while its connection said goodbye left that connection open.
    """
    files = tmp_path / "files"
    name = f"bundle-sweep-{uuid.uuid4().hex[:12]}"  # its clients, told from other tests'
    redis = f"{redis_url}?client_name={name}" if with_redis else None

    async def use() -> None:
        async with open_persistence(database_url, files=files, redis=redis, heartbeat=0.2) as p:
            await save_result(p.db, TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED))
            assert len(await p.cache.recent_results(5)) > 0

    await use()  # made and migrated once: each try below opens an up-to-date database
    gc.collect()
    before = await settled_counts(counts().threads)
    assert await redis_clients(redis_url, name) == 0
    at = 0
    while True:
        at += 1
        stepping = CancelledAt(use(), at)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.ensure_future(stepping)
        if stepping.suspensions < at:  # it ended before its `at`-th await: every one was tried
            break
        after = await settled_counts(before.native_threads, before.descriptors)
        assert after == before, f"cancelled at await {at}, {stepping.where}: {before} -> {after}"
        if "://" in database_url:
            await no_connection_left(database_url)
        assert await redis_clients(redis_url, name) == 0, f"await {at}, {stepping.where}"
    assert at > 10  # opening, a write, a read and closing: many awaits


async def refused(tmp_path: Path, **arguments: object) -> PersistenceError:
    """Open with `arguments` in `tmp_path`, expecting a refusal; check that nothing was made."""
    with pytest.raises((ValidationError, DatabaseError)) as refusal:
        async with open_persistence(**arguments):  # type: ignore[arg-type]  # bad on purpose
            pass
    assert not await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
    return refusal.value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://127.0.0.1/app"),
        ("DATABASE_URL", "sqlite:data/app.db"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://127.0.0.1:6379/zero"),
    ],
)
async def test_a_bad_value_in_the_environment_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A URL read from the environment, its argument left out, is refused by its name.

    The error named the cache's own argument (`RedisCache.url`) or no source at all: a caller
    who passed no argument was left to guess which setting was wrong.
    """
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    given = {} if variable == "DATABASE_URL" else {"database": str(tmp_path / "app.db")}
    error = await refused(tmp_path, **given)
    assert f"${variable}" in str(error)
    assert "RedisCache" not in str(error)


async def test_a_bad_redis_argument_is_refused_naming_it(tmp_path: Path) -> None:
    """A `redis=` that is no Redis URL is refused as `open_persistence.redis`.

    It was refused as `RedisCache.url`, a name the caller of `open_persistence` never used.
    """
    for bad in (5, b"redis://127.0.0.1", "http://127.0.0.1"):
        error = await refused(tmp_path, database=tmp_path / "app.db", redis=bad)
        assert str(error).startswith("open_persistence.redis: "), error


@pytest.mark.parametrize("root", ["   ", "data/files\r", "data/\nfiles", "\tdata/files", "data "])
async def test_a_blank_files_root_or_one_with_a_line_end_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str
) -> None:
    """A blank root, a line end in it, or white space at an end: refused, argument or variable.

    It was made as named: a folder called three spaces, or `files` and a carriage return from
    an env file written with CRLF line ends, where `DATABASE_URL` holding the same is refused.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    error = await refused(tmp_path, database=tmp_path / "app.db", files=root)
    assert str(error).startswith("open_persistence.files: ")
    monkeypatch.setenv("PERSISTENCE_FILES", root)
    error = await refused(tmp_path, database=tmp_path / "app.db")
    assert "$PERSISTENCE_FILES" in str(error)


@pytest.mark.parametrize("place", ["~", "~/data/files", "~someone/files"])
async def test_a_root_or_database_path_starting_with_a_tilde_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, place: str
) -> None:
    """`~` is not the home folder here: a path starting with it is refused, not made.

    The shell expands `~` only where it is unquoted; in an env file, a quoted value or an
    argument it reached the package as it is, and a folder named `~` was made in the working
    folder, the database or the file store under it.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("PERSISTENCE_FILES", raising=False)
    error = await refused(tmp_path, database=tmp_path / "app.db", files=place)
    assert str(error).startswith("open_persistence.files: "), error
    monkeypatch.setenv("PERSISTENCE_FILES", place)
    assert "$PERSISTENCE_FILES" in str(await refused(tmp_path, database=tmp_path / "app.db"))
    monkeypatch.delenv("PERSISTENCE_FILES")
    database = f"{place}/app.db"
    for given in (database, f"sqlite:///{database}"):
        assert "'~'" in str(await refused(tmp_path, database=given, files=tmp_path / "f"))
    monkeypatch.setenv("DATABASE_URL", database)
    assert "$DATABASE_URL" in str(await refused(tmp_path, files=tmp_path / "f"))


@pytest.mark.parametrize(
    ("why", "refused"),
    [
        ("a name too long", "too long"),
        ("a parent that refuses new entries", "make folders"),
        ("a root there that refuses new entries", "make folders"),
    ],
)
async def test_a_files_root_that_cannot_be_made_makes_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str, refused: str
) -> None:
    """A root whose folders cannot be made where it lies is refused before the database is made.

    The database was made and migrated first; then making the root failed (`File name too
    long`, `Permission denied`) and the new database file was left behind. A root that is there
    but refuses the reserved folders it lacks (`.backups`, ...) did the same.
    """
    parent = tmp_path / "parent"
    parent.mkdir()
    if why == "a name too long":
        root = parent / ("x" * 300) / "files"
    else:
        root = parent if why.startswith("a root there") else parent / "files"
        access = os.access  # a folder root may write in all the same: its refusal is feigned

        def refused_in_parent(path: object, mode: int, **options: bool) -> bool:
            return False if Path(str(path)) == parent else access(path, mode, **options)  # type: ignore[arg-type]  # as os.access takes it

        monkeypatch.setattr(os, "access", refused_in_parent)
    with pytest.raises(StorageError, match=refused):
        async with open_persistence(tmp_path / "app.db", files=root):
            pass
    left = await asyncio.to_thread(lambda: sorted(str(path) for path in tmp_path.rglob("*")))
    assert left == [str(parent)]


@pytest.mark.parametrize("name", [".backups", ".cache", ".locks", ".tmp"])
@pytest.mark.parametrize("kind", ["a regular file", "a symlink to a folder", "a FIFO"])
async def test_a_reserved_name_in_the_root_that_is_no_folder_makes_no_database(
    tmp_path: Path, name: str, kind: str
) -> None:
    """A root whose `.locks` (or another reserved name) is a file is refused before the database.

    The SQLite file was made and migrated (a PostgreSQL database got its tables), then the
    store's open refused `.locks: is a regular file`, naming neither the root nor the place.
    The refusal names the full path of the reserved name now, as `open_storage` does.
    """
    root = tmp_path / "files"
    root.mkdir()
    (root / "elsewhere").mkdir()
    reserved = root / name
    if kind == "a regular file":
        reserved.write_bytes(b"")
    elif kind == "a FIFO":
        os.mkfifo(reserved)
    else:
        reserved.symlink_to("elsewhere")
    for opening in (
        open_persistence(tmp_path / "app.db", files=root).__aenter__(),
        open_storage(root),
    ):
        with pytest.raises(StorageError, match=f"^{re.escape(str(reserved))}: "):
            await opening
    assert not (tmp_path / "app.db").exists()


@pytest.mark.parametrize("value", [b"app-\xff.db", b"postgresql://127.0.0.1/app\xff"])
async def test_a_database_url_that_is_not_utf8_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    """`DATABASE_URL` holding bytes that are not UTF-8 is refused naming it; nothing is made.

    A SQLite path was made as a file, then opening it failed with a bare UnicodeEncodeError;
    a PostgreSQL URL failed in the driver with an AttributeError.
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setitem(os.environb, b"DATABASE_URL", value)
    error = await refused(tmp_path, files=tmp_path / "f")
    assert isinstance(error, DatabaseError)
    assert "UTF-8" in str(error)
    assert "$DATABASE_URL" in str(error)


async def test_a_redis_url_that_is_not_utf8_is_refused_before_anything_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`REDIS_URL` holding bytes that are not UTF-8 is refused naming it; nothing is made.

    It was taken: every Redis call then failed to encode it, and the cache read the database
    for good, with one warning.
    """
    monkeypatch.setitem(os.environb, b"REDIS_URL", b"redis://cache\xff.internal:6379/7")
    error = await refused(tmp_path, database=tmp_path / "app.db", files=tmp_path / "f")
    assert "UTF-8" in str(error)
    assert "$REDIS_URL" in str(error)


@pytest.mark.parametrize(
    "url", ["redis://", "redis://:6379/7", "redis://user:pw@/7", "unix://", "redis://a\x00b:6379/7"]
)
async def test_a_redis_url_that_names_no_server_is_refused(tmp_path: Path, url: str) -> None:
    """A Redis URL with no host, no socket path, or a control character is refused.

    redis-py took a missing host for this machine's Redis, and its database 0 (`redis://`):
    another server than the one meant, guessed. A NUL or an empty socket path was taken too,
    and every Redis call failed.
    """
    error = await refused(tmp_path, database=tmp_path / "app.db", files=tmp_path / "f", redis=url)
    assert str(error).startswith("open_persistence.redis: ")
    assert "pw" not in str(error)


@pytest.mark.parametrize(
    ("database", "files"), [("app.db", "app.db"), ("app.db", "app.db/files"), ("sqlite:///{}", "")]
)
async def test_a_files_root_at_or_under_the_new_database_file_makes_nothing(
    tmp_path: Path, database: str, files: str
) -> None:
    """A root that is the SQLite file to be made, or lies under it, is refused; nothing is made.

    The database was made and migrated first, where the root was to be; then the file store
    found a file there, and the new database file was left behind.
    """
    url = database.format(tmp_path / "app.db") if "{}" in database else str(tmp_path / database)
    root = tmp_path / (files or "app.db")
    error = await refused(tmp_path, database=url, files=root, redis=None)
    assert str(error).startswith("open_persistence.files: ")


@pytest.mark.parametrize("end", ["-journal", "-wal", "-shm", "-journal/files"])
async def test_a_files_root_where_sqlite_keeps_a_file_of_the_database_makes_nothing(
    tmp_path: Path, end: str
) -> None:
    """A root at `app.db-journal` (or `-wal`, `-shm`), or under it, is refused; nothing is made.

    Before, `-journal` was taken: the store made its folder there, and every later open of the
    database failed (`app.db-journal beside it is a folder`). `-wal` made and migrated the
    database, then the store found the file SQLite had made at its root.
    """
    database = tmp_path / "app.db"
    error = await refused(
        tmp_path, database=str(database), files=tmp_path / f"app.db{end}", redis=None
    )
    sidecar = f"{database}{end.partition('/')[0]}"
    assert f"{sidecar!r}, where SQLite keeps a file of the SQLite database" in str(error)


async def test_a_files_root_where_sqlite_keeps_a_linked_databases_journal_is_refused(
    tmp_path: Path,
) -> None:
    """Through a link, SQLite keeps the journal beside the real file: that place is refused.

    Only the names as written were looked at: `files="real/app.db-journal"` for the database
    `link.db`, a link to `real/app.db`, was taken, and every later open failed on the folder.
    """
    await asyncio.to_thread((tmp_path / "real").mkdir)
    await asyncio.to_thread((tmp_path / "link.db").symlink_to, tmp_path / "real" / "app.db")
    root = tmp_path / "real" / "app.db-journal"
    with pytest.raises(ValidationError, match="where SQLite keeps a file of the SQLite database"):
        async with open_persistence(str(tmp_path / "link.db"), files=root, redis=None):
            pass
    left = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.rglob("*")))
    assert left == ["link.db", "real"]


@pytest.mark.parametrize("database", ["app.db", ".tmp/app.db", "deep/er/app.db", "link/app.db"])
async def test_a_database_under_the_files_root_is_refused_before_anything_is_made(
    tmp_path: Path, database: str
) -> None:
    """A SQLite database that lies under the file store's root, as written or by a link.

    It was opened: a `write_bytes` of its name replaced the database, and `clean_temp` of the
    store's `.tmp/` removed it with its `-wal` and `-shm`.
    """
    root = tmp_path / "files"
    (tmp_path / "place").mkdir()
    (tmp_path / "place" / "link").symlink_to(root, target_is_directory=True)
    place = tmp_path / "place" if database.startswith("link/") else root
    url = str(place / database)
    with pytest.raises(ValidationError) as refusal:
        async with open_persistence(url, files=root, redis=None):
            pass
    assert str(refusal.value).startswith(f"open_persistence.files: {str(root)!r} holds the SQLite")
    assert "give the database a place outside the file store" in str(refusal.value)
    made = await asyncio.to_thread(lambda: sorted(p.name for p in tmp_path.rglob("*")))
    assert made == ["link", "place"]


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("redis", False),
        ("redis", 0),
        ("redis", b""),
        ("files", False),
        ("files", b""),
        ("files", []),
    ],
)
async def test_an_empty_value_of_another_type_is_refused_not_taken_as_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str, argument: str, value: object
) -> None:
    """`redis=False`, `files=b""` and the like are refused naming the argument.

    Being false, they were taken as left out: `redis=False` opened the Redis of `REDIS_URL`
    all the same, and `files=b""` the store of `PERSISTENCE_FILES` (or `data/files`).
    """
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("PERSISTENCE_FILES", str(tmp_path / "env-files"))
    error = await refused(tmp_path, database=tmp_path / "app.db", **{argument: value})
    assert str(error).startswith(f"open_persistence.{argument}: ")


def failed_cycles(database_url: str) -> int:
    """How many failed opens to run: PERSISTENCE_TEST_FAILED_CYCLES, fewer on PostgreSQL.

    The counts must be equal after them: a leak shows after one open. More opens give a leak
    of one open in many its chance: 200 took 11 to 15 s a case under `make test`, 50 a quarter.
    """
    total = int(os.environ.get("PERSISTENCE_TEST_FAILED_CYCLES", "50"))
    return total // 4 if "://" in database_url else total


@pytest.mark.long
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts descriptors in /proc")
@pytest.mark.parametrize("with_redis", [False, True], ids=["memory", "redis"])
async def test_opens_failing_after_the_caches_opened_leave_the_process_as_it_was(
    database_url: str,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    with_redis: bool,
) -> None:
    """Many opens that fail at their last step, the database and a cache open, leave nothing.

    The artifact cache's open fails each time, after the database, the file store and the
    memory or Redis cache have opened: each is closed, and the error is the one raised.
    """
    name = f"bundle-failed-{uuid.uuid4().hex[:12]}"
    redis = f"{redis_url}?client_name={name}" if with_redis else None
    files = tmp_path / "files"
    async with open_persistence(database_url, files=files, redis=redis, heartbeat=0.2):
        pass  # migrated once

    async def fail(storage: object, *, budget: int) -> None:
        del storage, budget
        raise OSError("the artifact cache cannot open")

    monkeypatch.setattr(bundle, "open_artifact_cache", fail)

    async def attempt() -> None:
        with pytest.raises(OSError, match="artifact cache cannot open"):
            async with open_persistence(database_url, files=files, redis=redis, heartbeat=0.2):
                pass

    for _ in range(10):
        await attempt()
    gc.collect()
    before = await settled_counts(counts().threads)
    for _ in range(failed_cycles(database_url)):
        await attempt()
    after = await settled_counts(before.native_threads, before.descriptors)
    assert after == before, f"{before} -> {after}"
    if "://" in database_url:
        await no_connection_left(database_url)
    assert await redis_clients(redis_url, name) == 0


@pytest.mark.parametrize(
    ("argument", "value"), [("tracing", "otel"), ("slow_query", "1s"), ("slow_query", math.nan)]
)
async def test_a_bad_tracing_argument_is_refused_as_open_persistences(
    tmp_path: Path, argument: str, value: object
) -> None:
    """`tracing=` and `slow_query=` are refused as `open_persistence`'s, the function called.

    They were refused as `open_database.tracing` and `open_database.slow_query`, a function
    the caller never called.
    """
    error = await refused(tmp_path, database=tmp_path / "app.db", **{argument: value})
    assert str(error).startswith(f"open_persistence.{argument}: "), error


async def test_migrations_of_another_type_are_refused_naming_the_argument(tmp_path: Path) -> None:
    """A list (unhashable) raised a bare TypeError from the check of the two values."""
    for value in (["apply"], {"apply": 1}, b"apply"):
        error = await refused(tmp_path, database=tmp_path / "app.db", migrations=value)
        assert str(error).startswith("open_persistence.migrations: must be 'apply' or 'check'")


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("tracer_provider", "not a provider", "get_tracer"),
        ("meter_provider", 42, "get_meter"),
        ("parameters", "yes", "bool"),
    ],
)
def test_a_tracing_of_no_provider_is_refused_as_it_is_made(
    field: str, value: object, said: str
) -> None:
    """A provider without its method failed as the first query was traced, an AttributeError."""
    with pytest.raises(ValidationError, match=rf"^Tracing\.{field}: .*{said}"):
        Tracing(**{field: value})  # type: ignore[arg-type]  # the mistake tested


OPENS_CANCELLED = 150


@pytest.mark.long
async def test_opens_cancelled_at_random_moments_leave_no_error_unread(
    migrated_postgres_url: str, tmp_path: Path
) -> None:
    """An open on PostgreSQL cancelled as its first connection or its listener's connects.

    The connect, cut just after its socket connected, left a future of asyncpg's failing with
    nobody to read it ("Future exception was never retrieved"), about once in 11 opens.
    """
    loop = asyncio.get_running_loop()
    unread: list[str] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unread.append(str(context.get("message"))))
    moments = random.Random(47)  # noqa: S311  # moments to cancel at, not secrets

    async def open_and_close() -> None:
        async with open_persistence(migrated_postgres_url, files=tmp_path / "files"):
            pass

    try:
        for _ in range(OPENS_CANCELLED):
            using = asyncio.ensure_future(open_and_close())
            await asyncio.sleep(moments.uniform(0, 0.03))
            using.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await using
            gc.collect()
        await asyncio.sleep(0.3)
        gc.collect()
    finally:
        loop.set_exception_handler(handler)
    assert unread == []
    await no_connection_left(migrated_postgres_url)
