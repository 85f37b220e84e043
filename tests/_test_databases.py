"""PostgreSQL test databases, made ahead and dropped in a process of their own.

Each test process starts one such process (`DatabaseService`), which copies each test's
database from a template ahead of the test and drops it after, in threads and connections of
its own: a test that counts its own process's descriptors, threads or mappings counts none of
them, and needs neither wait for the drops nor make its database itself.

`python _test_databases.py ADMIN_URL` reads one command a line on stdin:

- `take TEMPLATE`: answers `made NAME`, a database copied from TEMPLATE (the one made ahead,
  or one made now), and makes the next one ahead; or `error MESSAGE`.
- `create TEMPLATE`: answers the same, a database made now, with none made ahead.
- `drop NAME`: drops NAME in the background; answers nothing. A template's copies stop first.
- `pause`: answers `paused` once no drop and no copy is under way; none starts until `resume`.

At the end of stdin (the test process closed it, or ended, killed or not) it drops every
database it made and was not yet asked to drop, writes `failed MESSAGE` for each drop that
failed and each database that it was never asked to drop, and exits. It never outlives its
test process by more than those drops.

With PERSISTENCE_TEST_DATABASES_LOG set, it appends `made NAME` and `dropped NAME` to that
file, a line each, for a look at what a run left behind.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

import asyncpg

LOG_VARIABLE = "PERSISTENCE_TEST_DATABASES_LOG"

DROP_THREADS = 4
"""Drops that run at once, in the database process of each test process (`make test` has
four). Each drop makes the server write a checkpoint, and drops that arrive together share
one: 24 migrated test databases took 2.4 s to drop two at a time and 1.1 to 1.3 s eight at a
time. Each thread holds a connection only while it drops."""


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


class _Service:
    """The database process's state: the copies made ahead, the drops asked for, the pauses."""

    def __init__(self, admin: str, log: TextIO | None) -> None:
        self._admin, self._log = admin, log
        self._turn = threading.Condition()
        self._pauses = 0
        self._busy = 0  # drops and copies under way in the threads
        self._closing = False
        self._ready: dict[str, str | Exception] = {}  # a copy made ahead, by template
        self._making: set[str] = set()  # templates a copy is being made ahead of
        self._retired: set[str] = set()  # templates dropped, or being dropped
        self._made: set[str] = set()  # every database made and not yet asked to drop
        self._spares: set[str] = set()  # of those, the ones made ahead and not yet taken
        self._failures: list[str] = []
        self._wanted: queue.Queue[str | None] = queue.Queue()
        self._names: queue.Queue[str | None] = queue.Queue()
        self._maker = threading.Thread(target=self._make_ahead, name="make-test-databases")
        self._droppers = [
            threading.Thread(target=self._drop_asked, name=f"drop-test-databases-{i}")
            for i in range(DROP_THREADS)
        ]
        for thread in (self._maker, *self._droppers):
            thread.start()

    def _note(self, line: str) -> None:
        if self._log is not None:
            self._log.write(f"{line}\n")
            self._log.flush()

    def create(self, template: str) -> str:
        """A database copied from `template` now."""
        name = f"persistence_test_{uuid.uuid4().hex[:12]}"
        # Identifiers cannot be bound parameters; the names are made here, from hex digits only.
        asyncio.run(_admin(self._admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        with self._turn:
            self._made.add(name)
        self._note(f"made {name}")
        return name

    @contextmanager
    def _unpaused(self) -> Iterator[None]:
        """Count a drop as under way, once no pause holds it back."""
        with self._turn:
            self._turn.wait_for(lambda: self._pauses == 0)
            self._busy += 1
        try:
            yield
        finally:
            with self._turn:
                self._busy -= 1
                self._turn.notify_all()

    def _make_ahead(self) -> None:
        while (template := self._wanted.get()) is not None:
            with self._turn:
                self._turn.wait_for(lambda: self._pauses == 0)
                if self._closing or template in self._retired or template in self._ready:
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
                if isinstance(made, str):
                    self._spares.add(made)
                self._making.discard(template)
                self._busy -= 1
                self._turn.notify_all()

    def _drop_asked(self) -> None:
        while (name := self._names.get()) is not None:
            with self._unpaused():
                try:
                    statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                    asyncio.run(_admin(self._admin, statement))
                except Exception as error:  # noqa: BLE001  # reported as the process ends
                    with self._turn:
                        self._failures.append(f"{name}: {_one_line(error)}")
                else:
                    self._note(f"dropped {name}")

    def take(self, template: str) -> str:
        """The copy made ahead of `template`, or one made now; the next is made ahead."""
        with self._turn:
            self._turn.wait_for(lambda: template not in self._making)
            made = self._ready.pop(template, None)
            if isinstance(made, str):
                self._spares.discard(made)
        self._wanted.put(template)
        if made is None:
            return self.create(template)
        if isinstance(made, Exception):
            raise made
        return made

    def drop(self, name: str) -> None:
        """Drop `name` in the background; first, no more copies of it, and its spare dropped."""
        with self._turn:
            self._retired.add(name)
            self._turn.wait_for(lambda: name not in self._making)
            spare = self._ready.pop(name, None)
            for dropped in (spare, name):
                if isinstance(dropped, str):
                    self._made.discard(dropped)
                    self._spares.discard(dropped)
                    self._names.put(dropped)

    def pause(self) -> None:
        """Hold every drop and copy not yet begun, once those under way have ended."""
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
            left = sorted(self._made)
            leaked = [f"{name}: never asked to drop" for name in left if name not in self._spares]
        for name in left:
            self._names.put(name)
        for _ in self._droppers:
            self._names.put(None)
        for thread in self._droppers:
            thread.join()
        return leaked + self._failures

    def answer(self, command: str, argument: str) -> str | None:
        """Do one command; give its answer, if it has one."""
        if command in {"take", "create"}:
            try:
                name = self.take(argument) if command == "take" else self.create(argument)
            except Exception as error:  # noqa: BLE001  # raised in the test process
                return f"error {_one_line(error)}"
            return f"made {name}"
        if command == "drop":
            self.drop(argument)
            return None
        if command == "pause":
            self.pause()
            return "paused"
        if command == "resume":
            self.resume()
            return None
        return f"error unknown command {command!r}"


def serve(admin: str, commands: TextIO, answers: TextIO, log: TextIO | None) -> None:
    """Answer `commands` until they end, then drop what is left and write what failed."""
    service = _Service(admin, log)

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
    # Ctrl-C reaches the whole process group; this process ends when its stdin does, after
    # the drops, whatever ended the test process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path = os.environ.get(LOG_VARIABLE)
    log = Path(path).open("a", encoding="utf-8") if path else None  # noqa: SIM115  # closed below
    try:
        serve(sys.argv[1], sys.stdin, sys.stdout, log)
    finally:
        if log is not None:
            log.close()
        with suppress(OSError):  # an answer left unwritten to a test process that is gone
            sys.stdout.close()


if __name__ == "__main__":
    main()
