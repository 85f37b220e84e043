"""Test reports in and out: a JUnit XML file becomes one run, and a run becomes one again.

Import streams the file through defusedxml's parser, which refuses any DTD, so no XML bomb
expands. One file is one run in one transaction: anything wrong is a ReportError naming the
file and line, and nothing is written. docs/HISTORY.md ("Import and export") has the mapping.
"""

from __future__ import annotations

import asyncio
import codecs
import datetime as dt
import os
import re
from collections import Counter
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ParserCreate
from xml.sax.saxutils import escape, quoteattr

import attrs
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from persistence._backend import kept_if_cancelled, refuse_cancel_from_outside
from persistence._files.paths import open_regular
from persistence._guards import (
    MAX_KEY_BYTES,
    MIN_INT,
    file_path,
    json_object,
    key_id,
    key_length_problem,
    text_problem,
)
from persistence._interface import JsonObject
from persistence._loop import map_each, map_in_slices, share_loop
from persistence._paging import READ_PAGE
from persistence._rows import result_from_row, result_params
from persistence.database import Database, borrow, check_usable, read_snapshot, transaction
from persistence.exceptions import NotAFileError, ReportError, ValidationError
from persistence.models import MAX_EXECUTION_TIME, Run, TestResult, TestStatus, TestType, utc_now
from persistence.runs import get_run, save_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from persistence.queries import InsertTestResultsParams

__all__ = ["CHUNK_BYTES", "export_junit", "import_junit", "read_run", "run_results"]

CHUNK_BYTES: Final = 1 << 20
"""How much of a report is read and parsed at a time."""
_PIECE_BYTES: Final = 4096
"""How much of a chunk is parsed between two looks at the loop budget: well under 1 ms."""
_BATCH: Final = 10_000
"""How many results are inserted at a time, inside the import's one transaction."""
_SURE_KEY_CHARS: Final = MAX_KEY_BYTES // 4
"""A test id of this many characters or fewer is within MAX_KEY_BYTES in any UTF-8."""
_SEPARATOR: Final = "::"
"""A test id is `classname::name`, or the name alone when the case has no class name."""

