"""When an imported run started and ended: the report's own times, else the import's.

A run imported whole has ended. Its start and end come from the report when it gives them as
instants (JUnit's `timestamp` with a UTC offset and `time`, CTRF's `start` and `stop`, the
results' `created_at` of JSON Lines); a span the report gives without an instant (a JUnit
`time`, timestamps without an offset) ends at the import; a report of no times starts and
ends at the import. A JUnit case's result is placed by its suite's timestamp and the cases
before it, held to that span. docs/HISTORY.md ("Import and export") has the rules.
"""

from __future__ import annotations

import datetime as dt
import re
from contextlib import suppress
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Final

import attrs

from persistence._guards import FIRST_INSTANT, LAST_INSTANT
from persistence.exceptions import ReportError, ValidationError
from persistence.models import MAX_EXECUTION_TIME, Run

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["SECONDS", "Clock", "JUnitTimes", "Placing", "ended_at_import", "timed_run"]

SECONDS: Final = re.compile(
    r"[ \t\n\r]*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)?[ \t\n\r]*"
)
"""A `time` as JUnit writes it: a decimal number, perhaps with an exponent, in ASCII digits;
XML's white space around it is read past, as XML Schema's numbers allow, and a time of none
(empty, or white space only) is 0, as one left out."""
_XML_SPACE: Final = " \t\n\r"
_LATE: Final = LAST_INSTANT - dt.timedelta(microseconds=1)
"""A case's time past the year 9999: after the run's end, which then takes it."""
_MICROSECOND: Final = dt.timedelta(microseconds=1)
UNPLACED: Final = FIRST_INSTANT + _MICROSECOND
"""The time a case of no suite timestamp is stored at until the run's start replaces it: the
first instant a model takes. A case placed there by its timestamp is at or before the first
timestamp, and so takes the run's start too: the two are never told apart wrongly. (The
import's time was used, which a case's own time could equal, to the microsecond.)"""


def timed_run(path: Path, run: Run, span: tuple[dt.datetime, dt.datetime]) -> Run:
    """Give the new run with the start and end a report gave; the model checks them."""
    started, ended = span
    try:
        return attrs.evolve(run, started_at=started, ended_at=ended)
    except ValidationError as error:  # a reserved instant: the first or last one of all
        raise ReportError(path, None, f"the run's times: {error}") from None


def ended_at_import(now: dt.datetime, lasted: dt.timedelta) -> tuple[dt.datetime, dt.datetime]:
    """Give the span of a run that lasted so long and ended at the import, `now`."""
    try:
        return now - lasted, now
    except OverflowError:
        raise ValueError(f"the report's times span {lasted}, more than before the import") from None


@attrs.define
class Clock:
    """A `<testsuite>` with a timestamp: when it began, and the time its cases took so far.

    A naive timestamp is read as UTC here (`JUnitTimes.guess` moves it). A suite that gives no
    `time`, in a report whose `<testsuites>` gives none either, lasts as long as its cases: the
    run's span grows to hold them (`JUnitTimes.case_at`).
    """

    began: dt.datetime
    elapsed: float = 0.0
    timed: bool = True
    """Whether the suite or `<testsuites>` gave a `time`, which then stands, whatever its cases
    add up to."""


@attrs.define(frozen=True)
class Placing:
    """What `PlaceRunResults` takes to put a run's results in its span, its run id aside."""

    unplaced: dt.datetime
    first: dt.datetime
    last: dt.datetime
    started_at: dt.datetime
    ended_at: dt.datetime
    shift_seconds: int
    shift_micros: int


