"""The command line: `persistence migrate|status|history|new`, also run as `python -m persistence`.

Exit codes: 0 done; 1 `status` found pending, drifted or newer migrations; 2 bad usage; 3 could not
run (bad URL, unusable path, unreachable server, or any other PersistenceError), with one
line on stderr; 130 interrupted; 143 terminated (SIGTERM: `timeout`, `docker stop`, systemd)
and 129 hung up (SIGHUP: its terminal closed), each of which ends a command as Ctrl-C does, its
work undone and its working files removed; 141,
quietly, when the reader of stdout's pipe has left.
This module builds the parser and runs a command; the migration commands are in
`_cli_migrations`, the run-history ones in `_cli_history`, and what they share in `_cli_common`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

from persistence import __version__
from persistence._backup_names import name_problem
from persistence._cancelling import finish_then_cancel, noted_if_cancelled
from persistence._cli_common import (
    COMMAND_TIMEOUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NO_READER,
    EXIT_OK,
    CannotRunError,
    amount,
    file_argument,
    opened,
    opened_existing,
    path_argument,
    print_json,
    say,
    standard_output,
    stdout_reader_gone,
    telling_what_was_done,
    whole_number,
)
from persistence._cli_history import (
    CHECKS,
    HISTORY_COMMANDS,
    WRITING_COMMANDS,
    add_history_commands,
    take_output_descriptor,
)
from persistence._cli_migrations import (
    LOCK_TIMEOUT,
    history_command,
    migrate_command,
    new_command,
    status_command,
)
from persistence._migration_files import LAST_VERSION
from persistence.backup import (
    CopyReport,
    backup_database,
    check_backup_file,
    copy_database,
    restore_database,
)
from persistence.database import DEFAULT_DATABASE, database_url, engine_of
from persistence.exceptions import PersistenceError, shown_path

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
    from types import FrameType

_SLUG: Final = re.compile(r"[a-z][a-z0-9_]*")


def _slug(text: str) -> str:
    if not _SLUG.fullmatch(text) or len(text) > 60:  # noqa: PLR2004  # a file name, not an essay
        msg = f"{text!r} is not a lower-case slug such as add_index (a-z, 0-9, _; at most 60)"
        raise argparse.ArgumentTypeError(msg)
    return text


def _database_url(instead: str) -> Callable[[str], str]:
    """Give an argparse type for a database URL or path; `instead` says what to give if blank."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty URL names no database: {instead}")
        return text

    return parse


_database: Final = _database_url("leave --database out for the default")
_copied_database: Final = _database_url("give a postgresql:// URL or a SQLite file's path")


