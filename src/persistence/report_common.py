"""What every report format shares: a new run checked and its file opened, a stored run read.

JUnit XML (`reports.py`) and CTRF and JSON Lines (`report_json.py`) import a file as one new run
and export one run; the steps they take alike are here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from persistence._database_value import check_usable
from persistence._files.paths import open_regular
from persistence._guards import MAX_INT, MIN_INT, file_path, json_object, key_id
from persistence._loans import borrow
from persistence._loop import drop_in_slices, map_in_slices
from persistence._paging import READ_PAGE
from persistence._rows import result_from_row, result_texts
from persistence.database import Database, read_snapshot, transaction
from persistence.exceptions import NotAFileError, ReportError
from persistence.models import Run, TestResult, utc_now
from persistence.runs import get_run

__all__ = ["read_run", "run_results"]


def import_arguments(name: str, db: Database, path: object, labels: object) -> tuple[Path, Run]:
    """Check the arguments of the import `name` before its file; give its path and new run."""
    check_usable(db, writes=True)  # no Database, a snapshot's, the outer one in its block
    found = Path(file_path(name, "path", path))
    given = {} if labels is None else json_object(name, "labels", labels)
    return found, Run(started_at=utc_now(), labels=given)


@contextlib.asynccontextmanager
async def import_transaction(db: Database) -> AsyncIterator[tuple[Database, list[Run]]]:
    """Give an import's one transaction, and a list for its run, put there as it is to commit.

    A COMMIT ends before a cancellation goes on: the run may be stored though the caller is
    told it was cancelled, with no id to find it by. The cancellation then says its id.
    """
    committing: list[Run] = []
    try:
        async with transaction(db) as tx:
            yield tx, committing
    except asyncio.CancelledError as error:
        if committing:
            run_id = committing[-1].id
            error.add_note(
                f"the cancellation met the commit of run {run_id}, which may have taken effect: "
                f"get_run(db, {run_id}) tells"
            )
        raise


def open_report(path: Path) -> BinaryIO:
    """Open a report to read it: a regular file only, opened without waiting (`open_regular`).

    A FIFO would keep the open waiting for a writer, and a device such as /dev/zero never ends.
    """
    try:
        descriptor = open_regular(None, str(path), str(path), follow=True)
    except NotAFileError:
        raise ReportError(path, None, "not a regular file") from None
    return os.fdopen(descriptor, "rb")


async def read_run(db: Database, run_id: int) -> tuple[Run, list[TestResult]]:
    """Give a run and its results as one state, for the exports to write.

    Read in one snapshot: a write meanwhile, such as a retention delete, never shows in part.
    """
    run_id = key_id("Run", run_id)
    async with read_snapshot(db) as seen:
        results = await run_results(seen, run_id)
        return await get_run(seen, run_id), results


async def written_run(
    db: Database, run_id: int, write: Callable[[Run, list[TestResult]], Awaitable[str]]
) -> str:
    """Read a run as `read_run` does and give what `write` makes of it: an export's text.

    The results are freed a slice at a time after: tens of thousands, freed in one go as the
    export returned, held the loop tens of milliseconds.
    """
    run, results = await read_run(db, run_id)
    text = await write(run, results)
    await drop_in_slices(results)
    return text


async def run_results(db: Database, run_id: int) -> list[TestResult]:
    """Every result of a run, in the order they were stored."""
    results: list[TestResult] = []
    start = MIN_INT  # every id, those of 0 and below that plain SQL may write included
    while True:
        async with borrow(db) as conn:
            rows = await db.queries.list_run_results(
                conn, run_id=run_id, from_id=start, page_size=READ_PAGE
            )
        results.extend(await map_in_slices(result_from_row, rows, result_texts))
        if len(rows) < READ_PAGE or rows[-1].id == MAX_INT:
            return results
        start = rows[-1].id + 1
