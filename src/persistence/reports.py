"""Test reports in and out: a JUnit XML file becomes one run, and a run becomes one again.

Export is written in `report_junit_export.py`, and given here too.

Import streams the file through defusedxml's parser, which refuses any DTD, so no XML bomb
expands. One file is one run in one transaction: anything wrong is a ReportError naming the
file and line, and nothing is written. docs/HISTORY.md ("Import and export") has the mapping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final
from xml.etree.ElementTree import ParseError

import attrs
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from persistence._cancelling import kept_if_cancelled, refuse_cancel_from_outside
from persistence._guards import MAX_KEY_BYTES, key_length_problem, text_problem
from persistence._interface import JsonObject, JsonObjectInput
from persistence._loans import borrow
from persistence._loop import share_loop
from persistence._rows import result_params
from persistence.database import Database
from persistence.exceptions import ReportError, ValidationError
from persistence.models import MAX_EXECUTION_TIME, Run, TestResult, TestStatus, TestType
from persistence.report_common import (  # re-exported: `persistence.reports`
    import_arguments,
    import_transaction,
    open_report,
    read_run,
    run_results,
)
from persistence.report_encodings import NAMESPACE_END, junit_parser, read_as, utf_16_in
from persistence.report_junit_export import SEPARATOR, TAG_BYTES, TAGS, export_junit
from persistence.report_times import SECONDS, Clock, JUnitTimes, timed_run
from persistence.runs import save_run

if TYPE_CHECKING:
    from collections.abc import Callable

    from persistence.queries import InsertTestResultsParams

__all__ = ["CHUNK_BYTES", "export_junit", "import_junit", "read_run", "run_results"]

CHUNK_BYTES: Final = 1 << 20
"""How much of a report is read and parsed at a time."""
_PIECE_BYTES: Final = 4096
"""How much of a chunk is parsed between two looks at the loop budget: well under 1 ms."""
_OPEN_PIECE_BYTES: Final = 64 << 10
"""The most fed at a time while a token goes on: the piece that ends it is parsed in the call
that reads the whole token, so this bounds that call whatever the count below misses (a `>`
inside a value, UTF-16's bytes): about 13,000 attributes, some 20 ms."""
_TOKEN_ATTRIBUTES: Final = 1_000
"""The most attributes a tag may hold: expat makes each, about 1 us, in that same call."""
_ATTRIBUTE: Final = re.compile(rb"=\s*[\"']")
"""An attribute's `="` within a tag, counted roughly: a piece may cut one in two."""
_NOT_A_TAG: Final = (b"<!", b"<?")
"""How a comment, CDATA or a processing instruction starts."""
_CARRY: Final = 16
"""Bytes of a token's last piece kept, to count an `="` that the next piece ends."""
_BATCH: Final = 10_000
"""How many results are inserted at a time, inside the import's one transaction."""
_BATCH_CHARS: Final = 1 << 23
"""Or fewer, once their texts hold this many characters: a batch's memory and its insert's
time (SQLite's thread binds each text holding the GIL) grow with them."""
_SURE_KEY_CHARS: Final = MAX_KEY_BYTES // 4
"""A test id of this many characters or fewer is within MAX_KEY_BYTES in any UTF-8."""
_OUTCOMES: Final = {tag: status for status, tag in TAGS.items()}  # "error" reads as ERROR
_METADATA_KEYS: Final = ("suite", "file", "classname", "failure_type", "system_err")
"""What a result's metadata keeps of its case, in `_JUnitTarget._metadata`'s order."""
_UNIT: Final = TestType.UNIT.value
_PYTEST_TEARDOWN: Final = "failed on teardown"
"""How pytest begins the message of a test's teardown error, written as a testcase of its own."""
_NOT_FAILED: Final = frozenset({TestStatus.PASSED.value, TestStatus.SKIPPED.value})
"""A testcase's statuses that a teardown's error joined to it turns into an error."""
_TEXT_TAGS: Final = frozenset({"failure", "error", "skipped", "system-out", "system-err"})


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
        self.held = 0  # the characters of the outputs and errors of `results`
        self.last_held = 0  # those of its last row
        self.pending: dict[str, InsertTestResultsParams] = {}
        """The rows of `results` by test id: those not yet inserted (`_batched` empties both)."""
        self.seen: dict[str, int] = {}
        self.torn_down: set[str] = set()
        """The tests whose teardown's error was joined: a second one names the test twice."""
        self.suites: list[str | None] = []
        self.clocks: list[Clock | None] = []
        """Each open suite's clock, None for one without a timestamp."""
        self.case: _Case | None = None
        self.collecting: str | None = None
        self.root: str | None = None
        self.root_timed = False
        """Whether `<testsuites>` gave its `timestamp` and `time`, which the run then keeps."""
        self.times = JUnitTimes(now=started)
        self._last_key: tuple[str | None, ...] = ()
        self._last_metadata: JsonObject = {}

    def fail(self, reason: str, line: int | None = None) -> ReportError:
        return ReportError(self.path, self.line() if line is None else line, reason)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if self.root is None:
            if tag not in ("testsuites", "testsuite"):
                raise self.fail(f"expected <testsuites> or <testsuite>, found {_element(tag)}")
            self.root = tag
            # Its `time` gives the run's length only from its own timestamp: without one, it
            # places nothing, and the suites' cases add up their own.
            self.root_timed = tag == "testsuites" and "time" in attrs and "timestamp" in attrs
        began = self._note_times(tag, attrs) if tag in ("testsuites", "testsuite") else None
        if tag == "testsuite":
            self.suites.append(attrs.get("name"))
            # A suite of no `time` lasts as long as its cases, unless the report's gives the run's.
            timed = "time" in attrs or self.root_timed
            self.clocks.append(None if began is None else Clock(began, timed=timed))
        elif tag == "testcase":
            if self.case is not None:
                raise self.fail("a <testcase> inside another")
            self.case = _Case(attrs, self.line(), self.suites[-1] if self.suites else None)
        elif self.case is not None and tag in _TEXT_TAGS:
            if tag in _OUTCOMES:
                # pytest's own report of a skipped test whose fixture's teardown then raised
                # holds both: the test is an error, as pytest counts it
                torn_down = self.case.status is TestStatus.SKIPPED and tag == "error"
                if self.case.status is not TestStatus.PASSED and not (
                    torn_down and (attrs.get("message") or "").startswith(_PYTEST_TEARDOWN)
                ):
                    raise self.fail(f"a <testcase> with two outcomes: <{tag}> after another")
                self.case.status = _OUTCOMES[tag]
                self.case.message = attrs.get("message")
                self.case.kind = attrs.get("type")
            self.collecting = tag

    def _note_times(self, tag: str, attrs: dict[str, str]) -> dt.datetime | None:
        """Take a suite's `timestamp` and `time` for the run's own, refusing bad ones by line.

        Give the timestamp, if any, a naive one read as UTC (`report_times.JUnitTimes`).
        """
        if "timestamp" in attrs or "time" in attrs:
            try:
                return self.times.note(
                    _element(tag), attrs.get("timestamp"), attrs.get("time"), self.line()
                )
            except ValueError as error:
                raise self.fail(str(error)) from None
        return None

    def data(self, text: str) -> None:
        case = self.case
        if case is not None and self.collecting is not None:
            # Checked a piece at a time, as the parser gives it: once joined, one text of tens
            # of MB was checked in one call (40 MB of emoji: 200 ms on the loop). No join of
            # texts that hold no NUL and no lone surrogate can hold either.
            if (problem := text_problem(text)) is not None:
                name = case.xml_attrs.get("name", "")
                raise self.fail(f"testcase {name!r:.200}: <{self.collecting}> {problem}")
            case.texts.setdefault(self.collecting, []).append(text)

    def end(self, tag: str) -> None:
        if tag == "testsuite" and self.suites:
            self.suites.pop()
            self.clocks.pop()
        elif tag == "testcase" and self.case is not None:
            if not self._teardown_of_previous(self.case):
                row = self._result(self.case)
                self.results.append(row)
                self.last_held = (
                    len(row["output"] or "")
                    + len(row["error_message"] or "")
                    + sum(map(len, self.case.texts.get("system-err", ())))  # in the metadata
                )
                self.held += self.last_held
                self.pending[row["test_id"] or ""] = row
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
        # its attributes' texts: system_err's pieces were checked as the parser gave them
        return metadata, tuple(value for value in key[:-1] if value is not None)

    def joinable(self) -> bool:
        """Tell whether the last result failed and may still get pytest's teardown testcase.

        A batch leaves it for the next: once inserted, the result could not be joined, and the
        report was refused as naming the test twice.
        """
        last = self.results[-1] if self.results else None
        return (
            last is not None
            and last["status"] not in _NOT_FAILED
            and (last["test_id"] not in self.torn_down)
        )

    def _teardown_of_previous(self, case: _Case) -> bool:
        """Join pytest's second <testcase> of a test, its teardown's error, to the first.

        pytest writes a test whose call failed and whose fixture's teardown then raised as two
        testcases of one name, the second an <error> "failed on teardown with ...": one
        test, whose report was refused whole as naming it twice. The error's text is added
        to the first's; a first that passed or was skipped becomes an error, as pytest counts
        it (it stayed passed, its error in its message alone).
        """
        if not (
            case.status is TestStatus.ERROR and (case.message or "").startswith(_PYTEST_TEARDOWN)
        ):
            return False
        classname, name = case.xml_attrs.get("classname", ""), case.xml_attrs.get("name", "")
        test_id = f"{classname}{SEPARATOR}{name}" if classname else name
        # Its test's row, among those not yet inserted: not the last row alone, as pytest-xdist
        # writes other tests' testcases between the two. One inserted already stays refused.
        previous = self.pending.get(test_id)
        if previous is None or test_id in self.torn_down:  # pytest writes one teardown a test
            return False
        self.torn_down.add(test_id)
        told = "".join(case.texts.get("error", ())).strip() or case.message or ""
        joined = f"{previous['error_message'] or ''}\n\n{_PYTEST_TEARDOWN}: {told}".lstrip()
        if (problem := text_problem(joined)) is not None:
            raise self.fail(f"testcase {previous['test_id']!r:.200}: {problem}", case.line)
        previous["error_message"] = joined
        if previous["status"] in _NOT_FAILED:
            previous["status"] = TestStatus.ERROR.value
        return True

    def _result(self, case: _Case) -> InsertTestResultsParams:
        """Give a testcase's row, checked as `TestResult` checks it."""
        name = case.xml_attrs.get("name", "")
        if not name:
            raise self.fail("a <testcase> without a name", case.line)
        classname = case.xml_attrs.get("classname", "")
        test_id = f"{classname}{SEPARATOR}{name}" if classname else name
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
        message = case.message  # an attribute's; the texts were checked as they came
        error_message = detail if detail is not None else message
        output = texts.get("system-out")
        time = case.xml_attrs.get("time", "")
        number = SECONDS.fullmatch(time)
        if number is None:
            raise self.fail(
                f"testcase {test_id!r:.200}: time must be a decimal number of seconds,"
                f" got {time!r:.80}",
                case.line,
            )
        # ASCII digits, as JUnit means them; -0.0 is 0.0, as the model makes it (PostgreSQL
        # would keep the sign of a row that goes in as it is)
        seconds = float(number.group(1) or 0) + 0.0
        # when the case began, as read: its suite's clock, or `UNPLACED` until the run's start
        try:
            at = self.times.case_at(self.clocks[-1] if self.clocks else None, seconds)
        except ValueError as error:  # a suite of no `time`, past the years: by the case's line
            raise self.fail(str(error), case.line) from None
        try:
            if (
                0.0 <= seconds <= MAX_EXECUTION_TIME  # NaN is not
                and (len(test_id) <= _SURE_KEY_CHARS or key_length_problem(test_id) is None)
                and text_problem(test_id) is None
                and (detail is not None or message is None or text_problem(message) is None)
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
                    "created_at": at,
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
                    created_at=at,
                    metadata=metadata,
                    run_id=self.run_id,
                    test_id=test_id,
                )
            )
        except ValidationError as error:
            raise self.fail(f"testcase {test_id!r:.200}: {error}", case.line) from None


