"""A JSON object or value given as the caller's own types: mypy must take these.

`dict` and `list` are invariant: labels read as `dict[str, str]`, or seeds as `dict[str, int]`,
are no `dict[str, JsonValue]`. The models take any mapping with str keys and any sequence,
and hold plain dicts and lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import assert_type

from persistence import (
    Database,
    ResultFilter,
    Run,
    TestResult,
    TestStatus,
    TestType,
    import_junit,
    set_config,
)
from persistence.models import ConfigValue
from persistence.queries import JsonObject
from persistence.report_json import import_ctrf, import_jsonl


async def record(
    db: Database,
    *,
    labels: dict[str, str],
    seeds: dict[str, int],
    files: dict[str, list[str]],
    frozen: Mapping[str, tuple[int, ...]],
    flags: list[str],
) -> None:
    """Give each its caller's own types."""
    await import_junit(db, "report.xml", labels=labels)
    await import_ctrf(db, "report.json", labels=labels)
    await import_jsonl(db, "report.jsonl", labels=frozen)
    run = Run(labels=labels)
    assert_type(run.labels, JsonObject)
    result = TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=seeds)
    assert_type(result.metadata, JsonObject)
    TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED, metadata=files)
    ResultFilter(metadata=seeds)
    ResultFilter(metadata=files)  # E: Argument "metadata" to "ResultFilter"
    Run(labels=["commit"])  # E: Argument "labels" to "Run"
    Run(labels={"commit": {1, 2}})  # E: Dict entry 0 has incompatible type "str": "set[int]"
    entry = await set_config(db, "runner", "flags", flags)
    await set_config(db, "runner", "limits", seeds)
    await set_config(db, "runner", "seeds", (1, 2))
    assert_type(entry.value, ConfigValue)
    await set_config(db, "runner", "set", {1, 2})  # E: Argument 4 to "set_config"
