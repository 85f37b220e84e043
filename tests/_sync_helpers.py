"""What the SyncRunner tests share: a small result, and a call that drops what it raises."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from persistence import TestResult, TestStatus, TestType


def result() -> TestResult:
    """A small result to save."""
    return TestResult(test_type=TestType.UNIT, status=TestStatus.PASSED)


def quietly(function: Callable[..., object], *args: object) -> None:
    """Call `function`, dropping whatever it raises (a call made in a thread of the test)."""
    with contextlib.suppress(BaseException):
        function(*args)