def _backup_file(text: str) -> str:
    """Take a backup's FILE as `file_argument` does, kept as given (`./file:x` stays so).

    A name read as no file (`:memory:`, a `file:` URI, a URL) is refused: see `name_problem`.
    """
    file_argument(text)
    if (problem := name_problem(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


_version: Final = whole_number("a migration version, such as 3 for 0003_*.sql", LAST_VERSION)
_seconds: Final = amount("a number of seconds, 0 or more")
_limit: Final = amount("a number of seconds, more than 0", above_zero=True)


def _add_wait(parser: argparse.ArgumentParser, connection: str) -> None:
    parser.add_argument(
        "--wait",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help=f"retry {connection} until the database answers or SECONDS have passed",
    )


def _add_folder(parser: argparse.ArgumentParser, says: str) -> None:
    parser.add_argument(
        "--migrations", "--folder", dest="folder", type=path_argument, metavar="DIR", help=says
    )


def _parser() -> argparse.ArgumentParser:
    connects = argparse.ArgumentParser(add_help=False)
    connects.add_argument(
        "--database",
        type=_database,
        metavar="URL",
        help="postgresql://... URL, sqlite:///path or a file path "
        f"(default: $DATABASE_URL, else {DEFAULT_DATABASE})",
    )
    _add_wait(connects, "the connection")
    reports = argparse.ArgumentParser(add_help=False)
    reports.add_argument("--json", action="store_true", help="print JSON (keys in the README)")
    chains = argparse.ArgumentParser(add_help=False)
    _add_folder(
        chains,
        "your own migrations, in DIR/sqlite/ and DIR/postgres/ "
        "(as `new --migrations DIR` writes them), applied after the package's",
    )

    parser = argparse.ArgumentParser(
        prog="persistence", description="Migrate a database and report where it stands."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "migrate", parents=[connects, reports, chains], help="apply every pending migration"
    )
    for flag, says in (
        ("--accept", "accept that the applied migrations' files were edited or deleted"),
        ("--accept-user", "the same, for your own migrations (--migrations DIR)"),
    ):
        run.add_argument(
            flag,
            type=_version,
            nargs="+",
            action="extend",
            default=[],
            metavar="VERSION",
            help=says,
        )
    run.add_argument(
        "--create",
        action="store_true",
        help="create the PostgreSQL database first if it does not exist (a SQLite file is "
        "always created)",
    )
    run.add_argument(
        "--dry-run", action="store_true", help="print the SQL that would run, and write nothing"
    )
    run.add_argument(
        "--command-timeout",
        type=_limit,
        default=COMMAND_TIMEOUT,
        metavar="SECONDS",
        help="end a statement that runs longer than SECONDS on PostgreSQL; raise it for a "
        f"migration that builds a large index (default: {COMMAND_TIMEOUT:g})",
    )
    run.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=LOCK_TIMEOUT,
        metavar="SECONDS",
        help="give up when another migration runner holds the lock for SECONDS "
        f"(default: {LOCK_TIMEOUT:g})",
    )
    for name, says in (
        ("status", "list applied, pending and drifted migrations; exit 1 unless up to date"),
        ("history", "list the applied migrations, with when each ran and how long it took"),
    ):
        commands.add_parser(name, parents=[connects, reports, chains], help=says)
    new = commands.add_parser("new", help="write the next numbered migration, once per engine")
    new.add_argument("name", type=_slug, metavar="NAME", help="a lower-case slug, e.g. add_index")
    _add_folder(
        new,
        "your migrations folder, holding sqlite/ and postgres/ "
        "(default: the checkout's sql/migrations)",
    )
    add_history_commands(commands, connects, reports)
    backup = commands.add_parser(
        "backup",
        parents=[connects, reports],
        help="write the database, as one committed state, to a new SQLite file",
    )
    backup.add_argument("file", type=_backup_file, metavar="FILE", help="the new backup file")
    restore = commands.add_parser(
        "restore",
        parents=[connects, reports],
        help="copy a backup file into an empty, migrated database",
    )
    restore.add_argument(
        "file", type=_backup_file, metavar="FILE", help="a file that `backup` wrote"
    )
    copy = commands.add_parser(
        "copy",
        parents=[reports],
        help="copy every row into an empty, migrated database, of either engine",
    )
    copy.add_argument(
        "source", type=_copied_database, metavar="SOURCE", help="the URL or path to read"
    )
    copy.add_argument(
        "target",
        type=_copied_database,
        metavar="TARGET",
        help="the empty, migrated database to fill",
    )
    _add_wait(copy, "each connection")
    for command in (backup, restore, copy):
        command.add_argument(
            "--skip-user-tables",
            action="store_true",
            help="leave behind the tables of your own migrations, which are refused otherwise",
        )
    return parser


async def _run_history(arguments: argparse.Namespace) -> int:
    """Open the database, then run one of the run-history commands on it.

    One that writes needs a migrated database: a missing SQLite file is refused, not made.
    """
    url = database_url(arguments.database)
    if arguments.command in CHECKS:  # ended, if cancelled, before the command ends
        await finish_then_cancel(asyncio.to_thread(CHECKS[arguments.command], arguments))
    if arguments.command in WRITING_COMMANDS:
        async with opened_existing(url, wait=arguments.wait, write=True) as db:
            return await HISTORY_COMMANDS[arguments.command](db, arguments)
    async with opened(url, create=False, wait=arguments.wait) as db:
        return await HISTORY_COMMANDS[arguments.command](db, arguments)


async def _backup_or_restore(arguments: argparse.Namespace) -> int:
    restore = arguments.command == "restore"
    url = database_url(arguments.database)
    if restore:  # told before the database is opened: a missing one would hide it
        await asyncio.to_thread(check_backup_file, Path(arguments.file))
    done = "restored" if restore else "backed up"
    with noted_if_cancelled() as kept:  # a cancellation as the database closes: said complete
        async with opened_existing(url, wait=arguments.wait, write=restore) as db:
            move = restore_database if restore else backup_database
            skip = arguments.skip_user_tables
            report = await move(db, arguments.file, skip_user_tables=skip)
            kept.append(f"{done} {report.source} to {report.target}: it is complete")
    return _copied(arguments, done, report)


async def _copy(arguments: argparse.Namespace) -> int:
    engine_of(arguments.target)  # a bad URL fails before the source is opened
    with noted_if_cancelled() as kept:  # a cancellation as the databases close: said complete
        async with (
            opened_existing(arguments.source, wait=arguments.wait, write=False) as source,
            opened_existing(arguments.target, wait=arguments.wait, write=True) as target,
        ):
            skip = arguments.skip_user_tables
            report = await copy_database(source, target, skip_user_tables=skip)
            kept.append(f"copied {report.source} to {report.target}: it is complete")
    return _copied(arguments, "copied", report)


def _copied(arguments: argparse.Namespace, done: str, report: CopyReport) -> int:
    """Say what a backup, restore or copy moved, as a line or as JSON."""
    said = f"{done} {report.source} to {report.target}"
    with telling_what_was_done(said, f"it is complete; do not run {arguments.command} again"):
        if arguments.json:
            print_json(
                {
                    "source": report.source,
                    "target": report.target,
                    "rows": report.tables(),
                    "seconds": round(report.seconds, 3),
                }
            )
            return EXIT_OK
        tables = ", ".join(f"{table} {count}" for table, count in report.tables().items())
        print(f"{said}: {report.rows} rows ({tables}) in {report.seconds:.1f}s")
    return EXIT_OK


_ASYNC_COMMANDS: Final[
    dict[str, Callable[[argparse.Namespace], Coroutine[object, object, int]]]
] = {
    "migrate": migrate_command,
    "status": status_command,
    "history": history_command,
    **dict.fromkeys(HISTORY_COMMANDS, _run_history),
    "backup": _backup_or_restore,
    "restore": _backup_or_restore,
    "copy": _copy,
}


_TERMINATED: list[int] = []
"""The signal (SIGTERM, SIGHUP) that ended the running command, if one did."""
_ENDING: Final = (signal.SIGTERM, signal.SIGHUP)
"""What ends a command as Ctrl-C does: `timeout`, `docker stop`, systemd; a terminal closed."""


@contextlib.contextmanager
def _ended_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While in the block, SIGTERM and SIGHUP `stop` the command, as Ctrl-C does: it cleans up.

    Killed by their default action, a restore left its copy of the backup in the temporary
    folder, a backup its `.partial` folder, hundreds of megabytes each, and `new` one engine's
    file without its twin. Only in the main thread, and not where a signal is ignored; the
    handlers before are put back after.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {number: signal.getsignal(number) for number in _ENDING} if main_thread else {}

    def end(number: int, frame: FrameType | None) -> None:
        del frame
        _TERMINATED.append(number)
        stop()

    taken = [number for number, handler in previous.items() if handler is not signal.SIG_IGN]
    for number in taken:
        signal.signal(number, end)
    try:
        yield
    finally:
        for number in taken:  # None: a handler set outside Python, which cannot be put back
            if (handler := previous[number]) is not None:
                signal.signal(number, handler)


async def _ended_by_signals_too(command: Awaitable[int]) -> int:
    """Run `command`; a SIGTERM or SIGHUP cancels it, as Ctrl-C does (`_ended_by_signals`)."""
    task = asyncio.current_task()
    if task is None:
        return await command
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wake the loop up to see it

    with _ended_by_signals(cancel):
        return await command


def _interrupt() -> None:
    """Stop a command that runs no loop (`new`) as Ctrl-C does, from a signal's handler."""
    raise KeyboardInterrupt


def _stopped(stop: BaseException) -> int:
    """Say that a signal stopped the command, and give its exit code: 128 and its number.

    What the command kept, which its cancellation notes (`migrate`: the migrations it applied
    before), is said first. A cancellation that no signal made is not the command's to report:
    raised again.
    """
    if _TERMINATED or isinstance(stop, KeyboardInterrupt):
        for note in _kept(stop):
            say(note)
    if _TERMINATED:
        say("terminated" if _TERMINATED[0] == signal.SIGTERM else "hung up")
        return 128 + _TERMINATED[0]
    if not isinstance(stop, KeyboardInterrupt):
        raise stop
    say("interrupted")
    return EXIT_INTERRUPTED


def _kept(stop: BaseException) -> list[str]:
    """Give the notes of a stop and of the cancellations it ended: what the command kept.

    Ctrl-C raises a KeyboardInterrupt of its own once the command's task has ended cancelled
    (`asyncio.run`): the cancellation, with its notes, is its context.
    """
    notes: list[str] = []
    seen: BaseException | None = stop
    while isinstance(seen, KeyboardInterrupt | asyncio.CancelledError):
        notes += getattr(seen, "__notes__", ())
        seen = seen.__context__
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code; a failure is one line on stderr, exit 3."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    if arguments.command == "migrate" and arguments.accept_user and arguments.folder is None:
        parser.error("argument --accept-user: needs --migrations DIR, your migrations' folder")
    if arguments.command == "compare" and (arguments.base is None) != (arguments.head is None):
        parser.error("compare: give both BASE and HEAD, or neither for the last two runs")
    quiet = arguments.command == "export" and arguments.output is not None  # prints nothing
    if sys.stdout is None and not quiet:  # started closed (`>&-`): print() would drop each line
        say("error: standard output is closed: what the command prints would be lost")
        return EXIT_FAILED
    try:
        with standard_output():
            _TERMINATED.clear()
            if arguments.command == "new":
                with _ended_by_signals(_interrupt):
                    return new_command(arguments)
            take_output_descriptor(arguments)  # before the loop opens descriptors of its own
            command = _ASYNC_COMMANDS[arguments.command](arguments)
            return asyncio.run(_ended_by_signals_too(command))
    except (PersistenceError, CannotRunError) as error:
        message = "; ".join([str(error), *getattr(error, "__notes__", ())])  # what ran before it
    except OSError as error:
        if isinstance(error, BrokenPipeError) and stdout_reader_gone():
            return EXIT_NO_READER  # `| head` has read enough: no failure of the command
        where = f": {shown_path(error.filename)}" if error.filename else ""
        message = f"{error.strerror or error}{where}"
    except (KeyboardInterrupt, asyncio.CancelledError) as stop:
        return _stopped(stop)
    finally:  # `--output /dev/fd/N`'s copy, where the command failed before writing through it
        if (taken := getattr(arguments, "output_descriptor", None)) is not None:
            os.close(taken)
    say(f"error: {message}")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
