"""One call opens everything: the database, the file store and the caches, as one value.

`open_persistence(...)` is an async context manager. Each argument left out is read from
the environment: `DATABASE_URL` (else `data/app.db`), `PERSISTENCE_FILES` (else
`data/files`) and `REDIS_URL` (else no Redis: a memory cache). Nothing is global: two
bundles may be open at once, each with its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final, Literal, TypeVar

import attrs

from persistence._backend import SQLITE_SIDECARS, Engine
from persistence._database_value import entered_once
from persistence._files.tree import check_root, root_place_problem
from persistence._guards import argument, at_least, seconds
from persistence._loop import imported
from persistence._tracing import Tracing, slow_threshold
from persistence._urls import PgBouncerMode, pooled_target
from persistence.cache import (
    ArtifactCache,
    Cache,
    open_artifact_cache,
    open_memory_cache,
    open_redis_cache,
)
from persistence.cache._core import heartbeat_seconds
from persistence.cache._redis_url import REDIS_URL_VARIABLE
from persistence.cache._redis_url import redis_url as check_redis_url
from persistence.cache.disk import DEFAULT_BUDGET
from persistence.database import Database, close_database, open_database, read_file_as_is
from persistence.exceptions import (
    DatabaseError,
    InvalidPathError,
    MigrationError,
    ValidationError,
)
from persistence.migrations import migrate, migration_status, read_migrations
from persistence.storage import Storage, open_storage

__all__ = ["DEFAULT_FILES", "FILES_VARIABLE", "Persistence", "open_persistence"]

DEFAULT_FILES: Final = Path("data/files")
"""The file store's root when neither an argument nor `PERSISTENCE_FILES` names one."""

_T = TypeVar("_T")
_D = TypeVar("_D")

FILES_VARIABLE: Final = "PERSISTENCE_FILES"
"""The environment variable naming the file store's root."""

DATABASE_VARIABLE: Final = "DATABASE_URL"
"""The environment variable naming the database, read by `open_database` too."""


@attrs.frozen
class Persistence:
    """Everything `open_persistence` opened: pass its parts to the package's functions."""

    db: Database
    storage: Storage
    cache: Cache
    """A `RedisCache` when a Redis URL was given, else a `MemoryCache`."""
    artifacts: ArtifactCache


