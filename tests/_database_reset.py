"""Bring a used PostgreSQL test database back to what a fresh copy of its template holds.

A copy from a template costs the server 8 MB of writes, and its drop a checkpoint: a thousand
of each a run. A database that a test used is instead checked and reset, and given to a later
test, when it provably holds what a fresh copy holds:

- its catalogs, every per-database one, hold as many rows as a fresh copy's, none of them
  newer: no table, column, index, trigger, function, type, comment, grant or large object
  was added, changed or removed. For a copy reset before, the server's own count of the rows
  written to those catalogs (inserted, updated or deleted, in a transaction that committed or
  not) stands in for that check while it has not moved since the last one: reading every
  catalog costs a new session about 25 ms of the server's time, the count about 1 ms;
- its row in `pg_database`, its own settings, and its comment and security labels (kept in
  shared catalogs) are a fresh copy's, once settings set on it (a fresh copy has none) are
  removed;
- no connection, prepared transaction or replication slot is left on it;
- after the reset, each table's rows and each sequence's state are a fresh copy's.

A copy of a template that holds no object of its own (template0, which most tests migrate
themselves) is wiped first: every schema but `public` dropped, and every table, sequence,
routine and type in `public`. It is reused when its catalogs are then a fresh copy's.

Anything else, and it is dropped instead. The reset and the wipe run with triggers off
(`session_replication_role = replica`, which holds back event triggers but those enabled
ALWAYS; the catalogs' check then finds any such trigger), so no trigger of the schema writes
while it restores.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence

import asyncpg
import attrs

LEFT_OUT_CATALOGS = ("pg_statistic", "pg_statistic_ext_data")
"""The planner's statistics, which ANALYZE rewrites."""

CONNECTIONS_GONE_WAIT = 2.0
"""How long a test's closed connections may take to leave the server's list, in seconds."""


@attrs.frozen
class Table:
    """A table of the template: its name, quoted, and the rows a fresh copy holds."""

    quoted: str
    schema: str
    name: str
    rows: bytes | None
    """Its rows in COPY's binary form, or None when a fresh copy holds none."""


@attrs.frozen
class Reference:
    """What a fresh copy of one template holds: a used copy is checked and reset against it."""

    database: tuple[object, ...]
    catalogs: tuple[tuple[str, str], ...]
    tables: tuple[Table, ...]
    data: tuple[str, ...]
    sequences: tuple[tuple[str, int | None, int], ...]
    empty: bool
    """Whether a fresh copy holds no schema but the system's and `public`, and nothing in it:
    then a used copy may be wiped, and reused when its catalogs are a fresh copy's again."""


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_DATABASE = """
SELECT d.datdba, d.encoding, d.datcollate, d.datctype, d.datistemplate, d.datallowconn,
       d.datconnlimit, d.dattablespace, d.datacl::text,
       (SELECT array_agg(s.setconfig::text ORDER BY s.setrole)
        FROM pg_db_role_setting s WHERE s.setdatabase = d.oid),
       (SELECT count(*) FROM pg_prepared_xacts x WHERE x.database = d.datname),
       (SELECT count(*) FROM pg_replication_slots r WHERE r.database = d.datname),
       shobj_description(d.oid, 'pg_database'),
       (SELECT array_agg(l.provider || '=' || l.label ORDER BY l.provider)
        FROM pg_shseclabel l WHERE l.objoid = d.oid AND l.classoid = 'pg_database'::regclass)
FROM pg_database d WHERE d.datname = $1
"""

_PER_DATABASE_CATALOGS = """
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
  AND c.relname <> ALL($1::text[])
"""
"""The catalogs each copy has of its own, those left out apart: read, and counted, alike."""

_CATALOGS = f"SELECT c.relname::text {_PER_DATABASE_CATALOGS} ORDER BY c.relname"

_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname
"""

_OWN_OBJECTS = """
SELECT (SELECT count(*) FROM pg_namespace n
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
          AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)')
     + (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)
     + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace)
     + (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace)
"""

_WIPE = """
DO $$
DECLARE
    statement text;
