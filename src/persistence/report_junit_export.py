"""JUnit XML out: a run written as one document, in the form `import_junit` reads back.

docs/HISTORY.md ("Import and export") has the mapping, both ways.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Final
from xml.sax.saxutils import escape, quoteattr

import attrs

from persistence._guards import MAX_KEY_BYTES, key_length_problem
from persistence._loop import (
    TEXT_PIECE,
    drop_in_slices,
    joined,
    map_in_slices,
    map_text,
    share_loop,
)
from persistence.database import Database
from persistence.exceptions import ValidationError
from persistence.models import Run, TestResult, TestStatus
from persistence.report_common import written_run

__all__ = ["SEPARATOR", "TAGS", "TAG_BYTES", "export_junit"]

TAG_BYTES: Final = 1 << 20
"""The longest tag (or comment) `import_junit` takes: expat reads one whole in one call, about
7 ms a MiB. An export writes none longer: it would write a report its import refuses."""

SEPARATOR: Final = "::"
"""A test id is `classname::name`, or the name alone when the case has no class name."""

TAGS: Final = {
    TestStatus.FAILED: "failure",
    TestStatus.TIMEOUT: "error",
    TestStatus.ERROR: "error",
    TestStatus.SKIPPED: "skipped",
}
"""The element that marks a result's outcome, as export writes it; none for the others."""
_NOT_XML: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""A character that XML 1.0 cannot hold, even as a reference: export shows it as `#x1B`. These
are what XML's `Char` leaves out; written as that set's complement, it took 13 ms to compile."""


async def export_junit(db: Database, run_id: int) -> str:
    """Write a run's results as one JUnit XML document, in the form `import_junit` reads.

    Each result goes into a `<testsuite>` of the suite that import keeps in its metadata (one of
    none into `run N`), a new one wherever the suite changes (so the results keep their order)
    or the time goes back. Each suite's `timestamp` is its first case's time, from which import
    lays its cases out (`_Suites`), but for a suite of cases all at the run's start, which import
    gives the run's start without one; `<testsuites>` spans the run.
    """
    return await written_run(db, run_id, junit_text)


async def junit_text(run: Run, results: list[TestResult]) -> str:
    """Write a run's results, as read, as `export_junit` does."""
    suites = _Suites(f"run {run.id}")
    cases: list[str] = []  # each case's line, or its pieces where it holds a long text
    # Import gives a case of a suite of no timestamp the run's start: the root's timestamp,
    # unless a result is earlier.
    at_start = True
    latest = run.started_at  # the latest result's time, if later
    names = await _case_names(results)
    for result, test_id in zip(results, names, strict=True):
        suites.note(result, len(cases))
        at_start = at_start and result.created_at >= run.started_at
        latest = max(latest, result.created_at)
        long: list[str] = []
        case = _case_xml(result, test_id, long)
        if long:
            cases += await _filled(case, long)
        else:
            cases.append(case)
        await share_loop()
    if not suites.found:  # no result: an empty suite, as a consumer expects one
        suites.found.append(_Suite(suites.unnamed, 0, run.started_at, run.started_at))
    counts = _counts(len(results), sum((suite.tags for suite in suites.found), Counter()))
    began, lasted = quoteattr(run.started_at.isoformat()), _run_seconds(run, latest)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<testsuites {counts} timestamp={began} time="{lasted}">\n',
    ]
    ends = [suite.start for suite in suites.found[1:]] + [len(cases)]
    for suite, end in zip(suites.found, ends, strict=True):
        counts = _counts(suite.tags.total(), suite.tags)
        began = f" timestamp={quoteattr(suite.began.isoformat())}"
        if at_start and suite.spread and suite.last == run.started_at:
            began = ""  # its cases all at the run's start, which their `time`s would spread
        opening = f"  <testsuite name={_attribute(suite.name)} {counts}{began}>\n"
        parts.append(_fitting(opening, None, f"its name, metadata `suite`, {suite.name!r:.40}"))
        parts += cases[suite.start : end]
        parts.append("  </testsuite>\n")
        await share_loop()
    parts.append("</testsuites>\n")
    await drop_in_slices(cases)  # each in `parts` too, which goes after the join
    return await joined(parts)  # one copy of the whole: a case's output may be megabytes


