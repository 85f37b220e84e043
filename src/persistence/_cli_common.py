"""What the commands share: exit codes, the database, opening it, argument types, output.

`__main__` and the command modules beside it (`_cli_migrations`, `_cli_history`) stand on this.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import datetime as dt
import io
import json
import math
import os
import select
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from persistence._guards import path_problem
from persistence.bundle import checked_as_it_is
from persistence.database import (
    Database,
    Engine,
    close_database,
    engine_of,
    open_database,
)
from persistence.exceptions import DatabaseError, MigrationError, shown_path

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from typing_extensions import Buffer

EXIT_OK: Final = 0
EXIT_PENDING: Final = 1
EXIT_FAILED: Final = 3
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT, as shells report it
EXIT_NO_READER: Final = 141  # 128 + SIGPIPE, as shells report a writer whose reader left

_CONNECT_TIMEOUT: Final = 10.0
COMMAND_TIMEOUT: Final = 60.0
"""Seconds one statement may run on PostgreSQL: `open_database`'s default, and `migrate`'s."""
_RETRY_DELAY: Final = (0.1, 1.0)  # first and longest pause between connection attempts
_T = TypeVar("_T")


class CannotRunError(Exception):
    """A reason the command cannot run that is not the database's: printed as one line."""


@contextlib.contextmanager
def telling_what_was_done(said: str, kept: str) -> Iterator[None]:
    """Print, in the block, what a command did and kept; flushed at its end.

    A stdout that fails then (a full disk, `> /dev/full`) says that the work is kept, `kept`:
    it read as a command that failed, whose retry a backup's target, a restore's non-empty
    database or an import's second run then refused or doubled. A reader gone (`| head`)
    ends the command as a broken pipe does anywhere.
    """
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as error:
        raise CannotRunError(
            f"{said}, but could not say so on standard output ({error.strerror or error}): {kept}"
        ) from None


@contextlib.asynccontextmanager
async def opened(
    url: str, *, create: bool, wait: float, command_timeout: float = COMMAND_TIMEOUT
) -> AsyncIterator[Database]:
    """Open the database for a command, retrying for up to `wait` seconds; close it after.

    On SQLite a write waits for another process's write lock as long as a statement may run on
    PostgreSQL, or `wait` if longer: a second import waits for a long one, as it would there.
    """
    db = await retrying(
        lambda timeout: open_database(
            url,
            create=create,
            connect_timeout=timeout,
            command_timeout=command_timeout,
            busy_timeout=max(command_timeout, wait),
        ),
        url,
        wait,
    )
    try:
        yield db
    finally:
        await close_database(db)


async def retrying(attempt: Callable[[float], Awaitable[_T]], url: str, wait: float) -> _T:
    """Make attempts, given each one's connect timeout, until one works or `wait` has passed."""
    engine_of(url)  # a bad URL fails at once: waiting would not mend it
    deadline = time.monotonic() + wait
    delay, longest = _RETRY_DELAY
    while True:
        # Within a wait, an attempt may take what is left of it, but at least a second.
        left = deadline - time.monotonic()
        timeout = min(_CONNECT_TIMEOUT, max(left, 1.0)) if wait else _CONNECT_TIMEOUT
        try:
            return await attempt(timeout)
        except DatabaseError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                if wait:
                    raise DatabaseError(f"{error} (gave up after waiting {wait:g}s)") from error
                raise
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, longest)


@contextlib.asynccontextmanager
async def opened_existing(url: str, *, wait: float, write: bool) -> AsyncIterator[Database]:
    """Open a database that must exist already, as `opened`: a missing SQLite file is refused."""
    engine, target = engine_of(url)
    if engine is Engine.SQLITE and not await asyncio.to_thread(Path(target).is_file):
        msg = f"no SQLite database at {target!r}"
        if write:
            msg += f": create and migrate it first (persistence migrate --database {target})"
        raise CannotRunError(msg)
    if engine is Engine.SQLITE and write:  # before the open that writes sets WAL mode on it
        await retrying(lambda _: _migrated_as_it_is(target), url, wait)
    async with opened(url, create=write, wait=wait) as db:
        yield db


async def _migrated_as_it_is(target: str) -> None:
    """Refuse a SQLite file not migrated to this version, read as it is, as a `DatabaseError`.

    Refused after the open that writes, it was left changed: that open sets WAL mode first,
    and an empty file became a WAL database. A `DatabaseError`, so that `--wait` waits for a
    migration under way.
    """
    try:
        await checked_as_it_is(target, None)
    except MigrationError as error:
        raise DatabaseError(str(error)) from error


def whole_number(expected: str, most: int | None = None) -> Callable[[str], int]:
    """Give an argparse type for a whole number above 0, at most `most`; `expected` words it."""

    def parse(text: str) -> int:
        value = int(text) if text.isascii() and text.isdigit() else 0
        if value <= 0 or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
        return value

    return parse


def path_argument(text: str) -> Path:
    """Take a file or folder argument; an empty one (a shell variable left unset) is refused.

    `Path("")` is the working folder, which no one names by leaving the path out.
    """
    if not text:
        msg = "an empty path names no file or folder: write . for the working folder"
        raise argparse.ArgumentTypeError(msg)
    _, problem = path_problem(text)
    if problem is not None:
        msg = f"the path {problem}"
        raise argparse.ArgumentTypeError(msg)
    return Path(text)