_TAGS: Final = {
    TestStatus.FAILED: "failure",
    TestStatus.TIMEOUT: "error",
    TestStatus.ERROR: "error",
    TestStatus.SKIPPED: "skipped",
}
"""The element that marks a result's outcome, as export writes it; none for the others."""
_OUTCOMES: Final = {tag: status for status, tag in _TAGS.items()}  # "error" reads as ERROR
_METADATA_KEYS: Final = ("suite", "file", "classname", "failure_type", "system_err")
"""What a result's metadata keeps of its case, in `_JUnitTarget._metadata`'s order."""
_UNIT: Final = TestType.UNIT.value
_TEXT_TAGS: Final = frozenset({"failure", "error", "skipped", "system-out", "system-err"})
_SECONDS: Final = re.compile(
    r"[ \t\n\r]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)?[ \t\n\r]*"
)
"""A case's `time` as JUnit writes it: a decimal number, perhaps with an exponent, in ASCII
digits; XML's white space around it is read past, as XML Schema's numbers allow, and a time of
none (empty, or white space only) is 0, as one left out."""
_NAMESPACE_END: Final = "\x01"
"""What expat joins an element's namespace and name with: no XML 1.0 text holds it, even as
a reference, so that no namespace holds it either."""
_EXPAT_SETTINGS: Final = frozenset(
    {
        "buffer_size",
        "buffer_text",
        "namespace_prefixes",
        "ordered_attributes",
        "specified_attributes",
    }
)
_DECLARATION: Final = re.compile(
    r"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])[^\"']*\1[ \t\r\n]+"
    r"encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?P<name>[A-Za-z][A-Za-z0-9._-]*)\2"
)
"""The XML declaration's encoding name, where XML 1.0 puts it."""
_DECLARATION_BYTES: Final = 400
"""Where a report's XML declaration ends, at most, in any encoding: it comes first."""
_MARKS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""A character that XML 1.0 cannot hold, even as a reference: export shows it as `#x1B`."""


@attrs.define
class _Case:
    """The parts of one testcase element, gathered as the parser goes."""

    xml_attrs: dict[str, str]
    line: int
    suite: str | None
    status: TestStatus = TestStatus.PASSED
    message: str | None = None
    kind: str | None = None
    texts: dict[str, list[str]] = attrs.field(factory=dict)


class _JUnitTarget:
    """An ElementTree parser target that turns testcase elements into results, in order."""

    def __init__(self, path: Path, run_id: int, started: dt.datetime) -> None:
        self.path = path
        self.run_id = run_id
        self.started = started
        self.line: Callable[[], int] = lambda: 0
        self.results: list[InsertTestResultsParams] = []
        self.seen: dict[str, int] = {}
        self.suites: list[str | None] = []
        self.case: _Case | None = None
        self.collecting: str | None = None
        self.root: str | None = None
        self._last_key: tuple[str | None, ...] = ()
        self._last_metadata: JsonObject = {}

    def fail(self, reason: str, line: int | None = None) -> ReportError:
        return ReportError(self.path, self.line() if line is None else line, reason)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            if tag not in ("testsuites", "testsuite"):
                raise self.fail(f"expected <testsuites> or <testsuite>, found {_element(tag)}")
            self.root = tag
        if tag == "testsuite":
            self.suites.append(attrs.get("name"))
        elif tag == "testcase":
            if self.case is not None:
                raise self.fail("a <testcase> inside another")
            self.case = _Case(attrs, self.line(), self.suites[-1] if self.suites else None)
        elif self.case is not None and tag in _TEXT_TAGS:
            if tag in _OUTCOMES:
                if self.case.status is not TestStatus.PASSED:
                    raise self.fail(f"a <testcase> with two outcomes: <{tag}> after another")
                self.case.status = _OUTCOMES[tag]
                self.case.message = attrs.get("message")
                self.case.kind = attrs.get("type")
            self.collecting = tag

    def data(self, text: str) -> None:
        if self.case is not None and self.collecting is not None:
            self.case.texts.setdefault(self.collecting, []).append(text)

    def end(self, tag: str) -> None:
        if tag == "testsuite" and self.suites:
            self.suites.pop()
        elif tag == "testcase" and self.case is not None:
            self.results.append(self._result(self.case))
            self.case = None
        elif tag == self.collecting:
            self.collecting = None

    def close(self) -> None:
        if self.root is None:
            raise self.fail("the file holds no <testsuites> or <testsuite>")

    def _metadata(
        self, case: _Case, classname: str, system_err: str | None
    ) -> tuple[JsonObject, tuple[str, ...]]:
        """Give a case's metadata, and its texts not yet checked.

        The cases of one class come together and share one metadata object, which is
        checked and, on SQLite, encoded once.
        """
        key = (case.suite, case.xml_attrs.get("file"), classname or None, case.kind, system_err)
        if key == self._last_key:
            return self._last_metadata, ()
        metadata: JsonObject = {
            name: value
            for name, value in zip(_METADATA_KEYS, key, strict=True)
            if value is not None
        }
        self._last_key, self._last_metadata = key, metadata
        return metadata, tuple(value for value in key if value is not None)

    def _result(self, case: _Case) -> InsertTestResultsParams:
        """Give a testcase's row, checked as `TestResult` checks it."""
        name = case.xml_attrs.get("name", "")
        if not name:
            raise self.fail("a <testcase> without a name", case.line)
        classname = case.xml_attrs.get("classname", "")
        test_id = f"{classname}{_SEPARATOR}{name}" if classname else name
        if test_id in self.seen:
            raise self.fail(
                f"test {test_id!r:.200} appears twice: first on line {self.seen[test_id]}",
                case.line,
            )
        self.seen[test_id] = case.line
        texts = {tag: "".join(parts) for tag, parts in case.texts.items()} if case.texts else {}
        detail = (
            next((texts[t] for t in _OUTCOMES if t in texts and texts[t].strip()), None)
            if texts
            else None
        )
        metadata, fresh = self._metadata(case, classname, texts.get("system-err"))
        error_message = detail if detail is not None else case.message
        output = texts.get("system-out")
        time = case.xml_attrs.get("time", "")
        number = _SECONDS.fullmatch(time)
        if number is None:
            raise self.fail(
                f"testcase {test_id!r:.200}: time must be a decimal number of seconds,"
                f" got {time!r:.80}",
                case.line,
            )
        # ASCII digits, as JUnit means them; -0.0 is 0.0, as the model makes it (PostgreSQL
        # would keep the sign of a row that goes in as it is)
        seconds = float(number.group(1) or 0) + 0.0
        try:
            if (
                0.0 <= seconds <= MAX_EXECUTION_TIME  # NaN is not
                and (len(test_id) <= _SURE_KEY_CHARS or key_length_problem(test_id) is None)
                and text_problem(test_id) is None
                and (error_message is None or text_problem(error_message) is None)
                and (output is None or text_problem(output) is None)
                and not (fresh and any(map(text_problem, fresh)))
            ):  # what the model would check, in short: the row goes in as it is
                return {
                    "test_type": _UNIT,
                    "status": case.status.value,
                    "execution_time": seconds,
                    "memory_usage": 0,
                    "test_cases_passed": 0,
                    "test_cases_total": 0,
                    "error_message": error_message,
                    "output": output,
                    "created_at": self.started,
                    "metadata": metadata,
                    "run_id": self.run_id,
                    "test_id": test_id,
                }
            return result_params(  # anything else: the model says what is wrong
                TestResult(
                    test_type=TestType.UNIT,
                    status=case.status,
                    execution_time=seconds,
                    error_message=error_message,
                    output=output,
                    created_at=self.started,
                    metadata=metadata,
                    run_id=self.run_id,
                    test_id=test_id,
                )
            )
        except ValidationError as error:
            raise self.fail(f"testcase {test_id!r:.200}: {error}", case.line) from None


