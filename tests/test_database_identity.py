"""One name for one database, whichever part of the package asks for it.

The Redis tier names its default namespace by the change watch's `identity()`; a copy refuses
a target that is its own source by the backend's `database_identity`. Each engine named its
database twice, by two formulas: these tests hold both callers to one name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from _roles import TABLES, role_of_its_own
from persistence import connect
from persistence._database_value import backend_of
from persistence._loans import borrow
from persistence._sqlite import changes
from persistence.cache import open_redis_cache
from persistence.cache.distributed import default_namespace

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from persistence import Database

HEARTBEAT = 0.2


async def both_names(db: Database) -> tuple[str | None, str | None]:
    """Give the change watch's name of `db` and the name a copy gives it."""
    backend = backend_of(db)
    watch = await backend.watch_changes(heartbeat=HEARTBEAT)
    try:
        watched = watch.identity()
    finally:
        await watch.close()
    async with borrow(db) as conn:
        copied = await backend.database_identity(conn)
    return watched, copied


async def test_the_cache_and_a_copy_name_one_database_alike(db: Database) -> None:
    """Both engines: the namespace's identity is the one a copy compares, and it is known."""
    watched, copied = await both_names(db)
    assert watched is not None
    assert watched == copied


@pytest.fixture
async def role_url(migrated_postgres_url: str) -> AsyncIterator[str]:
    """A migrated database's URL as a role with LOGIN alone, and SELECT on its tables.

    There `pg_control_system()` is refused to it, as some servers' operators set it.
    """
    grants = (
        f"GRANT SELECT ON {TABLES} TO {{role}}",
        # A function's grants are the database's own: other databases keep theirs.
        "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC",
    )
    async with role_of_its_own(migrated_postgres_url, *grants, prefix="persistence_login") as (
        as_role,
        _,
    ):
        yield as_role


async def test_a_role_with_login_alone_names_the_database_as_the_owner_does(
    role_url: str, migrated_postgres_url: str
) -> None:
    """PostgreSQL: a role refused `pg_control_system()` gets the owner's name, in both uses.

    Before, its watch knew no identity (the URL stood in for the namespace), while a copy
    named the database by the server's start time.
    """
    async with connect(role_url) as weak, connect(migrated_postgres_url) as owner:
        weak_names = await both_names(weak)
        owner_names = await both_names(owner)
    assert weak_names[0] is not None
    assert weak_names[0] == weak_names[1] == owner_names[0] == owner_names[1]


async def test_the_default_namespace_follows_the_identity_the_watch_knows_now(
    sqlite_db: Database, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The namespace is made of the watch's identity as it is now, not as it was at open.

    A PostgreSQL listener reads the identity again on each connect, a restart's new one among
    them: processes opened before and after a restart share entries again.
    """
    cache = await open_redis_cache(sqlite_db, redis_url, heartbeat=HEARTBEAT)
    try:
        before = cache._namespace  # noqa: SLF001
        assert before == default_namespace(sqlite_db, (await both_names(sqlite_db))[0])
        monkeypatch.setattr(changes.ChangeStamp, "identity", lambda _self: "sqlite:another")
        after = cache._namespace  # noqa: SLF001
        assert after == default_namespace(sqlite_db, "sqlite:another") != before
    finally:
        await cache.close()
