"""The migration files: finding, naming, reading and checksumming them.

A migration is a numbered SQL file, `NNNN_slug.sql`, of the package's chain (shipped in the
wheel) or of a user's own (`FOLDER/<engine>/`). Each is read as UTF-8 text, a regular file
and nothing else, and summed with its line endings normalised.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from pathlib import Path
from typing import Final

import attrs

from persistence._files.paths import open_regular
from persistence._guards import argument
from persistence._loader import sql_root
from persistence.database import Engine
from persistence.exceptions import MigrationError, NotAFileError

HISTORY_TABLE: Final = "persistence_migrations"
"""The runner's history table, of the package's own chain."""

USER_HISTORY_TABLE: Final = "persistence_user_migrations"
"""The history table of the user's own chain."""


class Chain(enum.StrEnum):
    """A line of migrations with a history of its own."""

    PACKAGE = "package"
    """The package's own migrations, shipped in the wheel."""
    USER = "user"
    """The user's own migrations, from a folder of theirs, applied after the package's."""

    @property
    def history(self) -> str:
        """The name of this chain's history table."""
        return HISTORY_TABLE if self is Chain.PACKAGE else USER_HISTORY_TABLE

    @property
    def label(self) -> str:
        """The prefix of a migration's name: none for the package's, `user/` for the user's."""
        return "" if self is Chain.PACKAGE else "user/"


_FILE_NAME: Final = re.compile(r"(?P<version>[0-9]{4,})_(?P<slug>[a-z0-9_]+)\.sql")
LAST_VERSION: Final = 2**63 - 1
"""The highest version a migration may have: the history's version is a bigint on PostgreSQL."""
MIGRATION_FILE_LIMIT: Final = 64 * 2**20
"""A migration's most bytes: it is read whole, and a file of gigabytes ran out of memory."""


@attrs.frozen
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    path: Path
    sql: str = attrs.field(repr=False)
    checksum: str
    chain: Chain = Chain.PACKAGE


def checksum(text: str) -> str:
    """SHA-256 of a file's text with line endings normalised, so a checkout's CRLF is no drift."""
    return hashlib.sha256(_lf_lines(text).encode()).hexdigest()


def _lf_lines(text: str) -> str:
    """End each line with LF alone: CRLF and a lone CR end a line, for the checksum and the SQL."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_folder(folder: Path, what: str) -> bool:
    """Tell whether `folder` is one; a name that cannot be looked at (too long) is refused.

    Python 3.11's `is_dir` raised its OSError, where a missing folder gives False.
    """
    try:
        return folder.is_dir()
    except OSError as error:
        raise MigrationError(f"{what} {folder} cannot be read: {error.strerror or error}") from None


def migrations_folder(engine: Engine) -> Path:
    """Return the folder of one engine's packaged migrations."""
    return sql_root() / "migrations" / engine.value


def user_migrations_folder(folder: Path, engine: Engine) -> Path:
    """Return one engine's folder of a user's chain, `folder/<engine>`, which must exist."""
    folder = argument("migrate", "folder", Path, folder, "a pathlib.Path")
    if not _is_folder(folder, "your migrations folder"):
        missing = "is not a folder" if folder.exists() else "does not exist"
        raise MigrationError(f"your migrations folder {folder} {missing}")
    engine_folder = folder / engine.value
    if not _is_folder(engine_folder, "your migrations folder"):
        raise MigrationError(
            f"your migrations folder {folder} has no {engine.value}/ folder: it holds one "
            f"folder per engine, {folder / 'sqlite'} and {folder / 'postgres'}, each of "
            "NNNN_slug.sql files (persistence new NAME --folder FOLDER writes both)"
        )
    return engine_folder


def discover_migrations(folder: Path, chain: Chain = Chain.PACKAGE) -> list[Migration]:
    """Read the `NNNN_slug.sql` files of one engine's folder in version order; refuse bad names."""
    if not _is_folder(folder, "the migrations folder"):
        raise MigrationError(f"migrations folder {folder} does not exist")
    # A user's file may link within its folder, or within the folder of both engines' folders.
    within = (folder.resolve(), folder.parent.resolve()) if chain is Chain.USER else None
    migrations: dict[int, Migration] = {}
    try:
        paths = sorted(folder.iterdir())
    except OSError as error:  # out of descriptors, or a folder not to be listed
        raise MigrationError(
            f"migrations folder {folder} cannot be read: {error.strerror or error}"
        ) from None
    for path in paths:
        if path.name.startswith(".") or path.suffix.lower() != ".sql":
            continue
        migration = attrs.evolve(_read_migration(path, within), chain=chain)
        if migration.version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[migration.version].path.name} share version "
                f"{migration.version}",
                migration=path.name,
            )
        migrations[migration.version] = migration
    return [migrations[version] for version in sorted(migrations)]