def _started(target: _JUnitTarget, head: bytes | bytearray) -> DefusedXMLParser:
    """Give the parser of a report that starts with `head`, its elements straight to `target`."""
    try:
        encoding = read_as(head)
    except ValueError as error:
        raise target.fail(str(error), 1) from None
    parser = junit_parser(target, encoding)
    expat = parser.parser
    target.line = lambda: int(expat.CurrentLineNumber)
    # Elements straight to the target, past ElementTree's Python step per element; the
    # handlers that defusedxml set against DTDs and entities stay.
    expat.ordered_attributes = False
    expat.StartElementHandler = target.start
    expat.EndElementHandler = target.end
    return parser


def _element(tag: str) -> str:
    """Name an element as a user reads it: expat gives one in a namespace as `namespace^Aname`."""
    namespace, joined, name = tag.rpartition(NAMESPACE_END)
    if not joined:
        return f"<{tag:.80}>"
    return f"<{name:.80}> in the XML namespace {namespace!r:.200}, where JUnit's are in none"


async def import_junit(
    db: Database, path: str | os.PathLike[str], *, labels: JsonObjectInput | None = None
) -> Run:
    """Import one JUnit XML file as one new run, with these labels; return the run.

    The run starts and ends when its suites' `timestamp` and `time` say (`report_times`), and
    each case's result when its suite's `timestamp` and the cases before it say, within them.

    All or nothing: any problem raises ReportError naming the file and the line, and no run
    and no result is written.
    """
    path, run = import_arguments("import_junit", db, path, labels)
    async with import_transaction(db) as (tx, committing):
        run = await save_run(tx, run)
        assert run.id is not None  # noqa: S101  # a saved run has an id
        target = _JUnitTarget(path, run.id, run.started_at)
        # One batch is inserted (in SQLite's thread, or by the server) while the next is parsed.
        pending: asyncio.Future[None] | None = None
        try:
            # No file left open by a cancelled caller; an executor's future: no cancel-all hits it.
            stream = await kept_if_cancelled(
                asyncio.get_running_loop().run_in_executor(None, open_report, path), _close
            )
            held = bytearray()  # read, not yet parsed
            pieces = _Pieces()
            with stream:
                chunk = await asyncio.to_thread(stream.read, CHUNK_BYTES)
                parser = _started(target, chunk)  # the first chunk: a whole declaration, if any
                pieces.utf_16 = utf_16_in(chunk)
                while chunk:
                    held += chunk
                    while len(held) >= pieces.size:
                        pieces.feed(parser, target, held)
                        pending = await _batched(tx, target, pending)
                        await share_loop()
                    chunk = await asyncio.to_thread(stream.read, CHUNK_BYTES)
            while held:  # the rest, by the same rules: it may end a long tag
                pieces.feed(parser, target, held)
                pending = await _batched(tx, target, pending)
                await share_loop()
            _feed(parser, target, None)
            if pending is not None:
                await pending
            await _insert(tx, target.results)
            run = await _ended(tx, target, run)
            committing.append(run)
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