def _junit_parser(target: _JUnitTarget, encoding: str | None = None) -> DefusedXMLParser:
    """Give defusedxml's parser, its expat joining a namespace and a name with `_NAMESPACE_END`.

    ElementTree's expat joins them with `}`, which a namespace may hold: expat refuses such a
    namespace with a bare "syntax error", before any handler could name it. Every handler and
    setting that ElementTree and defusedxml gave their expat (those against DTDs and entities
    among them) is given to this one. `encoding`, if given, overrides the one declared.
    """
    parser = DefusedXMLParser(target=target, forbid_dtd=True)
    given = parser.parser
    expat = ParserCreate(encoding, _NAMESPACE_END)
    for name in dir(given):
        if "Handler" in name or name in _EXPAT_SETTINGS:
            setattr(expat, name, getattr(given, name))
    parser.parser = expat  # what ElementTree feeds and closes
    return parser


def _started(target: _JUnitTarget, head: bytes | bytearray) -> DefusedXMLParser:
    """Give the parser of a report that starts with `head`, its elements straight to `target`."""
    try:
        encoding = _read_as(head)
    except ValueError as error:
        raise target.fail(str(error), 1) from None
    parser = _junit_parser(target, encoding)
    expat = parser.parser
    target.line = lambda: int(expat.CurrentLineNumber)
    # Elements straight to the target, past ElementTree's Python step per element; the
    # handlers that defusedxml set against DTDs and entities stay.
    expat.ordered_attributes = False
    expat.StartElementHandler = target.start
    expat.EndElementHandler = target.end
    return parser