_Stamps = tuple[tuple[str, int, int, int], ...]
_PACKAGED: dict[Engine, tuple[_Stamps, tuple[Migration, ...]]] = {}
"""Each engine's packaged migrations as last read in this process, with their files' stamps."""


def packaged_migrations(engine: Engine) -> list[Migration]:
    """Read the package's own migrations of `engine`; again only once one of its files changed.

    Reading and checking every file took 2 of an open's 11 ms. A stamp is a file's name, size,
    modification time and inode: an edit of a checkout's file is read again.
    """
    folder = migrations_folder(engine)
    try:
        with os.scandir(folder) as entries:
            stamps = tuple(
                sorted(
                    (entry.name, found.st_size, found.st_mtime_ns, found.st_ino)
                    for entry in entries
                    for found in (entry.stat(),)
                )
            )
    except OSError:
        return discover_migrations(folder)  # which names what is wrong
    kept = _PACKAGED.get(engine)
    if kept is None or kept[0] != stamps:
        kept = _PACKAGED[engine] = (stamps, tuple(discover_migrations(folder)))
    return list(kept[1])


def _read_migration(path: Path, within: tuple[Path, ...] | None = None) -> Migration:
    match = _FILE_NAME.fullmatch(path.name)
    if match is None:
        raise MigrationError(
            f"{path.name}: migration files are named NNNN_slug.sql "
            "(four or more digits, a lower-case slug, and a lower-case .sql)",
            migration=path.name,
        )
    if int(match["version"]) > LAST_VERSION:
        raise MigrationError(
            f"{path.name}: its version is over {LAST_VERSION}, more than the history can hold",
            migration=path.name,
        )
    if path.is_dir():
        raise MigrationError(f"{path.name} is a folder, not a migration file", migration=path.name)
    try:
        text = _read_regular_file(path, within).decode("utf-8")
    except UnicodeDecodeError as error:
        raise MigrationError(
            f"{path.name} is not UTF-8 text (byte {error.start}): save it as UTF-8",
            migration=path.name,
        ) from None
    except OSError as error:
        raise MigrationError(
            f"{path.name} cannot be read: {error.strerror or error}", migration=path.name
        ) from error
    if (nul := text.find("\x00")) >= 0:
        raise MigrationError(
            f"{path.name} holds a NUL character (byte {len(text[:nul].encode())}), which no "
            "engine takes in SQL: a migration is SQL text",
            migration=path.name,
        )
    # The SQL goes without a byte order mark, which PostgreSQL would take for part of a word, and
    # with LF line ends, so that a lone CR ends a `--` comment; the checksum stays the file's.
    sql = _lf_lines(text.removeprefix("\ufeff"))
    return Migration(int(match["version"]), path.stem, path, sql, checksum(text))


def _read_regular_file(path: Path, within: tuple[Path, ...] | None) -> bytes:
    """Read a regular file; refuse a FIFO or a device (even through a symlink) unread.

    Read, a FIFO without a writer blocks for ever and /dev/zero fills memory: `open_regular`
    opens only a regular file, without waiting. A file that resolves outside every folder of
    `within` (when given) is refused unread too.
    """
    if within is not None:
        target = Path(os.path.realpath(path))  # a loop is left to open_regular, to name
        if not any(target.is_relative_to(folder) for folder in within):
            raise MigrationError(
                f"{path.name} leads out of your migrations folder (a link to {target}): "
                "keep the migration's file inside the folder",
                migration=path.name,
            )
    try:
        descriptor = open_regular(None, str(path), path.name, follow=True)
    except NotAFileError:
        raise MigrationError(
            f"{path.name} is not a regular file (a FIFO, a socket or a device): "
            "a migration is a file of SQL text",
            migration=path.name,
        ) from None
    with open(descriptor, "rb") as file:  # noqa: PTH123  # a descriptor, not a path
        text = file.read(MIGRATION_FILE_LIMIT + 1)  # not whole: the file may grow meanwhile
    if len(text) > MIGRATION_FILE_LIMIT:
        raise MigrationError(
            f"{path.name} is over {MIGRATION_FILE_LIMIT // 2**20} MiB, more than a migration may "
            "hold: load data that large with the engine's own bulk load (COPY, .import)",
            migration=path.name,
        )
    return text