@attrs.define
class _Pieces:
    """Feed the parser what is read a piece at a time, looking at the loop budget between.

    Within one token that has not ended (a tag, a comment), expat scans it again from its
    start at each feed: the pieces double, up to `_OPEN_PIECE_BYTES`, until it ends. A token
    past `TAG_BYTES` or `_TOKEN_ATTRIBUTES` is refused, since the one call that ends it would
    hold the loop for tens of milliseconds or more (an attribute of 47 MB: 900 ms): the piece
    that may end it is looked at, up to its first `>`, before it is fed.
    """

    size: int = _PIECE_BYTES
    utf_16: str | None = None
    """The report's UTF-16 byte order: its pieces are looked at in UTF-8, whose `<`, `>` and
    `="` are bytes of their own (in UTF-16, `ļ` holds the byte of `<`)."""
    token_size: int = 0  # fed of the token that has not ended
    token_attributes: int = 0
    token_a_tag: bool = True  # until a '<' inside it shows it is a comment (or CDATA, or a PI)
    carry: bytes = b""
    """The token's last bytes fed: an `="` that a piece's end cut in two is counted whole."""

    def feed(self, parser: DefusedXMLParser, target: _JUnitTarget, held: bytearray) -> None:
        """Parse the next piece of what is held, and drop it."""
        expat = parser.parser
        before = expat.CurrentByteIndex
        piece = held[: self.size]
        seen = piece if self.utf_16 is None else piece.decode(self.utf_16, "replace").encode()
        scale = len(piece) / max(len(seen), 1)  # bytes of the report a byte looked at stands for
        if self.token_size:  # the token goes on at least to this piece's first '>'
            end = seen.find(b">")
            part = seen if end < 0 else seen[: end + 1]
            self._check(target, part, round(len(part) * scale), first=False, add=False)
        _feed(parser, target, piece)
        del held[: self.size]
        if expat.CurrentByteIndex != before:
            self.size = _PIECE_BYTES
            self._start(seen, scale)
            return
        self.size = min(self.size * 2, _OPEN_PIECE_BYTES)
        self._check(target, seen, len(piece), first=not self.token_size, add=True)

    def _start(self, piece: bytes | bytearray, scale: float) -> None:
        """Count what `piece` holds of a token it leaves open, from its last `<`: none if closed."""
        last = piece.rfind(b"<")
        tail = piece[last:] if last >= 0 and b">" not in piece[last:] else b""
        self.token_size, self.carry = round(len(tail) * scale), bytes(tail[-_CARRY:])
        self.token_a_tag = not tail.startswith(_NOT_A_TAG)
        self.token_attributes = len(_ATTRIBUTE.findall(tail)) if self.token_a_tag else 0

    def _check(
        self,
        target: _JUnitTarget,
        piece: bytes | bytearray,
        fed: int,
        *,
        first: bool,
        add: bool,
    ) -> None:
        """Count `piece`, `fed` bytes of the report, into the token (kept if `add`).

        Refuse a token past the limits.
        """
        # The token starts in its first piece, after that piece's last '<'. No '<' is in a tag
        # after it, so one in a later piece shows a comment, whose `="` are no attributes.
        start = piece[max(piece.rfind(b"<"), 0) :] if first else b""
        a_tag = self.token_a_tag and (
            not start.startswith(_NOT_A_TAG) if first else b"<" not in piece
        )
        size = self.token_size + fed
        attributes = self.token_attributes
        if a_tag and first:
            attributes += len(_ATTRIBUTE.findall(start))
        elif a_tag:  # those the carry ends too, less those it holds alone
            found = _ATTRIBUTE.findall
            attributes += len(found(self.carry + piece)) - len(found(self.carry))
        if add:
            self.token_a_tag, self.token_size, self.token_attributes = a_tag, size, attributes
            self.carry = bytes(piece[-_CARRY:])
        if size > TAG_BYTES:
            reason = f"a tag or comment longer than {TAG_BYTES >> 20} MiB"
        elif attributes > _TOKEN_ATTRIBUTES:
            reason = f"a tag of more than {_TOKEN_ATTRIBUTES:,} attributes"
        else:
            return
        raise target.fail(f"{reason}: put long text in an element's body, as <system-out>")