@attrs.define
class JUnitTimes:
    """The times of a JUnit report's `<testsuites>` and `<testsuite>` elements, as parsed.

    The run spans from the earliest `timestamp` to the latest `timestamp` plus its `time` (a
    suite's of no `time`: its cases' added up).
    Timestamps without a UTC offset name no instant (writers disagree: pytest before 8.3 and
    JUnit 5 write local time, Ant and jest-junit UTC): their span ends at the import. With no
    timestamp at all, the longest `time` given is the run's, ending at the import.
    """

    first: dt.datetime | None = None
    last: dt.datetime | None = None
    first_line: int = 0
    longest: float = 0.0
    now: dt.datetime | None = None
    """The import's time, where a naive first timestamp's span is moved to end (`guess`)."""
    guess: dt.timedelta = dt.timedelta(0)
    """What moves a naive time read as UTC into the run's span, as the first timestamp's span
    says: from its end to the import. Right unless a later element ends later, which it
    rarely does (pytest and Surefire write one suite), it spares moving every case at the end.
    """
    unplaced: dt.datetime | None = None
    """`UNPLACED`, once a case of no suite timestamp is given it."""
    earliest: dt.datetime | None = None
    latest: dt.datetime | None = None
    """The earliest and latest time given to a case by its suite's timestamp, as read."""

    def case_at(self, clock: Clock | None, seconds: float) -> dt.datetime:
        """Give a case's time as read: its suite's timestamp plus the cases' before it.

        A case of a suite without a timestamp is given `UNPLACED`, which the run's start
        replaces at the report's end. A ValueError if it takes a suite of no `time` past the
        years (`_lasted`).
        """
        if clock is None:
            self.unplaced = UNPLACED
            return UNPLACED
        try:
            at = clock.began + dt.timedelta(seconds=clock.elapsed) + self.guess
        except OverflowError:  # past the year 9999: a report of a span the run holds is not before
            at = _LATE
        clock.elapsed += seconds
        if not clock.timed:
            self._lasted(clock)
        if self.earliest is None or self.latest is None:
            self.earliest = self.latest = at
        elif at < self.earliest:
            self.earliest = at
        elif at > self.latest:
            self.latest = at
        return at

    def _lasted(self, clock: Clock) -> None:
        """Make the span end no earlier than a suite of no `time` whose cases took so long.

        A ValueError, as a suite's own `time` would be, if that is past the year 9999 or, with
        an offset, at its last instant: the span was left short, its cases held to its end.
        """
        try:
            ended = clock.began + dt.timedelta(seconds=clock.elapsed)
        except OverflowError:
            raise ValueError(
                "<testsuite> timestamp plus its cases' times ends after the year 9999:"
                f" {clock.began.isoformat()} plus {clock.elapsed:g} seconds"
            ) from None
        if self.last is not None and self.last.tzinfo is None:  # as naive timestamps are kept
            ended = ended.replace(tzinfo=None)
        elif ended == LAST_INSTANT:
            raise ValueError(
                "<testsuite> timestamp plus its cases' times ends at the last instant of all,"
                f" which is reserved: {clock.began.isoformat()} plus {clock.elapsed:g} seconds"
            )
        if self.last is None or ended > self.last:
            self.last = ended

    def placing(self, span: tuple[dt.datetime, dt.datetime]) -> Placing | None:
        """Say how to put the cases in the run's span, or None when each is in its place.

        A case's time as read lies within the span the timestamps give, or it takes the
        run's start (before it, or no timestamp) or end (after it); timestamps without an
        offset were read as UTC and moved by `guess`, and the cases move as their span moved,
        to end at the import: by the difference between the first timestamp's end and the last.
        """
        started, ended = span
        if self.first is None or self.last is None:  # no timestamp: no case was placed
            first, last, shift = started, ended, dt.timedelta(0)
        else:
            first, last = self.first, self.last
            if first.tzinfo is None:  # within the years, as the run's span is
                first = first.replace(tzinfo=dt.UTC) + self.guess
                last = last.replace(tzinfo=dt.UTC) + self.guess
            shift = started - first
        moved = self.unplaced is not None and self.unplaced != started
        if self.earliest is not None and self.latest is not None:
            moved = moved or bool(shift) or self.earliest < first or self.latest > last
        if not moved:
            return None
        seconds, micros = divmod(shift // _MICROSECOND, 1_000_000)
        return Placing(self.unplaced or started, first, last, started, ended, seconds, micros)

    def note(
        self, element: str, timestamp: str | None, time: str | None, line: int
    ) -> dt.datetime | None:
        """Take an element's `timestamp` and `time`; give the timestamp, naive read as UTC.

        A bad one is a ValueError saying why.
        """
        seconds = 0.0
        lasted = dt.timedelta(0)
        if time is not None:
            number = SECONDS.fullmatch(time)
            seconds = float(number.group(1) or 0) + 0.0 if number else -1.0
            if not number or not 0.0 <= seconds <= MAX_EXECUTION_TIME:  # NaN is not
                raise ValueError(
                    f"{element} time must be a decimal number of seconds from 0 to"
                    f" {MAX_EXECUTION_TIME:g}, got {time!r:.80}"
                )
            self.longest = max(self.longest, seconds)
            lasted = _exactly(number.group(1))
        if timestamp is None or not timestamp.strip(_XML_SPACE):
            return None
        began = _instant(element, timestamp)
        if self.first is not None and (began.tzinfo is None) != (self.first.tzinfo is None):
            this, that = ("without", "with") if began.tzinfo is None else ("with", "without")
            raise ValueError(
                f"{element} timestamp {timestamp!r:.80} is {this} a UTC offset, where the one"
                f" on line {self.first_line} is {that} one: give all or none an offset"
            )
        try:
            ended = began + lasted
        except OverflowError:
            raise ValueError(
                f"{element} timestamp plus time ends after the year 9999:"
                f" {timestamp!r:.80} plus {seconds:g} seconds"
            ) from None
        if began.tzinfo is not None:  # the run's start or end; a naive one's span is moved
            _unreserved(element, timestamp, (began, ended), seconds)
        if self.first is None and began.tzinfo is None and self.now is not None:
            self.guess = self.now - ended.replace(tzinfo=dt.UTC)
        if self.first is None or began < self.first:
            self.first, self.first_line = began, line
        self.last = ended if self.last is None else max(self.last, ended)
        return began if began.tzinfo is not None else began.replace(tzinfo=dt.UTC)

    def span(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Give the run's start and end, `now` being the import's time."""
        if self.first is None or self.last is None:
            return ended_at_import(now, dt.timedelta(seconds=self.longest))
        if self.first.tzinfo is not None:
            return self.first, self.last
        return ended_at_import(now, self.last - self.first)


def _unreserved(
    element: str, timestamp: str, span: tuple[dt.datetime, dt.datetime], seconds: float
) -> None:
    """Refuse an element's span that starts at the first instant or ends at the last.

    A model reserves both: refused as the run's times, the error named no element or line.
    """
    if span[0] == FIRST_INSTANT:
        raise ValueError(
            f"{element} timestamp {timestamp!r:.80} is the first instant of all, which is"
            " reserved: use a later one"
        )
    if span[1] == LAST_INSTANT:
        raise ValueError(
            f"{element} timestamp plus time ends at the last instant of all, which is reserved:"
            f" {timestamp!r:.80} plus {seconds:g} seconds"
        )


def _exactly(seconds: str | None) -> dt.timedelta:
    """Give a `time` of 0 to 10**12 seconds (`SECONDS`) to the nearest microsecond, exactly.

    A float misses by microseconds past some 285 years (2**53 microseconds): an export's span
    of a run of centuries came back moved, or past the year 9999.
    """
    if seconds is None:
        return dt.timedelta(0)
    try:
        micros = int((Decimal(seconds) * 1_000_000).to_integral_value(ROUND_HALF_EVEN))
    except InvalidOperation:  # an exponent past Decimal's (`0e99999999999999999999`): in range,
        micros = round(float(seconds) * 1_000_000)  # that is a zero or a speck under 1 us
    return dt.timedelta(microseconds=micros)


def _instant(element: str, timestamp: str) -> dt.datetime:
    """Read an ISO 8601 `timestamp`, in UTC if it has an offset, else as it is (naive)."""
    text = timestamp.strip(_XML_SPACE)
    found = None
    if text.isascii():  # Python reads other digits too; JUnit means ASCII ones
        with suppress(ValueError, OverflowError):
            found = dt.datetime.fromisoformat(text)
    if found is not None and found.tzinfo is not None:
        try:  # an overflow read past kept it in its own offset: its cases overflowed in storage
            return found.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError(
                f"{element} timestamp {timestamp!r:.80} is outside the years 1 to 9999 in UTC"
            ) from None
    if found is None:
        raise ValueError(
            f"{element} timestamp must be an ISO 8601 time such as 2026-03-01T10:00:00+00:00,"
            f" got {timestamp!r:.80}"
        )
    return found