@entered_once
@contextlib.asynccontextmanager
async def open_persistence(  # every part is the caller's to choose
    database: str | os.PathLike[str] | None = None,
    *,
    files: str | os.PathLike[str] | None = None,
    redis: str | None = None,
    migrations: Literal["apply", "check"] = "apply",
    user_migrations: str | os.PathLike[str] | None = None,
    artifact_budget: int = DEFAULT_BUDGET,
    heartbeat: float = 1.0,
    connect_timeout: float = 10.0,
    command_timeout: float = 60.0,
    tracing: Tracing | None = None,
    slow_query: float | None = None,
    pgbouncer: PgBouncerMode | None = None,
    listen_url: str | None = None,
) -> AsyncIterator[Persistence]:
    """Open the database, the file store and the caches; close them all when the block ends.

    With `migrations="apply"` pending migrations are applied; with `"check"`, a database
    with pending or drifted migrations, or one newer than the files, is refused with
    MigrationError and left untouched.
    `user_migrations` names the folder of the user's own chain, after the package's, as
    `migrate` takes it; `connect_timeout`, `command_timeout`, `tracing`, `slow_query`,
    `pgbouncer` and `listen_url` go to `open_database`.
    """
    user_folder = None if user_migrations is None else _user_folder(user_migrations)
    if migrations not in ("apply", "check"):  # compared, not hashed: a list is refused too
        raise ValidationError(
            "open_persistence", "migrations", f"must be 'apply' or 'check', got {migrations!r}"
        )
    # Every argument is checked before anything is opened, created or migrated.
    with _source_named("files", files, FILES_VARIABLE):
        root = _files_root(_given_or_set(files, FILES_VARIABLE, DEFAULT_FILES))
    redis_url = _given_or_set(redis, REDIS_URL_VARIABLE, None)
    _check_settings(heartbeat, slow_query, tracing, artifact_budget)
    connect_timeout = seconds("open_persistence", "connect_timeout", connect_timeout)
    command_timeout = seconds("open_persistence", "command_timeout", command_timeout)
    if redis_url is not None:
        with _source_named("redis", redis, REDIS_URL_VARIABLE):
            await imported("redis.asyncio")  # on first use: off the loop
            check_redis_url(redis_url)
    with _source_named("database", database, DATABASE_VARIABLE):
        engine, target = pooled_target(
            database, pgbouncer=pgbouncer, listen_url=listen_url, caller="open_persistence"
        )
    await _check_places(engine, target, root, user_folder)
    checked = False
    if migrations == "check" and engine is Engine.SQLITE:
        if not await asyncio.to_thread(os.path.exists, target):  # "check" creates nothing
            raise MigrationError(
                f"{target}: no database there, so no migration is applied; "
                "run 'persistence migrate'"
            )
        checked = await checked_as_it_is(target, user_folder)
    db = await open_database(
        database,
        connect_timeout=connect_timeout,
        command_timeout=command_timeout,
        tracing=tracing,
        slow_query=slow_query,
        pgbouncer=pgbouncer,
        listen_url=listen_url,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(close_database, db)
        if migrations == "apply":
            await migrate(db, user_folder)
        elif not checked:
            await _refuse_unmigrated(db, user_folder)
        storage = await open_storage(root)
        if redis_url is None:
            cache: Cache = await open_memory_cache(db, heartbeat=heartbeat)
        else:
            cache = await open_redis_cache(db, redis_url, heartbeat=heartbeat)
        stack.push_async_callback(cache.close)
        artifacts = await open_artifact_cache(storage, budget=artifact_budget)
        yield Persistence(db=db, storage=storage, cache=cache, artifacts=artifacts)


async def checked_as_it_is(target: str, user_folder: Path | None) -> bool:
    """Refuse a SQLite file's pending migrations read as it is; False if it cannot be read so.

    The open proper sets WAL mode, and a read-only open of a WAL file makes its `-wal` and
    `-shm`: a file refused after either was left changed. One that cannot be read as it is (a
    hot journal, which the open proper rolls back) is checked after that open, as before.
    """
    try:
        async with read_file_as_is(target) as looked:
            await _refuse_unmigrated(looked, user_folder)
    except DatabaseError:
        return False
    return True


async def _refuse_unmigrated(db: Database, user_folder: Path | None) -> None:
    """Refuse a database with pending or drifted migrations, or one newer than the files."""
    status = await migration_status(db, user_folder)
    names = [m.name for chain in status.chains for m in chain.pending]
    names += [d.applied.name for chain in status.chains for d in chain.drifted]
    if names:
        raise MigrationError(
            f"{db.url}: migrations not applied or drifted: {', '.join(names)}; "
            "run 'persistence migrate'"
        )
    if not status.up_to_date:  # a migration newer than every file, as migrate refuses
        problems = [problem for chain in status.chains for problem in chain.problems()]
        raise MigrationError(f"{db.url}: {'; '.join(problems)}")


async def _check_places(engine: Engine, target: str, root: Path, user_folder: Path | None) -> None:
    """Refuse what would fail once the database was made: the files root, the user's chain."""
    # A SQLite file's place: `:memory:` and a `file:` URI are refused as such by the open.
    placed = engine is Engine.SQLITE and target != ":memory:" and not target.startswith("file:")
    if placed:  # the files made where they go, before anything is made
        _refuse_root_at_sqlite_files(root, target, real=False)
    if (problem := await asyncio.to_thread(root_place_problem, root)) is not None:
        raise problem  # as open_storage would
    if placed:  # SQLite keeps its files beside the real one, a link's target
        await asyncio.to_thread(_refuse_root_at_sqlite_files, root, target, real=True)
    if placed and await asyncio.to_thread(_within, target, root, real=True):
        raise ValidationError(
            "open_persistence",
            "files",
            f"{str(root)!r} holds the SQLite database {target!r}, which the store's writes and "
            "clean-ups could replace or remove: give the database a place outside the file store",
        )
    if user_folder is not None:  # its files, as migrate would refuse them
        await asyncio.to_thread(read_migrations, engine, user_folder)


def _check_settings(
    heartbeat: float, slow_query: float | None, tracing: Tracing | None, artifact_budget: int
) -> None:
    """Check the arguments that open nothing themselves, each named as `open_persistence`'s."""
    heartbeat_seconds("open_persistence", heartbeat)
    try:
        slow_threshold(slow_query)
    except ValidationError as error:  # the argument's, or $PERSISTENCE_SLOW_QUERY's, named so
        if error.field != "slow_query":
            raise
        raise ValidationError("open_persistence", "slow_query", error.reason) from None
    if tracing is not None:
        argument("open_persistence", "tracing", Tracing, tracing, "a Tracing or None")
    at_least("open_persistence", "artifact_budget", artifact_budget, 1)


@contextlib.contextmanager
def _source_named(argument: str, given: object, variable: str) -> Iterator[None]:
    """Name where a refused value came from: the argument, or the environment's variable.

    A value refused by the part it is for is refused as `open_persistence`'s own argument;
    read from the environment, the argument left out, the error names the variable too.
    """
    from_environment = (given is None or given == "") and bool(os.environ.get(variable))
    source = f" (from ${variable}, as {argument}= was left out)" if from_environment else ""
    try:
        yield
    except ValidationError as error:
        if error.field not in {argument, "url"}:  # another argument's, as pgbouncer=
            raise
        raise ValidationError("open_persistence", argument, error.reason + source) from None
    except DatabaseError as error:
        if not source:
            raise
        raise DatabaseError(f"{error}{source}") from None


def _given_or_set(given: _T | None, variable: str, default: _D) -> _T | str | _D:
    """Give the argument, else the environment's `variable`, else `default`.

    Only None and "" are left out, in the argument and the variable alike: another false
    value (False, b"") is the argument's, to be refused as it is.
    """
    if given is not None and given != "":
        return given
    return os.environ.get(variable) or default


def _refuse_root_at_sqlite_files(root: Path, target: str, *, real: bool) -> None:
    """Refuse a root that is, or lies under, the SQLite file or one SQLite keeps beside it.

    A folder made there first left the database unopenable (`app.db-journal` a folder). By the
    names as written, or (`real`) as the links there now lead, beside the real file.
    """
    base = os.path.realpath(target) if real else target
    for end in ("", *SQLITE_SIDECARS):
        if _within(root, f"{base}{end}", real=real):
            database = f"the SQLite database {target!r}"
            what = (
                database if not end else f"{base + end!r}, where SQLite keeps a file of {database}"
            )
            raise ValidationError(
                "open_persistence",
                "files",
                f"{str(root)!r} is, or lies under, {what}: give the file store a folder of its own",
            )


def _within(inner: str | Path, outer: str | Path, *, real: bool) -> bool:
    """Tell whether `inner` is `outer` or lies under it: as written, or by the links there now."""
    place = os.path.realpath if real else os.path.abspath
    inside, outside = Path(place(inner)), Path(place(outer))
    return outside in {inside, *inside.parents}


def _user_folder(given: object) -> Path:
    """Check the folder of the user's own migrations before anything is opened."""
    refuse = functools.partial(ValidationError, "open_persistence", "user_migrations")
    if not isinstance(given, str | os.PathLike) or not str(given):
        raise refuse(f"expected a folder path, got {given!r}")
    folder = Path(given)
    try:
        found = folder.is_dir()
    except OSError as error:  # a name too long to look at: Python 3.11 raised it
        raise refuse(f"{str(folder)!r} cannot be read: {error.strerror or error}") from None
    if not found:
        raise refuse(f"{str(folder)!r} is not a folder")
    return folder


def _files_root(given: object) -> Path:
    """Check the file store's root as the store does (`check_root`), before anything is opened."""
    try:
        return Path(check_root(given))
    except InvalidPathError as error:
        raise ValidationError("open_persistence", "files", error.reason) from None
