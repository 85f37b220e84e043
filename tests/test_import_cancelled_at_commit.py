"""An import cancelled as it commits says the id of the run it may have stored.

A COMMIT ends before a cancellation goes on: the run was stored, every result with it, and the
caller was told only `CancelledError`, with no id to find the run by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import pytest

from _report_helpers import PYTEST, write_report
from persistence import (
    Database,
    all_results,
    all_runs,
    get_run,
    import_junit,
    report_common,
    report_json,
)
from persistence import reports as junit_module
from persistence.database import transaction
from persistence.report_json import import_ctrf, import_jsonl

_CTRF: Final = {"results": {"tests": [{"name": "t::a", "status": "passed", "duration": 1}]}}
_JSONL: Final = '{"test_type": "unit", "status": "passed", "test_id": "t::a"}\n'

_IMPORTS: Final[dict[str, tuple[str, Callable[[Database, Path], Awaitable[object]]]]] = {
    "junit": (PYTEST, import_junit),
    "ctrf": (json.dumps(_CTRF), import_ctrf),
    "jsonl": (_JSONL, import_jsonl),
}


@contextlib.asynccontextmanager
async def _cancelled_at_commit(db: Database) -> AsyncIterator[Database]:
    """A transaction whose task is cancelled once its block ends, as its COMMIT is to be sent."""
    async with transaction(db) as tx:
        yield tx
        task = asyncio.current_task()
        assert task is not None
        task.cancel()


@pytest.mark.parametrize("form", list(_IMPORTS))
async def test_an_import_cancelled_at_its_commit_names_the_run(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """The run is stored whole, and the cancellation's note says its id."""
    for module in (report_common, junit_module, report_json):  # where each import finds it
        monkeypatch.setattr(module, "transaction", _cancelled_at_commit, raising=False)
    text, read = _IMPORTS[form]
    path = write_report(tmp_path, text, f"report.{form}")
    with pytest.raises(asyncio.CancelledError) as caught:
        await read(db, path)
    runs = await all_runs(db)
    assert len(runs) == 1, "the COMMIT ended before the cancellation went on"
    run_id = runs[0].id
    assert run_id is not None
    notes = getattr(caught.value, "__notes__", [])
    said = f"the cancellation met the commit of run {run_id}, which may have taken effect"
    assert notes == [f"{said}: get_run(db, {run_id}) tells"]
    assert (await get_run(db, run_id)).id == run_id
    stored = await all_results(db)
    assert stored
    assert {result.run_id for result in stored} == {run_id}