BEGIN
    -- Every statement is written before the first runs: a name read after a drop could be
    -- an object's bare number, which no statement takes.
    FOREACH statement IN ARRAY ARRAY(
        SELECT drop FROM (
            SELECT 1, format('DROP SCHEMA IF EXISTS %I CASCADE', n.nspname) FROM pg_namespace n
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public')
              AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
            UNION ALL
            -- Tables before sequences: a table takes its columns' sequences with it.
            SELECT CASE c.relkind WHEN 'S' THEN 3 WHEN 'c' THEN 3 ELSE 2 END,
                format('DROP %s IF EXISTS %s CASCADE',
                    CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                        WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                        WHEN 'c' THEN 'TYPE' ELSE 'TABLE' END,
                    c.oid::regclass)
            FROM pg_class c
            WHERE c.relnamespace = 'public'::regnamespace
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
            UNION ALL
            SELECT 4, format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure)
            FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
            UNION ALL
            SELECT 5, format('DROP TYPE IF EXISTS %s CASCADE', t.oid::regtype) FROM pg_type t
            WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('d', 'e', 'r')
        ) AS drops (turn, drop)
        ORDER BY turn
    )
    LOOP
        EXECUTE statement;
    END LOOP;
END $$
"""
"""Drops what a test made in a copy of an empty template. Whatever it misses, or a change to
the template's own rows, leaves the catalogs unlike a fresh copy's, and the copy is dropped."""

_CATALOG_WRITES = f"""
SELECT CASE WHEN pg_catalog.current_setting('track_counts')::bool
               AND pg_catalog.current_setting('server_version_num')::int >= 150000 THEN
    coalesce(sum(pg_catalog.pg_stat_get_tuples_inserted(c.oid)
                 + pg_catalog.pg_stat_get_tuples_updated(c.oid)
                 + pg_catalog.pg_stat_get_tuples_deleted(c.oid)), 0)::text
    || ' since ' || coalesce(pg_catalog.pg_stat_get_db_stat_reset_time(
        (SELECT d.oid FROM pg_catalog.pg_database d
         WHERE d.datname = pg_catalog.current_database()))::text, 'the start')
    || ' and ' || pg_catalog.pg_stat_get_bgwriter_stat_reset_time()::text
END
{_PER_DATABASE_CATALOGS}"""  # noqa: S608  # constant text alone
"""How many rows were ever written to the per-database catalogs, and since when it counts;
NULL where the server counts nothing (`track_counts` off), or before PostgreSQL 15.

From 15 on, a session's counts reach the server's shared memory as it ends, before it leaves
`pg_stat_activity`: once no connection is left, they hold every write. Before 15 they went
to a statistics process that could lose them or tell them late. A reset of the counts
(`pg_stat_reset()`) moves the database's time, and a crash's recovery, which throws every
count away, the background writer's. The statistics are left out, as in `_catalog_marks`."""

_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename), last_value, start_value FROM pg_sequences
ORDER BY schemaname, sequencename
"""


async def _catalog_marks(connection: asyncpg.Connection) -> tuple[tuple[str, str], ...]:
    """Each per-database catalog's row count and newest row version.

    A row that a statement adds or replaces carries that transaction's id (`xmin`), newer than
    any of the template's, and one it removes lowers the count. Only the figures that vacuum
    and analyze keep are written in place, without a new version; the statistics are left out.
    """
    names = await connection.fetch(_CATALOGS, list(LEFT_OUT_CATALOGS))
    mark = "count(*)::text || '/' || coalesce(max(xmin::text::bigint), 0)"
    counts = " UNION ALL ".join(
        f"SELECT {_literal(name)}, {mark} FROM pg_catalog.{_quoted(name)}"  # noqa: S608  # quoted
        for (name,) in names
    )
    rows = await connection.fetch(counts)
    return tuple(sorted((str(name), str(mark)) for name, mark in rows))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _catalog_writes(connection: asyncpg.Connection) -> str | None:
    """The server's count of the rows written to the catalogs, and since when: `_CATALOG_WRITES`."""
    count = await connection.fetchval(_CATALOG_WRITES, list(LEFT_OUT_CATALOGS))
    return None if count is None else str(count)


