"""SyncRunner.close racing calls that end at the same moment, from many threads, many times.

A call whose work returned gives its value; one that the close cut off, or refused, raises the
runner's closed error: never a bare CancelledError, never the close's timeout. No caller is
left waiting, and the close leaves no thread or descriptor behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Final

import attrs
import pytest

from _cache_disk_helpers import open_descriptors
from persistence.exceptions import CloseTimeoutError
from persistence.sync import SyncRunner

THREADS: Final = 6
ROUNDS: Final = 60
PAUSES: Final = (0, 0.0002, 0.001, 0.003)
"""How long the close waits after the threads start, round after round."""


@attrs.define
class Calls:
    """What one thread's calls gave, and which of them the work itself saw return."""

    returned: set[int] = attrs.Factory(set)
    """The calls whose work reached its return: set on the loop, before the task ends."""
    given: dict[int, int | BaseException] = attrs.Factory(dict)
    """Each call's value or error, as its caller got it."""


async def short(calls: Calls, number: int, *, stubborn: bool) -> int:
    """Yield to the loop once or twice, then return `number`; a stubborn one outlives a cancel."""
    try:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    except asyncio.CancelledError:
        if not stubborn:
            raise
    calls.returned.add(number)
    return number


def calling(runner: SyncRunner, calls: Calls, *, stubborn: bool) -> None:
    """Call until the runner refuses, keeping what each call gave."""
    number = 0
    while True:
        number += 1
        try:
            calls.given[number] = runner.call(short, calls, number, stubborn=stubborn)
        except BaseException as error:  # noqa: BLE001  # each kind is checked by the test
            calls.given[number] = error
            return


@pytest.mark.parametrize("work", ["cancellable", "stubborn"])
def test_a_call_ending_as_the_runner_closes_gives_its_value_or_the_closed_error(
    work: str,
) -> None:
    """A call whose work returned gives its value; any other, the closed error, chained."""
    stubborn = work == "stubborn"
    threads_before, descriptors_before = threading.active_count(), open_descriptors()
    for round_ in range(ROUNDS):
        runner = SyncRunner()
        calls = [Calls() for _ in range(THREADS)]
        threads = [
            threading.Thread(target=calling, args=(runner, each), kwargs={"stubborn": stubborn})
            for each in calls
        ]
        for thread in threads:
            thread.start()
        time.sleep(PAUSES[round_ % len(PAUSES)])
        runner.close(timeout=10)
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads), "a caller still waits"
        for each in calls:
            for number, given in each.given.items():
                if number in each.returned:
                    assert given == number, (number, repr(given))
                    continue
                assert isinstance(given, RuntimeError), repr(given)
                assert not isinstance(given, CloseTimeoutError), repr(given)
                assert "SyncRunner" in str(given), repr(given)
                assert "closed" in str(given), repr(given)
                if given.__cause__ is not None:
                    assert isinstance(given.__cause__, asyncio.CancelledError), repr(given)
            last = each.given[max(each.given)]
            assert isinstance(last, RuntimeError), repr(last)
    assert threading.active_count() == threads_before
    assert open_descriptors() == descriptors_before
