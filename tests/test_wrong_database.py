"""Something other than a Database, passed where one is expected, is named as the bad argument.

Typed callers have mypy to catch it; untyped ones got an AttributeError from deep inside
(`'str' object has no attribute 'in_transaction'`). Every public function that takes `db`
must refuse it with a ValidationError naming `db` and what it was given, before any side
effect: no file written, no cache opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import inspect
import pkgutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import pytest

import persistence
import persistence.cache.distributed
import persistence.cache.memory
import persistence.report_json
import persistence.reports
import persistence.run_history
import persistence.runs
import persistence.search
from persistence import (
    ConfigEntry,
    ConfigType,
    FileRecord,
    Run,
    TestResult,
    TestStatus,
    TestType,
    ValidationError,
)
from persistence.counterexample_store import CounterexampleStore

_NOW: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_RESULT: Final = TestResult(test_type=TestType.STRESS, status=TestStatus.FAILED, test_id="t")

Call = Callable[[Any, Path], Awaitable[object] | contextlib.AbstractAsyncContextManager[object]]


def _calls() -> dict[str, Call]:
    """Each public function that takes `db`, called with valid other arguments."""
    return {
        "all_config_entries": lambda db, _: persistence.all_config_entries(db),
        "all_file_records": lambda db, _: persistence.all_file_records(db),
        "all_results": lambda db, _: persistence.all_results(db),
        "all_runs": lambda db, _: persistence.runs.all_runs(db),
        "backup_database": lambda db, tmp: persistence.backup_database(db, tmp / "backup.db"),
        "close_database": lambda db, _: persistence.close_database(db),
        "compare_runs": lambda db, _: persistence.run_history.compare_runs(db, 1, 2),
        "connection": lambda db, _: persistence.connection(db),
        "counterexamples": lambda db, _: persistence.run_history.counterexamples(db, "t"),
        "delete_config_entry": lambda db, _: persistence.delete_config_entry(db, 1),
        "delete_file_record": lambda db, _: persistence.delete_file_record(db, 1),
        "delete_file_record_by_path": lambda db, _: persistence.delete_file_record_by_path(
            db, "a.txt"
        ),
        "delete_result": lambda db, _: persistence.delete_result(db, 1),
        "delete_results_before": lambda db, _: persistence.delete_results_before(db, _NOW),
        "delete_run": lambda db, _: persistence.runs.delete_run(db, 1),
        "duration_figures": lambda db, _: persistence.run_history.duration_figures(db, "t"),
        "end_run": lambda db, _: persistence.runs.end_run(db, 1),
        "export_ctrf": lambda db, _: persistence.report_json.export_ctrf(db, 1),
        "export_jsonl": lambda db, _: persistence.report_json.export_jsonl(db, 1),
        "export_junit": lambda db, _: persistence.export_junit(db, 1),
        "find_config_entry": lambda db, _: persistence.find_config_entry(db, 1),
        "find_config_entry_by_key": lambda db, _: persistence.find_config_entry_by_key(
            db, "s", "k"
        ),
        "find_file_record": lambda db, _: persistence.find_file_record(db, 1),
        "find_file_record_by_path": lambda db, _: persistence.find_file_record_by_path(db, "a.txt"),
        "find_result": lambda db, _: persistence.find_result(db, 1),
        "find_run": lambda db, _: persistence.runs.find_run(db, 1),
        "flaky_tests": lambda db, _: persistence.run_history.flaky_tests(db, _NOW),
        "get_config_entry": lambda db, _: persistence.get_config_entry(db, 1),
        "get_config_entry_by_key": lambda db, _: persistence.get_config_entry_by_key(db, "s", "k"),
        "get_config_value": lambda db, _: persistence.get_config_value(db, "s", "k", int),
        "get_file_record": lambda db, _: persistence.get_file_record(db, 1),
        "get_file_record_by_path": lambda db, _: persistence.get_file_record_by_path(db, "a.txt"),
        "get_result": lambda db, _: persistence.get_result(db, 1),
        "get_run": lambda db, _: persistence.runs.get_run(db, 1),
        "import_ctrf": lambda db, tmp: persistence.report_json.import_ctrf(db, tmp / "report.json"),
        "import_jsonl": lambda db, tmp: persistence.report_json.import_jsonl(
            db, tmp / "report.jsonl"
        ),
        "import_junit": lambda db, tmp: persistence.import_junit(db, tmp / "report.xml"),
        "keep_counterexample": lambda db, tmp: persistence.keep_counterexample(
            db, CounterexampleStore(tmp / "store"), _RESULT, input=b"1 2\n"
        ),
        "list_config_entries": lambda db, _: persistence.list_config_entries(db),
        "list_file_records": lambda db, _: persistence.list_file_records(db),
        "list_results": lambda db, _: persistence.list_results(db),
        "list_runs": lambda db, _: persistence.runs.list_runs(db),
        "last_saved_runs": lambda db, _: persistence.runs.last_saved_runs(db),
        "list_test_history": lambda db, _: persistence.run_history.list_test_history(db, "t"),
        "migrate": lambda db, _: persistence.migrate(db),
        "migration_status": lambda db, _: persistence.migration_status(db),
        "open_memory_cache": lambda db, _: persistence.cache.memory.open_memory_cache(db),
        "open_redis_cache": lambda db, _: persistence.cache.distributed.open_redis_cache(
            db, "redis://127.0.0.1:1/0"
        ),
        "pending_migrations": lambda db, _: persistence.migrations.pending_migrations(db),
        "read_snapshot": lambda db, _: persistence.read_snapshot(db),
        "restore_database": lambda db, tmp: persistence.restore_database(db, tmp / "backup.db"),
        "result_stats": lambda db, _: persistence.result_stats(db),
        "results_by_type": lambda db, _: persistence.results_by_type(db, TestType.UNIT),
        "run_results": lambda db, _: persistence.reports.run_results(db, 1),
        "read_run": lambda db, _: persistence.reports.read_run(db, 1),
        "save_config_entry": lambda db, _: persistence.save_config_entry(
            db, ConfigEntry(section="s", key="k", value=1, type=ConfigType.INT)
        ),
        "save_file_record": lambda db, _: persistence.save_file_record(
            db, FileRecord(path="a.txt", size=0)
        ),
        "save_result": lambda db, _: persistence.save_result(db, _RESULT),
        "save_results": lambda db, _: persistence.save_results(db, [_RESULT]),
        "save_run": lambda db, _: persistence.runs.save_run(db, Run()),
        "search_results": lambda db, _: persistence.search.search_results(db, "word"),
        "set_config": lambda db, _: persistence.set_config(db, "s", "k", 1),
        "slowest_tests": lambda db, _: persistence.run_history.slowest_tests(db),
        "transaction": lambda db, _: persistence.transaction(db),
        "watch_writes": lambda db, _: _as_awaitable(
            persistence.database.watch_writes(db, lambda _: None)
        ),
    }


async def _as_awaitable(value: object) -> object:
    return value


_REPORTS: Final = {
    "report.xml": "<testsuite/>",
    "report.json": '{"results": {"tests": []}}',
    "report.jsonl": "",
}
"""A valid, empty report of each format, so that only the database is wrong."""


def _write_reports(folder: Path) -> list[Path]:
    """Write the reports into `folder`; give what it then holds."""
    for file_name, text in _REPORTS.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return _tree(folder)


def _tree(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def _public_functions_taking_db() -> set[str]:
    """Every function of a public module's `__all__` whose first parameter is `db`."""
    names: set[str] = set()
    modules = ["persistence"] + [
        info.name
        for info in pkgutil.walk_packages(persistence.__path__, "persistence.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if not inspect.isfunction(value):
                continue
            parameters = list(inspect.signature(value).parameters)
            if parameters[:1] == ["db"]:
                names.add(name)
    return names


def test_every_public_function_taking_db_is_called_here() -> None:
    """A new function that takes `db` must join the table below, or this fails."""
    assert _public_functions_taking_db() == set(_calls())


_NOT_DATABASES: Final[list[object]] = ["data/app.db", Path("data/app.db"), None, 1, object()]


@pytest.mark.parametrize("name", sorted(_calls()))
@pytest.mark.parametrize("given", _NOT_DATABASES, ids=lambda value: type(value).__name__)
async def test_a_wrong_database_is_named(name: str, given: object, tmp_path: Path) -> None:
    """The error names `db` and the type given, and nothing was written."""
    before = _write_reports(tmp_path)
    with pytest.raises(ValidationError) as caught:
        call = _calls()[name](given, tmp_path)
        if isinstance(call, contextlib.AbstractAsyncContextManager):
            async with call:
                pass  # pragma: no cover  # the block must not be entered
        else:
            await call
    assert caught.value.field == "db"
    assert type(given).__name__ in caught.value.reason
    assert "Database" in caught.value.reason
    assert _tree(tmp_path) == before
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