def _counts(tests: int, tags: Counter[str | None]) -> str:
    """Give the attributes that count cases, by the element that marks their outcome."""
    return (
        f'tests="{tests}" failures="{tags["failure"]}" errors="{tags["error"]}" '
        f'skipped="{tags["skipped"]}"'
    )


def _run_seconds(run: Run, latest: dt.datetime) -> str:
    """Give the seconds `<testsuites>` lasts, from the run's start: the span it is imported at.

    To its end, or to `latest` (its latest result's time, or its start) if later (a run not
    ended has none), as CTRF's import spans a run: so each result's time lies within it.
    Written exactly, to the microsecond (`9.0`, `0.000001`): a float's seconds miss by
    microseconds past some 285 years, which could end the span past the year 9999.
    """
    ended = latest if run.ended_at is None else max(latest, run.ended_at)
    lasted = max(ended - run.started_at, dt.timedelta(0))
    fraction = f"{lasted.microseconds:06d}".rstrip("0") or "0"
    return f"{lasted.days * 86_400 + lasted.seconds}.{fraction}"


@attrs.define
class _Suite:
    """A `<testsuite>` of an export: its name, where its cases start, their outcome elements.

    `began`, its first case's time, is its `timestamp`; import places each case at it plus the
    `time`s of the cases before it in the suite. A suite whose cases are all at the run's
    start, which those `time`s would spread, has none (`junit_text`).
    """

    name: str
    start: int
    """The index of its first case's line, or first piece, in the export's list of cases."""
    began: dt.datetime
    last: dt.datetime
    """The time of its last case so far."""
    tags: Counter[str | None] = attrs.field(factory=Counter)
    seconds: float = 0.0
    """The `time` of its last case so far."""
    spread: bool = False
    """Whether a case after one of a `time` above 0 is in it: import would lay it out later."""


@attrs.define
class _Suites:
    """The suites of an export, found as its cases are written, one after another."""

    unnamed: str
    """The suite of a result that import kept none for."""
    found: list[_Suite] = attrs.field(factory=list)

    def note(self, result: TestResult, start: int) -> None:
        """Note a result's case, written from `start` on: a new suite if not the last one's.

        A case that began before the one before it starts a new suite too, of the same name:
        so each suite's timestamp, its first case's time, is its earliest, and that case comes
        back at its time on import.
        """
        name = result.metadata.get("suite")
        name = name if isinstance(name, str) else self.unnamed
        last = self.found[-1] if self.found else None
        at = result.created_at
        if last is None or last.name != name or last.last > at:
            last = _Suite(name, start, at, at)
            self.found.append(last)
        else:
            last.spread = last.spread or last.seconds > 0
        last.last, last.seconds = at, result.execution_time
        last.tags[TAGS.get(result.status)] += 1


def _shown(found: re.Match[str]) -> str:
    return f"#x{ord(found.group()):02X}"


def _fitting(tag: str, result: TestResult | None, what: str) -> str:
    """Give `tag` if `import_junit` takes its length; else refuse the export, saying why.

    `what` names the values that may make it long; `result`, the result it belongs to.
    """
    if len(tag) * 4 > TAG_BYTES and len(size := tag.encode()) > TAG_BYTES:  # UTF-8: 1-4 a char
        whose = "a suite" if result is None else f"result {result.id}"
        raise ValidationError(
            "TestResult",
            "metadata",
            f"{whose}: its JUnit tag would be {len(size):,} bytes, past the {TAG_BYTES >> 20} MiB "
            f"that import_junit reads ({what}): export the run as CTRF or JSON Lines, which "
            "keep it",
        )
    return tag


def _attribute(text: str) -> str:
    """Quote text as an attribute's value; what XML cannot hold is shown as pytest does."""
    return quoteattr(_NOT_XML.sub(_shown, text))


def _content(text: str) -> str:
    """Escape text as an element's content, its carriage returns kept.

    Each character alone: `map_text` may escape a long text a piece at a time.
    """
    return escape(_NOT_XML.sub(_shown, text), {"\r": "&#13;"})


_HOLE: Final = "\x00"
"""Where a long text goes in its case: escaped content never holds a NUL, shown `#x00`."""


def _content_or_hole(text: str, long: list[str]) -> str:
    """Escape text as an element's content; a long one is put in `long`, a hole in its place."""
    if len(text) <= TEXT_PIECE:
        return _content(text)
    long.append(text)
    return _HOLE


