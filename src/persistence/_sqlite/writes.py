"""Single-call writes as the writer queues them, and what runs them in a worker thread.

The runner (`writer.py`) hands a run of writes to a thread in one hop (`run_writes`), or a
lone write to its own thread (`run_alone`, served by `serve`); each write fails alone.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from persistence._sqlite.statements import MANY, Mode, Plan, execute, savepointed

if TYPE_CHECKING:
    from persistence._interface import RowMapper
    from persistence._sqlite.identity import OpenedFile

_T = TypeVar("_T")


@attrs.define(eq=False)
class Write:
    """One single-call write waiting for a batch."""

    plan: Plan
    params: Any
    mode: Mode
    rows_as: RowMapper | None
    future: asyncio.Future[Any]
    queued: float = attrs.field(factory=time.monotonic)  # when its caller began to wait


@attrs.frozen
class Ran:
    """What one hop of writes did, for the loop to hand to their callers."""

    outcomes: list[tuple[Write, object, Exception | None]]  # what each gave, or its error
    lost: Exception | None = None  # the error with which SQLite rolled the whole batch back
    unrun: list[Write] = attrs.field(factory=list)  # the writes after it, which never ran
    commit_error: Exception | None = None  # why the COMMIT asked for failed


def run_writes(
    writer: sqlite3.Connection,
    run: list[Write],
    commit: bool,  # noqa: FBT001  # called through a thread, positionally
    opened: OpenedFile,
) -> Ran:
    """Run writes one by one in a worker thread, each failing alone; then maybe commit.

    Rows stay unmapped, for the loop; a write cancelled meanwhile is passed over (its future is
    only read here).
    """
    outcomes: list[tuple[Write, object, Exception | None]] = []
    for index, item in enumerate(run):
        if item.future.done():
            continue  # cancelled before it ran: it never runs
        try:
            if item.mode is MANY:
                outcome: object = savepointed(writer, item.plan, item.params)
            else:
                outcome = execute(writer, item.plan, item.params, item.mode)
        except Exception as error:  # noqa: BLE001  # handed to its caller alone
            outcomes.append((item, None, error))
            if not writer.in_transaction:
                return Ran(outcomes, error, run[index + 1 :])
            continue
        outcomes.append((item, outcome, None))
    if commit:
        try:
            commit_checked(writer, opened)
        except Exception as error:  # noqa: BLE001  # every write of the batch fails with it
            return Ran(outcomes, commit_error=error)
    return Ran(outcomes)


def run_alone(
    writer: sqlite3.Connection,
    item: Write,
    report: Callable[[object, Exception | None], object],
    free: threading.Event,
    opened: OpenedFile,
) -> None:
    """Run one write outside any transaction, in a worker thread: SQLite commits it at its end.

    A statement that fails, the lock refused included, leaves nothing of itself behind. Once
    it has ended, `free` is set and its outcome goes to `report`, which hands it to the loop.
    """
    outcome: object = None
    error: Exception | None = None
    if not item.future.done():  # cancelled before it ran: it never runs
        try:
            opened.check_write()
            outcome = execute(writer, item.plan, item.params, item.mode)
            opened.check_written()
        except Exception as failed:  # noqa: BLE001  # handed to its caller alone
            error = failed
    free.set()  # before the report: the loop it wakes may move the writer to another loop
    report(outcome, error)


def commit_checked(writer: sqlite3.Connection, opened: OpenedFile) -> None:
    """Commit the writer's transaction, if the file opened is still at its path, before and after.

    Refused before, the transaction stays open, for the caller to roll back.
    """
    opened.check_write()
    writer.execute("COMMIT")
    opened.check_written()


Job = tuple[Callable[..., None], tuple[object, ...]]


def then_set(free: threading.Event, function: Callable[..., _T], *args: object) -> _T:
    """Run `function` in a worker thread, then set `free`: its loop may have closed meanwhile."""
    try:
        return function(*args)
    finally:
        free.set()


def serve(jobs: queue.SimpleQueue[Job | None]) -> None:
    """Run each job in turn, until given None: the body of the writer's own thread."""
    while (job := jobs.get()) is not None:
        job[0](*job[1])


def fail(item: Write, error: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(error)
