"""Which PostgreSQL database a connection reaches, named alike by any URL, role or process.

One name serves both uses: the Redis tier's default namespace (through the change watch) and
a copy's refusal of a target that is its own source (`persistence.backup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import asyncpg

if TYPE_CHECKING:
    from persistence._postgres.adapter import PgConnection

_IDENTITY: Final = """
SELECT concat_ws(':', 'postgres', extract(epoch FROM pg_postmaster_start_time()),
                 (SELECT oid FROM pg_database WHERE datname = current_database()),
                 to_regclass('test_results')::oid)
"""
"""The server by the moment it started, the database by its OID, and the package's tables by
the OID of the one the search path finds: another schema is another database.

Every role may call `pg_postmaster_start_time()`, and no other server shares its value, a
replica or a restored copy included. The system identifier of `pg_control_system()` is shared
by those, and operators may refuse it (REVOKE ... FROM PUBLIC) to a role with LOGIN alone.
A restart gives a new name; it also gives every table a new stamp (each listener connects
again and sends a new token), so no entry of the old name could still be read."""


async def database_identity(
    connection: PgConnection | asyncpg.Connection[asyncpg.Record],
) -> str | None:
    """Name the database and schema that `connection` reaches; None if the role may not ask."""
    try:
        return str(await connection.fetchval(_IDENTITY))
    except asyncpg.InsufficientPrivilegeError:  # an operator's REVOKE of the start time
        return None
