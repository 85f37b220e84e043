"""Runs: the invocations of the tool that results belong to. Save, find, list, end, delete."""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING

import attrs
from attrs.converters import optional

from persistence._blocks import every_item_in_one_state
from persistence._codecs import json_size
from persistence._guards import (
    MAX_INT,
    as_utc,
    instance_of,
    key_id,
    of_type,
    row_id,
    utc_instant,
)
from persistence._json_pieces import encoded_ahead
from persistence._loans import borrow, run_query
from persistence._loop import OFF_LOOP_SIZE, map_in_slices, off_loop_if_large
from persistence._paging import (
    END_OF_TIME,
    READ_PAGE,
    START_OF_TIME,
    Page,
    continued_filter,
    page_limit,
    page_of,
    stored_id,
    upper_bounds,
)
from persistence._rows import finite_time, found, model_instant, refused_row
from persistence.database import Database, transaction
from persistence.exceptions import NotFoundError, ValidationError
from persistence.models import Run, utc_now

if TYPE_CHECKING:
    from persistence.queries import InsertRunParams, RunsRow

__all__ = [
    "RunCursor",
    "RunFilter",
    "all_runs",
    "delete_run",
    "end_run",
    "find_run",
    "get_run",
    "last_saved_runs",
    "list_runs",
    "save_run",
]


