"""JUnit XML out: a run written as one document, in the form `import_junit` reads back.

docs/HISTORY.md ("Import and export") has the mapping, both ways.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Final
from xml.sax.saxutils import escape, quoteattr

import attrs

from persistence._loop import map_each, share_loop
from persistence.database import Database
from persistence.models import TestResult, TestStatus
from persistence.report_common import read_run

__all__ = ["SEPARATOR", "TAGS", "export_junit"]

SEPARATOR: Final = "::"
"""A test id is `classname::name`, or the name alone when the case has no class name."""

TAGS: Final = {
    TestStatus.FAILED: "failure",
    TestStatus.TIMEOUT: "error",
    TestStatus.ERROR: "error",
    TestStatus.SKIPPED: "skipped",
}
"""The element that marks a result's outcome, as export writes it; none for the others."""
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character that XML 1.0 cannot hold, even as a reference: export shows it as `#x1B`."""


async def export_junit(db: Database, run_id: int) -> str:
    """Write a run's results as one JUnit XML document, in the form `import_junit` reads.

    Each result goes into a `<testsuite>` of the suite that import keeps in its metadata (one of
    none into `run N`), a new one wherever the suite changes, so the results keep their order.
    """
    run, results = await read_run(db, run_id)
    suites = _Suites(f"run {run_id}")
    cases = await map_each(suites.case_xml, results)
    if not suites.found:  # no result: an empty suite, as a consumer expects one
        suites.found.append(_Suite(suites.unnamed, 0))
    counts = _counts(len(results), sum((suite.tags for suite in suites.found), Counter()))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<testsuites {counts} timestamp={quoteattr(run.started_at.isoformat())}>",
    ]
    ends = [suite.start for suite in suites.found[1:]] + [len(cases)]
    for suite, end in zip(suites.found, ends, strict=True):
        lines.append(
            f"  <testsuite name={_attribute(suite.name)} {_counts(end - suite.start, suite.tags)}>"
        )
        lines += cases[suite.start : end]
        lines.append("  </testsuite>")
        await share_loop()
    lines += ["</testsuites>", ""]
    return "\n".join(lines)


def _counts(tests: int, tags: Counter[str | None]) -> str:
    """Give the attributes that count cases, by the element that marks their outcome."""
    return (
        f'tests="{tests}" failures="{tags["failure"]}" errors="{tags["error"]}" '
        f'skipped="{tags["skipped"]}"'
    )


@attrs.define
class _Suite:
    """A `<testsuite>` of an export: its name, its first case, its cases' outcome elements."""

    name: str
    start: int
    tags: Counter[str | None] = attrs.field(factory=Counter)


@attrs.define
class _Suites:
    """The suites of an export, found as its cases are written, one after another."""

    unnamed: str
    """The suite of a result that import kept none for."""
    found: list[_Suite] = attrs.field(factory=list)
    written: int = 0

    def case_xml(self, result: TestResult) -> str:
        """Write a result's case, noting its suite: a new one if it is not the last one's."""
        name = result.metadata.get("suite")
        name = name if isinstance(name, str) else self.unnamed
        if not self.found or self.found[-1].name != name:
            self.found.append(_Suite(name, self.written))
        self.found[-1].tags[TAGS.get(result.status)] += 1
        self.written += 1
        return _case_xml(result)


def _shown(found: re.Match[str]) -> str:
    return f"#x{ord(found.group()):02X}"


def _attribute(text: str) -> str:
    """Quote text as an attribute's value; what XML cannot hold is shown as pytest does."""
    return quoteattr(_NOT_XML.sub(_shown, text))


def _content(text: str) -> str:
    """Escape text as an element's content, its carriage returns kept."""
    return escape(_NOT_XML.sub(_shown, text), {"\r": "&#13;"})


def _case_xml(result: TestResult) -> str:
    test_id = result.test_id or f"result-{result.id}"
    classname, _, name = test_id.partition(SEPARATOR)
    if not (classname and name):  # `::` at an end, or none: the id is the name, whole
        classname, name = "", test_id
    attrs = f"name={_attribute(name)}"
    if classname:
        attrs = f"classname={_attribute(classname)} " + attrs
    file = result.metadata.get("file")
    if isinstance(file, str):
        attrs += f" file={_attribute(file)}"
    attrs += f' time="{result.execution_time!r}"'
    inner = []
    tag, message = TAGS.get(result.status), result.error_message
    if tag is not None:
        kind = result.metadata.get("failure_type")  # the outcome's `type`, as import keeps it
        said = f" type={_attribute(kind)}" if isinstance(kind, str) else ""
        if message is None:  # a message="" would import as ""
            inner.append(f"<{tag}{said}/>")
        else:
            # Import reads a blank text past, to the message: that one is written whole.
            said += f" message={_attribute(message[:200] if message.strip() else message)}"
            inner.append(f"<{tag}{said}>{_content(message)}</{tag}>")
    if result.output is not None:
        inner.append(f"<system-out>{_content(result.output)}</system-out>")
    stderr = result.metadata.get("system_err")
    if isinstance(stderr, str):
        inner.append(f"<system-err>{_content(stderr)}</system-err>")
    if not inner:
        return f"    <testcase {attrs}/>"
    return f"    <testcase {attrs}>{''.join(inner)}</testcase>"
