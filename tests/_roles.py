"""A PostgreSQL role of a test's own: made with the rights the test grants it, dropped after."""

from __future__ import annotations

import contextlib
import uuid
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TABLES = "ALL TABLES IN SCHEMA public"
SEQUENCES = "ALL SEQUENCES IN SCHEMA public"


@contextlib.asynccontextmanager
async def role_of_its_own(
    url: str, *grants: str, prefix: str = "persistence_role"
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """Make a LOGIN role, run `grants` (statements naming it as `{role}`), give its URL.

    The admin connection comes with it, for the test's own looks. Whatever the test did, and
    whatever it was granted, the role's rights in this database go (`DROP OWNED`), then it.
    """
    role = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        try:
            for grant in grants:
                await admin.execute(grant.format(role=f'"{role}"'))
            parts = urlsplit(url)
            host = parts.netloc.rpartition("@")[2]
            yield urlunsplit(parts._replace(netloc=f"{role}@{host}")), admin
        finally:
            await admin.execute(f'DROP OWNED BY "{role}"')  # its rights, here
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await admin.close()
