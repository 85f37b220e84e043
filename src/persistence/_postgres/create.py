"""Create the PostgreSQL database a URL names, for `persistence migrate --create`.

It is looked for over the URL first, so a role that may not use the maintenance database
(`postgres`, else `template1`) still gets "it exists"; only then is `CREATE DATABASE` sent.
"""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg

from persistence._cancelling import finish_then_cancel
from persistence._postgres.adapter import PgConnection
from persistence._postgres.connections import quoted_identifier
from persistence._postgres.errors import connect_failures
from persistence._postgres.pooling import split_pooling
from persistence.exceptions import DatabaseError, ValidationError

_MAINTENANCE: Final = ("postgres", "template1")
_LONGEST_NAME: Final = 63  # bytes: PostgreSQL cuts longer identifiers short


async def encoding_problem(connection: PgConnection) -> str | None:
    """Say why a database whose encoding is not UTF8 cannot hold what the package writes.

    On SQL_ASCII or LATIN1, migration 0005 failed on its Unicode after 0004 had committed,
    and the half-migrated database failed every call on a missing column.
    """
    # The server sends it as the session starts; asked only of a pooler that did not pass it on.
    encoding = getattr(connection.get_settings(), "server_encoding", None)
    if encoding is None:
        query = "SELECT pg_catalog.current_setting('server_encoding')"
        encoding = await connection.fetchval(query)
    if encoding == "UTF8":
        return None
    return (
        f"the database's encoding is {encoding}, and the package's tables hold any Unicode "
        "text: make it with ENCODING 'UTF8' (CREATE DATABASE name ENCODING 'UTF8' "
        "TEMPLATE template0)"
    )


def database_name(dsn: str) -> str:
    """Return the database a postgresql:// URL names, as asyncpg reads it.

    Its path less one '/' (`//db` names `/db`: all of them went, and another database than
    the one then migrated was made), else its dbname= or database=, else `$PGDATABASE`.
    """
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    name = unquote(parts.path.removeprefix("/"))  # then dbname=, then database=
    for key in ("dbname", "database"):
        name = name or (query.get(key) or [""])[-1]
    name = name or os.environ.get("PGDATABASE", "")
    if not name:
        raise ValidationError(
            "create_database", "url", "names no database: write postgresql://host/NAME"
        )
    if len(name.encode()) > _LONGEST_NAME or "\x00" in name:
        raise ValidationError(
            "create_database",
            "url",
            f"{name!r} is not a PostgreSQL database name (at most {_LONGEST_NAME} bytes, no NUL)",
        )
    return name


async def create_postgres_database(
    dsn: str, shown: str, *, connect_timeout: float, command_timeout: float, dry_run: bool = False
) -> bool:
    """Create the database `dsn` names unless it exists: say whether it was (or would be) made.

    A role without the CREATEDB right gets a `DatabaseError` that says so and what to do.
    Two callers at once are fine: the one that loses the race finds the database made.
    """
    try:
        dsn = split_pooling(dsn)[0]  # the package's own options are not asyncpg's
    except ValueError as error:
        raise DatabaseError(f"invalid database URL {shown!r}: {error}") from None
    name = database_name(dsn)
    with connect_failures(f"cannot connect to PostgreSQL at {shown}"):
        try:  # looked for first: a role that may not use a maintenance database learns it exists
            found = await asyncpg.connect(dsn, timeout=connect_timeout, statement_cache_size=0)
        except asyncpg.InvalidCatalogNameError:
            found = None
    if found is not None:
        await finish_then_cancel(found.close(timeout=connect_timeout))
        return False
    if dry_run:
        return True
    admin = await _maintenance_connection(dsn, shown, connect_timeout)
    try:
        with connect_failures(f"cannot create the database {name!r} at {shown}"):
            quoted = quoted_identifier(name)
            try:
                await admin.execute(f"CREATE DATABASE {quoted}", timeout=command_timeout)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another runner made it between the look and the create; two at once collide
                # in the catalogue's unique index instead.
                return False
            except asyncpg.InsufficientPrivilegeError as error:
                role = await admin.fetchval("SELECT current_user", timeout=command_timeout)
                raise DatabaseError(
                    f"cannot create the database {name!r} at {shown}: the role {role!r} lacks "
                    "the right to create databases (CREATEDB). Ask an administrator to run "
                    f"CREATE DATABASE {quoted} OWNER {role}, or ALTER ROLE {role} CREATEDB"
                ) from error
    finally:
        await finish_then_cancel(admin.close(timeout=connect_timeout))
    return True


async def _maintenance_connection(
    dsn: str, shown: str, connect_timeout: float
) -> asyncpg.Connection:
    last: BaseException | None = None
    for maintenance in _MAINTENANCE:
        with connect_failures(f"cannot connect to PostgreSQL at {shown} to create its database"):
            try:
                return await asyncpg.connect(
                    dsn, database=maintenance, timeout=connect_timeout, statement_cache_size=0
                )
            except asyncpg.InvalidCatalogNameError as error:
                last = error
    raise DatabaseError(
        f"cannot create the database of {shown}: the server has neither of the maintenance "
        f"databases {' nor '.join(_MAINTENANCE)} to connect to"
    ) from last
