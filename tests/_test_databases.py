"""PostgreSQL test databases, made ahead, reset for reuse and dropped in a process of their own.

Each test process starts one such process (`DatabaseService`), which copies each test's
database from a template ahead of the test, and takes it back after, in threads and
connections of its own: a test that counts its own process's descriptors, threads or mappings
counts none of them, and needs neither wait for the copies and drops nor make its database.

A copy given back is reset to what a fresh copy of its template holds, and a later take gets
it, when `_database_reset` proves it holds what a fresh copy holds; any other is dropped. A
copy costs the server 8 MB of writes and a drop a checkpoint, a thousand of each a run.
PERSISTENCE_TEST_DATABASES_REUSE=0 drops every copy given back instead.

`python _test_databases.py ADMIN_URL` reads one command a line on stdin:

- `take TEMPLATE`: answers `made NAME`, a database copied from TEMPLATE (one reset for reuse,
  the one made ahead, or one made now), and makes the next one ahead; or `error MESSAGE`.
- `create TEMPLATE`: answers the same, a database made now, with none made ahead.
- `give NAME`: resets NAME for a later take, or drops it, in the background; answers nothing.
- `drop NAME`: drops NAME in the background; answers nothing. A template's copies stop first.
- `pause`: answers `paused` once no drop, reset and copy is under way; none starts until
  `resume`.

At the end of stdin (the test process closed it, or ended, killed or not) it drops every
database it made, writes `failed MESSAGE` for each drop that failed and each database that it
never had back, and exits. It never outlives its test process by more than those drops. It
ignores SIGINT and SIGTERM, which reach its whole process group (Ctrl-C, `timeout`, a cancelled
job): killed with its test process, it would leave every database it made.

With PERSISTENCE_TEST_DATABASES_LOG set, it appends `made NAME`, `reset NAME`,
`not reset NAME: WHY` and `dropped NAME` to that file, a line each, for a look at what a run
did and left behind.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from _database_reset import Reference, reference, reset

LOG_VARIABLE = "PERSISTENCE_TEST_DATABASES_LOG"
REUSE_VARIABLE = "PERSISTENCE_TEST_DATABASES_REUSE"
LAG_LOCK_VARIABLE = "PERSISTENCE_TEST_LAG_LOCK"
"""Names the file whose lock each loop-lag measurement of the timed tests holds (tests/_lag.py):
every copy, reset and drop holds it shared, so that none runs while a worker measures."""


@contextmanager
def lag_lock(mode: int) -> Iterator[None]:
    """Hold the lag lock in `mode` (fcntl.LOCK_SH or LOCK_EX), where one is named."""
    path = os.environ.get(LAG_LOCK_VARIABLE)
    if not path:
        yield
        return
    lock = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, mode)
        yield
    finally:
        os.close(lock)  # which lets the lock go


DROP_THREADS = 4
"""Drops and resets that run at once, in the database process of each test process (`make
test` has four). Each drop makes the server write a checkpoint, and drops that arrive together
share one: 24 migrated test databases took 2.4 s to drop two at a time and 1.1 to 1.3 s eight
at a time. Each thread holds a connection only while it drops or resets."""


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


class _Service:
    """The database process's state: copies made ahead, copies reset for reuse, drops, pauses."""

    def __init__(self, admin: str, log: TextIO | None, *, reuse: bool = True) -> None:
        self._admin, self._log, self._reuse = admin, log, reuse
        self._turn = threading.Condition()
        self._pauses = 0
        self._busy = 0  # drops, copies and resets under way in the threads
        self._closing = False
        self._ready: dict[str, str | Exception] = {}  # a copy made ahead, by template
        self._making: set[str] = set()  # templates a copy is being made ahead of
        self._retired: set[str] = set()  # templates dropped, or being dropped
        self._made: set[str] = set()  # every database made and not yet asked to drop
        self._lent: set[str] = set()  # of those, the ones the test process holds
        self._origin: dict[str, str] = {}  # each database made: the template it copies
        self._references: dict[str, Reference | None] = {}  # None: its copies are not reused
        self._referencing = threading.Lock()
        self._pool: dict[str, list[str]] = {}  # copies reset for reuse, by template
        self._resetting: set[str] = set()  # copies given back, being reset or waiting to be
        self._writes: dict[str, str] = {}  # each copy's catalog writes at its last reset
        self._failures: list[str] = []
        self._wanted: queue.Queue[str | None] = queue.Queue()
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._maker = threading.Thread(target=self._make_ahead, name="make-test-databases")
        self._workers = [
            threading.Thread(target=self._work, name=f"drop-test-databases-{i}")
            for i in range(DROP_THREADS)
        ]
        for thread in (self._maker, *self._workers):
            thread.start()

    def _note(self, line: str) -> None:
        if self._log is not None:
            self._log.write(f"{line}\n")
            self._log.flush()

    def create(self, template: str) -> str:
        """A database copied from `template` now."""
        name = f"persistence_test_{uuid.uuid4().hex[:12]}"
        # Identifiers cannot be bound parameters; the names are made here, from hex digits only.
        with lag_lock(fcntl.LOCK_SH):
            asyncio.run(_admin(self._admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        with self._turn:
            self._made.add(name)
            self._origin[name] = template
        self._note(f"made {name}")
        self._refer_to(template, name)
        return name

    def _refer_to(self, template: str, fresh: str) -> None:
        """Keep what the fresh copy `fresh` holds, once per template, to reset copies to."""
        with self._referencing:
            if not self._reuse or template in self._references:
                return
            try:
                found: Reference | None = asyncio.run(
                    reference(self._admin, self._url(fresh), fresh)
                )
            except Exception as error:  # noqa: BLE001  # its copies are dropped, not reused
                self._note(f"no reuse of copies of {template}: {_one_line(error)}")
                found = None
            with self._turn:
                self._references[template] = found

    def _url(self, name: str) -> str:
        return urlunsplit(urlsplit(self._admin)._replace(path=f"/{name}"))

    @contextmanager
    def _unpaused(self) -> Iterator[None]:
        """Count a drop or a reset as under way, once no pause holds it back."""
        with self._turn:
            self._turn.wait_for(lambda: self._pauses == 0)
            self._busy += 1
        try:
            with lag_lock(fcntl.LOCK_SH):
                yield
        finally:
            with self._turn:
                self._busy -= 1
                self._turn.notify_all()

    def _spare_coming(self, template: str) -> bool:
        """Whether a copy of `template` is ready, reset or being reset: none to make ahead."""
        return (
            template in self._ready
            or bool(self._pool.get(template))
            or any(self._origin[name] == template for name in self._resetting)
        )

    def _make_ahead(self) -> None:
        while (template := self._wanted.get()) is not None:
            with self._turn:
                self._turn.wait_for(lambda: self._pauses == 0)
                if self._closing or template in self._retired or self._spare_coming(template):
                    continue
                self._making.add(template)
                self._busy += 1
            made: str | Exception
            try:
                made = self.create(template)
            except Exception as error:  # noqa: BLE001  # handed to the test that takes it
                made = error
            with self._turn:
                self._ready[template] = made
                self._making.discard(template)
                self._busy -= 1
                self._turn.notify_all()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            kind, name = job
            with self._unpaused():
                if kind == "reset" and self._reset(name):
                    continue
                self._drop_now(name)

    def _drop_now(self, name: str) -> None:
        try:
            statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
            asyncio.run(_admin(self._admin, statement))
        except Exception as error:  # noqa: BLE001  # reported as the process ends
            with self._turn:
                self._failures.append(f"{name}: {_one_line(error)}")
        else:
            self._note(f"dropped {name}")

    def _reset(self, name: str) -> bool:
        """Reset the copy `name` and put it in the pool; False when it is to be dropped."""
        template = self._origin[name]
        ref = self._references[template]
        assert ref is not None, "give() queues a reset only of a copy with a reference"
        problem: str | None = "closing"
        writes: str | None = None  # the copy's catalog write count, once reset
        if not self._closing:
            try:
                done = asyncio.run(
                    reset(self._admin, self._url(name), name, ref, self._writes.pop(name, None))
                )
                problem, writes = done.problem, done.writes
            except Exception as error:  # noqa: BLE001  # dropped instead
                problem = _one_line(error)
        with self._turn:
            self._resetting.discard(name)
            if problem is None and (self._closing or template in self._retired):
                problem = "closing" if self._closing else "its template is dropped"
            if problem is None and writes is not None:
                self._writes[name] = writes
            if problem is None:
                self._pool.setdefault(template, []).append(name)
            else:
                self._made.discard(name)
            self._turn.notify_all()
        self._note(f"reset {name}" if problem is None else f"not reset {name}: {problem}")
        return problem is None

    def take(self, template: str) -> str:
        """A copy reset for reuse, the one made ahead, or one made now; the next made ahead."""
        with self._turn:
            self._turn.wait_for(lambda: template not in self._making)
            pooled = self._pool.get(template)
            made = pooled.pop() if pooled else self._ready.pop(template, None)
            if isinstance(made, str):
                self._lent.add(made)
        self._wanted.put(template)
        if made is None:
            return self.lend(template)
        if isinstance(made, Exception):
            raise made
        return made

    def lend(self, template: str) -> str:
        """A database copied from `template` now, held by the test process until given back."""
        name = self.create(template)
        with self._turn:
            self._lent.add(name)
        return name

    def give(self, name: str) -> None:
        """Take back `name` from its test: reset it for reuse, or drop it, in the background."""
        with self._turn:
            self._lent.discard(name)
            if name not in self._made:
                return
            if self._references.get(self._origin[name]) is None or self._closing:
                self._made.discard(name)
                self._jobs.put(("drop", name))
                return
            self._resetting.add(name)
            self._jobs.put(("reset", name))

    def drop(self, name: str) -> None:
        """Drop `name` in the background; first, no more copies of it, its spares dropped.

        A database this service did not make (one a test made itself) is dropped too.
        """
        with self._turn:
            self._retired.add(name)
            self._lent.discard(name)
            self._turn.wait_for(lambda: name not in self._making)
            spare = self._ready.pop(name, None)
            for dropped in (spare, *self._pool.pop(name, []), name):
                if isinstance(dropped, str) and dropped in self._made:
                    self._made.discard(dropped)
                    self._jobs.put(("drop", dropped))
            if name not in self._origin:  # never made here: no record of it to keep
                self._jobs.put(("drop", name))

    def pause(self) -> None:
        """Hold every drop, reset and copy not yet begun, once those under way have ended."""
        with self._turn:
            self._pauses += 1
            self._turn.wait_for(lambda: self._busy == 0)

    def resume(self) -> None:
        with self._turn:
            self._pauses = max(0, self._pauses - 1)
            self._turn.notify_all()

    def close(self) -> list[str]:
        """Drop every database made and not yet dropped; give what failed, and what leaked."""
        with self._turn:
            self._closing = True
            self._pauses = 0
            self._turn.notify_all()
        self._wanted.put(None)
        self._maker.join()
        with self._turn:
            leaked = [f"{name}: never asked to drop" for name in sorted(self._lent)]
            # A copy being reset is dropped by its thread, which sees the process closing.
            left = sorted(self._made - self._resetting)
            self._made -= set(left)
        for name in left:
            self._jobs.put(("drop", name))
        for _ in self._workers:
            self._jobs.put(None)
        for thread in self._workers:
            thread.join()
        return leaked + self._failures

    def answer(self, command: str, argument: str) -> str | None:
        """Do one command; give its answer, if it has one."""
        if command in {"take", "create"}:
            try:
                name = self.take(argument) if command == "take" else self.lend(argument)
            except Exception as error:  # noqa: BLE001  # raised in the test process
                return f"error {_one_line(error)}"
            return f"made {name}"
        if command == "pause":
            self.pause()
            return "paused"
        quiet: dict[str, Callable[[str], None]] = {
            "drop": self.drop,
            "give": self.give,
            "resume": lambda _: self.resume(),
        }
        if command in quiet:
            quiet[command](argument)
            return None
        return f"error unknown command {command!r}"


def serve(
    admin: str, commands: TextIO, answers: TextIO, log: TextIO | None, *, reuse: bool = True
) -> None:
    """Answer `commands` until they end, then drop what is left and write what failed."""
    service = _Service(admin, log, reuse=reuse)

    def write(line: str) -> None:
        try:
            answers.write(f"{line}\n")
            answers.flush()
        except (BrokenPipeError, ValueError):  # the test process is gone; drop all the same
            pass

    for line in commands:
        command, _, argument = line.strip().partition(" ")
        answer = service.answer(command, argument)
        if answer is not None:
            write(answer)
    for failure in service.close():
        write(f"failed {failure}")


class DatabaseService:
    """A test process's end of its database process: one thread calls it at a time."""

    def __init__(self, admin: str) -> None:
        self._process = subprocess.Popen(
            [sys.executable, __file__, admin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._commands, self._answers = self._process.stdin, self._process.stdout

    @property
    def pid(self) -> int:
        return self._process.pid

    def _send(self, line: str) -> None:
        self._commands.write(f"{line}\n")
        self._commands.flush()

    def _answer(self) -> str:
        line = self._answers.readline()
        if not line:
            raise RuntimeError(f"the test database process ended: {self._process.wait()}")
        return line.rstrip("\n")

    def _made(self, command: str) -> str:
        self._send(command)
        answer = self._answer()
        kind, _, rest = answer.partition(" ")
        if kind != "made":
            raise RuntimeError(f"{command}: {answer}")
        return rest

    def take(self, template: str) -> str:
        """A new database copied from `template`, made ahead while the test before ran."""
        return self._made(f"take {template}")

    def create(self, template: str) -> str:
        """A new database copied from `template` now, with none made ahead."""
        return self._made(f"create {template}")

    def drop(self, name: str) -> None:
        """Ask for the database `name` to be dropped; return at once."""
        self._send(f"drop {name}")

    def give(self, name: str) -> None:
        """Give back the database `name`, to be reset for a later take or dropped; at once."""
        self._send(f"give {name}")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every drop and copy not yet begun, once those under way have ended."""
        self._send("pause")
        answer = self._answer()
        if answer != "paused":
            raise RuntimeError(f"pause: {answer}")
        try:
            yield
        finally:
            self._send("resume")

    def close(self) -> list[str]:
        """End the process once every database it made is dropped; give what failed."""
        self._commands.close()
        failures = [line.removeprefix("failed ").rstrip("\n") for line in self._answers]
        self._answers.close()
        code = self._process.wait()
        if code != 0:
            failures.append(f"the test database process exited with {code}")
        return failures


def main() -> None:
    # Ctrl-C, and `timeout` or a cancelled job's SIGTERM, reach the whole process group; this
    # process ends when its stdin does, after the drops, whatever ended the test process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = os.environ.get(LOG_VARIABLE)
    log = Path(path).open("a", encoding="utf-8") if path else None  # noqa: SIM115  # closed below
    try:
        reuse = os.environ.get(REUSE_VARIABLE, "1") != "0"
        serve(sys.argv[1], sys.stdin, sys.stdout, log, reuse=reuse)
    finally:
        if log is not None:
            log.close()
        with suppress(OSError):  # an answer left unwritten to a test process that is gone
            sys.stdout.close()


if __name__ == "__main__":
    main()