async def _ended(tx: Database, target: _JUnitTarget, run: Run) -> Run:
    """Store the new run's start and end, as its suites gave them; return it.

    Its results, stored with their times as read, are then put in that span, known only now.
    """
    try:
        span = target.times.span(run.started_at)  # the import's time, till now
    except ValueError as error:
        raise ReportError(target.path, None, str(error)) from None
    run = await save_run(tx, timed_run(target.path, run, span))
    placing = target.times.placing(span)
    if placing is not None:
        assert run.id is not None  # noqa: S101  # a saved run has an id
        async with borrow(tx) as conn:
            await tx.queries.place_run_results(
                conn,
                run_id=run.id,
                unplaced=placing.unplaced,
                first=placing.first,
                last=placing.last,
                started_at=placing.started_at,
                ended_at=placing.ended_at,
                shift_seconds=placing.shift_seconds,
                shift_micros=placing.shift_micros,
            )
    return run


def _close(stream: BinaryIO) -> None:
    stream.close()  # BinaryIO.close itself is typing's abstract stub: it closes nothing


async def _batched(
    tx: Database, target: _JUnitTarget, pending: asyncio.Future[None] | None
) -> asyncio.Future[None] | None:
    """Start inserting the results parsed, once they fill a batch, after the batch before.

    A last result that pytest's teardown testcase may still join waits for the next batch.
    """
    if len(target.results) < _BATCH and target.held < _BATCH_CHARS:
        return pending
    kept = target.results[-1:] if target.joinable() else []
    rows = target.results[: len(target.results) - len(kept)]
    if not rows:
        return pending
    if pending is not None:
        await pending
    target.results, target.held = kept, target.last_held if kept else 0
    target.pending = {row["test_id"] or "": row for row in kept}
    return asyncio.ensure_future(_insert(tx, rows))


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
