"""What the hostile-input tests share: a call's outcome, or the package's error it raised."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from persistence import ConflictError, NotFoundError, ValidationError
from strategies.values import exactly

_T = TypeVar("_T")

Expected = ValidationError | NotFoundError | ConflictError


async def attempt(make: Callable[[], Awaitable[_T]]) -> _T | Expected:
    """Make the call and await it, so that building its arguments is part of the attempt."""
    try:
        call = make()
    except (ValidationError, NotFoundError, ConflictError) as error:
        return error
    return await outcome(call)


async def outcome(call: Awaitable[_T]) -> _T | Expected:
    """Await a call; give back the error it raises if it is one a caller should expect.

    Any other exception, a driver's above all, propagates and fails the test.
    """
    try:
        return await call
    except (ValidationError, NotFoundError, ConflictError) as error:
        return error


def assert_refused(error: object, model: str, *fields: str) -> None:
    """Assert a call raised exactly ValidationError, naming the model and one of the fields."""
    assert type(error) is ValidationError, f"expected ValidationError, got {error!r}"
    assert error.model == model
    assert error.field in fields, f"{error.field!r} is not one of {fields}"


def assert_same(found: object, expected: object) -> None:
    """Assert two values are equal in value and in type, all the way down."""
    assert exactly(found) == exactly(expected)
