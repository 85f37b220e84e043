"""Where an export is written: a file replaced whole, or a pipe, FIFO or device written through.

A write that blocks (a FIFO with no reader yet, a pipe whose reader stopped reading) waits on
the event loop, not in the system call: blocked there, Ctrl-C only set the command's
cancellation, which the call never saw, and a second Ctrl-C was needed to stop it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import select
import stat
import sys
from pathlib import Path
from typing import Final

from persistence._cli_common import own_stdout_descriptor, write_utf8
from persistence._files.content import replace_whole, write_all

FIFO_WAIT: Final = 0.05
"""How often an export polls for a FIFO's reader to come, in seconds."""

CHUNK: Final = getattr(select, "PIPE_BUF", 512)
"""The most written at once to a blocking descriptor that polls writable: a pipe with room
takes it without blocking."""


async def write_to_stdout(text: str) -> None:
    """Write an export to standard output in UTF-8, waiting on the loop while it has no room.

    Written as a print writes, a pipe whose reader stopped reading (`export 1 | less`, left
    open) blocked the command in the system call, where one Ctrl-C could not stop it. This
    holds on POSIX, where stdout is the process's own (`standard_output()`'s). Any other stream
    (a test's capture, a notebook's, a wrapper around another file) takes the text as
    `write_utf8` writes it, where it writes its bytes.
    """
    descriptor = own_stdout_descriptor()
    if descriptor is None or os.name != "posix":
        write_utf8(text)
        return
    sys.stdout.flush()
    try:
        await _written_through(descriptor, text.encode("utf-8", "surrogateescape"))
    except OSError as error:
        raise OSError(error.errno, error.strerror, "standard output") from None


async def write_whole(path: Path, text: str, *, descriptor: int | None = None) -> None:
    """Write `text` to the file at `path` whole, or leave the file as it was.

    A regular file (or none yet) is replaced at once by a file written and synced beside it,
    so that a full disk, a read-only folder or an interrupt leaves the old file and no part
    of the new one; its mode is kept. What a write killed there left beside the file goes
    first (`replace_whole`). A symlink's target is written, the link kept. Anything
    else (a FIFO, a terminal, a device) is written as it is, as it cannot be replaced, and so
    is `descriptor`, which the caller opened (`/dev/stdout`): it is closed after.
    """
    data = text.encode("utf-8")
    if descriptor is None:  # else written through it: opened anew, `>> log` lost its start
        kind = await asyncio.to_thread(_replaced_if_regular, path, data)  # its fsync: off the loop
        if kind is None:
            return
        descriptor = await _opened_for_writing(path, fifo=stat.S_ISFIFO(kind))
    try:
        await _written_through(descriptor, data)
    except OSError as error:  # "Broken pipe" or "No space left on device" alone named no file
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        os.close(descriptor)


def _replaced_if_regular(path: Path, data: bytes) -> int | None:
    """Replace the regular file at `path` (or none yet) by `data`; else give what it is (mode)."""
    try:  # the path given, links followed: /dev/stdout's target may be a pipe, with no path
        before: os.stat_result | None = path.stat()
    except FileNotFoundError:
        before = None
    if before is not None and not stat.S_ISREG(before.st_mode):
        return before.st_mode
    target = Path(os.path.realpath(path))
    try:
        folder = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            # Made as a new file is, the umask applied: 0o600 by mkstemp would hide the export.
            mode = None if before is None else stat.S_IMODE(before.st_mode)
            replace_whole(folder, target.name, data, mode)
        finally:
            os.close(folder)
    except OSError as error:  # named by the path asked for, not the one beside it
        raise OSError(error.errno, error.strerror, str(path)) from None
    return None


async def _opened_for_writing(path: Path, *, fifo: bool) -> int:
    """Open what is not a regular file for writing, waiting on the loop for a FIFO's reader.

    Opened without O_NONBLOCK, a FIFO with no reader blocks the open itself; with it, the open
    fails with ENXIO until a reader comes. The description is this open's own, so the flag
    changes no other process's. Anything else failing so (a socket, a device with no driver)
    fails at once.
    """
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if not (fifo and error.errno == errno.ENXIO):
                raise OSError(error.errno, error.strerror, str(path)) from None
        await asyncio.sleep(FIFO_WAIT)


async def _written_through(descriptor: int, data: bytes) -> None:
    """Write all of `data` to `descriptor`, waiting on the loop whenever it cannot take more.

    What polls writable is written a pipe's atomic amount at a time while the descriptor
    blocks, which a pipe with room takes without blocking; one that does not block (O_NONBLOCK:
    a FIFO opened here) takes all it has room for at once. The flag is the open file's, which
    other processes share: it is asked before each write. What no poll waits on (a regular
    file, /dev/null) never blocks, and is written at once.
    """
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            await _writable(loop, descriptor)
        except (NotImplementedError, OSError) as error:  # no poll in this loop, or for it
            if isinstance(error, OSError) and error.errno not in _NO_POLL:
                raise
            write_all(descriptor, view)
            return
        most = CHUNK if os.get_blocking(descriptor) else len(view)
        try:
            view = view[os.write(descriptor, view[:most]) :]
        except BlockingIOError:  # its room taken meanwhile: wait again
            continue


_NO_POLL: Final = frozenset({errno.EPERM, errno.EINVAL})
"""What a selector says of a descriptor it cannot poll: epoll of a file, kqueue of a tty."""


async def _writable(loop: asyncio.AbstractEventLoop, descriptor: int) -> None:
    """Wait until `descriptor` polls writable (or in error, which the write then raises)."""
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(descriptor, ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_writer(descriptor)


_OWN_DESCRIPTOR: Final = re.compile(r"/(?:dev/fd|proc/self/fd|proc/(?P<pid>\d+)/fd)/(?P<fd>\d+)")


def descriptor_of(path: Path) -> int | None:
    """Give the descriptor of this process that `path` names (/dev/stdout, /dev/fd/1), if any.

    Its link leads to the file the descriptor has open, which a replace would replace whole:
    `export --output /dev/stdout >> log` lost the log's earlier lines.
    """
    current = path if path.is_absolute() else Path.cwd() / path
    for _ in range(40):  # as the system follows links, within its limit
        current = Path(os.path.realpath(current.parent)) / current.name  # its folders' links
        found = _OWN_DESCRIPTOR.fullmatch(str(current))
        if found is not None:
            pid = found["pid"]
            return int(found["fd"]) if pid is None or int(pid) == os.getpid() else None
        try:
            current = current.parent / current.readlink()
        except OSError:  # no link: a file, a folder, or nothing
            return None
    return None
