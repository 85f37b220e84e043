"""What a copy asks of a PostgreSQL database: which it is, its tables, counters and indexes.

`persistence.backup` runs a copy through these methods of the backend, one mixin apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import asyncpg

from persistence._postgres.connections import as_pg, quoted_identifier
from persistence._postgres.identity import database_identity
from persistence.exceptions import DatabaseError

if TYPE_CHECKING:
    from persistence._interface import Connection

_SECONDARY_INDEXES: Final = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid), array_remove(ARRAY[
    CASE WHEN d.description IS NOT NULL THEN
        format('COMMENT ON INDEX %s IS %L', i.indexrelid::regclass, d.description) END,
    CASE WHEN c.reltablespace <> 0 THEN
        format('ALTER INDEX %s SET TABLESPACE %I', i.indexrelid::regclass, s.spcname) END,
    CASE WHEN i.indisclustered THEN
        format('ALTER TABLE %s CLUSTER ON %I', i.indrelid::regclass, c.relname) END,
    CASE WHEN i.indisreplident THEN
        format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', i.indrelid::regclass, c.relname)
    END], NULL) || ARRAY(
        SELECT format('ALTER INDEX %s ALTER COLUMN %s SET STATISTICS %s',
            i.indexrelid::regclass, a.attnum, a.attstattarget)
        FROM pg_attribute AS a WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0
        ORDER BY a.attnum)
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
LEFT JOIN pg_tablespace AS s ON s.oid = c.reltablespace
LEFT JOIN pg_description AS d
    ON d.objoid = i.indexrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE i.indrelid = ANY (SELECT t::regclass FROM unnest($1::text[]) AS t)
  AND NOT i.indisprimary
  AND NOT EXISTS (SELECT FROM pg_constraint AS k WHERE k.conindid = i.indexrelid)
  AND pg_has_role((SELECT relowner FROM pg_class WHERE oid = i.indrelid), 'USAGE')
ORDER BY i.indexrelid
"""
"""The indexes `drop_indexes` drops and builds again: neither a primary key nor a constraint's,
and only on tables the role owns (a role that may only write rows keeps them, and is slower).
With each, what `pg_get_indexdef` leaves out and a migration may have set: its comment, its
tablespace, the table's CLUSTER ON and REPLICA IDENTITY that name it, its expressions'
statistics targets. Dropped, each was lost."""

_BUILD_SECONDS_PER_ROW: Final = 0.001
"""What an index build may take per row beyond the statement bound: the GIN build of 2 KB
outputs takes about a tenth of it on a loaded 2-core machine."""

_BUILD_MEMORY: Final = "128MB"
"""maintenance_work_mem while `create_indexes` builds them: a GIN build over 1,000,000 rows
sorts in a few passes of it instead of many of the default 64 MB."""


class CopySupport:
    """The methods of `PostgresBackend` that copies use."""

    __slots__ = ()
    command_timeout: float

    async def database_identity(self, conn: Connection) -> str | None:
        """Name the database and schema that `conn` reaches, as its change watch does."""
        return await database_identity(as_pg(conn))

    async def integrity_problems(self, conn: Connection) -> tuple[str, ...]:  # noqa: ARG002  # the protocol's arguments
        """Give none: PostgreSQL checks its pages as it reads them (and amcheck is an extension)."""
        return ()

    async def id_counters(self, conn: Connection, tables: Sequence[str]) -> dict[str, int]:
        """Read each table's identity sequence: the highest id it handed out, 0 for none."""
        rows = await as_pg(conn).fetch(
            "SELECT t, coalesce(pg_sequence_last_value("
            "pg_get_serial_sequence(t, 'id')::regclass), 0) FROM unnest($1::text[]) AS t",
            list(tables),
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def set_id_counters(self, conn: Connection, counters: Mapping[str, int]) -> None:
        """Set each table's identity sequence so that its next id follows the given one."""
        await as_pg(conn).execute(
            "SELECT setval(pg_get_serial_sequence(t, 'id'), greatest(v, 1), v > 0)"
            " FROM unnest($1::text[], $2::bigint[]) AS u(t, v)",
            list(counters),
            list(counters.values()),
        )

    async def table_names(self, conn: Connection) -> tuple[str, ...]:
        """Give the name of every table of the current schema, sorted.

        Materialized views are among them: they hold rows of their own, which a copy would
        leave behind as it leaves a table's (a view's rows are those of its tables).
        """
        rows = await as_pg(conn).fetch(
            "SELECT c.relname FROM pg_catalog.pg_class AS c"
            " WHERE c.relnamespace = pg_catalog.current_schema()::regnamespace"
            " AND c.relkind IN ('r', 'p', 'm') ORDER BY 1"
        )
        return tuple(str(row[0]) for row in rows)

    async def hold_against_writers(self, conn: Connection, tables: Sequence[str]) -> None:
        """Lock `tables` in EXCLUSIVE mode (reads go on) until the transaction ends.

        The lock waits for the writers under way, so that a check made after it sees their
        rows: a copy that checked first, under READ COMMITTED, took a row committed meanwhile
        for none, and put its own beside it.
        """
        pg = as_pg(conn)
        if not pg.is_in_transaction():
            raise DatabaseError("tables are held against writers inside a transaction only")
        names = ", ".join(map(quoted_identifier, tables))
        try:
            await pg.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        except asyncpg.InsufficientPrivilegeError as error:
            raise DatabaseError(
                f"a copy holds the tables it writes ({', '.join(tables)}) against other "
                "writers, which needs the UPDATE, DELETE or TRUNCATE privilege on each: "
                f"{error}"
            ) from error

    async def drop_indexes(self, conn: Connection, tables: Sequence[str]) -> tuple[str, ...]:
        """Drop the secondary indexes of `tables` the role owns, giving the SQL to make each again.

        Each one's SQL is its CREATE INDEX and the statements that set again what it had.

        Building an index over the rows already there sorts them once, far cheaper than row by
        row (the search vector's GIN index above all). The keys and constraints' indexes stay:
        the foreign keys need them. Until the transaction ends, the tables are locked.
        """
        pg = as_pg(conn)
        if not pg.is_in_transaction():
            raise DatabaseError("indexes are dropped for a bulk load inside a transaction only")
        rows = await pg.fetch(_SECONDARY_INDEXES, list(tables))
        for row in rows:
            await pg.execute(f"DROP INDEX {row[0]}")  # a name quoted by regclass's output
        return tuple(";\n".join([str(row[1]), *map(str, row[2])]) for row in rows)

    async def create_indexes(
        self, conn: Connection, definitions: Sequence[str], *, rows: int
    ) -> None:
        """Build the indexes again, each sorted in one pass, with more sort memory.

        Each is bounded by the statement bound plus `_BUILD_SECONDS_PER_ROW` a row, so that a
        large copy does not fail at its end.
        """
        pg = as_pg(conn)
        if definitions:
            await pg.execute(f"SET LOCAL maintenance_work_mem = '{_BUILD_MEMORY}'")
        bound = self.command_timeout + rows * _BUILD_SECONDS_PER_ROW
        for definition in definitions:
            await pg.execute(definition, timeout=bound)