@attrs.frozen(kw_only=True)
class RunFilter:
    """Which runs to list: each field that is set narrows the listing, in SQL."""

    started_from: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Inclusive lower bound on `started_at`."""
    started_until: dt.datetime | None = attrs.field(default=None, converter=optional(as_utc))
    """Exclusive upper bound on `started_at`."""


@attrs.frozen
class RunCursor:
    """Where the next page of runs starts: just after the last run of the page before.

    It carries the filter of the listing that made it: `list_runs` refuses it with any
    other filter, and uses it when given none.
    """

    started_at: dt.datetime = attrs.field(converter=as_utc)
    id: int = attrs.field(validator=row_id)
    where: RunFilter = attrs.field(factory=RunFilter, validator=instance_of(RunFilter))


def run_from_row(row: RunsRow) -> Run:
    """Map a runs row to a model; the table's constraints hold the model's rules but one.

    No CHECK holds the end after the start: a row that plain SQL stored so is refused.
    """
    started, ended = row.started_at, row.ended_at
    if not model_instant(started) or (
        ended is not None and (not model_instant(ended) or ended < started)
    ):
        raise refused_row(
            "runs",
            row.id,
            lambda: Run(
                started_at=finite_time("Run", "started_at", started),
                ended_at=None if ended is None else finite_time("Run", "ended_at", ended),
                labels=row.labels,
            ),
        )
    model: Run = object.__new__(Run)
    object.__setattr__(model, "id", row.id)
    object.__setattr__(model, "started_at", row.started_at)
    object.__setattr__(model, "ended_at", row.ended_at)
    object.__setattr__(model, "labels", row.labels)
    return model


def _run_params(run: Run) -> InsertRunParams:
    return {"started_at": run.started_at, "ended_at": run.ended_at, "labels": run.labels}


def _checked_run(run: Run, *, ahead: bool) -> tuple[Run, InsertRunParams]:
    """Check a run again (its labels are a dict a caller may have changed); give its params.

    With `ahead`, its labels are encoded now, a run of items at a time (`encoded_ahead`).
    """
    checked = attrs.evolve(run)
    params = _run_params(checked)
    if ahead:
        params["labels"] = encoded_ahead(checked.labels)
    return checked, params


def _with_id(run: Run, run_id: int) -> Run:
    """Give `run`, checked already, with its id: not checked again, as `attrs.evolve` would."""
    stored = copy.copy(run)
    object.__setattr__(stored, "id", run_id)
    return stored


async def save_run(db: Database, run: Run) -> Run:
    """Insert a run without an id, or overwrite the stored one with its id.

    Returns the run as stored, with its id. Overwriting an id that does not exist raises
    NotFoundError. Labels of megabytes are checked and encoded in a worker thread: on the
    loop, 3.5 MB of them held it 200 to 380 ms, checked twice and encoded in one call.
    """
    given = of_type(Run, run, "run")
    size = json_size(given.labels, OFF_LOOP_SIZE)
    run, params = await off_loop_if_large(
        size, lambda: _checked_run(given, ahead=size > OFF_LOOP_SIZE)
    )
    if run.id is None:
        new_id = await run_query(db, lambda conn: db.queries.insert_run(conn, **params))
        return _with_id(run, new_id)
    run_id = run.id
    changed = await run_query(db, lambda conn: db.queries.update_run(conn, id=run_id, **params))
    if changed == 0:
        raise NotFoundError("Run", run.id)
    return run


async def find_run(db: Database, run_id: int) -> Run | None:
    """Return the run with this id, or None."""
    run_id = key_id("Run", run_id)
    row = await run_query(db, lambda conn: db.queries.get_run(conn, id=run_id))
    return None if row is None else run_from_row(row)


async def get_run(db: Database, run_id: int) -> Run:
    """Return the run with this id, or raise NotFoundError."""
    return found("Run", run_id, await find_run(db, run_id))


async def end_run(db: Database, run_id: int, ended_at: dt.datetime | None = None) -> Run:
    """Record that a run ended, at `ended_at` or now; return it as stored.

    An end before the run's start is refused with ValidationError, and nothing is written.
    Only the end is written, in one statement: labels another writer stores meanwhile stay.
    """
    run_id = key_id("Run", run_id)
    ended = utc_now() if ended_at is None else utc_instant("Run", "ended_at", ended_at)
    row = await run_query(db, lambda conn: db.queries.end_run(conn, id=run_id, ended_at=ended))
    if row is not None:
        return run_from_row(row)
    stored = await get_run(db, run_id)  # NotFoundError, or a start after `ended`:
    attrs.evolve(stored, ended_at=ended)  # the model's own refusal, naming both times
    raise ValidationError(  # the start moved back meanwhile: say so rather than write blind
        "Run", "ended_at", f"{ended.isoformat()} is before the run's start, changed meanwhile"
    )


async def delete_run(db: Database, run_id: int) -> bool:
    """Delete a run and every result that belongs to it; return whether there was one."""
    run_id = key_id("Run", run_id)
    async with transaction(db) as tx, borrow(tx) as conn:
        await tx.queries.delete_run_results(conn, id=run_id)
        deleted = await tx.queries.delete_run(conn, id=run_id)
    return deleted > 0


async def list_runs(
    db: Database,
    where: RunFilter | None = None,
    *,
    limit: int = 100,
    after: RunCursor | None = None,
) -> Page[Run, RunCursor]:
    """Return one page of runs, the latest started first.

    Pass the page's `next_cursor` as `after` to get the page that follows it; the cursor
    keeps the page's filter, so `where` may be left out then. Pages are keyset pages.
    """
    limit = page_limit("RunFilter", limit)
    cursor_where = None if after is None else of_type(RunCursor, after, "after").where
    where = continued_filter(RunFilter, "RunCursor", where, cursor_where)
    cursor_at, cursor_id = (END_OF_TIME, MAX_INT) if after is None else (after.started_at, after.id)
    cursor_at, cursor_id = upper_bounds(where.started_until, cursor_at, cursor_id)
    async with borrow(db) as conn:
        rows = await db.queries.list_runs(
            conn,
            started_from=START_OF_TIME if where.started_from is None else where.started_from,
            cursor_started_at=cursor_at,
            cursor_id=cursor_id,
            page_size=limit,
        )
    return await page_of(
        rows, run_from_row, limit, lambda last: RunCursor(last.started_at, stored_id(last), where)
    )


async def last_saved_runs(db: Database, count: int = 2) -> list[Run]:
    """Return the `count` runs saved last, the last first (at most 10,000).

    By the order of their saves, not their times: a report imported without times of its
    own ends at its import, so a longer run imported after a shorter one started before it,
    and `list_runs` gave the two the other way round. The two last saved are what
    `persistence compare` compares when given no run. A save's place is taken as it begins:
    on PostgreSQL, of two imports under way at once, the one begun last comes first, even if
    the other committed after it (name the runs to compare then).
    """
    count = page_limit("Run", count, "count")
    rows = await run_query(db, lambda conn: db.queries.last_saved_runs(conn, page_size=count))
    return await map_in_slices(run_from_row, rows)


async def all_runs(db: Database, where: RunFilter | None = None) -> list[Run]:
    """Return every run (matching `where`), the latest started first."""
    return await every_item_in_one_state(
        db, lambda seen, after: list_runs(seen, where, limit=READ_PAGE, after=after)
    )