async def _data_hashes(connection: asyncpg.Connection, tables: Sequence[Table]) -> tuple[str, ...]:
    """A hash of each table's rows, in `tables`' order."""
    if not tables:
        return ()
    rows = "md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
    hashes = ", ".join(
        f"(SELECT {rows} FROM {table.quoted} AS t)"  # noqa: S608  # quoted here
        for table in tables
    )
    row = await connection.fetchrow(f"SELECT {hashes}")
    assert row is not None
    return tuple(str(value) for value in row)


async def _sequences(connection: asyncpg.Connection) -> tuple[tuple[str, int | None, int], ...]:
    """Each sequence's name, its last value (None before its first call) and its start."""
    rows = await connection.fetch(_SEQUENCES)
    return tuple((str(name), last, int(start)) for name, last, start in rows)


async def _database_row(admin: asyncpg.Connection, name: str) -> tuple[object, ...]:
    row = await admin.fetchrow(_DATABASE, name)
    if row is None:
        raise LookupError(f"no database {name}")
    return tuple(row)


async def reference(admin_url: str, url: str, name: str) -> Reference:
    """What the fresh copy `name`, at `url`, holds; nothing in it is changed."""
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        database = await _database_row(admin, name)
        connection = await asyncpg.connect(url, timeout=10)
        try:
            catalogs = await _catalog_marks(connection)
            tables = []
            for schema, relation in await connection.fetch(_TABLES):
                quoted = f"{_quoted(schema)}.{_quoted(relation)}"
                rows = None
                exists = f"SELECT EXISTS (SELECT FROM {quoted})"  # noqa: S608  # quoted here
                if await connection.fetchval(exists):
                    buffer = io.BytesIO()
                    await connection.copy_from_table(
                        relation, schema_name=schema, output=buffer, format="binary"
                    )
                    rows = buffer.getvalue()
                tables.append(Table(quoted, schema, relation, rows))
            data = await _data_hashes(connection, tables)
            sequences = await _sequences(connection)
            empty = await connection.fetchval(_OWN_OBJECTS) == 0
        finally:
            await connection.close()
        await _no_connection_left(admin, name)
    finally:
        await admin.close()
    return Reference(database, catalogs, tuple(tables), data, sequences, empty)


async def _no_connection_left(admin: asyncpg.Connection, name: str) -> bool:
    """Wait until no connection to `name` is left; whether none is."""
    deadline = time.monotonic() + CONNECTIONS_GONE_WAIT
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
    while await admin.fetchval(query, name):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _restore(connection: asyncpg.Connection, ref: Reference) -> None:
    """Give every table and sequence a fresh copy's rows and state, triggers off."""
    now = await _data_hashes(connection, ref.tables)
    changed = [
        table for table, was, is_ in zip(ref.tables, ref.data, now, strict=True) if was != is_
    ]
    await connection.execute("SET LOCAL session_replication_role = replica")
    if changed:
        deletes = (f"DELETE FROM {table.quoted}" for table in changed)  # noqa: S608  # quoted
        await connection.execute("; ".join(deletes))
    for table in changed:
        if table.rows is not None:
            await connection.copy_to_table(
                table.name,
                schema_name=table.schema,
                source=io.BytesIO(table.rows),
                format="binary",
            )
    if ref.sequences:
        calls = ", ".join(
            f"setval({_literal(sequence)}, {value}, true)"
            if value is not None
            else f"setval({_literal(sequence)}, {start}, false)"
            for sequence, value, start in ref.sequences
        )
        await connection.execute(f"SELECT {calls}")


@attrs.frozen
class Outcome:
    """What a reset found: why the copy is to be dropped, if it is, and the catalogs' count."""

    problem: str | None
    """None once the copy holds what its reference says."""
    writes: str | None = None
    """The server's count of its catalogs' writes once it was so (`_CATALOG_WRITES`), for the
    next reset of the copy to trust while the count stays; None where none is to be trusted."""