def _read_as(head: bytes | bytearray) -> str | None:
    """Give the encoding to read a report in, where expat would misread the name it declares.

    Expat knows UTF-8 and UTF-16 by those names alone, and reads any other name through
    Python's codec, a byte at a time: declared `utf8` (as ElementTree writes the name it was
    given), a file's first character beyond ASCII was refused, and `utf16` was refused as a
    multi-byte encoding. UTF-16 is read so behind its byte order mark only, which says which.
    A mark and a name that disagree are a ValueError: expat took a UTF-8 mark's file as in the
    single-byte encoding declared, and `été` came in as `Ã©tÃ©`.
    """
    mark = next((codec for bom, codec in _MARKS if head.startswith(bom)), None)
    text = bytes(head[:_DECLARATION_BYTES]).decode(mark or "latin-1", "replace")
    found = _DECLARATION.match(text.removeprefix("\ufeff"))
    family = _family(found["name"]) if found else None
    if mark is not None and found and family is not None and family != _family(mark):
        raise ValueError(
            f"it starts with a {_family(mark)} byte order mark but declares encoding "
            f"{found['name']!r}: save it in the one encoding, and name that one"
        )
    if family == "utf-8" and mark in {None, "utf-8"}:
        return "UTF-8"
    if family == "utf-16" and mark in {"utf-16-le", "utf-16-be"}:
        return "UTF-16"
    return None


def _family(name: str) -> str | None:
    """Name the encoding that Python knows as `name`: `utf-8` and `utf-16` by any spelling."""
    try:
        known = codecs.lookup(name).name
    except LookupError:
        return None  # expat says so, naming it
    if known.startswith("utf-8"):  # utf-8-sig too: a mark is read past either way
        return "utf-8"
    return "utf-16" if known.startswith("utf-16") else known


def _element(tag: str) -> str:
    """Name an element as a user reads it: expat gives one in a namespace as `namespace^Aname`."""
    namespace, joined, name = tag.rpartition(_NAMESPACE_END)
    if not joined:
        return f"<{tag:.80}>"
    return f"<{name:.80}> in the XML namespace {namespace!r:.200}, where JUnit's are in none"


async def import_junit(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObject | None = None
) -> Run:
    """Import one JUnit XML file as one new run, with these labels; return the run.

    All or nothing: any problem raises ReportError naming the file and the line, and no run
    and no result is written.
    """
    path, run = import_arguments("import_junit", db, path, labels)
    async with transaction(db) as tx:
        run = await save_run(tx, run)
        assert run.id is not None  # noqa: S101  # a saved run has an id
        target = _JUnitTarget(path, run.id, run.started_at)
        # One batch is inserted (in SQLite's thread, or by the server) while the next is parsed.
        pending: asyncio.Future[None] | None = None
        try:
            # A caller cancelled meanwhile leaves no file open behind it. The executor's future,
            # not a task: code cancelling other tasks (a shutdown handler) cannot reach it.
            stream = await kept_if_cancelled(
                asyncio.get_running_loop().run_in_executor(None, open_report, path), _close
            )
            held = bytearray()  # read, not yet parsed
            piece = _PIECE_BYTES
            with stream:
                chunk = await asyncio.to_thread(stream.read, CHUNK_BYTES)
                parser = _started(target, chunk)  # the first chunk: a whole declaration, if any
                expat = parser.parser
                while chunk:
                    held += chunk
                    while len(held) >= piece:
                        before = expat.CurrentByteIndex
                        _feed(parser, target, held[:piece])
                        del held[:piece]
                        # Within one token that has not ended (an attribute of megabytes), expat
                        # scans it again from its start at each feed: the pieces double until it
                        # ends, so that the scans add up to a few times its length.
                        piece = _PIECE_BYTES if expat.CurrentByteIndex != before else 2 * piece
                        if len(target.results) >= _BATCH:
                            if pending is not None:
                                await pending
                            pending = asyncio.ensure_future(_insert(tx, target.results))
                            target.results = []
                        await share_loop()
                    chunk = await asyncio.to_thread(stream.read, CHUNK_BYTES)
            _feed(parser, target, bytes(held))
            _feed(parser, target, None)
            if pending is not None:
                await pending
            await _insert(tx, target.results)
        except OSError as error:
            raise ReportError(path, None, f"cannot read: {error.strerror or error}") from None
        except asyncio.CancelledError:  # a batch's insert, cancelled from outside: DatabaseError
            if pending is not None:
                refuse_cancel_from_outside(pending)
            raise
        finally:
            if pending is not None and not pending.done():  # a failure meanwhile: let it end
                await asyncio.wait([pending])
                with suppress(Exception, asyncio.CancelledError):
                    pending.result()
    return run


