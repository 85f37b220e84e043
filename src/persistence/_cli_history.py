"""The run-history commands: runs, compare, flaky, test-history, counterexamples, import, export.

`__main__` registers them and opens the database; each command here takes it open. Output is an
aligned table by default (with a sparkline of durations where a trend is shown), or JSON with
`--json`. `compare` exits 1 when the head run has new failures, so that CI can gate on it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import attrs

from persistence._backend import SQLITE_SIDECARS
from persistence._cli_common import (
    EXIT_OK,
    CannotRunError,
    amount,
    file_argument,
    own_stdout_descriptor,
    path_argument,
    picked,
    print_json,
    telling_what_was_done,
    whole_number,
)
from persistence._cli_output import descriptor_of, write_to_stdout, write_whole
from persistence._guards import MAX_INT, MIN_INT, json_object, nonempty_text
from persistence._paging import MAX_PAGE_SIZE, START_OF_TIME
from persistence.counterexample_store import CounterexampleStore
from persistence.database import Engine, database_url, engine_of
from persistence.exceptions import NotFoundError, ValidationError, shown_path
from persistence.report_json import export_ctrf, export_jsonl, import_ctrf, import_jsonl
from persistence.reports import export_junit, import_junit
from persistence.run_history import (
    DEFAULT_SLOWER_FLOOR,
    DEFAULT_SLOWER_RATIO,
    MAX_LAST_RESULTS,
    compare_runs,
    counterexamples,
    duration_figures,
    flaky_tests,
    list_test_history,
)
from persistence.runs import last_saved_runs, list_runs

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from persistence._interface import JsonObject
    from persistence.database import Database

EXIT_NEW_FAILURES: Final = 1
_BARS: Final = "▁▂▃▄▅▆▇█"
_FORMATS: Final = {
    "junit": (import_junit, export_junit),
    "ctrf": (import_ctrf, export_ctrf),
    "jsonl": (import_jsonl, export_jsonl),
}
"""Each report format, with how it is imported and exported."""
_SUFFIXES: Final = {".xml": "junit", ".jsonl": "jsonl", ".ndjson": "jsonl"}
"""The format `import` reads a file in by its extension; CTRF for any other."""


def sparkline(values: Sequence[float]) -> str:
    """Draw values as one line of eighth-blocks, lowest to highest; empty for none."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _BARS[0] * len(values)
    top = len(_BARS) - 1
    return "".join(_BARS[round((value - low) / (high - low) * top)] for value in values)