async def reset(
    admin_url: str, url: str, name: str, ref: Reference, writes: str | None = None
) -> Outcome:
    """Reset the used copy `name` to `ref`.

    `writes` is the count that the copy's last reset gave, None for a fresh copy: while the
    count is the same, its catalogs are as that reset proved them, and are not read again.
    """
    admin = await asyncpg.connect(admin_url, timeout=10)
    try:
        if not await _no_connection_left(admin, name):
            return Outcome("connections left open on it")
        found = await _database_row(admin, name)
        if found != ref.database and _only_settings_differ(found, ref.database):
            await _reset_settings(admin, name)
            found = await _database_row(admin, name)
        if found != ref.database:
            return Outcome("its database settings, transactions or slots differ")
        outcome = await _reset_inside(url, ref, writes)
        if outcome.problem is None and not await _no_connection_left(admin, name):
            return Outcome("the reset's connection stayed")
        return outcome
    finally:
        await admin.close()


_SETTINGS = 9
"""Where `_DATABASE` puts the database's own settings (`ALTER DATABASE ... SET`, and
`ALTER ROLE ... IN DATABASE ... SET`): None for a fresh copy, which CREATE DATABASE gives none."""

_SETTING_ROLES = """
SELECT s.setrole, r.rolname FROM pg_db_role_setting s
JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole
WHERE d.datname = $1
"""


def _only_settings_differ(found: tuple[object, ...], fresh: tuple[object, ...]) -> bool:
    """Whether the copy's row differs from a fresh copy's in settings alone, which it had none of.

    A test of the package's sessions sets one (`standard_conforming_strings`, a default
    isolation) in about 50 copies a run: each was dropped, and a new copy made, a checkpoint and
    8 MB of the server's writes apiece.
    """
    return fresh[_SETTINGS] is None and (
        found[:_SETTINGS] + found[_SETTINGS + 1 :] == fresh[:_SETTINGS] + fresh[_SETTINGS + 1 :]
    )


async def _reset_settings(admin: asyncpg.Connection, name: str) -> None:
    """Remove every setting of the database `name`, its own and its roles' in it."""
    for role_oid, role in await admin.fetch(_SETTING_ROLES, name):
        if role_oid == 0:
            await admin.execute(f"ALTER DATABASE {_quoted(name)} RESET ALL")
        elif role is not None:
            await admin.execute(f"ALTER ROLE {_quoted(role)} IN DATABASE {_quoted(name)} RESET ALL")


async def _reset_inside(url: str, ref: Reference, writes: str | None) -> Outcome:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        now = await _catalog_writes(connection)
        if now is None or now != writes:
            problem, wiped = await _check_catalogs(connection, ref)
            if problem is not None:
                return Outcome(problem)
            if wiped:  # the wipe's own writes are counted once this session ends
                now = None
        transaction = connection.transaction()
        await transaction.start()
        try:
            await _restore(connection, ref)
            problem = await _unlike(connection, ref)
        except BaseException:
            await transaction.rollback()
            raise
        await (transaction.rollback() if problem else transaction.commit())
        return Outcome(problem, None if problem else now)
    finally:
        await connection.close()


async def _check_catalogs(
    connection: asyncpg.Connection, ref: Reference
) -> tuple[str | None, bool]:
    """Read every catalog, wiping a copy of an empty template that differs first.

    What differs from `ref` after, if anything, and whether the copy was wiped.
    """
    catalogs = await _catalog_marks(connection)
    wiped = catalogs != ref.catalogs and ref.empty
    if wiped:
        async with connection.transaction():
            await connection.execute("SET LOCAL session_replication_role = replica")
            await connection.execute(_WIPE)
        catalogs = await _catalog_marks(connection)
    if catalogs != ref.catalogs:
        changed = sorted({name for name, _ in set(catalogs) ^ set(ref.catalogs)})
        return f"its catalogs differ: {', '.join(changed)}", wiped
    return None, wiped


async def _unlike(connection: asyncpg.Connection, ref: Reference) -> str | None:
    """What in the database's rows or sequences is unlike `ref`, if anything."""
    if await _data_hashes(connection, ref.tables) != ref.data:
        return "its rows differ after the reset"
    if await _sequences(connection) != ref.sequences:
        return "its sequences differ after the reset"
    return None