def import_arguments(name: str, db: Database, path: object, labels: object) -> tuple[Path, Run]:
    """Check the arguments of the import `name` before its file; give its path and new run."""
    check_usable(db, writes=True)  # no Database, a snapshot's, the outer one in its block
    found = Path(file_path(name, "path", path))
    given = {} if labels is None else json_object(name, "labels", labels)
    return found, Run(started_at=utc_now(), labels=given)


def open_report(path: Path) -> BinaryIO:
    """Open a report to read it: a regular file only, opened without waiting (`open_regular`).

    A FIFO would keep the open waiting for a writer, and a device such as /dev/zero never ends.
    """
    try:
        descriptor = open_regular(None, str(path), str(path), follow=True)
    except NotAFileError:
        raise ReportError(path, None, "not a regular file") from None
    return os.fdopen(descriptor, "rb")


def _close(stream: BinaryIO) -> None:
    stream.close()  # BinaryIO.close itself is typing's abstract stub: it closes nothing


async def _insert(db: Database, rows: list[InsertTestResultsParams]) -> None:
    """Insert checked rows in one batch: the bulk insert under `save_results`."""
    if rows:
        async with borrow(db) as conn:
            await db.queries.insert_test_results(conn, rows)


def _feed(parser: DefusedXMLParser, target: _JUnitTarget, chunk: bytes | bytearray | None) -> None:
    """Give the parser a chunk (None: the end), turning its errors into ReportError."""
    try:
        if chunk is None:
            parser.close()
        else:
            parser.feed(chunk)
    except DefusedXmlException as error:
        raise target.fail(f"refused: {type(error).__name__} ({error})") from None
    except ParseError as error:
        line, _ = error.position
        raise target.fail(f"not well-formed XML: {error.msg}", line) from None
    except ReportError:
        raise
    except (ValueError, LookupError) as error:  # the declared encoding: multi-byte, or unknown
        raise target.fail(f"cannot read the encoding it declares: {error}") from None


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
        self.found[-1].tags[_TAGS.get(result.status)] += 1
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
    classname, _, name = test_id.partition(_SEPARATOR)
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
    tag, message = _TAGS.get(result.status), result.error_message
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


async def read_run(db: Database, run_id: int) -> tuple[Run, list[TestResult]]:
    """Give a run and its results as one state, for the exports to write.

    Read in one snapshot: a write meanwhile, such as a retention delete, never shows in part.
    """
    run_id = key_id("Run", run_id)
    async with read_snapshot(db) as seen:
        results = await run_results(seen, run_id)
        return await get_run(seen, run_id), results


async def run_results(db: Database, run_id: int) -> list[TestResult]:
    """Every result of a run, in the order they were stored."""
    results: list[TestResult] = []
    after = MIN_INT  # before every id, those of 0 and below that plain SQL may write included
    while True:
        async with borrow(db) as conn:
            rows = await db.queries.list_run_results(
                conn, run_id=run_id, after_id=after, page_size=READ_PAGE
            )
        results.extend(await map_in_slices(result_from_row, rows))
        if len(rows) < READ_PAGE:
            return results
        after = rows[-1].id