def _width(text: str) -> int:
    """Give the columns `text` takes on a terminal, which `len` does not count.

    A wide or fullwidth character (CJK, most emoji) takes 2, a combining mark 0, any other 1.
    """
    return sum(
        0
        if unicodedata.category(char) in {"Mn", "Me"}
        else 2
        if unicodedata.east_asian_width(char) in {"W", "F"}
        else 1
        for char in text
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows under a header, each column as wide on a terminal as its widest cell."""
    cells = [list(header), *(["" if c is None else str(c) for c in r] for r in rows)]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print(
            "  ".join(
                cell + " " * (width - _width(cell)) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def _label_text(value: object) -> str:
    """Give a label's value as stored: a text as it is, anything else as its JSON.

    `str` wrote `True`, `None` and `{'x': ['y']}`, Python's forms, where the run holds JSON.
    """
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _shown(text: str) -> str:
    """Give a test id or a label as a table shows it: as it is, or escaped if it reads oddly.

    Stored names come from reports anyone may write: a control character (an ANSI escape, a
    line break) would act on the terminal, and a space at either end, an invisible character
    or a decomposed accent would make two tests read alike. Those are written as Python does.
    """
    if (
        text.isprintable()
        and text == text.strip()
        and unicodedata.is_normalized("NFC", text)
        and _INVISIBLE.search(text) is None
    ):
        return text
    return ascii(text)


_INVISIBLE: Final = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]"
)
"""What `str.isprintable` passes that prints as nothing: Unicode's default-ignorable letters
and marks (a combining grapheme joiner, Hangul fillers, variation selectors), and the blank
braille pattern."""


def _when(moment: dt.datetime) -> str:
    """Give a time as the tables show it, to the second, its year in four digits.

    `%Y` pads the year on some systems only: glibc wrote year 1 as `1-01-01`.
    """
    return f"{moment.year:04d}-{moment:%m-%d %H:%M:%S}"


_positive: Final = whole_number("a whole number above 0")
_RUN_ID: Final = re.compile(r"-?[0-9]{1,19}")
"""A run id's form: the digits of any int an id column holds, and more (refused by value)."""


def _run_id(text: str) -> int:
    """Take a run id: any whole number an id column holds, as the library takes (`key_id`).

    The package numbers runs from 1, but plain SQL may store 0 or below, which `runs` lists.
    """
    value = int(text) if text.isascii() and _RUN_ID.fullmatch(text) else None
    if value is None or not MIN_INT <= value <= MAX_INT:
        msg = f"{text!r} is not a run id: a whole number from -2**63 to 2**63 - 1"
        raise argparse.ArgumentTypeError(msg)
    return value


_page: Final = whole_number(f"a whole number from 1 to {MAX_PAGE_SIZE:,}", MAX_PAGE_SIZE)
_last: Final = whole_number(f"a whole number from 1 to {MAX_LAST_RESULTS:,}", MAX_LAST_RESULTS)


def _test_id(text: str) -> str:
    """Take a test id as a result holds one: not empty, no NUL, at most 1,024 bytes."""
    try:
        return nonempty_text("TestResult", "test_id", text)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{text!r:.80}: {error.reason}") from None


_ratio: Final = amount("a finite number, 0 or more")


def _label(text: str) -> tuple[str, str]:
    """Take a label as a run holds one: KEY=VALUE, by the labels' rules (no NUL, valid Unicode)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        msg = f"{text!r} is not KEY=VALUE, such as commit=9f2c1e0"
        raise argparse.ArgumentTypeError(msg)
    try:
        json_object("Run", "labels", {key: value})
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{text!r:.80}: {error.reason}") from None
    return key, value


class _Labels(argparse.Action):
    """Collect `--label KEY=VALUE` into a dict; a key given again with another value is refused.

    Keeping the last of two values would store the run under one the user may not have meant.
    """

    def __call__(
        self,
        _parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        _option_string: str | None = None,
    ) -> None:
        key, value = cast("tuple[str, str]", values)
        labels: dict[str, str] = dict(getattr(namespace, self.dest) or {})  # not the default
        if labels.get(key, value) != value:
            msg = f"{key!r} is given twice ({labels[key]!r}, then {value!r})"
            raise argparse.ArgumentError(self, msg)
        labels[key] = value
        setattr(namespace, self.dest, labels)


def add_history_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connects: argparse.ArgumentParser,
    reports: argparse.ArgumentParser,
) -> None:
    """Add the run-history commands to the command line's subcommands."""
    both = [connects, reports]
    runs = commands.add_parser("runs", parents=both, help="list the latest runs")
    runs.add_argument("--limit", type=_page, default=20, help="how many (default: 20)")
    compare = commands.add_parser(
        "compare",
        parents=both,
        help="compare two runs (default: the last two); exit 1 on new failures",
    )
    compare.add_argument("base", type=_run_id, nargs="?", help="the earlier run's id")
    compare.add_argument("head", type=_run_id, nargs="?", help="the later run's id")
    flaky = commands.add_parser(
        "flaky", parents=both, help="list tests that passed and failed on one commit"
    )
    flaky.add_argument("--days", type=_positive, default=30, help="look back DAYS (default: 30)")
    history = commands.add_parser(
        "test-history", parents=both, help="one test's results, durations and their trend"
    )
    history.add_argument("test_id", type=_test_id, metavar="TEST_ID")
    history.add_argument("--limit", type=_page, default=20, help="how many results (default: 20)")
    history.add_argument("--last", type=_last, default=100, help="durations over the last N passed")
    for trend in (compare, history):
        trend.add_argument("--slower-ratio", type=_ratio, default=DEFAULT_SLOWER_RATIO)
        trend.add_argument(
            "--slower-floor", type=_ratio, default=DEFAULT_SLOWER_FLOOR, metavar="SECONDS"
        )
    failing = commands.add_parser(
        "counterexamples",
        parents=both,
        help="list the distinct inputs a test failed on, newest first, for replay",
    )
    failing.add_argument("test_id", type=_test_id, metavar="TEST_ID")
    failing.add_argument("--limit", type=_page, default=100, help="how many (default: 100)")
    failing.add_argument(
        "--storage",
        type=path_argument,
        metavar="DIR",
        help="the storage root that keeps the files: print where each input is, to replay it",
    )
    load = commands.add_parser(
        "import", parents=both, help="import a JUnit, CTRF or JSON Lines file as a run"
    )
    load.add_argument("file", type=file_argument, metavar="FILE")
    load.add_argument("--format", choices=_FORMATS, help="default: by the file's extension")
    load.add_argument(
        "--label",
        type=_label,
        action=_Labels,
        default={},
        metavar="KEY=VALUE",
        help="a label of the run, such as commit=9f2c1e0; may be repeated, one value a key",
    )
    save = commands.add_parser(
        "export", parents=[connects], help="write a run as JUnit, CTRF or JSON Lines"
    )
    save.add_argument("run", type=_run_id, metavar="RUN_ID")
    save.add_argument("--format", choices=_FORMATS, default="junit")
    save.add_argument(
        "--output", type=file_argument, help="write here instead of to standard output"
    )


async def _runs(db: Database, arguments: argparse.Namespace) -> int:
    page = await list_runs(db, limit=arguments.limit)
    if arguments.json:
        print_json(
            {"runs": [picked(r, "id", "started_at", "ended_at", "labels") for r in page.items]}
        )
        return EXIT_OK
    _table(
        ["id", "started", "took", "labels"],
        [
            (
                r.id,
                _when(r.started_at),
                "" if r.ended_at is None else f"{(r.ended_at - r.started_at).total_seconds():.1f}s",
                " ".join(f"{_shown(k)}={_shown(_label_text(v))}" for k, v in r.labels.items()),
            )
            for r in page.items
        ],
    )
    return EXIT_OK


async def _compare(db: Database, arguments: argparse.Namespace) -> int:
    base, head = arguments.base, arguments.head
    if base is None or head is None:
        latest = await last_saved_runs(db)  # by save: an import's times may order them otherwise
        if len(latest) < 2:  # noqa: PLR2004  # two runs to compare
            raise NotFoundError("Run", "the last two runs: fewer than two are stored")
        head = head if head is not None else latest[0].id
        base = base if base is not None else latest[1].id
    found = await compare_runs(
        db, base, head, slower_ratio=arguments.slower_ratio, slower_floor=arguments.slower_floor
    )
    if arguments.json:
        changes = [attrs.asdict(c, recurse=False) for c in found.changes]
        print_json({"base": base, "head": head, "changes": changes})
    else:
        print(
            f"run {base} -> run {head}: {len(found.changes)} change(s), "
            f"{len(found.new_failures)} new failure(s)"
        )
        _table(
            ["change", "test", "base", "head", "time"],
            [
                (
                    c.change.value,
                    _shown(c.test_id),
                    c.base_status or "-",
                    c.head_status or "-",
                    ""
                    if c.base_time is None or c.head_time is None
                    else f"{c.base_time:.3f}s -> {c.head_time:.3f}s",
                )
                for c in found.changes
            ],
        )
    return EXIT_NEW_FAILURES if found.new_failures else EXIT_OK


async def _flaky(db: Database, arguments: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=min(arguments.days, (now - START_OF_TIME).days))
    found = await flaky_tests(db, since)
    if arguments.json:
        print_json({"since": since, "flaky": [attrs.asdict(f, recurse=False) for f in found]})
        return EXIT_OK
    _table(
        ["flip rate", "test", "results", "passed", "failed", "commits", "last seen"],
        [
            (
                f"{f.flip_rate:.2f}",
                _shown(f.test_id),
                f.results,
                f.passes,
                f.failures,
                f.flaky_commits,
                _when(f.last_seen)[:-3],
            )
            for f in found
        ],
    )
    return EXIT_OK


async def _test_history(db: Database, arguments: argparse.Namespace) -> int:
    page = await list_test_history(db, arguments.test_id, limit=arguments.limit)
    figures = await duration_figures(
        db,
        arguments.test_id,
        last=arguments.last,
        slower_ratio=arguments.slower_ratio,
        slower_floor=arguments.slower_floor,
    )
    if arguments.json:
        print_json(
            {
                "test_id": arguments.test_id,
                "figures": {
                    "results": figures.results,
                    "p50": figures.p50,
                    "p95": figures.p95,
                    "max": figures.max_time,
                    "latest": figures.latest,
                    "slower": figures.slower,
                },
                "results": [
                    picked(r, "id", "run_id", "status", "execution_time", "created_at")
                    for r in page.items
                ],
            }
        )
        return EXIT_OK
    oldest_first = [r.execution_time for r in reversed(page.items)]
    print(f"{_shown(arguments.test_id)}  {sparkline(oldest_first)}")
    if figures.results:
        print(
            f"p50 {figures.p50:.3f}s  p95 {figures.p95:.3f}s  max {figures.max_time:.3f}s  "
            f"latest {figures.latest:.3f}s{'  SLOWER' if figures.slower else ''}  "
            f"(last {figures.results} passed)"
        )
    _table(
        ["when", "run", "status", "time"],
        [
            (
                _when(r.created_at),
                "-" if r.run_id is None else r.run_id,
                r.status.value,
                f"{r.execution_time:.3f}s",
            )
            for r in page.items
        ],
    )
    return EXIT_OK


async def _counterexamples(db: Database, arguments: argparse.Namespace) -> int:
    found = await counterexamples(db, arguments.test_id, top=arguments.limit)
    store = None if arguments.storage is None else CounterexampleStore(arguments.storage)
    paths: dict[str, str] = {}  # each kept file's path, when --storage is given
    for c in found:
        for sha256 in (c.input_sha256, c.expected_sha256, c.actual_sha256):
            if store is not None and sha256 is not None and sha256 not in paths:
                path = store.path_of(sha256)
                if not await store.contains(sha256):
                    raise NotFoundError("Counterexample file (is --storage the root?)", str(path))
                paths[sha256] = str(path)
    if arguments.json:
        print_json(
            {
                "test_id": arguments.test_id,
                "counterexamples": [
                    attrs.asdict(c, recurse=False)
                    | (
                        {}
                        if store is None
                        else {
                            "input_file": paths[c.input_sha256],
                            "expected_file": paths.get(c.expected_sha256 or ""),
                            "actual_file": paths.get(c.actual_sha256 or ""),
                        }
                    )
                    for c in found
                ],
            }
        )
        return EXIT_OK
    _table(
        ["last failed", "status", "failures", "size", "input"],
        [
            (
                _when(c.failed_at),
                c.status.value,
                c.failures,
                f"{c.input_size} B",
                c.input_sha256 if store is None else paths[c.input_sha256],
            )
            for c in found
        ],
    )
    return EXIT_OK


async def _import(db: Database, arguments: argparse.Namespace) -> int:
    kind = arguments.format or _SUFFIXES.get(arguments.file.suffix.lower(), "ctrf")
    labels: JsonObject = arguments.label
    run = await _FORMATS[kind][0](db, arguments.file, labels=labels)
    said = f"imported {shown_path(arguments.file)} as run {run.id}"
    with telling_what_was_done(said, "the run is saved; do not import the report again"):
        if arguments.json:
            print(json.dumps({"run_id": run.id, "file": str(arguments.file), "format": kind}))
        else:
            print(said)
    return EXIT_OK


def _output_apart(arguments: argparse.Namespace) -> None:
    """Refuse an `export --output` that is the SQLite database read, by any path, or its sidecar.

    Replaced by the export, the database was lost, and with its `-wal` file every commit not
    yet checkpointed into it.
    """
    engine, target = engine_of(database_url(arguments.database))
    if engine is not Engine.SQLITE:
        return
    if arguments.output is None:  # `export 1 >> app.db` appended the export to the database
        if (output := _stdout_file()) is None:
            return
        named, does = "standard output", "would be written into it"

        def same(place: Path) -> bool:
            return os.path.samestat(output, place.stat())

    else:
        given = Path(os.path.realpath(arguments.output))
        named, does = f"--output {str(arguments.output)!r}", "would replace it"

        def same(place: Path) -> bool:
            return given == place or given.samefile(place)

    database = Path(os.path.realpath(target))
    for suffix in ("", *SQLITE_SIDECARS):
        with contextlib.suppress(OSError):  # either missing: the same name or no file
            if same(database.with_name(database.name + suffix)):
                its = f" (its {suffix[1:]} file)" if suffix else ""
                raise CannotRunError(
                    f"{named} is the database {target!r}{its}: the export {does}; "
                    "write it elsewhere"
                )


def _stdout_file() -> os.stat_result | None:
    """Give what the process's own stdout writes to; None for another stream, or a closed one."""
    descriptor = own_stdout_descriptor()
    try:
        return None if descriptor is None else os.fstat(descriptor)
    except OSError:
        return None


def take_output_descriptor(arguments: argparse.Namespace) -> None:
    """Copy the descriptor that `export --output /dev/fd/N` names, or refuse one not open.

    Taken before the event loop and the database open their own descriptors: the same number
    may be one of theirs then, and the export went into the loop's own socket, exit 0.
    """
    arguments.output_descriptor = None
    output = getattr(arguments, "output", None)
    if output is not None and (number := descriptor_of(output)) is not None:
        try:
            arguments.output_descriptor = os.dup(number)
        except OSError:
            raise CannotRunError(
                f"--output {str(output)!r} names descriptor {number}, which is not open"
            ) from None


async def _export(db: Database, arguments: argparse.Namespace) -> int:
    text = await _FORMATS[arguments.format][1](db, arguments.run)
    if arguments.output is None:
        # The text ends its last line; an empty one (JSON Lines of no result) holds no line.
        await write_to_stdout(text if not text or text.endswith("\n") else text + "\n")
    else:
        # The write closes the descriptor: it is the write's from here on.
        descriptor = getattr(arguments, "output_descriptor", None)
        arguments.output_descriptor = None
        await write_whole(arguments.output, text, descriptor=descriptor)
    return EXIT_OK


HISTORY_COMMANDS: Final[
    dict[str, Callable[[Database, argparse.Namespace], Coroutine[object, object, int]]]
] = {
    "runs": _runs,
    "compare": _compare,
    "flaky": _flaky,
    "test-history": _test_history,
    "counterexamples": _counterexamples,
    "import": _import,
    "export": _export,
}
"""Each command, given the open database and its arguments; it returns the exit code."""

CHECKS: Final[dict[str, Callable[[argparse.Namespace], None]]] = {"export": _output_apart}
"""What a command checks of its arguments before the database is opened."""

WRITING_COMMANDS: Final = frozenset({"import"})
"""The commands that write: the others open a SQLite file read-only."""