async def _filled(case: str, long: list[str]) -> list[str]:
    """Give a case's pieces, each hole filled with its long text, escaped a piece at a time."""
    between = case.split(_HOLE)
    pieces = [between[0]]
    for text, after in zip(long, between[1:], strict=True):
        pieces += await map_text(_content, text)
        pieces.append(after)
    return pieces


async def _case_names(results: list[TestResult]) -> list[str]:
    """Give each result the test id its case is written under, as import reads it back.

    A test id is written as it is, but for what XML cannot hold, shown as `#x1B`; one of no test
    id under a name made up from its result's id. Where that gives a case the name of another
    (`a[ESC]` shown as `a[#x1B]`, a test's own id), or a name past the 1,024 bytes of a test id
    (an id of many such characters grows), the case whose name was made up or changed is
    numbered (`-2`) and cut to fit: import refused the file.
    """
    shown = await map_in_slices(_shown_id, results)
    times = Counter(shown)
    taken = {name for name in shown if name is not None}  # not to be made up for another
    numbers: dict[str, int] = {}  # the last number given each name: numbering never restarts
    names: list[str] = []
    for result, name in zip(results, shown, strict=True):
        if name is None:
            names.append(_unused(f"result-{result.id}", taken, numbers))
        elif (times[name] > 1 and name != result.test_id) or key_length_problem(name) is not None:
            names.append(_unused(name, taken, numbers))
        else:
            names.append(name)
        if len(names) % _NAMES_A_SLICE == 0:
            await share_loop()
    return names


_NAMES_A_SLICE: Final = 1_000
"""Results named between two givings-back of the loop."""


def _shown_id(result: TestResult) -> str | None:
    """Give a result's test id as its case holds it: what XML cannot hold shown as `#x1B`."""
    return None if result.test_id is None else _NOT_XML.sub(_shown, result.test_id)


def _unused(name: str, taken: set[str], numbers: dict[str, int]) -> str:
    """Give `name`, or `name-2`, `name-3`...: the first no case has, cut to fit; take it.

    `numbers` keeps the last number given each name, so that thousands of cases of one name
    are numbered in one pass, not each from 2 again.
    """
    found, number = _cut(name, MAX_KEY_BYTES), numbers.get(name, 1)
    while found in taken:
        number += 1
        suffix = f"-{number}"
        found = _cut(name, MAX_KEY_BYTES - len(suffix)) + suffix
    numbers[name] = number
    taken.add(found)
    return found


def _cut(text: str, size: int) -> str:
    """Give the longest start of `text` of at most `size` bytes in UTF-8."""
    return text.encode()[:size].decode(errors="ignore")


def _case_xml(result: TestResult, test_id: str, long: list[str]) -> str:
    """Write a result's case as its line, as test `test_id`; each long text is put in `long`.

    A hole stands in its place. Escaped in one call, a text of 40 MB held the loop 1.7 s:
    `_filled` escapes it in pieces.
    """
    kept = result.metadata.get("classname")  # the case's own, as import keeps it: `::` and all
    if isinstance(kept, str) and kept and test_id.startswith(kept + SEPARATOR):
        classname, name = kept, test_id[len(kept) + len(SEPARATOR) :]
    else:
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
    _fitting(f"<testcase {attrs}>", result, "its metadata `file` or `classname`")
    inner = []
    tag, message = TAGS.get(result.status), result.error_message
    if tag is not None:
        kind = result.metadata.get("failure_type")  # the outcome's `type`, as import keeps it
        said = f" type={_attribute(kind)}" if isinstance(kind, str) else ""
        if message is None:  # a message="" would import as ""
            inner.append(_fitting(f"<{tag}{said}/>", result, "its metadata `failure_type`"))
        else:
            # Import reads a blank text past, to the message: that one is written whole.
            said += f" message={_attribute(message[:200] if message.strip() else message)}"
            opening = _fitting(
                f"<{tag}{said}>", result, "its metadata `failure_type`, or a blank message"
            )
            inner.append(f"{opening}{_content_or_hole(message, long)}</{tag}>")
    if result.output is not None:
        inner.append(f"<system-out>{_content_or_hole(result.output, long)}</system-out>")
    stderr = result.metadata.get("system_err")
    if isinstance(stderr, str):
        inner.append(f"<system-err>{_content_or_hole(stderr, long)}</system-err>")
    if not inner:
        return f"    <testcase {attrs}/>\n"
    return f"    <testcase {attrs}>{''.join(inner)}</testcase>\n"
