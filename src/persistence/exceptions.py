"""The errors this package raises. Driver and OS errors are translated into these, and chained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath

__all__ = [
    "CloseTimeoutError",
    "ConflictError",
    "DatabaseError",
    "FileMissingError",
    "InvalidPathError",
    "MigrationError",
    "NotAFileError",
    "NotFoundError",
    "OutsideRootError",
    "PersistenceError",
    "ReportError",
    "SqlFilesMissingError",
    "StorageError",
    "StoragePermissionError",
    "ValidationError",
]


class PersistenceError(Exception):
    """Base of every error this package raises on purpose."""

    def __reduce__(self) -> str | tuple[object, ...]:
        """Rebuild the error as it is, its attributes and slots set, without its `__init__`.

        Exception's own way calls the class with the message alone, which the errors that take
        more refused: one raised in a process pool's worker broke the pool, not its caller. So
        did a user's subclass whose `__init__` passes its arguments on, or that adds only
        `__slots__`. A class of the user's that makes itself (its own `__new__`) is rebuilt
        Exception's way.
        """
        if any("__new__" in k.__dict__ for k in _users_classes(type(self))):
            return super().__reduce__()
        state = self.__getstate__()  # object's: the __dict__, or (__dict__, slots)
        if isinstance(state, tuple) and type(self).__getstate__ is object.__getstate__:
            attributes, slots = state  # Exception's __setstate__ takes one dict: merged
            state = {**(attributes or {}), **(slots or {})}
        return _rebuilt, (type(self), self.args), state


def _users_classes(kind: type[PersistenceError]) -> Iterator[type]:
    """Give the classes of `kind`'s line below the package's own: a user's subclasses."""
    for klass in kind.__mro__:
        if klass.__module__.split(".")[0] == "persistence":
            return
        yield klass


def _rebuilt(kind: type[PersistenceError], args: tuple[object, ...]) -> PersistenceError:
    error = kind.__new__(kind)
    error.args = args
    return error


def shown_path(path: PurePath | str) -> str:
    """Give a path as a message names it: as it is, or quoted with escapes if it would not print.

    A file name may hold a newline, which would split a log line in two, or, where its bytes
    are not UTF-8, lone surrogates, which no UTF-8 stream takes: `print` and logging fail.
    """
    text = str(path)
    return text if text.isprintable() else repr(text)


class ValidationError(PersistenceError, ValueError):
    """A value does not fit the model: names the model, the field and what is wrong."""

    def __init__(self, model: str, field: str, reason: str) -> None:
        super().__init__(f"{model}.{field}: {reason}")
        self.model = model
        self.field = field
        self.reason = reason


class NotFoundError(PersistenceError, LookupError):
    """No row has the key that was asked for.

    `argument` names the caller's argument that held the key, where a call takes more than one.
    """

    def __init__(self, model: str, key: object, *, argument: str | None = None) -> None:
        named = "" if argument is None else f" ({argument})"
        super().__init__(f"{model} not found: {key!r}{named}")
        self.model = model
        self.key = key
        self.argument = argument


class ConflictError(PersistenceError):
    """A write would break a uniqueness rule, such as one config entry per (section, key)."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class DatabaseError(PersistenceError):
    """The database could not do what was asked: unreachable, locked, or failed."""


class MigrationError(PersistenceError):
    """A migration failed, drifted from its recorded checksum, or cannot be applied.

    `migration` names the migration, `line` the line of its file where the statement that
    failed starts, when the engine tells which statement it was.
    """

    def __init__(
        self, message: str, *, migration: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.migration = migration
        self.line = line


class CloseTimeoutError(PersistenceError, TimeoutError):
    """A `SyncRunner` closed before what ran on its loop ended: names what was still running."""

    def __init__(self, message: str, *, running: tuple[str, ...], thread_alive: bool) -> None:
        super().__init__(message)
        self.running = running
        self.thread_alive = thread_alive


class SqlFilesMissingError(PersistenceError):
    """The package's SQL files are not where it looked: the installation is incomplete."""

    def __init__(self, searched: tuple[PurePath, ...]) -> None:
        places = " nor ".join(str(path) for path in searched)
        super().__init__(
            f"the SQL files of persistence are missing: found neither {places}; "
            "reinstall the package (its wheel ships them as persistence/sql)"
        )
        self.searched = searched


class ReportError(PersistenceError, ValueError):
    """A test report cannot be imported: names the file, the line and what is wrong."""

    def __init__(self, path: PurePath | str, line: int | None, reason: str) -> None:
        where = shown_path(path) if line is None else f"{shown_path(path)}:{line}"
        super().__init__(f"{where}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


class StorageError(PersistenceError):
    """A file operation failed: names the path."""

    def __init__(self, path: PurePath | str, reason: str) -> None:
        super().__init__(f"{shown_path(path)}: {reason}")
        self.path = str(path)
        self.reason = reason


class InvalidPathError(StorageError, ValueError):
    """The path or pattern cannot name a file at all: it is empty or holds a NUL byte."""


class OutsideRootError(StorageError):
    """The path resolves outside the storage root: through '..', an absolute path or a symlink."""


class FileMissingError(StorageError):
    """The path does not exist."""


class NotAFileError(StorageError):
    """The path exists but is not a regular file."""


class StoragePermissionError(StorageError):
    """The operating system refused access to the path."""