def file_argument(text: str) -> Path:
    """Take a file argument, as `path_argument` does; one that names a folder is refused.

    `Path("out/")` and `Path("out/.")` are `out`: a file named so was written, or replaced,
    where the user named a folder, which `open("out/")` refuses.
    """
    path = path_argument(text)
    last = text.replace(os.altsep or os.sep, os.sep).rpartition(os.sep)[2]
    if last in {"", ".", ".."}:  # `out/`, `out/.`: a folder, whatever the folder's name
        msg = f"{shown_path(text)} names a folder, by its last part {last!r}: name a file"
        raise argparse.ArgumentTypeError(msg)
    return path


def amount(expected: str, *, above_zero: bool = False) -> Callable[[str], float]:
    """Give an argparse type for a finite number, 0 or more (or more than 0 if `above_zero`).

    `expected` words it in the error.
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > 0 if above_zero else value >= 0)):
            raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
        return value

    return parse


def print_json(value: dict[str, object]) -> None:
    """Print a command's `--json` answer, indented; times as ISO 8601, str enums as their text."""
    print(json.dumps(value, indent=2, default=dt.datetime.isoformat))


def picked(item: object, *names: str) -> dict[str, object]:
    """Give the named attributes of `item`, in that order, for `print_json`."""
    return {name: getattr(item, name) for name in names}


@contextlib.contextmanager
def standard_output() -> Iterator[None]:
    r"""Give the command a stdout whose failures name it, and that escapes what it cannot encode.

    Named: a full disk under `> out.txt` said only "No space left on device", which could as
    well have been the database's. Escaped (`\xe9`), as stderr does: a redirected stdout on
    Windows is cp1252, and a legacy locale or PYTHONIOENCODING may make it ASCII, so a test id
    or a sparkline it could not encode raised UnicodeEncodeError mid-table.
    """
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper):
        yield  # another stream: as it is
        return
    # surrogateescape, a C locale's, encodes no character beyond its encoding either; in
    # UTF-8 (Python's UTF-8 mode) it writes a name's undecodable bytes back as they were
    utf_8 = codecs.lookup(stream.encoding).name == "utf-8"
    unescaped = stream.errors == "strict" or (stream.errors == "surrogateescape" and not utf_8)
    errors = "backslashreplace" if unescaped else stream.errors
    if stream is not sys.__stdout__:  # a test's capture, say
        before = stream.errors
        stream.reconfigure(errors=errors)
        try:
            yield
        finally:
            stream.reconfigure(errors=before)
        return
    stream.flush()
    named = io.TextIOWrapper(
        _NamedOutput(stream.fileno()),
        encoding=stream.encoding,
        errors=errors,
        newline=None,
        write_through=True,
    )
    sys.stdout = named
    try:
        yield
    finally:
        sys.stdout = stream


def own_stdout_descriptor() -> int | None:
    """Give the descriptor that stdout writes its bytes to, where stdout is the process's own.

    None for any other stream, whatever its `fileno()` says: a notebook's names the terminal
    that started it, and a wrapper around a compressed file, that file.
    """
    stream = sys.stdout
    if stream is sys.__stdout__ or isinstance(getattr(stream, "buffer", None), _NamedOutput):
        try:
            return stream.fileno()
        except (AttributeError, ValueError, OSError):  # closed, or detached from its file
            return None
    return None


class _NamedOutput(io.BufferedIOBase):
    """Descriptor 1, written whole at each write, its failures naming standard output.

    Closed, it leaves the descriptor open: it is the process's, not this wrapper's.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._descriptor

    def isatty(self) -> bool:
        return os.isatty(self._descriptor)

    @property
    def name(self) -> str:
        return "<stdout>"

    def write(self, data: Buffer, /) -> int:
        """Write all of `data`, waiting while a pipe in non-blocking mode is full.

        A parent may hand over such a pipe (Node's, some CI runners'); the flag is the pipe's,
        not this process's to change. It raised `EAGAIN` once 64 KiB were waiting, unnamed.
        """
        whole = memoryview(data).cast("B")
        view = whole
        try:
            while view:
                try:
                    view = view[os.write(self._descriptor, view) :]
                except BlockingIOError:  # full: wait until the reader takes some
                    select.select([], [self._descriptor], [])
        except OSError as error:
            raise OSError(error.errno, error.strerror, "standard output") from None
        return len(whole)


def write_utf8(text: str) -> None:
    """Write text that is a file's content (an export, SQL) to stdout in UTF-8, byte for byte.

    Printed, it took stdout's encoding: cp1252 on Windows when redirected, or a legacy locale's,
    which wrote `é` as one byte in XML declaring UTF-8, and a character it lacked as an escape.
    """
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a stream of text alone, such as a test's capture: it takes the text
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    binary.write(text.encode("utf-8", "surrogateescape"))  # a path's bytes, as they came
    binary.flush()


def stdout_reader_gone() -> bool:
    """Tell whether stdout is a pipe whose reader has left (`| head` that read enough).

    Asked of a BrokenPipeError, which another pipe (an `--output` FIFO) may raise too: such a
    pipe's write end polls as an error once its reader is gone. Where `poll` is missing
    (Windows), none is told apart.
    """
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # closed, replaced, or no file (captured)
        return False
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def say(message: str) -> None:
    """Print one line on stderr, whatever line breaks the message holds; none if it is closed.

    Each line's own spaces stay: a path or test id holding two is named as it is. Started
    with stderr closed (`2>&-`), Python's is None, and print would write to stdout: into the
    export or the JSON a script reads. The exit code still tells.
    """
    if sys.stderr is None:
        return
    lines = (line.strip() for line in message.splitlines())
    print(f"persistence: {' '.join(line for line in lines if line)}", file=sys.stderr)
